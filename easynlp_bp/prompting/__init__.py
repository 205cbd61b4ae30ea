"""The prompt template (defined once) and generation: Predictor, fast sampler, banned words, CLIP-77 cap."""
