"""Sweep the consistency weight b of the combined reward: how often does the reward prefer a
prompt that keeps the user's subject, and how much does the term disturb the RMs' own ranking?

For each real raw prompt x (PartiPrompts) it builds candidate prompts that share the same modifiers:
``kept`` (x + modifiers), ``dropped`` (modifiers only), ``drifted`` (another prompt's subject + the same
modifiers) and ``half`` (half of x's content words removed). For each b it reports the share of prompts
where the combined reward ranks ``kept`` above each bad candidate, and the Spearman correlation between
the reward with and without the term over ``kept`` candidates with different modifiers (1.0: the term
leaves the RMs' judgement of style alone). RMs: trained directories, or the heuristic stand-ins.

    .venv/bin/python benchmarks/sweep_consistency.py --weights 0,0.5,1,2,4 --limit 300 \\
        --reward_model_aesthetic outputs/reward_aesthetic --reward_model_pickscore outputs/reward_pickscore
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.bench_consistency import DEFAULT_PROMPTS, read_prompts  # noqa: E402
from benchmarks.results import emit_result  # noqa: E402


def build_candidates(raw_prompts: Sequence[str], seed: int = 0) -> list[dict]:
    """Per raw prompt: kept, kept_alt (other modifiers), dropped, drifted and half candidates."""
    from easynlp_bp.default import vocabulary as vocab
    from easynlp_bp.text.metrics import content_words

    rng = random.Random(seed)
    pool = vocab.DETAILS + vocab.LIGHTING + vocab.STYLES + vocab.QUALITY
    rows = []
    for index, raw in enumerate(raw_prompts):
        subject = raw.strip().rstrip(".")
        mods, alt = ", ".join(rng.sample(pool, 5)), ", ".join(rng.sample(pool, 3))
        other = raw_prompts[(index + 1) % len(raw_prompts)].strip().rstrip(".")
        words = content_words(subject)
        removed = set(rng.sample(words, len(words) // 2 + 1)) if words else set()
        half = " ".join(w for w in subject.split() if w.lower().strip(".,'\"") not in removed) or subject
        rows.append({"raw": raw, "kept": f"{subject}, {mods}", "kept_alt": f"{subject}, {alt}",
                     "dropped": mods, "drifted": f"{other}, {mods}", "half": f"{half}, {mods}"})
    return rows


def _spearman(a: Sequence[float], b: Sequence[float]) -> float:
    from easynlp_bp.reward.metrics import regression_metrics

    return regression_metrics(list(a), list(b))["spearman"]


def sweep(rows: list[dict], parts: dict, weights: Sequence[float], alpha: float = 0.7) -> list[dict]:
    """One table row per weight b from precomputed parts {kind: (aes, pick, cons)} tensors."""
    import torch

    table = []
    for b in weights:
        reward = {kind: (1 - alpha) * aes + alpha * pick + b * cons for kind, (aes, pick, cons) in parts.items()}
        rm_only = {kind: (1 - alpha) * aes + alpha * pick for kind, (aes, pick, _) in parts.items()}
        row = {"b": b}
        for bad in ("dropped", "drifted", "half"):
            differs = torch.tensor([r[bad] != r["kept"] for r in rows])  # one-word prompts have no half
            row[f"kept>{bad}"] = float((reward["kept"] > reward[bad])[differs].float().mean())
        style = reward["kept"] - reward["kept_alt"]
        row["style_spearman"] = _spearman(style.tolist(), (rm_only["kept"] - rm_only["kept_alt"]).tolist())
        table.append(row)
    return table


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", default=str(DEFAULT_PROMPTS))
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--weights", default="0,0.5,1,2,4")
    parser.add_argument("--reward_model_aesthetic", default=None, help="Trained aesthetic RM dir (default: heuristic).")
    parser.add_argument("--reward_model_pickscore", default=None, help="Trained PickScore RM dir (default: heuristic).")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    from easynlp_bp.reward.combined import CombinedReward

    rows = build_candidates(read_prompts(args.prompts, args.limit))
    if args.reward_model_aesthetic and args.reward_model_pickscore:
        reward_fn = CombinedReward.from_pretrained(args.reward_model_aesthetic, args.reward_model_pickscore,
                                                   delta_reward=False, consistency_weight=1.0)
        rms = "trained RMs"
    elif args.reward_model_pickscore:  # a trained PickScore RM with the heuristic aesthetic stand-in
        from easynlp_bp.default.heuristic_scorer import HeuristicAestheticScorer
        from easynlp_bp.reward.consistency import ConsistencyScorer
        from easynlp_bp.models.reward_model import RewardModel

        pick = RewardModel.from_pretrained(args.reward_model_pickscore, reward_type="pickscore")
        reward_fn = CombinedReward.from_scorers(HeuristicAestheticScorer(), pick, delta_reward=False,
                                   consistency_scorer=ConsistencyScorer(), consistency_weight=1.0)
        rms = "trained PickScore RM + heuristic aesthetic stand-in"
    else:
        reward_fn, rms = CombinedReward.heuristic(delta_reward=False, consistency_weight=1.0), "heuristic stand-ins"
    raws = [r["raw"] for r in rows]
    parts = {}
    for kind in ("kept", "kept_alt", "dropped", "drifted", "half"):
        got = reward_fn.compute(raws, [r[kind] for r in rows])
        parts[kind] = (got.terms["aesthetic"], got.terms["pickscore"], got.terms["consistency"])
    table = sweep(rows, parts, [float(w) for w in args.weights.split(",")])
    return emit_result({"prompts": args.prompts, "n": len(rows), "reward_models": rms, "table": table}, args.output)


if __name__ == "__main__":
    sys.exit(main())
