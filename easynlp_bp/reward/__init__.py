"""Stage 2: text-only reward models (input formats, RewardModel, training, metrics) and the combined reward."""
