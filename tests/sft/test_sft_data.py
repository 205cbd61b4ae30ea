"""SFT data: label masking, the shared template, the reference filters, left-padded collation."""
import pytest
import torch

from easynlp_bp.sft.data import (
    IGNORE_INDEX, BeautifulPromptDataset, PairFilterConfig, collate_left_padded, encode_pair, filter_pairs,
)
from easynlp_bp.text.template import build_prompt, build_target


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


def test_pick_score_filter_boundary_and_unreadable_scores(tiny_tokenizer):
    long_target = "a cat, " + ", ".join(["highly detailed"] * 20)
    scores = [18.5, 18.49, "n/a", float("nan"), "", None, 30]
    rows = [{"raw_prompt": "x", "prompt": long_target, "pick_score": s} for s in scores]
    config = PairFilterConfig(min_pick_score=18.5, min_target_tokens=0, short_target_tokens=0, short_target_drop=0)
    rows.append({"raw_prompt": "x", "prompt": long_target})  # a table without the column: nothing to filter on
    report = filter_pairs(rows, tiny_tokenizer, config)
    # exactly the threshold is kept (the reference drops `< 18.5`); unreadable, empty and null scores are
    # dropped with a reason (a null score must not pass the filter); a row without the column is kept
    assert report.kept == [0, 6, 7]
    assert [i for i, _ in report.dropped] == [1, 2, 3, 4, 5]
    assert all(reason.startswith("pick_score") for _, reason in report.dropped)
    assert "empty" in dict(report.dropped)[5]


def test_target_length_filters_count_tokens_of_the_target(tiny_tokenizer):
    rows = [{"raw_prompt": "x", "prompt": ", ".join(["highly detailed"] * n)} for n in (1, 3, 6, 12)]
    lengths = [len(tiny_tokenizer(r["prompt"], add_special_tokens=False).input_ids) for r in rows]
    threshold = lengths[2]  # keep the two longest
    config = PairFilterConfig(min_pick_score=None, min_target_tokens=threshold, short_target_tokens=0,
                              short_target_drop=0)
    report = filter_pairs(rows, tiny_tokenizer, config)
    assert report.kept == [2, 3]
    assert report.dropped[0] == (0, f"target has {lengths[0]} tokens < {threshold}")


def test_run_sft_script_schema_lets_the_pick_score_filter_fire(tmp_path):
    """examples/beautiful_prompt/run_sft.sh passes a schema with pick_score, so the 18.5 filter can fire."""
    import json
    import re
    from pathlib import Path

    from easynlp_bp.cli import main
    from easynlp_bp.default.pairs import make_pairs

    script = (Path(__file__).resolve().parents[2] / "examples" / "beautiful_prompt" / "run_sft.sh").read_text()
    schema = re.search(r"--input_schema=(\S+)", script).group(1)
    assert "pick_score" in schema.split(",")[2]
    pairs = make_pairs(24, seed=3)
    table = tmp_path / "train.tsv"
    scores = [17.0 if i % 6 == 0 else 20.0 for i in range(len(pairs))]
    table.write_text("".join(f"{p['raw_prompt']}\t{p['prompt']}\t{s}\t5.5\n" for p, s in zip(pairs, scores)))
    out = tmp_path / "sft"
    assert main(["--app_name=beautiful_prompt", "--mode=train", f"--tables={table}", f"--input_schema={schema}",
                 f"--checkpoint_dir={out}", "--epoch_num=1", "--micro_batch_size=8",
                 "--user_defined_parameters=pretrain_model_name_or_path=tiny-bloom-bp"]) == 0
    dropped = [json.loads(line) for line in (out / "filtered_pairs.jsonl").read_text().splitlines()]
    assert [d["raw_prompt"] for d in dropped] == [pairs[i]["raw_prompt"] for i in range(0, 24, 6)]
    assert all(d["reason"] == "pick_score 17.0 < 18.5" for d in dropped)
