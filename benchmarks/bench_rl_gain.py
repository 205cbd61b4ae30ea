"""Does the RL stage beat the SFT model it starts from, on real prompts neither saw?

Both models beautify the same prompts (predict defaults: sampling, ``seed=42``, one output each, no
``keep_input``, guard off: the models themselves). Each output is scored by one reward, by default the one the
PPO run optimised (its ``run_config.json`` reward terms), and by every term alone. Reported per prompt set: the
paired difference PPO - SFT (mean, standard error, t), and for each model the share of outputs that keep every
content word of the user's prompt, the share with a loop and the empty outputs.

    .venv/bin/python benchmarks/bench_rl_gain.py --sft_dir outputs/beautiful_prompt \\
        --ppo_dir outputs/beautiful_prompt_ppo --data ../shared/data
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.results import emit_result  # noqa: E402  (after the checkout is on sys.path)

PROMPT_SETS = ("partiprompts", "imagereward", "t2i_compbench", "coco_captions")


def prompt_sets(data: Path, limit: Optional[int], names: Sequence[str] = PROMPT_SETS) -> dict[str, list[str]]:
    """PartiPrompts and the ImageReward benchmark prompts (test split) in file order; T2I-CompBench (all
    categories) and COCO 2017 val captions in one fixed shuffled order (their files are sorted by category/id)."""
    import random

    loaders = {
        "partiprompts": lambda: [row["Prompt"] for row in csv.DictReader(io.StringIO(
            (data / "partiprompts" / "PartiPrompts.tsv").read_text(encoding="utf-8"), newline=""), delimiter="\t")],
        "imagereward": lambda: pd.read_parquet(data / "imagereward_prompts" / "test.parquet")["Prompt"].astype(str).tolist(),
        "t2i_compbench": lambda: random.Random(0).sample(lines := [
            line for name in sorted((data / "t2i_compbench").glob("*.txt"))
            for line in name.read_text(encoding="utf-8").splitlines()], len(lines)),
        "coco_captions": lambda: random.Random(0).sample(captions := [
            a["caption"] for a in json.loads((data / "coco_captions" / "captions_val2017.json").read_text())["annotations"]],
            len(captions)),
    }
    sets = {}
    for name in names:
        prompts = [p.strip() for p in loaders[name]() if p.strip()]
        sets[name] = prompts[:limit] if limit else prompts
    return sets


def paired(differences: Sequence[float]) -> dict:
    """Mean, standard error and t of paired differences."""
    n = len(differences)
    mean = sum(differences) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1)) if n > 1 else 0.0
    se = sd / math.sqrt(n) if n else 0.0
    return {"n": n, "mean": round(mean, 4), "se": round(se, 4), "t": round(mean / se, 2) if se else None}


def first_outputs(model_dir: str, prompts: list[str]) -> list[str]:
    from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams

    predictor = BeautifulPromptPredictor(model_dir, PredictorParams(seed=42, num_return_sequences=1, guard=False,
                                                                    device="cpu"))
    return [outputs[0] if outputs else "" for outputs in predictor.predict(prompts)]


def text_quality(raws: Sequence[str], outputs: Sequence[str]) -> dict:
    from easynlp_bp.text.faithfulness import loop_share, subject_kept_share

    n = len(outputs)
    return {"all_words_kept": round(sum(subject_kept_share(r, o) == 1.0 for r, o in zip(raws, outputs)) / n, 4),
            "loop": round(sum(loop_share(o) > 0.2 for o in outputs) / n, 4),
            "empty": sum(not o.strip() for o in outputs)}


def load_reward(ppo_dir: str, spec_text: Optional[str]):
    """The reward the PPO run optimised (terms, RM directories and encoder from its run_config.json)."""
    from easynlp_bp.reward.combined import CombinedReward
    from easynlp_bp.reward.terms import TermContext, parse_reward_terms

    run = json.loads((Path(ppo_dir) / "run_config.json").read_text(encoding="utf-8"))
    params = run["user_defined_parameters"]
    spec = parse_reward_terms(spec_text) if spec_text else [tuple(term) for term in run["resolved"]["reward_terms"]]
    context = TermContext(params.get("reward_model_aesthetic"), params.get("reward_model_pickscore"),
                          heuristic=params.get("reward") == "heuristic",
                          consistency_model=params.get("consistency_model"))
    return CombinedReward.from_spec(spec, context, delta_reward=False), spec


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sft_dir", required=True)
    parser.add_argument("--ppo_dir", required=True)
    parser.add_argument("--data", required=True, help="../shared/data")
    parser.add_argument("--limit", type=int, default=None, help="first N prompts of each set (default: all)")
    parser.add_argument("--sets", default=",".join(PROMPT_SETS), help="comma separated, of: " + ", ".join(PROMPT_SETS))
    parser.add_argument("--reward_terms", default=None, help="score with these terms instead of the run's")
    parser.add_argument("--output", default=None, help="also write the JSON result here")
    args = parser.parse_args(argv)

    reward, spec = load_reward(args.ppo_dir, args.reward_terms)
    result = {"sft_dir": args.sft_dir, "ppo_dir": args.ppo_dir, "reward_terms": spec, "sets": {}}
    for name, raws in prompt_sets(Path(args.data), args.limit, [n.strip() for n in args.sets.split(",") if n.strip()]).items():
        sft, ppo = first_outputs(args.sft_dir, raws), first_outputs(args.ppo_dir, raws)
        sft_parts, ppo_parts = reward.compute(raws, sft), reward.compute(raws, ppo)
        report = {"reward": paired((ppo_parts.total - sft_parts.total).tolist()),
                  "sft_reward_mean": round(float(sft_parts.total.mean()), 4),
                  "terms": {term: paired((ppo_parts.terms[term] - sft_parts.terms[term]).tolist())
                            for term in ppo_parts.terms},
                  "sft": text_quality(raws, sft), "ppo": text_quality(raws, ppo)}
        result["sets"][name] = report
    return emit_result(result, args.output)


if __name__ == "__main__":
    sys.exit(main())
