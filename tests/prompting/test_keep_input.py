"""keep_input=true: the output starts with the user's text verbatim and the model only continues it."""
from __future__ import annotations

import torch

from easynlp_bp import get_application_predictor
from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams

RAW = ["a cat on the beach", "  Two cups of coffee. ", "a Styracosaurus displaying its horns"]


def _forcing(predictor, tokenizer, text: str, seen: list):
    """Make ``generate`` append ``text`` (then EOS) and record the prompts it was given."""
    forced = tokenizer(text + tokenizer.eos_token, add_special_tokens=False).input_ids

    def fake_generate(input_ids, attention_mask, **kwargs):
        seen.extend(tokenizer.batch_decode(input_ids, skip_special_tokens=True))
        return torch.cat([input_ids, torch.tensor([forced] * input_ids.shape[0])], dim=1)

    predictor.model.generate = fake_generate


def test_keep_input_writes_the_raw_prompt_and_the_model_continues_it(tiny_tokenizer, tiny_bloom):
    predictor = BeautifulPromptPredictor("unused", PredictorParams(decoding="greedy", num_return_sequences=1,
                                                                   keep_input=True),
                                         model=tiny_bloom, tokenizer=tiny_tokenizer)
    seen: list[str] = []
    _forcing(predictor, tiny_tokenizer, " highly detailed, 8k", seen)
    outputs = predictor.predict(RAW)
    # A comma closes the user's text (unless it ends in punctuation), so the model adds phrases after it.
    assert outputs == [["a cat on the beach, highly detailed, 8k"], ["Two cups of coffee. highly detailed, 8k"],
                       ["a Styracosaurus displaying its horns, highly detailed, 8k"]]
    # The model saw the instruction with the raw prompt already written after "Output:".
    assert sorted(s.rsplit("Output:", 1)[1] for s in seen) == sorted(
        [" a cat on the beach,", " Two cups of coffee.", " a Styracosaurus displaying its horns,"])
    # Without keep_input (and the guard, which would keep the input itself) the output is what the model wrote.
    seen.clear()
    assert predictor.predict(RAW[:1], {"keep_input": False, "guard": False}) == [["highly detailed, 8k"]]
    assert predictor.predict_results(RAW[:1], {"keep_input": False})[0].statuses == ["kept_input"]
    assert seen[0].endswith("Output:")


def test_keep_input_never_removes_the_users_words_but_cleans_the_continuation(tiny_tokenizer, tiny_bloom):
    params = PredictorParams(decoding="greedy", num_return_sequences=1, keep_input=True, banned_words=["blood"])
    predictor = BeautifulPromptPredictor("unused", params, model=tiny_bloom, tokenizer=tiny_tokenizer)
    _forcing(predictor, tiny_tokenizer, " blood splatter, 8k", [])
    assert predictor.predict(["a blood moon"]) == [["a blood moon, 8k"]]
    _forcing(predictor, tiny_tokenizer, " blood", [])
    assert predictor.predict(["a blood moon"]) == [["a blood moon"]]


def test_keep_input_with_sampling_through_the_python_api(tiny_model_dir):
    predictor = get_application_predictor("beautiful_prompt", str(tiny_model_dir),
                                          "keep_input=true seed=3 num_return_sequences=3 max_new_tokens=6 device=cpu")
    outputs = predictor.predict(RAW)
    assert all(out.startswith(raw.strip()) for raw, outs in zip(RAW, outputs) for out in outs)
    from easynlp_bp.text.metrics import subject_kept_share

    assert all(subject_kept_share(raw, out) == 1.0 for raw, outs in zip(RAW, outputs) for out in outs)
    assert all(len(outs) == 3 for outs in outputs)
    assert predictor.predict(RAW) == outputs  # seeded


def test_keep_input_is_a_serving_request_field():
    from easynlp_bp.serving.schemas import BeautifyRequest

    assert BeautifyRequest(prompts="a cat", keep_input=True).overrides() == {"keep_input": True}
    assert "keep_input" not in BeautifyRequest(prompts="a cat").overrides()
