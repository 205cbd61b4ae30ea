"""How often does a model keep every content word of a real prompt, by prompt length?

Each model beautifies the same real prompts (predict defaults: sampling, ``seed=42``, one output each, no
``keep_input``, guard off: the model itself), as ``bench_rl_gain.py`` does. Reported per prompt set and model: the
share of outputs that keep every content word, the share with a loop, empty outputs, and the share that keep every
word by the raw prompt's length in words (copying fails first on long prompts).

    .venv/bin/python benchmarks/bench_words_kept.py --model_dir outputs/beautiful_prompt \\
        --model_dir outputs/beautiful_prompt_ppo --data ../shared/data --limit 300
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.bench_rl_gain import PROMPT_SETS, first_outputs, prompt_sets, text_quality  # noqa: E402
from benchmarks.results import emit_result  # noqa: E402

# (label, fewest words, most words) of the raw prompt
LENGTH_BUCKETS = (("1-8", 1, 8), ("9-16", 9, 16), ("17-30", 17, 30), ("31+", 31, None))


def kept_by_length(raws: Sequence[str], outputs: Sequence[str]) -> dict:
    """{bucket: {"n", "all_words_kept"}} over the raw prompts' word counts (buckets without prompts left out)."""
    from easynlp_bp.text.faithfulness import subject_kept_share

    result = {}
    for label, low, high in LENGTH_BUCKETS:
        kept = [subject_kept_share(raw, out) == 1.0 for raw, out in zip(raws, outputs)
                if low <= len(raw.split()) and (high is None or len(raw.split()) <= high)]
        if kept:
            result[label] = {"n": len(kept), "all_words_kept": round(sum(kept) / len(kept), 4)}
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", action="append", required=True, help="a beautiful_prompt model; repeatable")
    parser.add_argument("--data", required=True, help="../shared/data")
    parser.add_argument("--limit", type=int, default=None, help="first N prompts of each set (default: all)")
    parser.add_argument("--sets", default="partiprompts,imagereward", help="comma separated, of: " + ", ".join(PROMPT_SETS))
    parser.add_argument("--output", default=None, help="also write the JSON result here")
    args = parser.parse_args(argv)

    sets = prompt_sets(Path(args.data), args.limit, [n.strip() for n in args.sets.split(",") if n.strip()])
    result = {"models": {}}
    for model_dir in args.model_dir:
        by_set = {}
        for name, raws in sets.items():
            outputs = first_outputs(model_dir, raws)
            by_set[name] = {**text_quality(raws, outputs), "by_length": kept_by_length(raws, outputs)}
        result["models"][model_dir] = by_set
    return emit_result(result, args.output)


if __name__ == "__main__":
    sys.exit(main())
