"""What the faithfulness guard does on real prompt sets, and what it costs.

For each set, the same model predicts the same prompts twice side by side, guard off and guard on (predict
defaults otherwise, ``seed=42``, one output per prompt). Reported per set: the share of outputs that drop or
misspell a user word, the share with a degenerate loop, the guard's status shares (ok / resampled / kept_input /
too_long) and the time ratio guard on / guard off.

    .venv/bin/python benchmarks/bench_guard.py --model_dir outputs/beautiful_prompt_ppo --data ../shared/data
"""
from __future__ import annotations

import argparse
import csv
import glob
import random
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.results import emit_result  # noqa: E402  (after the checkout is on sys.path)


def prompt_sets(data: Path, limit: int) -> dict[str, list[str]]:
    """PartiPrompts, the ImageReward benchmark prompts (test split) and T2I-CompBench (all categories, mixed)."""
    with open(data / "partiprompts" / "PartiPrompts.tsv", encoding="utf-8", newline="") as handle:
        parti = [row["Prompt"].strip() for row in csv.DictReader(handle, delimiter="\t")]
    imagereward = pd.read_parquet(data / "imagereward_prompts" / "test.parquet")["Prompt"].astype(str).tolist()
    compbench = []
    for name in sorted(glob.glob(str(data / "t2i_compbench" / "*.txt"))):
        compbench += [line.strip() for line in Path(name).read_text(encoding="utf-8").splitlines()]
    rng = random.Random(0)
    sets = {"partiprompts": parti, "imagereward": imagereward, "t2i_compbench": compbench}
    return {name: rng.sample([p for p in prompts if p.strip()], min(limit, len(prompts)))
            for name, prompts in sets.items()}


def measure(predictor, prompts: Sequence[str], guard: bool) -> dict:
    """Outputs' faithfulness (by the guard's own rules) and seconds for one pass."""
    from easynlp_bp.text.faithfulness import loop_share, subject_kept_share
    from easynlp_bp.prompting.guard import GUARD_STATUSES

    start = time.perf_counter()
    results = predictor.predict_results(list(prompts), {"guard": guard})
    seconds = time.perf_counter() - start
    pairs = [(raw, result.outputs[0]) for raw, result in zip(prompts, results) if result.outputs]
    statuses = [result.statuses[0] for result in results if result.statuses]
    return {
        "seconds": round(seconds, 2),
        "outputs": len(pairs),
        "lost_or_misspelt_word": round(sum(subject_kept_share(r, o) < 1.0 for r, o in pairs) / len(pairs), 4),
        "degenerate_loop": round(sum(loop_share(o) > 0.2 for _, o in pairs) / len(pairs), 4),
        "empty": sum(not o.strip() for _, o in pairs),
        "statuses": {s: round(statuses.count(s) / len(statuses), 4) for s in GUARD_STATUSES if s in statuses},
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--data", required=True, help="../shared/data")
    parser.add_argument("--limit", type=int, default=400, help="prompts per set (random sample, seed 0)")
    parser.add_argument("--output", default=None, help="also write the JSON result here")
    args = parser.parse_args(argv)

    from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams

    predictor = BeautifulPromptPredictor(args.model_dir, PredictorParams(seed=42, num_return_sequences=1,
                                                                         device="cpu"))
    result = {"model_dir": args.model_dir, "limit": args.limit, "sets": {}}
    for name, prompts in prompt_sets(Path(args.data), args.limit).items():
        off, on = measure(predictor, prompts, guard=False), measure(predictor, prompts, guard=True)
        result["sets"][name] = {"guard_off": off, "guard_on": on,
                                "time_ratio_on_over_off": round(on["seconds"] / off["seconds"], 2)}
    return emit_result(result, args.output)


if __name__ == "__main__":
    sys.exit(main())
