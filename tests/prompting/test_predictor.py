"""BeautifulPromptPredictor: determinism, batching, output extraction, CLIP-window cap, bad input."""
import json

import pytest
import torch

from easynlp_bp import get_application_predictor
from easynlp_bp.text.clip_cap import ClipLengthCap
from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams

RAW = ["1 girl", "a cat on the beach", "a castle at night", "an astronaut in a forest", "a dog"]


def test_seed_makes_sampling_reproducible(trained_sft_dir):
    predictor = get_application_predictor("beautiful_prompt", str(trained_sft_dir), "seed=42 num_return_sequences=3")
    first, second = predictor.predict(RAW[:2]), predictor.predict(RAW[:2])
    assert first == second
    assert len(first) == 2 and all(len(outputs) == 3 for outputs in first)
    other = get_application_predictor("beautiful_prompt", str(trained_sft_dir), "seed=7 num_return_sequences=3")
    assert other.predict(RAW[:2]) != first


def test_batched_equals_single_with_greedy(trained_sft_dir):
    params = PredictorParams(decoding="greedy", num_return_sequences=1, batch_size=4, max_new_tokens=40)
    predictor = BeautifulPromptPredictor(str(trained_sft_dir), params)
    batched = predictor.predict(RAW)
    single = [predictor.predict([text])[0] for text in RAW]
    assert batched == single


def test_run_keeps_rows_and_order(trained_sft_dir):
    predictor = BeautifulPromptPredictor(str(trained_sft_dir), PredictorParams(seed=1, num_return_sequences=2))
    rows = predictor.run([{"raw_prompt": t, "id": i} for i, t in enumerate(RAW)])
    assert [r["id"] for r in rows] == list(range(len(RAW)))
    assert all(r["predictions"] == r["beams"][0] and len(r["beams"]) == 2 for r in rows)


def test_output_is_the_new_tokens_without_mangling(tiny_tokenizer, tiny_bloom):
    """The reference's .strip('</s>') turned 'focus' into 'focu'; we decode only the new tokens."""
    predictor = BeautifulPromptPredictor("unused", PredictorParams(decoding="greedy", num_return_sequences=1,
                                                                   max_new_tokens=3, guard=False), model=tiny_bloom,
                                         tokenizer=tiny_tokenizer)
    forced = tiny_tokenizer(" sharp focus</s>", add_special_tokens=False).input_ids

    def fake_generate(input_ids, attention_mask, **kwargs):
        new = torch.tensor([forced] * input_ids.shape[0])
        return torch.cat([input_ids, new], dim=1)

    predictor.model.generate = fake_generate  # the decoding path is what is under test here
    assert predictor.predict(["a cat"]) == [["sharp focus"]]


def _tiny_clip_tokenizer(tmp_path):
    """A CLIPTokenizer with one token per character (so token counts are easy to reason about)."""
    from transformers import CLIPTokenizer

    chars = "abcdefghijklmnopqrstuvwxyz0123456789,."
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))


def test_clip_length_cap_cuts_at_a_comma(tmp_path):
    cap = ClipLengthCap(_tiny_clip_tokenizer(tmp_path), max_tokens=20)
    text = "a cat, soft fur, golden hour, 8k"
    capped = cap(text)
    assert cap.count(capped) <= 20 and text.startswith(capped) and not capped.endswith(",")
    assert capped == "a cat, soft fur"
    assert cap("a cat") == "a cat"


def test_clip_cap_through_the_predictor(trained_sft_dir, tmp_path):
    clip_dir = tmp_path / "clip"
    clip_dir.mkdir()
    _tiny_clip_tokenizer(clip_dir).save_pretrained(clip_dir)
    params = PredictorParams(seed=3, num_return_sequences=3, max_clip_tokens=40, clip_tokenizer=str(clip_dir))
    predictor = BeautifulPromptPredictor(str(trained_sft_dir), params)
    for outputs in predictor.predict(RAW[:2]):
        assert all(predictor.clip_cap.count(o) <= 40 for o in outputs)


def test_bad_inputs_fail_clearly(trained_sft_dir):
    predictor = BeautifulPromptPredictor(str(trained_sft_dir), PredictorParams(num_return_sequences=1))
    with pytest.raises(ValueError, match="raw prompt 1 is empty"):
        predictor.predict(["a cat", "  "])
    with pytest.raises(ValueError, match="10000 characters, more than max_input_chars=2000"):
        predictor.predict(["x" * 10000])
    with pytest.raises(ValueError, match="num_beams=2 must be at least num_return_sequences=5"):
        PredictorParams(decoding="beam", num_beams=2)
