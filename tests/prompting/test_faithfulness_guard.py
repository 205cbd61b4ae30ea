"""The faithfulness guard: no user receives an output that garbles what they wrote.

The Predictor's real generation is replaced only where a test needs a known bad output; the rest runs a random
tiny BLOOM, which garbles everything (the worst case a guard must absorb).
"""
from __future__ import annotations

import pytest

from easynlp_bp.text.faithfulness import content_words, loop_share, protected_spans, subject_kept_share
from easynlp_bp.prompting.guard import GUARD_STATUSES, FaithfulnessGuard
from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams


def _predictor(tiny_bloom, tiny_tokenizer, **params):
    settings = {"num_return_sequences": 2, "max_length": 160, "seed": 3, **params}
    return BeautifulPromptPredictor("unused", PredictorParams(**settings), model=tiny_bloom, tokenizer=tiny_tokenizer)


@pytest.mark.parametrize("raw, output, problem", [
    ("a red sphere", "a red spams, 8k", "sphere missing"),  # PartiPrompts misspellings from the issue
    ("concentric circles", "concentricdescles, art", "concentric, circles missing"),
    ("a wizard hat", "a wizarden, trending", "wizard, hat missing"),
    ("(best quality:1.3), a knight in armor", "best quality, a knight in armor, 8k", "prompt syntax '(best quality:1.3)'"),
    ("<lora:detail:0.8> a castle", "lora detail 0.8 a castle, epic", "prompt syntax '<lora:detail:0.8>'"),
    ("a dog", "a dog, ultrararararararararararararara", "repetition loop"),
    ("a cat on a sofa", "a cat on a sofa on a sofa on a sofa on a sofa", "repetition loop"),
])
def test_guard_names_the_problem(raw, output, problem):
    assert problem in (FaithfulnessGuard().problem(raw, output) or "")


@pytest.mark.parametrize("raw, output", [
    ("a red sphere", "a red sphere, 8k, octane render"),
    ("(best quality:1.3), a knight in armor", "(best quality:1.3), a knight in armor, dramatic lighting"),
    ("1 girl", "1 girl, solo, long hair, masterpiece"),
    ("rain rain rain", "rain rain rain, moody street"),  # the user's own repetition is theirs to keep
    ("东京の夜景", "东京の夜景, cinematic"),
    ("🐱 in space", "🐱 in space, nebula"),
])
def test_guard_passes_faithful_outputs(raw, output):
    assert FaithfulnessGuard().problem(raw, output) is None


def test_word_recall_threshold_is_a_share():
    assert subject_kept_share("red sphere cube", "red sphere") == pytest.approx(2 / 3)
    assert FaithfulnessGuard(min_word_recall=0.6).problem("red sphere cube", "red sphere, art") is None
    assert FaithfulnessGuard(min_word_recall=0.7).problem("red sphere cube", "red sphere, art") is not None


def test_text_rules():
    assert content_words("A cat on the café roof, 东京") == ["cat", "café", "roof", "东京"]
    assert protected_spans("((masterpiece)), [blur], {a|b} BREAK embedding:easyneg <lora:x:1>") == [
        "(masterpiece)", "[blur]", "{a|b}", "BREAK", "embedding:easyneg", "<lora:x:1>"]
    assert loop_share("a cat") == 0.0 and loop_share("ilyilyilyilyily") == 1.0
    assert loop_share("1111 pixels") == 0.0  # digits are not a loop


def _scripted(predictor, first, resampled, kept):
    """Replace generation by a script: attempt 0 -> ``first``, re-samples -> ``resampled``; keep -> ``kept``."""
    calls = []

    def generate(raws, params, keep, attempt, progress=False):
        calls.append((attempt, list(keep)))
        if all(keep):
            return [[kept(raw)] * params.num_return_sequences for raw in raws]
        source = first if attempt == 0 else resampled
        return [[source(raw)] * params.num_return_sequences for raw in raws]

    predictor._generate_texts = generate
    return calls


def test_a_failing_output_is_resampled(tiny_bloom, tiny_tokenizer):
    predictor = _predictor(tiny_bloom, tiny_tokenizer)
    _scripted(predictor, first=lambda r: "a red spams", resampled=lambda r: f"{r}, 8k", kept=lambda r: r)
    [result] = predictor.predict_results(["a red sphere"])
    assert result.outputs == ["a red sphere, 8k"] * 2 and result.statuses == ["resampled"] * 2


def test_a_persistent_failure_gets_the_users_text_continued(tiny_bloom, tiny_tokenizer):
    predictor = _predictor(tiny_bloom, tiny_tokenizer, guard_resamples=2)
    calls = _scripted(predictor, first=lambda r: "spams", resampled=lambda r: "spams",
                      kept=lambda r: f"{r}, highly detailed")
    [result] = predictor.predict_results(["a red sphere"])
    assert result.outputs == ["a red sphere, highly detailed"] * 2
    assert result.statuses == ["kept_input"] * 2
    assert [attempt for attempt, _ in calls] == [0, 1, 2, 3]  # bounded: two re-samples, then the safe form


