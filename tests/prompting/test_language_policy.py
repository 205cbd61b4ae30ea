"""Language policy: an input in a language the model was not trained on is kept verbatim (plus modifiers) with a
warning, or rejected per row on request; a model trained on it answers as for any input."""
from __future__ import annotations

import pytest

from easynlp_bp.prompting.language import detect_language
from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams

OTHER_LANGUAGES = {
    "zh": "一只狗在雪地里奔跑",
    "ja": "東京の夜景、雨に濡れた通り",
    "ru": "старый дом у реки",
    "ar": "قطة تجلس على النافذة",
    "hi": "पहाड़ों पर सूर्योदय",
    "fr": "un chat noir qui dort sur le canapé du salon",
    "de": "ein alter Leuchtturm an der stürmischen Küste",
}
# Short English prompts that a detector alone calls Turkish, Hausa, Italian, ...
ENGLISH = ["1 girl", "cyberpunk samurai, neon", "a piano", "a robot", "a tornado", "portrait of a wizard",
           "mountain lake at dawn, 8k", "(best quality:1.3), 1 boy", "🐱 in space", "1234"]


@pytest.mark.parametrize("language, text", sorted(OTHER_LANGUAGES.items()))
def test_other_languages_are_detected(language, text):
    assert detect_language(text) == language


@pytest.mark.parametrize("text", ENGLISH)
def test_short_english_prompts_stay_english(text):
    assert detect_language(text) == "en"


def _predictor(tiny_bloom, tiny_tokenizer, **params):
    settings = {"num_return_sequences": 2, "max_length": 160, "seed": 1, **params}
    return BeautifulPromptPredictor("unused", PredictorParams(**settings), model=tiny_bloom, tokenizer=tiny_tokenizer)


@pytest.mark.parametrize("language", ["zh", "ja", "ru", "ar", "hi"])
def test_unsupported_language_is_kept_verbatim_with_a_warning(tiny_bloom, tiny_tokenizer, language):
    raw = OTHER_LANGUAGES[language]
    # room for Devanagari's many byte-level tokens (the tiny tokenizer never saw the script)
    [result] = _predictor(tiny_bloom, tiny_tokenizer, max_length=400).predict_results([raw])
    assert len(result.outputs) == 2
    assert all(output.startswith(raw) for output in result.outputs)
    assert result.statuses == ["kept_input"] * 2
    assert any(f"looks {language!r}" in w and "CLIP" in w for w in result.warnings)


def test_unsupported_language_reject_is_per_row(tiny_bloom, tiny_tokenizer):
    predictor = _predictor(tiny_bloom, tiny_tokenizer, unsupported_language="reject")
    rows = predictor.run([{"raw_prompt": "a red fox"}, {"raw_prompt": OTHER_LANGUAGES["zh"]}])
    assert rows[0]["predictions"] and "reject_reason" not in rows[0]
    assert rows[1]["predictions"] is None and "'zh'" in rows[1]["reject_reason"]
    assert "unsupported_language=reject" in rows[1]["reject_reason"]


def test_a_model_trained_on_the_language_passes_it_through(tiny_bloom, tiny_tokenizer):
    raw = OTHER_LANGUAGES["zh"]
    recorded = _predictor(tiny_bloom, tiny_tokenizer, guard=False)
    tiny_bloom.config.beautiful_prompt_languages = ["en", "zh"]  # what SFT writes into config.json
    try:
        [result] = recorded.predict_results([raw])
    finally:
        del tiny_bloom.config.beautiful_prompt_languages
    assert result.warnings == [] and result.statuses == ["unchecked"] * 2
    declared = _predictor(tiny_bloom, tiny_tokenizer, guard=False, model_languages=["en", "zh"])
    assert declared.languages() == ["en", "zh"]
    assert declared.predict_results([raw])[0].warnings == []


def test_generate_policy_answers_as_for_any_input(tiny_bloom, tiny_tokenizer):
    predictor = _predictor(tiny_bloom, tiny_tokenizer, unsupported_language="generate", guard=False)
    [result] = predictor.predict_results([OTHER_LANGUAGES["ru"]])
    assert result.statuses == ["unchecked"] * 2 and result.warnings == []


def test_training_languages_sample_a_table_sorted_by_language_across_its_length():
    """A tenth of German rows at the end of a sorted table is still a training language."""
    from easynlp_bp.prompting.language import training_languages

    rows = ["a red fox in the snow"] * 2700 + ["ein alter Leuchtturm an der stürmischen Küste"] * 300
    assert training_languages(rows) == ["en", "de"]
    assert training_languages(rows[:2700]) == ["en"]
