"""Reward-model labels: K images per prompt, every image scored, per-seed values and their exact mean.

Work is split over processes by row index (``index % world == rank``, accelerate's process state). Each
process appends one fsync'ed JSON line per finished row to its own shard file under ``<output>.parts/``;
a restarted run reads every shard, skips the rows already there (whatever the earlier world size) and
drops a half-written last line. Rank 0 then merges the shards in input order into the output table.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from easynlp_bp.io import write_table
from easynlp_bp.pipelines.scoring.generation import ImageGenerator
from easynlp_bp.pipelines.scoring.scorers import ImageScorer

logger = logging.getLogger(__name__)


@dataclass
class LabelingConfig:
    """Which fields are read and where progress and images go."""

    output: str = field(metadata={"help": "Final table (format by extension); progress lives in <output>.parts/."})
    prompt_field: str = field(default="prompt", metadata={"help": "Column whose text makes the images."})
    score_against: str = field(default="raw_prompt", metadata={"help": "Column text-image scorers compare with."})
    save_images: Optional[str] = field(default=None, metadata={"help": "Directory for PNGs (row_seed.png); none: keep none."})

    def __post_init__(self) -> None:
        if not self.output:
            raise ValueError("Labeling needs an output path (--outputs): it is also where progress is kept.")


def parts_dir(output: str) -> Path:
    return Path(f"{output}.parts")


def row_key(row: dict, config: LabelingConfig) -> str:
    """A fingerprint of the texts a row is labeled from (to refuse progress made from another input)."""
    text = json.dumps([row.get(config.prompt_field), row.get(config.score_against)], ensure_ascii=False)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def exact_mean(values: Sequence[float]) -> float:
    """The correctly rounded mean (``math.fsum``), so a label equals the mean of its per-seed values."""
    return math.fsum(values) / len(values)


def _repair_shard(path: Path) -> None:
    """Cut a half-written last line (a run killed mid-write) so appends start on a fresh line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        logger.warning("%s: dropping a half-written last line (%d bytes) from a killed run.", path, len(data) - keep)
        with open(path, "r+b") as handle:
            handle.truncate(keep)


def read_done(output: str) -> dict[int, dict]:
    """Finished records by row index, from every shard file; complete lines only, first one wins."""
    done: dict[int, dict] = {}
    for path in sorted(parts_dir(output).glob("shard-*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if not line.endswith("\n"):
                    continue  # a line another process is still writing, or a killed write
                record = json.loads(line)
                done.setdefault(record["_index"], record)
    return done


def label_record(index: int, row: dict, generator: ImageGenerator, scorers: Sequence[ImageScorer],
                 config: LabelingConfig) -> dict:
    """Generate K images for one row, score each with every scorer; per-seed lists and exact means."""
    generated = generator.generate(row[config.prompt_field])
    record = {"_index": index, "_key": row_key(row, config), **row,
              "seeds": generated.seeds, "clip_tokens": generated.clip_tokens}
    for scorer in scorers:
        texts = [row[config.score_against]] * len(generated.images) if scorer.text_role else None
        per_seed = [float(v) for v in scorer.score(generated.images, texts)]
        record[f"{scorer.column}_per_seed"] = per_seed
        record[scorer.column] = exact_mean(per_seed)
    if generated.nsfw is not None:
        record["nsfw_images"] = sum(bool(flag) for flag in generated.nsfw)
    if config.save_images:
        folder = Path(config.save_images)
        folder.mkdir(parents=True, exist_ok=True)
        for seed, image in zip(generated.seeds, generated.images):
            image.save(folder / f"{index:06d}_seed{seed}.png")
    return record


def label_rows(rows: Sequence[dict], generator: ImageGenerator, scorers: Sequence[ImageScorer],
               config: LabelingConfig, rank: int = 0, world: int = 1) -> dict:
    """Label this process's share of ``rows`` (``index % world == rank``), skipping finished rows.

    Returns counts: ``assigned`` to this rank, ``already_done`` before this run, ``labeled_now``.

    Raises:
        ValueError: the progress folder holds a record whose texts differ from the input row at that index.
    """
    from tqdm.auto import tqdm

    folder = parts_dir(config.output)
    folder.mkdir(parents=True, exist_ok=True)
    shard = folder / f"shard-{rank:05d}.jsonl"
    _repair_shard(shard)
    done = read_done(config.output)
    for index, record in done.items():
        if index >= len(rows) or record["_key"] != row_key(rows[index], config):
            raise ValueError(
                f"{folder} holds progress for row {index} that does not match the input table (changed input?). "
                f"Delete {folder} to start over, or choose another --outputs."
            )
    mine = [i for i in range(rank, len(rows), world)]
    todo = [i for i in mine if i not in done]
    logger.info("Rank %d/%d: %d rows assigned, %d already done, %d to label.", rank, world, len(mine),
                len(mine) - len(todo), len(todo))
    with open(shard, "a", encoding="utf-8") as handle:
        for index in tqdm(todo, desc=f"label rank {rank}", disable=not todo):
            record = label_record(index, rows[index], generator, scorers, config)
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    return {"assigned": len(mine), "already_done": len(mine) - len(todo), "labeled_now": len(todo)}


def label_columns(scorers: Sequence[ImageScorer], with_nsfw: bool = False) -> list[str]:
    """The columns labeling adds: each scorer's mean and per-seed list, the seeds and prompt length."""
    columns = []
    for scorer in scorers:
        columns += [scorer.column, f"{scorer.column}_per_seed"]
    return columns + ["seeds", "clip_tokens"] + (["nsfw_images"] if with_nsfw else [])


def merge_shards(n_rows: int, columns: Sequence[str], output: str) -> list[dict]:
    """Write the output table from the shards in input order; every row must be done exactly once."""
    done = read_done(output)
    missing = [i for i in range(n_rows) if i not in done]
    if missing:
        raise ValueError(f"{len(missing)} rows are not labeled yet (first: {missing[:5]}); run the command again to resume.")
    records = [done[i] for i in range(n_rows)]
    write_table(output, records, list(columns))
    return records