def test_when_even_the_continuation_fails_the_users_text_is_returned(tiny_bloom, tiny_tokenizer):
    predictor = _predictor(tiny_bloom, tiny_tokenizer)
    _scripted(predictor, first=lambda r: "spams", resampled=lambda r: "spams",
              kept=lambda r: f"{r}, ararararararararararararararar")
    [result] = predictor.predict_results(["a red sphere"])
    assert result.outputs == ["a red sphere"] * 2 and result.statuses == ["kept_input"] * 2


def test_greedy_is_not_resampled(tiny_bloom, tiny_tokenizer):
    predictor = _predictor(tiny_bloom, tiny_tokenizer, decoding="greedy", num_return_sequences=1)
    calls = _scripted(predictor, first=lambda r: "spams", resampled=lambda r: f"{r}, 8k", kept=lambda r: f"{r}, 4k")
    [result] = predictor.predict_results(["a red sphere"])
    assert result.outputs == ["a red sphere, 4k"] and [a for a, _ in calls] == [0, 1]


def test_guard_off_returns_raw_outputs_marked_unchecked(tiny_bloom, tiny_tokenizer):
    predictor = _predictor(tiny_bloom, tiny_tokenizer, guard=False)
    _scripted(predictor, first=lambda r: "a red spams", resampled=lambda r: r, kept=lambda r: r)
    [result] = predictor.predict_results(["a red sphere"])
    assert result.outputs == ["a red spams"] * 2 and result.statuses == ["unchecked"] * 2


@pytest.mark.parametrize("raw", [
    "a red sphere on a blue cube",
    "(best quality:1.3), a knight in armor",
    "<lora:add_detail:0.8> a castle on a hill BREAK dramatic sky",
    "<b>a red fox</b> in the snow",
    "[blurry], {red|blue} car, embedding:easynegative",
    "🐱 astronaut in space 🚀",
])
def test_every_output_of_a_garbling_model_keeps_the_users_text(tiny_bloom, tiny_tokenizer, raw):
    """A random model garbles every prompt; by default no user ever receives such an output."""
    predictor = _predictor(tiny_bloom, tiny_tokenizer)
    [result] = predictor.predict_results([raw])
    assert len(result.outputs) == 2 and set(result.statuses) <= set(GUARD_STATUSES) - {"unchecked"}
    for output in result.outputs:
        assert FaithfulnessGuard().problem(raw, output) is None, output
        assert all(span in output for span in protected_spans(raw))


def test_control_and_invisible_characters_are_removed_with_a_warning(tiny_bloom, tiny_tokenizer):
    predictor = _predictor(tiny_bloom, tiny_tokenizer)
    [result] = predictor.predict_results(["a \x1b[31mred\x1b[0m fox\u200b in the\x00 snow\ufeff"])
    for output in result.outputs:
        assert output.startswith("a red fox in the snow") or "red fox" in output
        assert not any(c in output for c in "\x1b\u200b\x00\ufeff")
    assert any("control or invisible" in w for w in result.warnings)


@pytest.mark.parametrize("guard", [True, False])
def test_control_characters_the_model_writes_are_removed(tiny_bloom, tiny_tokenizer, guard):
    """A byte-level model can write an escape as well as read one: it never reaches the user."""
    import torch

    [escape] = tiny_tokenizer("\x1b", add_special_tokens=False).input_ids
    with torch.no_grad():  # every position's hidden state is v, and only the escape's embedding points along v
        direction = torch.ones(tiny_bloom.config.hidden_size)
        tiny_bloom.transformer.ln_f.weight.zero_()
        tiny_bloom.transformer.ln_f.bias.copy_(direction)
        tiny_bloom.transformer.word_embeddings.weight[escape] = 50 * direction  # tied to the LM head
    predictor = _predictor(tiny_bloom, tiny_tokenizer, decoding="greedy", num_return_sequences=1,
                           max_new_tokens=8, guard=guard)
    [result] = predictor.predict_results(["a red fox in the snow"])
    assert result.outputs and not any("\x1b" in output for output in result.outputs), result.outputs


@pytest.mark.parametrize("invisible", ["\u200d", "\u200b\u200b", "\x00", "\ufeff", "\x1b[0m", " \t\r\n"])
def test_rows_without_visible_text_are_rejected(tiny_bloom, tiny_tokenizer, invisible):
    predictor = _predictor(tiny_bloom, tiny_tokenizer)
    [row] = predictor.run([{"raw_prompt": invisible}])
    assert row["predictions"] is None and "invisible" in row["reject_reason"]
    with pytest.raises(ValueError, match="invisible"):
        predictor.predict([invisible])


def test_input_too_long_to_copy_is_answered_with_itself_and_a_note(tiny_bloom, tiny_tokenizer):
    raw = "portrait, " * 60
    predictor = _predictor(tiny_bloom, tiny_tokenizer, max_length=128)
    [result] = predictor.predict_results([raw])
    assert result.statuses == ["too_long"] * 2 and "more than this model can copy" in result.warnings[0]
    for output in result.outputs:
        assert output.startswith(raw.strip())  # all 60, none cut or misspelt
