"""Reward-model inputs: the two formats exactly, left truncation, pad != eos, save/load, heuristic scorers."""
from __future__ import annotations

import json

import pytest
import torch

from easynlp_bp.reward.data import RewardDataset, collate_reward_batch
from easynlp_bp.reward.metrics import regression_metrics
from easynlp_bp.text.reward_formats import (
    check_reward_type,
    format_aesthetic_input,
    format_pickscore_input,
    format_reward_input,
)
from easynlp_bp.models.reward_model import RewardConfig, RewardModel
from easynlp_bp.default.heuristic_scorer import (
    HeuristicAestheticScorer,
    HeuristicPickScorer,
    heuristic_pick_score,
    label_rows,
    make_reward_rows,
    modifier_counts,
)


def tiny_reward_model(tokenizer, reward_type: str, max_length: int = 384, seed: int = 0) -> RewardModel:
    from transformers import BloomConfig, BloomForSequenceClassification

    config = BloomConfig(vocab_size=len(tokenizer), hidden_size=32, n_layer=2, n_head=4, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         hidden_dropout=0.0, attention_dropout=0.0)
    torch.manual_seed(seed)
    return RewardModel(BloomForSequenceClassification(config).eval(), tokenizer,
                       RewardConfig(reward_type=reward_type, max_length=max_length))


def test_formats_are_exact():
    assert format_aesthetic_input("a cat, 8k", "</s>") == "a cat, 8k</s>"
    assert format_pickscore_input("a cat", "a cat, 8k", "</s>") == "Input: a cat\nOutput: a cat, 8k</s>"
    # Stripped like the SFT target, so a policy response " a cat, 8k" scores as the stored prompt.
    assert format_pickscore_input(" a cat ", " a cat, 8k", "</s>") == "Input: a cat\nOutput: a cat, 8k</s>"
    assert format_reward_input("aesthetic", "ignored", "a cat", "<eos>") == "a cat<eos>"
    assert format_reward_input("pickscore", "x", "y", "<eos>") == "Input: x\nOutput: y<eos>"


def test_unknown_reward_type_is_a_clear_error():
    with pytest.raises(ValueError, match=r"reward_type='clip' is unknown; use one of aesthetic, pickscore"):
        check_reward_type("clip")
    with pytest.raises(ValueError, match="reward_type='hps' is unknown"):
        RewardConfig(reward_type="hps")


def test_encoded_inputs_end_with_eos_and_match_the_format(tiny_tokenizer):
    rm = tiny_reward_model(tiny_tokenizer, "pickscore")
    texts = rm.format_inputs(["a cat"], ["a cat, 8k"])
    assert texts == ["Input: a cat\nOutput: a cat, 8k</s>"]
    ids = rm.encode(texts)["input_ids"][0]
    assert ids[-1] == tiny_tokenizer.eos_token_id
    assert tiny_tokenizer.decode(ids) == texts[0]


def test_truncation_keeps_the_end_of_long_inputs(tiny_tokenizer):
    rm = tiny_reward_model(tiny_tokenizer, "aesthetic", max_length=12)
    long_prompt = "first words here, " + ", ".join(["highly detailed"] * 30) + ", the very end"
    full = tiny_tokenizer(format_aesthetic_input(long_prompt, "</s>"), add_special_tokens=False).input_ids
    ids = rm.encode(rm.format_inputs([""], [long_prompt]))["input_ids"][0]
    assert len(full) > 12 and len(ids) == 12
    assert ids == full[-12:]  # the beginning was cut, the end (and EOS) kept
    assert ids[-1] == tiny_tokenizer.eos_token_id
    assert tiny_tokenizer.decode(ids).endswith("the very end</s>")


def test_pad_must_differ_from_eos(tiny_tokenizer):
    from copy import deepcopy

    bad = deepcopy(tiny_tokenizer)
    bad.pad_token = bad.eos_token
    assert tiny_tokenizer.pad_token_id != tiny_tokenizer.eos_token_id
    with pytest.raises(ValueError, match=r"pad == eos"):
        tiny_reward_model(bad, "aesthetic")


