"""Reward models for BeautifulPrompt: input formats, RewardModel, the combined PPO reward, and the app."""
