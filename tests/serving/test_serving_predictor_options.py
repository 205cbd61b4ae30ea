"""Predictor features the server relies on: banned words, per-call overrides, the lazily loaded CLIP cap."""
from __future__ import annotations

import pytest

from easynlp_bp.prompting.predictor import (
    BannedWords, BeautifulPromptPredictor, PredictorParams,
)
from easynlp_bp.arguments import parse_user_defined_parameters


def test_banned_words_match_whole_words_in_any_case():
    banned = BannedWords(["Blood", " gore "])
    assert banned.words == ["blood", "gore"]
    assert banned.found("BLOOD moon, gory, bloodline") == ["BLOOD"]
    text = "a knight, blood on the armor, highly detailed, Gore, bloodhound"
    assert banned.remove(text) == "a knight, highly detailed, bloodhound"
    assert banned.remove("a castle, detailed") == "a castle, detailed"
    assert BannedWords([]).remove("blood") == "blood" and BannedWords([]).found("blood") == []


def test_banned_word_token_ids_cover_word_start_forms(tiny_tokenizer):
    ids = BannedWords(["castle"]).token_ids(tiny_tokenizer)
    for text in ("castle", " castle", " Castle", "CASTLE"):
        assert tiny_tokenizer(text, add_special_tokens=False).input_ids in ids


def test_banned_words_from_user_defined_parameters():
    params = parse_user_defined_parameters("banned_words=blood,gore seed=1", PredictorParams)
    assert params.banned_words == ["blood", "gore"] and params.seed == 1
    with pytest.raises(ValueError, match="must be non-empty words"):
        PredictorParams(banned_words=[" "])


def test_per_call_overrides_leave_the_predictor_unchanged(tiny_model_dir):
    predictor = BeautifulPromptPredictor(str(tiny_model_dir), PredictorParams(max_new_tokens=6, device="cpu"))
    greedy = predictor.predict(["1 girl"], {"decoding": "greedy"})
    assert len(greedy[0]) == 1 and predictor.params.decoding == "sample"
    seeded = predictor.predict(["1 girl", "a cat"], {"seed": 4, "num_return_sequences": 2})
    assert [len(out) for out in seeded] == [2, 2]
    assert seeded == predictor.predict(["1 girl", "a cat"], {"seed": 4, "num_return_sequences": 2})
    assert predictor.resolve_params(None) is predictor.params
    with pytest.raises(ValueError, match="Unknown predictor option"):
        predictor.predict(["1 girl"], {"temprature": 0.5})
    with pytest.raises(ValueError, match="fixed when the predictor is built"):
        predictor.resolve_params({"device": "cuda"})
    with pytest.raises(ValueError, match="temperature=0 must be more than 0; .*decoding=greedy"):
        predictor.resolve_params({"temperature": 0})
