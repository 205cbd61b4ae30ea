"""Image generation for scoring: a diffusers pipeline with the reference evaluation's settings.

``ImageGenerator`` makes K images per prompt, one ``torch.Generator`` per seed, so the image of
(prompt, seed) does not depend on batching. Prompts longer than CLIP's 77-token window are encoded in
75-token chunks whose embeddings are concatenated (the "long prompt weighting" approach of the reference,
without weights), instead of being cut silently by the pipeline.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

logger = logging.getLogger(__name__)

SCHEDULERS = {
    "euler_ancestral": "EulerAncestralDiscreteScheduler",
    "euler": "EulerDiscreteScheduler",
    "dpm_multistep": "DPMSolverMultistepScheduler",
    "ddim": "DDIMScheduler",
    "pndm": "PNDMScheduler",
    "default": None,
}
DTYPES = ("auto", "float32", "float16", "bfloat16")
LONG_PROMPT_MODES = ("chunk", "truncate")


@dataclass
class GenerationConfig:
    """How images are generated (defaults: the paper's evaluation, SD v1.5, Euler Ancestral, 20 steps, 512)."""

    model: str = field(default="runwayml/stable-diffusion-v1-5", metadata={"help": "Diffusers model dir or hub id."})
    scheduler: str = field(default="euler_ancestral", metadata={"help": f"One of {', '.join(SCHEDULERS)}."})
    num_inference_steps: int = field(default=20, metadata={"help": "Denoising steps."})
    guidance_scale: float = field(default=7.5, metadata={"help": "Classifier-free guidance scale."})
    height: int = field(default=512, metadata={"help": "Image height in pixels (multiple of 8)."})
    width: int = field(default=512, metadata={"help": "Image width in pixels (multiple of 8)."})
    negative_prompt: str = field(default="", metadata={"help": "Negative prompt used for every image."})
    num_seeds: int = field(default=8, metadata={"help": "Images per prompt (K; the paper averages over 8)."})
    seed: int = field(default=0, metadata={"help": "First seed; image k of every prompt uses seed + k."})
    dtype: str = field(default="auto", metadata={"help": "auto (fp16 on CUDA, fp32 on CPU), float32, float16, bfloat16."})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, cuda:N or auto."})
    long_prompt: str = field(
        default="chunk", metadata={"help": "chunk: encode >77-token prompts in 75-token chunks; truncate: cut at 77."}
    )

    def __post_init__(self) -> None:
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler={self.scheduler!r} is unknown; choose one of {', '.join(SCHEDULERS)}.")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype!r} is unknown; choose one of {', '.join(DTYPES)}.")
        if self.long_prompt not in LONG_PROMPT_MODES:
            raise ValueError(f"long_prompt={self.long_prompt!r} must be chunk or truncate.")
        if self.num_seeds < 1 or self.num_inference_steps < 1:
            raise ValueError(f"num_seeds={self.num_seeds} and num_inference_steps={self.num_inference_steps} must be >= 1.")
        if self.height % 8 or self.width % 8 or self.height < 8 or self.width < 8:
            raise ValueError(f"height={self.height} and width={self.width} must be positive multiples of 8.")

    @property
    def seeds(self) -> list[int]:
        """The K seeds every prompt uses (the same for every prompt and method: paired comparisons)."""
        return [self.seed + k for k in range(self.num_seeds)]


def resolve_dtype(name: str, device):
    """``auto`` -> fp16 on CUDA, fp32 elsewhere; fp16 on CPU is refused (many CPU kernels lack it)."""
    import torch

    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if name == "float16" and device.type == "cpu":
        raise ValueError("dtype=float16 is not supported on CPU; use float32 (or bfloat16).")
    return getattr(torch, name)


@dataclass
class GeneratedImages:
    """The K images of one prompt: ``images[k]`` was made with ``seeds[k]``."""

    images: list
    seeds: list[int]
    clip_tokens: int  # tokens of the prompt, BOS/EOS included
    nsfw: Optional[list[bool]] = None  # the pipeline's safety checker verdicts, when it has one


class LongPromptEncoder:
    """Encode any-length text with a CLIP text encoder: 75-token chunks, each wrapped in BOS/EOS and padded
    to 77, embedded separately and concatenated along the sequence axis. A prompt that fits in one chunk
    gives exactly the pipeline's own embedding."""

    def __init__(self, tokenizer, text_encoder, window: int = 77):
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self.window = window

    def token_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False, truncation=False).input_ids

    def chunks(self, text: str) -> list[list[int]]:
        """Token id chunks of ``text``, each ``window`` long (BOS + up to window-2 tokens + EOS + padding)."""
        ids = self.token_ids(text)
        body = self.window - 2
        pieces = [ids[i : i + body] for i in range(0, len(ids), body)] or [[]]
        bos, eos, pad = self.tokenizer.bos_token_id, self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        return [[bos, *p, eos] + [pad] * (body - len(p)) for p in pieces]

    def encode(self, texts: Sequence[str], device):
        """Embeddings of ``texts`` with one shared length (shorter ones padded with empty-text chunks).

        Returns a list of tensors of shape (1, n_chunks * window, hidden), one per text.
        """
        import torch

        chunked = [self.chunks(t) for t in texts]
        n_chunks = max(len(c) for c in chunked)
        empty = self.chunks("")[0]
        embeddings = []
        for chunks in chunked:
            chunks = chunks + [empty] * (n_chunks - len(chunks))
            ids = torch.tensor(chunks, device=device)  # (n_chunks, window)
            hidden = self.text_encoder(ids)[0]  # (n_chunks, window, hidden)
            embeddings.append(hidden.reshape(1, -1, hidden.shape[-1]))  # (1, n_chunks * window, hidden)
        return embeddings


