"""The embedded default teaches copying an open vocabulary (issue 13): real English words from wordfreq,
targets that keep every content word of the raw prompt, a byte-level tokenizer that spells unseen words."""
from __future__ import annotations

import json
import random

import pytest

from easynlp_bp.default.pairs import make_pairs, make_raw_prompt
from easynlp_bp.default.vocabulary import english_words
from easynlp_bp.evaluation.text_metrics import content_words, subject_kept_share


def test_raw_prompts_come_from_a_large_real_word_list():
    words = english_words()
    assert len(words) == 30000 and len(set(words)) == 30000
    assert {"cat", "beach", "castle", "astronaut"} <= set(words)
    pairs = make_pairs(2000, seed=0)
    seen = {w for p in pairs for w in content_words(p["raw_prompt"])}
    assert len(seen) > 4000  # not a closed list of ~60 subjects
    lengths = [len(content_words(p["raw_prompt"])) for p in pairs]
    assert sum(n >= 1 for n in lengths) > 0.97 * len(lengths) and max(lengths) >= 15 and sum(lengths) / len(lengths) < 8


def test_every_target_starts_with_its_raw_prompt_and_adds_modifiers():
    pairs = make_pairs(500, seed=3)
    for pair in pairs:
        raw, target = pair["raw_prompt"], pair["prompt"]
        assert target.startswith(raw.rstrip(".").rstrip()), pair
        assert subject_kept_share(raw, target) == 1.0, pair
        assert target.count(",") >= raw.count(",") + 4  # at least five modifier phrases
    assert make_pairs(50, seed=3) == pairs[:50]  # deterministic per seed
    assert make_pairs(50, seed=4) != pairs[:50]


def test_the_default_tokenizer_spells_words_it_never_saw():
    from easynlp_bp.default.tokenizer import train_bpe_tokenizer

    pairs = make_pairs(300, seed=1)
    tok = train_bpe_tokenizer([f"{p['raw_prompt']}\n{p['prompt']}" for p in pairs], vocab_size=600)
    for text in ["a Styracosaurus displaying its horns", "naïve café, 東京", "The trophy doesn't fit"]:
        ids = tok(text, add_special_tokens=False).input_ids
        assert tok.unk_token_id not in ids and tok.decode(ids) == text


def test_raw_prompts_take_real_prompt_shapes():
    rng = random.Random(7)
    words = english_words()
    raws = [make_raw_prompt(rng, words) for _ in range(400)]
    assert any(r[0].isupper() for r in raws) and any(r.endswith(".") for r in raws)
    assert any(". " in r for r in raws)  # two sentences now and then
    assert any(any(ch.isdigit() for ch in r) for r in raws)
