"""SFT data: label masking, the shared template, the reference filters, left-padded collation."""
import pytest
import torch

from easynlp_bp.sft.data import (
    IGNORE_INDEX, BeautifulPromptDataset, PairFilterConfig, collate_left_padded, encode_pair, filter_pairs,
)
from easynlp_bp.prompting.template import build_prompt, build_target


def test_template_is_the_papers():
    assert build_prompt(" 1 girl ") == (
        "Instruction: Give a simple description of the image to generate a drawing prompt.\nInput: 1 girl\nOutput:"
    )
    assert build_target("a girl, 8k", "</s>") == " a girl, 8k</s>"


def test_labels_mask_exactly_the_instruction(tiny_tokenizer):
    example = encode_pair("a cat", "a cute cat, 8k", tiny_tokenizer, max_length=384)
    prompt_ids = tiny_tokenizer(build_prompt("a cat"), add_special_tokens=False).input_ids
    target_ids = tiny_tokenizer(" a cute cat, 8k</s>", add_special_tokens=False).input_ids
    assert example["input_ids"] == prompt_ids + target_ids
    assert example["labels"] == [IGNORE_INDEX] * len(prompt_ids) + target_ids
    assert example["labels"][-1] == tiny_tokenizer.eos_token_id
    assert tiny_tokenizer.decode([t for t in example["labels"] if t != IGNORE_INDEX]) == " a cute cat, 8k</s>"


def test_long_targets_are_cut_not_the_instruction(tiny_tokenizer):
    prompt_len = len(tiny_tokenizer(build_prompt("a cat"), add_special_tokens=False).input_ids)
    example = encode_pair("a cat", "word " * 300, tiny_tokenizer, max_length=prompt_len + 5)
    assert len(example["input_ids"]) == prompt_len + 5
    assert example["labels"][:prompt_len] == [IGNORE_INDEX] * prompt_len
    with pytest.raises(ValueError, match="raise --sequence_length"):
        encode_pair("a cat", "x", tiny_tokenizer, max_length=prompt_len)


def test_reference_filters(tiny_tokenizer):
    long_target = "a cat, " + ", ".join(["highly detailed"] * 20)
    rows = [
        {"raw_prompt": "a", "prompt": long_target, "pick_score": 18.0},   # low pick score
        {"raw_prompt": "b", "prompt": "a cat", "pick_score": 20.0},       # too short
        {"raw_prompt": "c", "prompt": long_target, "pick_score": "19.5"}, # kept
        {"raw_prompt": "d", "prompt": long_target},                       # no score field: kept
    ]
    config = PairFilterConfig(min_pick_score=18.5, min_target_tokens=5, short_target_tokens=0, short_target_drop=0)
    report = filter_pairs(rows, tiny_tokenizer, config)
    assert report.kept == [2, 3]
    assert [i for i, _ in report.dropped] == [0, 1]
    assert "pick_score 18.0 < 18.5" in report.dropped[0][1]


def test_short_targets_dropped_at_the_given_rate(tiny_tokenizer):
    rows = [{"raw_prompt": "x", "prompt": "a cat, highly detailed"} for _ in range(2000)]
    config = PairFilterConfig(min_pick_score=None, min_target_tokens=0, short_target_tokens=1000, short_target_drop=0.3)
    report = filter_pairs(rows, tiny_tokenizer, config)
    assert 0.26 < len(report.dropped) / len(rows) < 0.34


def test_collator_pads_left_to_the_longest(tiny_tokenizer):
    dataset = BeautifulPromptDataset(
        [{"raw_prompt": "a cat", "prompt": "a cat, 8k"}, {"raw_prompt": "a dog", "prompt": "a dog, " + "x " * 20}],
        tiny_tokenizer, 384,
    )
    batch = collate_left_padded([dataset[0], dataset[1]], tiny_tokenizer.pad_token_id)
    longest = len(dataset[1]["input_ids"])
    assert batch["input_ids"].shape == (2, longest)
    pad = longest - len(dataset[0]["input_ids"])
    assert batch["attention_mask"][0, :pad].sum() == 0 and batch["attention_mask"][0, pad:].all()
    assert (batch["labels"][0, :pad] == IGNORE_INDEX).all()
    assert torch.equal(batch["input_ids"][0, pad:], torch.tensor(dataset[0]["input_ids"]))
