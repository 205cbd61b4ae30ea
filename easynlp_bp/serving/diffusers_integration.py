"""Generate images from beautified prompts with a diffusers ``DiffusionPipeline`` (and from the raw prompt).

The beautified prompt is cut at a comma or word boundary to the pipeline's text-encoder window (77 CLIP
tokens for Stable Diffusion), so what is rendered is what is reported; raw and beautified images share a
seed, so the comparison shows the prompt's effect and not the noise.

Example:
    >>> from diffusers import DiffusionPipeline
    >>> pipe = DiffusionPipeline.from_pretrained("stable-diffusion-v1-5/stable-diffusion-v1-5")
    >>> predictor = BeautifulPromptPredictor("outputs/beautiful_prompt", PredictorParams(seed=42))
    >>> result = beautify_and_generate(pipe, predictor, "1 girl", seed=0)[0]
    >>> result.raw_image.save("raw.png"); result.image.save("beautiful.png")
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from easynlp_bp.text.clip_cap import ClipLengthCap


@dataclass
class ImageComparison:
    """Images of one raw prompt and of its beautified prompt, made with the same seed."""

    raw_prompt: Optional[str]
    prompt: str  # the beautified prompt as rendered (within the token window)
    image: Any  # PIL.Image
    raw_image: Any = None  # PIL.Image, when the raw prompt was rendered too
    candidates: list[str] = field(default_factory=list)  # all beautified prompts the predictor returned
    seed: int = 0


def encoder_window(pipeline) -> int:
    """Tokens the pipeline's (first) text encoder reads, BOS/EOS included: 77 for CLIP."""
    tokenizer = getattr(pipeline, "tokenizer", None)
    if tokenizer is None:
        raise ValueError(f"{type(pipeline).__name__} has no tokenizer; a text-to-image pipeline is needed.")
    window = getattr(tokenizer, "model_max_length", 77)
    return window if 3 <= window <= 100_000 else 77


def fit_to_window(pipeline, text: str) -> str:
    """``text`` cut at a comma or word boundary to fit the pipeline's text-encoder window."""
    return ClipLengthCap(pipeline.tokenizer, encoder_window(pipeline))(text)


def _render(pipeline, prompt: str, seed: int, **options) -> Any:
    import torch

    generator = torch.Generator(device="cpu").manual_seed(seed)
    return pipeline(prompt=prompt, generator=generator, **options).images[0]


def compare_images(pipeline, prompt: str, raw_prompt: Optional[str] = None, seed: int = 0,
                   num_inference_steps: int = 20, height: Optional[int] = None, width: Optional[int] = None,
                   negative_prompt: Optional[str] = None, guidance_scale: float = 7.5) -> ImageComparison:
    """Render ``prompt`` (cut to the window) and, if given, ``raw_prompt`` with the same seed and settings."""
    options = {"num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale}
    options.update({k: v for k, v in (("height", height), ("width", width), ("negative_prompt", negative_prompt))
                    if v is not None})
    fitted = fit_to_window(pipeline, prompt)
    if not fitted:
        raise ValueError(f"prompt {prompt!r} has no comma or word boundary within the encoder window.")
    image = _render(pipeline, fitted, seed, **options)
    raw_image = _render(pipeline, fit_to_window(pipeline, raw_prompt), seed, **options) if raw_prompt else None
    return ImageComparison(raw_prompt=raw_prompt, prompt=fitted, image=image, raw_image=raw_image, seed=seed)


def beautify_and_generate(pipeline, predictor, raw_prompts: str | Sequence[str], include_raw: bool = True,
                          choose: int = 0, seed: int = 0, **render_options) -> list[ImageComparison]:
    """Beautify ``raw_prompts`` with ``predictor`` and render output ``choose`` of each (and the raw prompt).

    Every beautified prompt is cut to the pipeline's window (``candidates`` holds them as cut);
    ``render_options`` go to :func:`compare_images`.
    """
    raw_prompts = [raw_prompts] if isinstance(raw_prompts, str) else list(raw_prompts)
    outputs = predictor.predict(raw_prompts)
    results = []
    for raw, candidates in zip(raw_prompts, outputs):
        if not 0 <= choose < len(candidates):
            raise ValueError(f"choose={choose} but the predictor returned {len(candidates)} prompt(s).")
        comparison = compare_images(pipeline, candidates[choose], raw_prompt=raw if include_raw else None,
                                    seed=seed, **render_options)
        comparison.candidates = [fit_to_window(pipeline, c) for c in candidates]
        results.append(comparison)
    return results


def image_to_data_url(image) -> str:
    """A PIL image as a ``data:image/png;base64,...`` URL (what the demo page shows)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def load_pipeline(name_or_path: str, device: str = "auto"):
    """``DiffusionPipeline.from_pretrained`` (safetensors only) on ``device``; needs the diffusion extra."""
    try:
        from diffusers import DiffusionPipeline
    except ImportError as err:
        raise ImportError("Images need diffusers: pip install -e .[diffusion]") from err
    from easynlp_bp.devices import resolve_device

    pipeline = DiffusionPipeline.from_pretrained(name_or_path, use_safetensors=True)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(resolve_device(device))