def test_left_padded_batch_scores_equal_single_scores(tiny_tokenizer):
    """Batching must not change a score: the head reads the last real token under left padding."""
    rm = tiny_reward_model(tiny_tokenizer, "pickscore")
    raw = ["a cat", "1 girl", "a castle at night"]
    prompts = ["a cat, 8k", "1 girl, cute, masterpiece, cinematic lighting, highly detailed", "a castle"]
    batched = rm.score(raw, prompts, batch_size=3)
    single = torch.cat([rm.score([r], [p]) for r, p in zip(raw, prompts)])
    assert batched.dtype == torch.float32 and batched.shape == (3,)
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)


def test_dataset_normalises_labels_and_collator_pads_left(tiny_tokenizer):
    rm = tiny_reward_model(tiny_tokenizer, "aesthetic")
    rm.config.label_mean, rm.config.label_std = 5.0, 2.0
    rows = [{"prompt": "a cat", "aesthetic_score": 7.0}, {"prompt": "a cat, 8k, masterpiece", "aesthetic_score": 4.0}]
    ds = RewardDataset(rm, rows, "aesthetic_score")
    assert [ex["labels"] for ex in ds] == [1.0, -0.5]
    batch = collate_reward_batch([ds[0], ds[1]], tiny_tokenizer.pad_token_id)
    assert batch["labels"].dtype == torch.float32
    short = len(ds[0]["input_ids"])
    assert batch["input_ids"][0, -short:].tolist() == ds[0]["input_ids"]
    assert batch["attention_mask"][0].tolist() == [0] * (batch["input_ids"].shape[1] - short) + [1] * short
    # Scores come back in label units: denormalize(normalize(x)) == x.
    assert rm.denormalize(rm.normalize(torch.tensor([7.0]))).item() == pytest.approx(7.0)


def test_save_and_reload_reproduces_scores(tiny_tokenizer, tmp_path):
    rm = tiny_reward_model(tiny_tokenizer, "aesthetic")
    rm.config.label_mean, rm.config.label_std = 5.5, 0.7
    rm.save_pretrained(str(tmp_path))
    saved = json.loads((tmp_path / "reward_config.json").read_text())
    assert saved["reward_type"] == "aesthetic" and saved["label_std"] == 0.7
    assert any(tmp_path.glob("*.safetensors"))
    loaded = RewardModel.from_pretrained(str(tmp_path))
    prompts = ["a cat, 8k", "1 girl"]
    torch.testing.assert_close(loaded.score(prompts, prompts), rm.score(prompts, prompts))
    with pytest.raises(ValueError, match="is a aesthetic reward model, not pickscore"):
        RewardModel.from_pretrained(str(tmp_path), reward_type="pickscore")


def test_regression_metrics_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    predictions = [0.1, 0.4, 0.4, 0.9, 0.3, 0.8]
    labels = [1.0, 2.0, 2.5, 3.0, 2.0, 2.0]
    metrics = regression_metrics(predictions, labels)
    assert metrics["spearman"] == pytest.approx(stats.spearmanr(predictions, labels).statistic)
    assert metrics["pearson"] == pytest.approx(stats.pearsonr(predictions, labels).statistic)
    assert metrics["mse"] == pytest.approx(sum((p - y) ** 2 for p, y in zip(predictions, labels)) / 6)


def test_heuristic_scorers_rank_prompts_as_documented():
    aes, pick = HeuristicAestheticScorer(), HeuristicPickScorer()
    raw = ["a cat in the rain"] * 4
    prompts = [
        "a cat in the rain",
        "a cute cat in the rain, soft fur, cinematic lighting, oil painting, masterpiece, 8k",
        "soft fur, cinematic lighting, oil painting, masterpiece, 8k",  # subject dropped
        "a cat in the rain, 8k, 8k, 8k, 8k, 8k",  # repetition
    ]
    assert modifier_counts(prompts[1]) == {"detail": 1, "lighting": 1, "style": 1, "quality": 2, "artist": 0}
    a, p = aes.score(raw, prompts), pick.score(raw, prompts)
    assert a.dtype == torch.float32 and a.shape == (4,)
    assert a[1] > a[0] and a[1] > a[3]
    # The pick stand-in rewards keeping the raw prompt's words: dropping the subject scores below the raw prompt.
    assert p[1] > p[0] > p[2]
    assert p[0].item() == pytest.approx(17.5 + 2.5, abs=1e-4)  # full relevance, no modifiers, no repetition
    with pytest.raises(ValueError, match="Got 1 raw prompts but 2 prompts"):
        pick.score(["a"], ["a", "b"])


