"""Building low -> high prompt pairs from a raw prompt corpus: quality split, teachers, steps, filters."""
from easynlp_bp.pipelines.collect.cache import ReplyCache, cache_key
from easynlp_bp.pipelines.collect.pipeline import CollectConfig, CollectResult, apply_filters, collect_pairs, make_pairs
from easynlp_bp.pipelines.collect.quality_split import QualityClassifier, QualitySplitConfig, split_by_quality
from easynlp_bp.pipelines.collect.sources import read_corpus
from easynlp_bp.pipelines.collect.steps import STEPS, BlipCaptioner, StepContext

__all__ = [
    "CollectConfig", "CollectResult", "collect_pairs", "make_pairs", "apply_filters", "read_corpus",
    "QualityClassifier", "QualitySplitConfig", "split_by_quality", "STEPS", "StepContext", "BlipCaptioner",
    "ReplyCache", "cache_key",
]
