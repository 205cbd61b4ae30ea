"""Subject preservation in PPO: held-out evaluation reports it, and the curves give each trend its own panel."""
from __future__ import annotations

from easynlp_bp.ppo.training_loop import plot_ppo_curves, ppo_curve_panels


def test_train_and_held_out_reward_are_on_separate_panels(tmp_path):
    history = [{"step": 0, "eval/reward_mean": 17.0, "eval/subject_mean": 0.9, "eval/subject_all": 0.7},
               {"step": 1, "reward/score_mean": 0.02, "kl/observed": 0.5, "kl/coef": 0.05},
               {"step": 2, "reward/score_mean": 0.05, "eval/reward_mean": 17.2, "eval/kl": 0.6}]
    panels = dict(ppo_curve_panels(history))
    where = {key: title for title, keys in panels.items() for key in keys}
    assert where["reward/score_mean"] != where["eval/reward_mean"]   # Δ ≈ 0 and absolute ≈ 17: separate axes
    assert where["eval/subject_mean"] == where["eval/subject_all"] != where["eval/reward_mean"]
    assert len(panels) == 5
    assert plot_ppo_curves(history, str(tmp_path / "curves.png")) and (tmp_path / "curves.png").stat().st_size > 1000
    assert ppo_curve_panels([{"step": 1, "kl/coef": 0.1}]) == [("β", ["kl/coef"])]
    assert not plot_ppo_curves([{"step": 1}], str(tmp_path / "none.png"))
