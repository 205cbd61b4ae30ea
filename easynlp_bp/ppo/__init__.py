"""PPO for BeautifulPrompt (Ziegler et al. 2019 as used by the paper through trlx), owned by this project.

trl removed its PPO trainer (1.13) and older trainers cannot express the combined, reference-relative
text reward or the adaptive KL controller in the right units, so the algorithm lives here: pure-torch
math in ``advantages``, ``losses``, ``kl_controller``; the loop in ``trainer``. The rule codes in comments
("checklist K3", "U6", ...) are the rows of ``docs/ppo_checklist.md``, each with the test that guards it.
"""
from easynlp_bp.ppo.config import PPOConfig
from easynlp_bp.ppo.kl_controller import AdaptiveKLController, FixedKLController

__all__ = ["PPOConfig", "AdaptiveKLController", "FixedKLController"]
