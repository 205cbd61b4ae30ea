"""App ``beautiful_prompt_eval``: the paper's evaluation table, grids, offline text metrics and the A/B page."""
