"""How much of the reward's spread can a policy change? Within-prompt vs across-prompt variance under rollouts.

The SFT model answers each of ``--prompts`` training prompts ``--samples`` times with the PPO rollout sampling
(temperature 1, top_k 0, top_p 1, ``--max_new_tokens``); every response is scored by the reward terms (minus the
reference prompt's value, as PPO's ``delta_reward``). For the total and each term the result gives the total
standard deviation, the mean within-prompt standard deviation and the within-prompt share of the variance:
the part a policy can act on. The rest is how easy each prompt is to score, which a per-prompt baseline
(``group_size`` > 1) removes from the advantage. Also: the truncation rate and its correlation with the score.

    .venv/bin/python benchmarks/bench_reward_variance.py --sft_dir outputs/beautiful_prompt \\
        --reward_model_aesthetic outputs/reward_aesthetic --reward_model_pickscore outputs/reward_pickscore
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.results import emit_result  # noqa: E402  (after the checkout is on sys.path)


def variance_split(scores: torch.Tensor, n_prompts: int, n_samples: int) -> dict:
    """Total sd, mean within-prompt sd and the within-prompt share of the variance of (prompts·samples,) scores."""
    grouped = scores.double().reshape(n_prompts, n_samples)
    within = grouped.var(dim=1, unbiased=True).mean()
    total = grouped.reshape(-1).var(unbiased=True)
    return {"total_sd": round(float(total.sqrt()), 4), "within_prompt_sd": round(float(within.sqrt()), 4),
            "within_share": round(float(within / total), 3) if total > 0 else None}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sft_dir", required=True)
    parser.add_argument("--reward_model_aesthetic", default=None)
    parser.add_argument("--reward_model_pickscore", default=None)
    parser.add_argument("--reward_terms", default="aesthetic:0.3,pickscore:0.7,consistency:1,word_recall:1")
    parser.add_argument("--pairs", default=None, help="JSONL of raw_prompt/prompt (default: <sft_dir>/data/train.jsonl)")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max_new_tokens", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="also write the JSON result here")
    args = parser.parse_args(argv)

    from easynlp_bp.ppo.rollout import generate_responses
    from easynlp_bp.reward.combined import CombinedReward
    from easynlp_bp.reward.terms import TermContext, parse_reward_terms
    from easynlp_bp.models.causal_lm import BeautifulPromptModel

    pairs = Path(args.pairs or Path(args.sft_dir) / "data" / "train.jsonl")
    with open(pairs, encoding="utf-8") as handle:
        rows = [json.loads(line) for line, _ in zip(handle, range(args.prompts))]
    n = len(rows)
    raws = [r["raw_prompt"] for r in rows for _ in range(args.samples)]
    refs = [r["prompt"] for r in rows for _ in range(args.samples)]
    bp = BeautifulPromptModel.from_pretrained(args.sft_dir)
    torch.manual_seed(args.seed)
    batch = generate_responses(bp.model, bp.tokenizer, raws, chunk_size=16, max_new_tokens=args.max_new_tokens,
                               temperature=1.0, top_k=0, top_p=1.0, device=torch.device("cpu"))
    context = TermContext(args.reward_model_aesthetic, args.reward_model_pickscore)
    reward = CombinedReward.from_spec(parse_reward_terms(args.reward_terms), context, delta_reward=True)
    parts = reward.compute(raws, batch.responses, refs)
    truncated = batch.truncated.float()
    result = {"sft_dir": args.sft_dir, "reward_terms": args.reward_terms, "prompts": n, "samples": args.samples,
              "total": variance_split(parts.total, n, args.samples),
              "terms": {name: variance_split(values, n, args.samples) for name, values in parts.terms.items()},
              "truncated_rate": round(float(truncated.mean()), 3),
              "score_truncation_correlation": round(float(torch.corrcoef(torch.stack([parts.total, truncated]))[0, 1]), 3)
              if 0 < float(truncated.mean()) < 1 else None}
    return emit_result(result, args.output)


if __name__ == "__main__":
    sys.exit(main())
