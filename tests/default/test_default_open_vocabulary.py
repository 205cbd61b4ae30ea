"""The embedded default teaches copying an open vocabulary: real English words from wordfreq,
targets that keep every content word of the raw prompt, a byte-level tokenizer that spells unseen words."""
from __future__ import annotations

import json
import random

import pytest

from easynlp_bp.default.pairs import make_pairs, make_raw_prompt
from easynlp_bp.default.vocabulary import CONNECTORS, MODIFIER_GROUPS, english_words
from easynlp_bp.text.metrics import content_words, subject_kept_share


def test_raw_prompts_come_from_a_large_real_word_list():
    words = english_words()
    assert len(words) == 30000 and len(set(words)) == 30000
    assert {"cat", "beach", "castle", "astronaut"} <= set(words)
    pairs = make_pairs(2000, seed=0)
    seen = {w for p in pairs for w in content_words(p["raw_prompt"])}
    assert len(seen) > 4000  # not a closed list of ~60 subjects
    lengths = [len(content_words(p["raw_prompt"])) for p in pairs]
    assert sum(n >= 1 for n in lengths) > 0.97 * len(lengths) and max(lengths) >= 30 and sum(lengths) / len(lengths) < 20


def test_every_target_starts_with_its_raw_prompt_and_adds_modifiers():
    pairs = make_pairs(500, seed=3)
    for pair in pairs:
        raw, target = pair["raw_prompt"], pair["prompt"]
        assert target.startswith(raw.rstrip(".").rstrip()), pair
        assert subject_kept_share(raw, target) == 1.0, pair
        added = target[len(raw.rstrip(".").rstrip()):].split(", ")[1:]
        assert 3 <= len(added) <= 5, pair  # three or four modifier phrases, sometimes an artist
        assert not any(phrase in raw.lower() for phrase in added), pair  # new ones, not the user's again
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
    import re

    words_seen = [w for r in raws for w in r.replace(",", " ").replace(".", " ").split()]
    # the spellings real prompts have and word lists lack: 300, F1, TV, t-shirt, iPhone, francisco's
    assert any(w.isdigit() and int(w) > 12 for w in words_seen)
    assert any(re.fullmatch(r"[A-Z][0-9]{1,2}", w) for w in words_seen)
    assert any(re.fullmatch(r"[A-Z]{2,4}", w) for w in words_seen)
    assert any(re.fullmatch(r"[a-z]+-[a-z]+", w) for w in words_seen)
    assert any(re.fullmatch(r"[eix][A-Z][a-z]+", w) for w in words_seen)
    assert any(w.endswith("'s") for w in words_seen)
    assert sum(not w.isalpha() or not w.islower() for w in words_seen) < 0.25 * len(words_seen)  # mostly plain
    # real SD prompts often carry modifiers of their own ("a vehicle, concept art, cyberpunk"): about a third
    with_modifiers = [r for r in raws if any(p in r for group in MODIFIER_GROUPS.values() for p in group)]
    assert 0.2 < len(with_modifiers) / len(raws) < 0.45
    assert any(" by " in r.split(", ", 1)[-1] for r in raws)  # "art by X and Y" after the description
    assert any(r.isupper() and len(r.split()) > 2 for r in raws)  # "A MAN WALKING IN THE AIRPORT"
    glued = [r for r in raws if any(f" {c} " in r for c in CONNECTORS if " " in c or len(c) > 3)]
    assert len(glued) > 10  # caption glue: "a man who is ... while ..."


def _first_outputs(model_dir, raw_prompts):
    from easynlp_bp import get_application_predictor

    # guard=false: these tests measure the model's own copying, not the Predictor's guard
    predictor = get_application_predictor("beautiful_prompt", str(model_dir), "seed=42 device=cpu guard=false")
    return [outs[0] for outs in predictor.predict(raw_prompts)]


@pytest.mark.slow
def test_the_trained_default_copies_prompts_it_never_saw(default_sft_dir):
    """With the predict defaults, the main job's SFT model keeps the user's words on prompts built
    from words it may never have seen (another seed's pairs), instead of writing another subject."""
    from easynlp_bp.text.metrics import subject_preservation

    # up to 18 words, the test's measure since it was written (the default's pairs now run to 40 words)
    raws = [p["raw_prompt"] for p in make_pairs(1000, seed=2026) if len(p["raw_prompt"].split()) <= 18][-120:]
    kept = subject_preservation(raws, _first_outputs(default_sft_dir, raws))
    # measured 0.87 / 0.95 (docs/consistency.md); the closed-list default of before kept ~0.
    assert kept["subject_all"] >= 0.7 and kept["subject_half"] >= 0.9, kept


