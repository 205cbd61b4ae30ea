"""Image generation (diffusers) and image scorers (PickScore, LAION aesthetic, CLIPScore) for labels and evaluation."""
