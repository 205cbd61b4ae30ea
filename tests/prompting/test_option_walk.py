"""Every generation option is declared once (``PredictorParams``) and reaches every place it is meant to:
the HTTP request schema and the options a response reports, the OpenAI parameters (where it has an OpenAI name),
and what the Predictor does (the fast sampler's or ``generate``'s call, the inputs, or the outputs).

A new field without an entry in ``EXAMPLES`` fails here: say what value changes its behaviour.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from easynlp_bp.options import OptionSpec, spec_of
from easynlp_bp.prompting import predictor as predictor_module
from easynlp_bp.prompting.params import PredictorParams
from easynlp_bp.prompting.predictor import BeautifulPromptPredictor

# option -> (overrides that use it, overrides of the baseline it must differ from)
EXAMPLES = {
    "num_return_sequences": ({"num_return_sequences": 2}, {}),
    "decoding": ({"decoding": "greedy"}, {}),
    "temperature": ({"temperature": 0.7}, {}),
    "top_k": ({"top_k": 5}, {}),
    "top_p": ({"top_p": 0.5}, {}),
    "repetition_penalty": ({"repetition_penalty": 1.5}, {}),
    "penalize_prompt": ({"penalize_prompt": True}, {}),
    "num_beams": ({"decoding": "beam", "num_beams": 6}, {"decoding": "beam"}),
    "max_length": ({"max_length": 60, "max_new_tokens": None}, {"max_new_tokens": None}),
    "max_new_tokens": ({"max_new_tokens": 3}, {}),
    "min_new_tokens": ({"min_new_tokens": 2}, {}),
    "no_repeat_ngram_size": ({"no_repeat_ngram_size": 2}, {}),
    "seed": ({"seed": 3}, {}),
    "batch_size": ({"batch_size": 1}, {}),
    "max_clip_tokens": ({"max_clip_tokens": 4}, {}),
    "clip_tokenizer": ({"max_clip_tokens": 6, "clip_tokenizer": "CLIP_DIR"}, {"max_clip_tokens": 6}),
    "max_input_chars": ({"max_input_chars": 3}, {}),
    "banned_words": ({"banned_words": ["red"]}, {}),
    "keep_input": ({"keep_input": True}, {}),
    "guard": ({"guard": False}, {}),
    "guard_word_recall": ({"guard_word_recall": 0.0}, {}),
    "guard_resamples": ({"guard_resamples": 0}, {}),
    "unsupported_language": ({"unsupported_language": "reject"}, {}),
    "model_languages": ({"model_languages": ["zh"]}, {}),
    "rerank": ({"rerank": "consistency"}, {}),
    "rerank_reward_models": ({"rerank_reward_models": ["rm_aesthetic", "rm_pickscore"]}, {}),
    "device": ({"device": "cpu"}, {}),
    "quantize": ({"quantize": "int8"}, {}),
    "trust_remote_code": ({"trust_remote_code": True}, {}),
}
OUTPUT_TEXT = " red, blue sky, green hills, golden light"
PROMPTS = ["a cat on a sofa", "1 girl", "一只狗在雪地里奔跑"]


class CallRecorder:
    """Stands in for the sampler and ``generate``: records each call, answers a fixed continuation."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.calls: list[tuple] = []
        self.answer = tokenizer(OUTPUT_TEXT, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]

    def rows(self, count: int) -> torch.Tensor:
        return torch.tensor([self.answer] * count)

    def sample_sequences(self, model, input_ids, attention_mask, settings, processors=None, generators=None):
        seeds = None if generators is None else [g.initial_seed() for g in generators]
        self.calls.append(("fast", input_ids.tolist(), settings, processors is not None, seeds))
        return self.rows(input_ids.shape[0] * settings.num_return_sequences)

    def generate(self, input_ids, attention_mask=None, **kwargs):
        shown = {k: (type(v).__name__ if k == "logits_processor" else v) for k, v in kwargs.items()}
        self.calls.append(("generate", input_ids.tolist(), sorted(shown.items(), key=str), torch.initial_seed()))
        rows = self.rows(input_ids.shape[0] * kwargs.get("num_return_sequences", 1))
        return torch.cat([input_ids.repeat_interleave(kwargs.get("num_return_sequences", 1), 0), rows], dim=1)


