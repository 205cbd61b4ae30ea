"""Stage 1 (SFT): the (raw_prompt -> prompt) pair dataset and filters, model loading, the training recipe."""
