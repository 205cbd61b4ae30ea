"""Reward terms: each term's contract and sign, the weighted sum with the reference delta, every term in the
PPO logs, and a term registered or imported from outside the package."""
from __future__ import annotations

import json

import pytest
import torch

from easynlp_bp.reward.combined import CombinedReward
from easynlp_bp.reward.terms import (
    REWARD_TERMS, ClipLengthTerm, RepetitionTerm, TermContext, WordRecallTerm, loop_share, parse_reward_terms,
)


def test_word_recall_is_lowered_by_a_misspelt_or_dropped_word():
    term = WordRecallTerm()
    raw = ["concentric circles", "a red sphere", "a wizard hat, neck tie", "1 girl"]
    kept = ["concentric circles, 8k", "A Red Sphere, oil painting", "a wizard hat, a neck tie, 4k", "1 girl, detailed"]
    garbled = ["concentricdescles, 8k", "a red spams, oil painting", "a wizarden, necks, 4k", "1 comp composition"]
    torch.testing.assert_close(term.score(raw, kept), torch.ones(4))
    torch.testing.assert_close(term.score(raw, garbled), torch.tensor([0.0, 0.5, 0.0, 0.5]))


@pytest.mark.parametrize("text,low,high", [
    ("a cat on the beach, backlit, oil painting, 8k", 0.0, 0.0),
    ("a dragon, 1111 scales, mississippi river, hdr", 0.0, 0.0),
    ("ultrararararara", 0.7, 1.0),
    ("a dog running merilyilyilyaveaveave", 0.3, 0.7),
    ("portrait, portrait, portrait, portrait", 0.7, 1.0),
    ("a cat on a sofa on a sofa on a sofa on a sofa", 0.5, 0.9),
])
def test_loop_share_finds_loops_and_only_loops(text, low, high):
    assert low <= loop_share(text) <= high


def test_repetition_term_is_minus_the_loop_share():
    scores = RepetitionTerm().score(["x", "x"], ["a cat, 8k", "ultrararararara"])
    assert scores[0] == 0.0 and scores[1] < -0.7


def test_clip_length_window():
    term = ClipLengthTerm(min_tokens=5, max_tokens=10, counter=lambda text: len(text.split()))
    scores = term.score([""] * 4, ["a b", "a b c d e f", "a b c d e f g h i j", "w " * 20])
    torch.testing.assert_close(scores, torch.tensor([-3 / 10, 0.0, 0.0, -10 / 10]))
    assert not term.deltaed
    with pytest.raises(ValueError, match="must satisfy 1 <= min <= max"):
        ClipLengthTerm(min_tokens=10, max_tokens=5, counter=len)


def test_default_clip_length_counts_openai_clip_tokens():
    term = ClipLengthTerm()
    assert term.counter("a cat") == 4  # BOS, a, cat, EOS
    assert term.score(["a"], ["a cat"])[0] < 0  # 4 tokens: below the 20-token window


def test_weighted_sum_and_delta_over_a_list_of_terms():
    reward = CombinedReward([WordRecallTerm(2.0), RepetitionTerm(1.0), ClipLengthTerm(0.5, 1, 5, counter=len)])
    raw, prompts, refs = ["a red sphere"], ["a red spams"], ["a red sphere, 8k"]
    got = reward.compute(raw, prompts, refs)
    # recall 0.5 vs 1.0 (deltaed), no loop either side, clip: 11 chars vs window 5 (not deltaed)
    torch.testing.assert_close(got.total, torch.tensor([2.0 * (0.5 - 1.0) + 0.0 + 0.5 * -(11 - 5) / 5]))
    assert set(got.means()) == {"reward/total", "reward/term/word_recall", "reward/term/repetition",
                                "reward/term/clip_length", "reward/reference/word_recall",
                                "reward/reference/repetition"}


def test_reward_terms_parse_and_errors():
    assert parse_reward_terms("pickscore:0.7, aesthetic:0.3,word_recall") == [
        ("pickscore", 0.7), ("aesthetic", 0.3), ("word_recall", 1.0)]
    with pytest.raises(ValueError, match="twice"):
        parse_reward_terms("word_recall:1,word_recall:2")
    with pytest.raises(ValueError, match="not a number"):
        parse_reward_terms("word_recall:lots")
    with pytest.raises(ValueError, match="empty"):
        parse_reward_terms(" , ")


def _ppo_app(tmp_path, udp):
    from easynlp_bp.appzoo.beautiful_prompt_ppo import BeautifulPromptPPOApp
    from easynlp_bp.arguments import EasyNLPArgs

    return BeautifulPromptPPOApp(EasyNLPArgs(app_name="beautiful_prompt_ppo", checkpoint_dir=str(tmp_path),
                                             user_defined_parameters=udp))