@pytest.fixture()
def recorded_predictor(tiny_tokenizer, monkeypatch):
    from conftest import build_tiny_bloom

    model = build_tiny_bloom(tiny_tokenizer)
    predictor = BeautifulPromptPredictor("unused", PredictorParams(max_new_tokens=20, device="cpu"),
                                         model=model, tokenizer=tiny_tokenizer)
    recorder = CallRecorder(tiny_tokenizer)
    monkeypatch.setattr(predictor_module, "sample_sequences", recorder.sample_sequences)
    monkeypatch.setattr(model, "generate", recorder.generate)
    return predictor, recorder


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    from fixtures.tiny_diffusion import build_char_clip_tokenizer

    path = tmp_path_factory.mktemp("clip")
    build_char_clip_tokenizer().save_pretrained(path)
    return str(path)


def observe(predictor, recorder, overrides: dict) -> tuple:
    """What the predictor did with ``overrides``: its generation calls and outputs, or the error it raised."""
    recorder.calls.clear()
    try:
        results = predictor.predict_results(PROMPTS, overrides)
    except ValueError as err:
        return ("error", str(err))
    return (repr(recorder.calls), [(r.outputs, r.statuses, r.scores, r.reason, r.warnings) for r in results])


def test_every_option_is_declared_with_an_example():
    for f in dataclasses.fields(PredictorParams):
        assert isinstance(f.metadata.get("option"), OptionSpec), f"{f.name}: declare it with options.option(...)"
        assert f.metadata.get("help"), f"{f.name} has no help"
    assert set(EXAMPLES) == {f.name for f in dataclasses.fields(PredictorParams)}, \
        "a PredictorParams field has no EXAMPLES entry (or an entry names a removed field)"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_option_changes_what_the_predictor_does(name, recorded_predictor, clip_dir):
    """Each option, set to its example, changes the generation call, the inputs or the outputs (or, for the
    options fixed at construction, is refused per call): no option is silently dropped on any path."""
    predictor, recorder = recorded_predictor
    used, baseline = ({k: clip_dir if v == "CLIP_DIR" else v for k, v in d.items()} for d in EXAMPLES[name])
    if spec_of(PredictorParams.__dataclass_fields__[name]).fixed:
        with pytest.raises(ValueError, match=f"{name} is fixed when the predictor is built"):
            predictor.predict(PROMPTS, used)
        return
    assert observe(predictor, recorder, used) != observe(predictor, recorder, baseline), \
        f"{name}={used[name]!r} changes nothing the predictor does"


def test_a_generate_kwarg_the_sampler_lacks_goes_to_generate(recorded_predictor, monkeypatch):
    """The fast sampler is used only for the kwargs it declares; anything else is generate's."""
    predictor, recorder = recorded_predictor
    predictor.predict(PROMPTS)
    assert recorder.calls[-1][0] == "fast"
    original = predictor._generation_kwargs
    monkeypatch.setattr(predictor, "_generation_kwargs",
                        lambda *a, **k: {**original(*a, **k), "typical_p": 0.9})  # a kwarg the sampler lacks
    predictor.predict(PROMPTS)
    assert recorder.calls[-1][0] == "generate" and ("typical_p", 0.9) in recorder.calls[-1][2]


def test_fast_settings_carry_every_generate_kwarg(recorded_predictor):
    """The sampler's settings are built from the same kwargs generate would get, not from fixed fields."""
    predictor, recorder = recorded_predictor
    predictor.predict(PROMPTS, {"temperature": 0.6, "top_k": 7, "top_p": 0.8, "repetition_penalty": 1.3,
                                "min_new_tokens": 2, "num_return_sequences": 3})
    kind, _, settings, _, _ = recorder.calls[-1]
    assert kind == "fast"
    assert (settings.temperature, settings.top_k, settings.top_p, settings.repetition_penalty,
            settings.min_new_tokens, settings.num_return_sequences) == (0.6, 7, 0.8, 1.3, 2, 3)
