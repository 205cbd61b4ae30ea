"""The CLIP-77 cap: offline by default (OpenAI's CLIP vocabulary from instant-clip-tokenizer), never cuts
inside a (word:1.2) weight group, never returns "" (a per-row reject instead)."""
from __future__ import annotations

import pytest
import torch

from easynlp_bp.io import Table
from easynlp_bp.text.clip_cap import ClipCapError, ClipLengthCap, boundaries
from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams, split_rejected_rows


def test_default_cap_counts_with_the_packaged_clip_vocabulary():
    cap = ClipLengthCap(max_tokens=77)
    assert cap.tokenizer is None
    # openai/clip-vit-large-patch14: <|startoftext|> a photo of a cat <|endoftext|>
    assert cap.count("a photo of a cat") == 7
    assert cap.count("masterpiece, best quality") == 6  # masterpiece , best quality + BOS/EOS


def test_cuts_never_fall_inside_weight_groups():
    text = "a cat (very soft fluffy white fur:1.2) golden hour, 8k"
    assert boundaries(text, " ") == [1, 5, 38, 45, 51]  # none of the spaces inside the group
    cap = ClipLengthCap(max_tokens=9)
    assert cap.count("a cat (very soft fluffy white fur:1.2)") > 9
    assert cap(text) == "a cat"
    comma_cap = ClipLengthCap(max_tokens=18)
    assert comma_cap("a cat, (very soft fluffy white fur:1.2), golden hour, [blue sky], <lora:x:0.5>") == \
        "a cat, (very soft fluffy white fur:1.2), golden hour"


@pytest.mark.parametrize("text", ["(masterpiece best quality ultra detailed intricate:1.3)",
                                  "supercalifragilisticexpialidociousness" * 3])
def test_no_fitting_boundary_is_an_error_not_an_empty_prompt(text):
    cap = ClipLengthCap(max_tokens=5)
    with pytest.raises(ClipCapError, match="no comma or word boundary outside weight groups fits 5 CLIP tokens"):
        cap(text)
    assert cap.cap_all([text, "a cat"])[0] == ["a cat"]


def test_predictor_rejects_a_row_whose_outputs_cannot_be_capped(tiny_tokenizer, tiny_bloom):
    # max_new_tokens covers the forced texts: each row's output is cut to its own token budget
    params = PredictorParams(decoding="greedy", num_return_sequences=1, max_new_tokens=40, max_clip_tokens=5)
    predictor = BeautifulPromptPredictor("unused", params, model=tiny_bloom, tokenizer=tiny_tokenizer)
    texts = {"a cat": " a cat, soft fur, golden hour</s>", "a dog": " (a dog ultra detailed fur:1.2)</s>"}

    def fake_generate(input_ids, attention_mask, **kwargs):  # the capping path is what is under test
        prompts = tiny_tokenizer.batch_decode(input_ids, skip_special_tokens=True)
        forced = [tiny_tokenizer(texts["a cat" if "a cat" in p else "a dog"], add_special_tokens=False).input_ids
                  for p in prompts]
        width = max(map(len, forced))
        forced = [f + [tiny_tokenizer.pad_token_id] * (width - len(f)) for f in forced]
        return torch.cat([input_ids, torch.tensor(forced)], dim=1)

    predictor.model.generate = fake_generate
    table = Table(source="t.tsv")
    table.keep(1, {"raw_prompt": "a cat"})
    table.keep(2, {"raw_prompt": "a dog"})
    rows = split_rejected_rows(table, predictor.run(table.rows), "raw_prompt")
    assert [(r["raw_prompt"], r["predictions"]) for r in rows] == [("a cat", "a cat")]
    assert [(r.row, r.content) for r in table.rejects] == [(2, "a dog")]
    assert "raw_prompt: no comma or word boundary" in table.rejects[0].reason
    assert predictor.predict(["a dog"]) == [[]]


def test_run_reads_the_constructors_first_sequence(tiny_tokenizer, tiny_bloom):
    params = PredictorParams(decoding="greedy", num_return_sequences=1, max_new_tokens=2)
    predictor = BeautifulPromptPredictor("unused", params, model=tiny_bloom, tokenizer=tiny_tokenizer,
                                         first_sequence="content")
    rows = predictor.run([{"content": "a cat", "title": "t"}])
    assert rows[0]["content"] == "a cat" and isinstance(rows[0]["predictions"], str)
    with pytest.raises(KeyError, match="row 0 has no 'content' column \\(columns: raw_prompt\\)"):
        predictor.run([{"raw_prompt": "a cat"}])
