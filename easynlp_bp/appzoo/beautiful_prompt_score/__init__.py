"""App ``beautiful_prompt_score``: generate images for prompts and score them (reward-model labels)."""
