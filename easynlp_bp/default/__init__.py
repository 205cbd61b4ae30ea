"""The embedded default: a synthetic pair corpus, a project-trained tokenizer and a tiny BLOOM config."""