class ImageGenerator:
    """K images per prompt from a diffusers text-to-image pipeline.

    Example:
        >>> generator = ImageGenerator.from_config(GenerationConfig(model="outputs/tiny_sd", num_seeds=2,
        ...                                        num_inference_steps=2, height=32, width=32))
        >>> result = generator.generate("a cat on a sofa, oil painting")
        >>> len(result.images), result.seeds
        (2, [0, 1])
    """

    def __init__(self, pipeline: Any, config: GenerationConfig):
        self.pipeline = pipeline
        self.config = config
        self.device = pipeline.device
        has_single_encoder = getattr(pipeline, "text_encoder", None) is not None and not hasattr(pipeline, "text_encoder_2")
        if config.long_prompt == "chunk" and not has_single_encoder:
            raise ValueError(
                f"long_prompt=chunk needs a pipeline with one CLIP text encoder (SD 1.x/2.x); "
                f"{type(pipeline).__name__} has another layout. Use long_prompt=truncate."
            )
        self.encoder = LongPromptEncoder(pipeline.tokenizer, pipeline.text_encoder) if has_single_encoder else None

    @classmethod
    def from_config(cls, config: GenerationConfig) -> "ImageGenerator":
        """Load ``config.model`` with diffusers, set the scheduler, dtype and device."""
        try:
            import diffusers
        except ImportError as err:
            raise ImportError("Image generation needs diffusers: pip install -e '.[diffusion]'") from err
        from easynlp_bp.devices import resolve_device

        device = resolve_device(config.device)
        dtype = resolve_dtype(config.dtype, device)
        pipeline = diffusers.DiffusionPipeline.from_pretrained(config.model, torch_dtype=dtype)
        scheduler_name = SCHEDULERS[config.scheduler]
        if scheduler_name is not None:
            scheduler_cls = getattr(diffusers, scheduler_name)
            pipeline.scheduler = scheduler_cls.from_config(pipeline.scheduler.config)
        pipeline.set_progress_bar_config(disable=True)
        logger.info("Loaded %s (%s, %s) on %s with %s.", config.model, type(pipeline).__name__, dtype, device,
                    type(pipeline.scheduler).__name__)
        return cls(pipeline.to(device), config)

    def count_clip_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the pipeline's CLIP tokenizer, BOS and EOS included."""
        return len(self.pipeline.tokenizer(text, truncation=False).input_ids)

    def generate(self, prompt: str, seeds: Optional[Sequence[int]] = None) -> GeneratedImages:
        """Generate one image per seed (default: ``config.seeds``) for ``prompt``."""
        import torch

        seeds = list(self.config.seeds if seeds is None else seeds)
        c = self.config
        # CPU generators keep images identical across devices' RNG implementations.
        generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        kwargs = dict(num_inference_steps=c.num_inference_steps, guidance_scale=c.guidance_scale,
                      height=c.height, width=c.width, generator=generators, num_images_per_prompt=len(seeds),
                      output_type="pil")
        tokens = self.count_clip_tokens(prompt)
        with torch.inference_mode():
            if c.long_prompt == "chunk":
                prompt_embeds, negative_embeds = self.encoder.encode([prompt, c.negative_prompt], self.device)
                dtype = self.pipeline.text_encoder.dtype
                output = self.pipeline(prompt_embeds=prompt_embeds.to(dtype), negative_prompt_embeds=negative_embeds.to(dtype),
                                       **kwargs)
            else:
                if tokens > self.encoder_window:
                    logger.warning("Prompt of %d CLIP tokens truncated to %d (long_prompt=truncate): %.80s",
                                   tokens, self.encoder_window, prompt)
                output = self.pipeline(prompt=prompt, negative_prompt=c.negative_prompt or None, **kwargs)
        nsfw = getattr(output, "nsfw_content_detected", None)
        return GeneratedImages(images=list(output.images), seeds=seeds, clip_tokens=tokens,
                               nsfw=list(nsfw) if nsfw is not None else None)

    @property
    def encoder_window(self) -> int:
        return getattr(self.pipeline.tokenizer, "model_max_length", 77)