def test_terms_are_chosen_from_user_defined_parameters_including_ones_from_outside_the_package(tmp_path):
    from plugins.user_classes import ShortPromptTerm

    REWARD_TERMS.register("test_short_prompt")(ShortPromptTerm)
    app = _ppo_app(tmp_path, "reward=heuristic reward_terms=pickscore:0.7,word_recall:2,test_short_prompt:1,"
                             "plugins.user_classes.ShortPromptTerm:0.5")
    with pytest.raises(ValueError, match="distinct"):  # both build a term named short_prompt
        app._reward_fn()
    app = _ppo_app(tmp_path, "reward=heuristic reward_terms=pickscore:0.7,word_recall:2,"
                             "plugins.user_classes.ShortPromptTerm:0.5")
    reward = app._reward_fn()
    assert [(t.name, t.weight) for t in reward.terms] == [("pickscore", 0.7), ("word_recall", 2.0),
                                                          ("short_prompt", 0.5)]
    means = reward.compute(["a cat"], ["a cat, 8k"]).means()
    assert means["reward/term/short_prompt"] == pytest.approx(-0.09)
    with pytest.raises(ValueError, match="Unknown reward term 'word_recal'. Did you mean 'word_recall'"):
        _ppo_app(tmp_path, "reward_terms=word_recal:1")


def test_default_spec_is_the_papers_reward(tmp_path):
    app = _ppo_app(tmp_path, "reward=heuristic consistency_weight=0 alpha=0.6")
    assert app.reward_spec() == [("aesthetic", pytest.approx(0.4)), ("pickscore", 0.6)]


def test_the_embedded_default_has_its_own_reward_unless_the_user_chooses_one(tmp_path):
    import json

    sft = tmp_path / "sft"
    sft.mkdir()
    (sft / "run_config.json").write_text(json.dumps({"resolved": {"model_source": {"kind": "config"}}}))
    app = _ppo_app(tmp_path / "out", f"reward=heuristic pretrain_model_name_or_path={sft}")
    assert app.reward_spec() == [("aesthetic", 1.0), ("pickscore", 0.3), ("consistency", 1.0), ("word_recall", 1.0)]
    given = _ppo_app(tmp_path / "out", f"reward=heuristic pretrain_model_name_or_path={sft} reward_terms=aesthetic:1")
    assert given.reward_spec() == [("aesthetic", 1.0)]
    paper = _ppo_app(tmp_path / "out", f"reward=heuristic pretrain_model_name_or_path={sft} alpha=0.7")
    assert paper.reward_spec() == [("aesthetic", pytest.approx(0.3)), ("pickscore", 0.7), ("consistency", 1.0)]


def test_every_term_is_logged_each_iteration_and_in_held_out_evaluation(tiny_tokenizer, tmp_path):
    from conftest import build_tiny_bloom
    from easynlp_bp.ppo.trainer import PPOTrainer
    from easynlp_bp.ppo.training_loop import ppo_curve_panels, run_ppo
    from easynlp_bp.ppo.config import PPOConfig
    from ppo_policies import ROWS

    reward = CombinedReward([WordRecallTerm(1.0), RepetitionTerm(1.0),
                             ClipLengthTerm(0.1, 1, 20, counter=lambda t: len(t.split()))])
    trainer = PPOTrainer(build_tiny_bloom(tiny_tokenizer, n_layer=3), None, reward, tiny_tokenizer,
                         PPOConfig(num_rollouts=8, chunk_size=4, mini_batch_size=4, ppo_epochs=2, max_new_tokens=12,
                                   learning_rate=1e-3, num_layers_unfrozen=1, forward_batch_size=4, total_steps=2,
                                   eval_size=4, eval_interval=1))
    summary = run_ppo(trainer, ROWS, ROWS[:4], str(tmp_path))
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in logged if "reward/score_mean" in r]
    eval_rows = [r for r in logged if "eval/reward_mean" in r]
    assert train_rows and eval_rows
    for name in ("word_recall", "repetition", "clip_length"):
        assert all(f"reward/term/{name}" in r for r in train_rows)
        assert all(f"eval/term/{name}" in r for r in eval_rows)
    assert all("reward/reference/word_recall" in r for r in train_rows)  # ROWS have reference prompts
    assert {f"term: {n}" for n in ("word_recall", "repetition", "clip_length")} <= {
        title for title, _ in ppo_curve_panels(summary["history"])}
