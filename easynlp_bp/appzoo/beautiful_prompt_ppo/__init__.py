"""App ``beautiful_prompt_ppo``: RL from (visual) AI feedback on top of a BeautifulPrompt SFT model."""
