"""The paper's evaluation: each method's prompts -> text metrics, and (with scorers) images scored against the
raw prompt, one grid PNG per prompt, the mean table as JSON + Markdown, and the A/B page's items.

Every method sees the same seeds, so image differences come from the prompts alone.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from easynlp_bp.evaluation.grid import save_grid
from easynlp_bp.evaluation.methods import PromptMethod
from easynlp_bp.evaluation.report import write_report
from easynlp_bp.text.metrics import text_metrics
from easynlp_bp.io.writers import to_json
from easynlp_bp.progress import progress_bar_over

logger = logging.getLogger(__name__)

TEXT_COLUMNS = ["consistency", "subject_all", "subject_half", "subject_mean", "clip_tokens_mean", "over_77_rate", "distinct_1", "distinct_2", "nsfw_rate"]


@dataclass
class EvaluationResult:
    """The table rows (one per method), the prompts each method made, and where files went."""

    table: list[dict]
    prompts: dict[str, list[str]]
    per_prompt: list[dict] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    images: dict[str, list[list[str]]] = field(default_factory=dict)  # method -> prompt -> PNG paths by seed


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def evaluate_methods(raw_prompts: Sequence[str], methods: Sequence[PromptMethod], out_dir: str | Path, *,
                     generator=None, scorers: Sequence = (), encoder=None, count_tokens=None,
                     nsfw_words: Optional[set[str]] = None, meta: Optional[dict] = None) -> EvaluationResult:
    """Run the evaluation and write ``eval_table.{json,md}``, ``prompts.jsonl``, ``per_prompt.jsonl`` and
    ``grids/NNNN.png`` (with a generator) under ``out_dir``.

    Image scores are averaged over seeds, then over prompts. Without ``generator`` only text metrics are made.
    """
    out_dir = Path(out_dir)
    raw_prompts = list(raw_prompts)
    prompts = {m.spec.name: m.expand(raw_prompts) for m in methods}
    table = [{"method": name, **text_metrics(raw_prompts, texts, encoder=encoder, count_tokens=count_tokens,
                                             nsfw_words=nsfw_words)} for name, texts in prompts.items()]
    per_prompt = [{"raw_prompt": raw, **{f"prompt/{name}": texts[i] for name, texts in prompts.items()}}
                  for i, raw in enumerate(raw_prompts)]
    images: dict[str, list[list[str]]] = {name: [] for name in prompts}
    columns = []
    if generator is not None and scorers:
        columns = [s.column for s in scorers]
        for i, raw in enumerate(progress_bar_over(raw_prompts, "evaluate (images)", "prompt")):
            grid_rows = []
            for name, texts in prompts.items():
                generated = generator.generate(texts[i])
                paths = []
                for seed, image in zip(generated.seeds, generated.images):
                    path = out_dir / "images" / name / f"{i:04d}_seed{seed}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    image.save(path)
                    paths.append(str(path))
                images[name].append(paths)
                for scorer in scorers:
                    texts_for_scorer = [raw] * len(generated.images) if scorer.text_role else None
                    per_prompt[i][f"{scorer.column}/{name}"] = _mean(scorer.score(generated.images, texts_for_scorer))
                grid_rows.append((name, generated.images))
            save_grid(grid_rows, out_dir / "grids" / f"{i:04d}.png", title=raw)
        for row in table:
            for column in columns:
                row[column] = _mean([p[f"{column}/{row['method']}"] for p in per_prompt])
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "per_prompt.jsonl", "w", encoding="utf-8") as handle:
        for row in per_prompt:
            handle.write(to_json(row) + "\n")  # strict JSON: a NaN score is written as null
    notes = ["Image scores are means over prompts of the mean over seeds, each scored against the raw prompt."] if columns else []
    json_path, md_path = write_report(table, columns + TEXT_COLUMNS, out_dir,
                                      {"num_prompts": len(raw_prompts), "notes": notes, **(meta or {})})
    files = {"table_json": str(json_path), "table_md": str(md_path), "per_prompt": str(out_dir / "per_prompt.jsonl")}
    if columns:
        files["grids"] = str(out_dir / "grids")
    logger.info("Evaluation of %d methods on %d prompts written to %s", len(methods), len(raw_prompts), out_dir)
    return EvaluationResult(table=table, prompts=prompts, per_prompt=per_prompt, files=files, images=images)
