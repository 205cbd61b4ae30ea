"""Models in one place: resolve a model name (modelzoo, local folder, hub id), check model folders, load causal LMs
and reward models (kind check, dtype, BLOOM kernel patches), and write finished checkpoint folders."""
