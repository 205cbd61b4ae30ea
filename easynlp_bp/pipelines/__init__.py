"""Data pipelines around the model: ``collect`` builds low -> high prompt pairs from a raw prompt corpus."""
