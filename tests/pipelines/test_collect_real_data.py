"""The quality split and filters on real public prompts (../shared/data): plausible, asserted ranges."""
from __future__ import annotations

import json
import random

import pytest

from easynlp_bp.pipelines.collect import CollectConfig, collect_pairs
from easynlp_bp.pipelines.collect import filters as F
from easynlp_bp.pipelines.collect.quality_split import QualityClassifier, QualitySplitConfig, split_by_quality
from easynlp_bp.pipelines.collect.sources import read_corpus
from easynlp_bp.text.sentence_encoder import load_sentence_encoder

pytestmark = pytest.mark.real_data


def test_quality_split_and_filters_on_diffusiondb_prompts(shared_data):
    table = read_corpus(str(shared_data / "imagereward" / "refl_data.json"), text_field="text")
    assert (len(table.rows), len(table.rejects)) == (10000, 0)
    split = split_by_quality(table.rows, QualityClassifier(QualitySplitConfig()), progress=False)
    shares, words = split.stats["shares"], split.stats["words"]
    assert 0.15 <= shares["low"] <= 0.35 and 0.35 <= shares["high"] <= 0.6
    assert words["low"]["median"] <= 8 < 25 <= words["high"]["median"]
    assert split.stats["with_artist"]["low"] == 0 and split.stats["with_artist"]["high"] >= 0.5 * len(split.high)
    pairs = [{"raw_prompt": "", "prompt": r["prompt"], "row": r["row"]} for r in table.rows]
    lists = sorted(str(p) for p in (shared_data / "nsfw_wordlists").glob("*.txt"))
    nsfw = F.NSFWFilter(lists, fields=("prompt",))(pairs).report("nsfw")
    language = F.LanguageFilter("en", fields=("prompt",))(pairs).report("language")
    duplicates = F.DuplicateFilter(fields=("prompt",))(pairs).report("duplicates")
    assert 0.005 <= nsfw["dropped"] / 10000 <= 0.15
    assert language["dropped"] / 10000 <= 0.05
    # The file holds 9,798 distinct strings; normalising case/punctuation and near matches find a few more.
    # (A copy of a string that was itself dropped as a near duplicate counts as near, not exact.)
    assert 150 <= duplicates["reasons"]["exact duplicate"] and 202 <= duplicates["dropped"] <= 800


def test_pipeline_on_podvodka_pairs(shared_data, tmp_path):
    lists = ",".join(sorted(str(p) for p in (shared_data / "nsfw_wordlists").glob("*.txt")))
    config = CollectConfig(raw_prompt_field="simple", text_field="detailed", nsfw_wordlists=lists,
                           filters="nsfw,language,duplicates,length", progress=False)
    result = collect_pairs(str(shared_data / "podvodka" / "podvodka_pairs.jsonl"), str(tmp_path / "p.jsonl"), config)
    stats = result.stats
    assert stats["read"]["rows"] == 10750 and stats["read"]["rejected"] == 0
    by_filter = {f["filter"]: f for f in stats["filters"]}
    assert 0.01 <= by_filter["nsfw"]["dropped"] / 10750 <= 0.06
    assert by_filter["language"]["dropped"] / 10750 <= 0.01
    assert by_filter["duplicates"]["dropped"] / 10750 <= 0.01
    # README: only ~46% are true expansions; the length filter (min gain 3 words) keeps about that many.
    assert 0.4 <= by_filter["length"]["kept"] / by_filter["length"]["in"] <= 0.7
    assert stats["pairs"]["total"] == by_filter["length"]["kept"]
    assert stats["rejects_total"] + stats["pairs"]["total"] == 10750  # every row accounted for


def test_consistency_filter_keeps_true_expansions_over_shuffled_pairs(shared_data):
    rows = [json.loads(line) for line in (shared_data / "podvodka" / "podvodka_pairs.jsonl").open()]
    true = [{"raw_prompt": r["simple"], "prompt": r["detailed"]} for r in rows
            if len(r["detailed"].split()) >= len(r["simple"].split()) + 5]
    sample = random.Random(0).sample(true, 150)
    prompts = [p["prompt"] for p in sample]
    random.Random(1).shuffle(prompts)
    shuffled = [{"raw_prompt": p["raw_prompt"], "prompt": q} for p, q in zip(sample, prompts)]
    consistency = F.ConsistencyFilter(load_sentence_encoder(), min_similarity=0.4, progress=False)
    kept_true = len(consistency(sample).kept) / len(sample)
    kept_shuffled = len(consistency(shuffled).kept) / len(shuffled)
    assert kept_true >= 0.85 and kept_shuffled <= 0.1