def test_heuristic_labels_have_both_columns_and_spread():
    rows = make_reward_rows(40, seed=3)
    assert len(rows) == 240 and set(rows[0]) == {"raw_prompt", "prompt", "aesthetic_score", "pick_score"}
    aes = torch.tensor([r["aesthetic_score"] for r in rows])
    pick = torch.tensor([r["pick_score"] for r in rows])
    assert 3.0 < aes.min() and aes.max() < 7.5 and aes.std() > 0.5
    assert 17.0 < pick.min() and pick.max() < 23.0 and pick.std() > 0.5
    labelled = label_rows([{"raw_prompt": "a cat", "prompt": "a cat"}])
    assert labelled[0]["pick_score"] == pytest.approx(20.0)


def test_a_saved_causal_lm_becomes_the_backbone_of_a_new_rm(tiny_model_dir):
    """A local LM directory (e.g. the SFT checkpoint) starts an RM: same trunk weights, a new 1-output head."""
    from transformers import AutoModelForCausalLM

    rm = RewardModel.from_pretrained(str(tiny_model_dir), reward_type="pickscore", max_length=64)
    lm = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    lm_state, rm_state = lm.base_model.state_dict(), rm.model.base_model.state_dict()
    assert lm_state.keys() == rm_state.keys()
    assert all(torch.equal(lm_state[k], rm_state[k]) for k in lm_state)
    assert rm.model.score.weight.shape == (1, lm.config.hidden_size)
    assert rm.config.reward_type == "pickscore" and rm.model.config.problem_type == "regression"
    with pytest.raises(ValueError, match="not a trained reward model .* pass reward_type=aesthetic or pickscore"):
        RewardModel.from_pretrained(str(tiny_model_dir))


def test_pick_stand_in_labels_depend_on_the_raw_prompt_like_pickscore():
    """Labels that ignore the raw prompt teach an RM that ignores it; these do not."""
    from easynlp_bp.default.heuristic_scorer import VARIANTS_PER_PAIR

    rows = make_reward_rows(60, seed=5)
    full = rows[1::VARIANTS_PER_PAIR]       # the pair's own beautified prompt
    drifted = rows[5::VARIANTS_PER_PAIR]    # the same modifiers after another pair's subject
    assert all(f["raw_prompt"] == d["raw_prompt"] for f, d in zip(full, drifted))
    wins = sum(f["pick_score"] > d["pick_score"] + 1.0 for f, d in zip(full, drifted))
    assert wins >= 0.9 * len(full), wins
    # Shuffling which raw prompt a prompt is scored against moves the pick labels by points, not hundredths.
    raws = [r["raw_prompt"] for r in full]
    shuffled = raws[1:] + raws[:1]
    moved = [abs(heuristic_pick_score(s, r["prompt"]) - heuristic_pick_score(r["raw_prompt"], r["prompt"]))
             for s, r in zip(shuffled, full)]
    assert sum(moved) / len(moved) > 1.5
def test_label_scaling_is_the_training_labels_mean_and_sample_std():
    from easynlp_bp.reward.data import label_scaling

    mean, std = label_scaling([4.0, "6.0", 8.0], "aesthetic_score")
    assert (mean, std) == (6.0, 2.0)  # Bessel-corrected: sqrt((4 + 0 + 4) / 2)
    with pytest.raises(ValueError, match=r"The 3 training labels 'pick_score' are all equal"):
        label_scaling([20.0, 20.0, 20.0], "pick_score")
    with pytest.raises(ValueError, match=r"The 1 training labels"):
        label_scaling([20.0], "pick_score")


def test_pickscore_rm_input_carries_the_raw_prompt_and_aesthetic_does_not(tiny_tokenizer):
    pick, aes = tiny_reward_model(tiny_tokenizer, "pickscore"), tiny_reward_model(tiny_tokenizer, "aesthetic")
    assert pick.format_inputs(["a cat", "a dog"], ["y", "y"]) == ["Input: a cat\nOutput: y</s>", "Input: a dog\nOutput: y</s>"]
    assert aes.format_inputs(["a cat", "a dog"], ["y", "y"]) == ["y</s>", "y</s>"]
    # so the PickScore RM scores the same prompt differently for different raw prompts, the aesthetic RM not
    pick_scores, aes_scores = pick.score(["a cat", "a dog"], ["y", "y"]), aes.score(["a cat", "a dog"], ["y", "y"])
    assert pick_scores[0] != pick_scores[1] and aes_scores[0] == aes_scores[1]