@pytest.mark.slow
@pytest.mark.real_data
def test_the_trained_default_copies_real_benchmark_prompts(default_sft_dir, shared_data):
    """The issue's own measurement on real prompts: PartiPrompts, predict defaults, seed=42."""
    import csv

    from easynlp_bp.text.metrics import subject_preservation

    with open(shared_data / "partiprompts" / "PartiPrompts.tsv", encoding="utf-8", newline="") as handle:
        raws = [row["Prompt"].strip() for row in csv.DictReader(handle, delimiter="\t")][:200]
    outputs = _first_outputs(default_sft_dir, raws)
    result = subject_preservation(raws, outputs)
    assert result["subject_all"] >= 0.8 and result["subject_half"] >= 0.95, result
    assert len(set(outputs)) >= 0.95 * len(outputs) and all(o.strip() for o in outputs)
    from easynlp_bp.text.sentence_encoder import load_sentence_encoder, sentence_cosines

    consistency = sentence_cosines(load_sentence_encoder(), raws, outputs).tolist()
    assert sum(consistency) / len(consistency) >= 0.5  # measured 0.54; with 4-7 modifiers it was 0.47


@pytest.mark.slow
@pytest.mark.real_data
def test_the_trained_default_copies_long_imagereward_prompts_whole(default_sft_dir, shared_data):
    """ImageReward test prompts of 17-30 words (68 of the first 300): every content word kept in at least 45 %
    of outputs. Measured 65 % with the default's raw prompts of up to 40 words and long lists of the user's own
    modifiers, 22 % when they stopped at 18 words (docs/consistency.md, fourth round)."""
    import pandas as pd

    from easynlp_bp.text.metrics import subject_preservation

    prompts = pd.read_parquet(shared_data / "imagereward_prompts" / "test.parquet")["Prompt"].astype(str)
    first = list(dict.fromkeys(p.strip() for p in prompts))[:300]
    raws = [p for p in first if 17 <= len(p.split()) <= 30]
    assert len(raws) == 68
    result = subject_preservation(raws, _first_outputs(default_sft_dir, raws))
    assert result["subject_all"] >= 0.45, result


@pytest.mark.slow
@pytest.mark.real_data
def test_the_trained_default_copies_long_real_prompts(default_sft_dir, shared_data):
    """Longer real prompts (T2I-CompBench's eight categories and TIFA captions, the docs' mixed set): every
    content word kept in at least 80 % of outputs (measured 90 %)."""
    import glob
    import json

    from easynlp_bp.text.metrics import subject_preservation

    rng = random.Random(7)
    raws = []
    for name in sorted(glob.glob(str(shared_data / "t2i_compbench" / "*.txt"))):
        with open(name, encoding="utf-8") as handle:
            raws += rng.sample([line.strip() for line in handle if line.strip()], 13)
    with open(shared_data / "tifa" / "tifa_v1.0_text_inputs.json", encoding="utf-8") as handle:
        raws += [c["caption"].strip() for c in rng.sample(json.load(handle), 96)]
    result = subject_preservation(raws, _first_outputs(default_sft_dir, raws))
    assert result["subject_all"] >= 0.8 and result["subject_half"] >= 0.95, result


def test_the_tokenizer_learns_its_merges_from_distinct_phrases():
    """A modifier repeated in every target must not claim merges: the model built from a config gets the same
    tokenizer whether "glowing runes" closes 1 or 500 of its training texts (easynlp_bp/default/tokenizer.py)."""
    from easynlp_bp.default.tokenizer import distinct_phrases
    from easynlp_bp.models.causal_lm import BeautifulPromptModel

    raws = [p["raw_prompt"] for p in make_pairs(500, seed=9)]
    once = [f"{r}\n{r}, 8k" for r in raws] + ["x\nx, glowing runes"]
    repeated = [f"{r}\n{r}, glowing runes, 8k" for r in raws]
    vocab_once = BeautifulPromptModel.from_pretrained("tiny-bloom-bp", train_texts=once).tokenizer.get_vocab()
    vocab_repeated = BeautifulPromptModel.from_pretrained("tiny-bloom-bp", train_texts=repeated).tokenizer.get_vocab()
    assert vocab_once == vocab_repeated
    assert distinct_phrases(["a cat, 8k. A dog", "a cat\na cat, 8k, bokeh."]) == ["a cat", "8k", "A dog", "bokeh"]
