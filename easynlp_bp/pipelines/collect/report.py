"""The stats report of a collection run: ``<output>.stats.json`` and a readable ``<output>.summary.txt``."""
from __future__ import annotations

import json
from pathlib import Path


def stats_paths(output: str) -> tuple[Path, Path]:
    """Where the JSON stats and the readable summary of ``output`` go."""
    base = Path(output)
    stem = base.with_suffix("") if base.suffix else base
    return Path(f"{stem}.stats.json"), Path(f"{stem}.summary.txt")


def format_summary(stats: dict) -> str:
    """A few lines a person reads: what came in, the quality split, each step and filter, what came out."""
    read = stats["read"]
    lines = [f"Corpus {stats['source']}: {read['rows']} rows read, {read['kept']} kept, {read['rejected']} rejected."]
    quality = stats.get("quality")
    if quality:
        counts, shares = quality["counts"], quality["shares"]
        lines.append("Quality split: " + ", ".join(
            f"{label} {counts[label]} ({100 * shares[label]:.1f}%)" for label in ("low", "mid", "high")))
        lines.append("  median words: " + ", ".join(
            f"{label} {quality['words'][label]['median']}" for label in ("low", "mid", "high")))
    for name, step in stats.get("steps", {}).items():
        extra = ", ".join(f"{k} {v}" for k, v in step.items() if k not in ("inputs", "pairs", "rejected", "reasons"))
        lines.append(f"Step {name}: {step['inputs']} inputs -> {step['pairs']} pairs, {step['rejected']} rejected"
                     + (f" ({extra})" if extra else ""))
        for reason, count in step["reasons"].items():
            lines.append(f"    {count:6d}  {reason}")
    for report in stats.get("filters", []):
        lines.append(f"Filter {report['filter']}: {report['in']} -> {report['kept']} (dropped {report['dropped']})")
        for reason, count in report["reasons"].items():
            lines.append(f"    {count:6d}  {reason}")
    pairs = stats["pairs"]
    by_source = ", ".join(f"{k} {v}" for k, v in pairs["by_source"].items())
    lines.append(f"Output {stats['output']}: {pairs['total']} pairs ({by_source or 'none'}).")
    lines.append(f"Rejects and drops: {stats['rejects_file']} ({stats['rejects_total']} lines).")
    return "\n".join(lines) + "\n"


def write_report(output: str, stats: dict) -> tuple[Path, Path]:
    """Write the JSON stats and the summary beside ``output``; returns both paths."""
    json_path, text_path = stats_paths(output)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(stats, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    text_path.write_text(format_summary(stats), encoding="utf-8")
    return json_path, text_path
