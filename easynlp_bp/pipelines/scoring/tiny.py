"""Tiny random-weight Stable Diffusion pipelines and CLIP models built from configs, saved as real dirs.

They exercise every real loading path (``DiffusionPipeline.from_pretrained``, ``CLIPModel.from_pretrained``)
offline, in seconds, for tests and smoke runs. Their images are noise and their scores mean nothing.
The CLIP tokenizer is a character-level CLIP BPE (byte alphabet, no merges) built here, because no
CLIP vocabulary can be downloaded offline; one character is one token, so long prompts are easy to make.
"""
from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")


def _byte_alphabet() -> list[str]:
    """The 256 printable stand-ins for bytes that GPT-2/CLIP byte-level BPE vocabularies start from."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    extra = [b for b in range(256) if b not in printable]
    codes = printable + [256 + i for i in range(len(extra))]
    return [chr(c) for c in codes]


def build_char_clip_tokenizer():
    """A character-level CLIP tokenizer (byte alphabet with and without ``</w>``, no merges)."""
    from transformers import CLIPTokenizer

    alphabet = _byte_alphabet()
    tokens = alphabet + [f"{ch}</w>" for ch in alphabet] + list(SPECIAL_TOKENS)
    return CLIPTokenizer(
        vocab={t: i for i, t in enumerate(tokens)}, merges=[], bos_token=SPECIAL_TOKENS[0],
        eos_token=SPECIAL_TOKENS[1], pad_token=SPECIAL_TOKENS[1], unk_token=SPECIAL_TOKENS[1],
        model_max_length=77,
    )


def _text_config(tokenizer, hidden_size: int = 32) -> dict:
    return dict(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )


def save_tiny_stable_diffusion(directory: str | Path, seed: int = 0) -> Path:
    """Save a random tiny ``StableDiffusionPipeline`` (UNet, VAE, CLIP text encoder, Euler A) to ``directory``.

    The VAE downsamples by 2, so 32x32 images use 16x16 latents.
    """
    import torch
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    directory = Path(directory)
    tokenizer = build_char_clip_tokenizer()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=8, attention_head_dim=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(16, 32), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, sample_size=32,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(**_text_config(tokenizer)))
    scheduler = EulerAncestralDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
    )
    pipeline = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, image_encoder=None, requires_safety_checker=False,
    )
    pipeline.save_pretrained(directory)
    return directory


def save_tiny_clip(directory: str | Path, projection_dim: int = 32, image_size: int = 32, seed: int = 0) -> Path:
    """Save a random tiny ``CLIPModel`` with its tokenizer and PIL image processor to ``directory``.

    ``projection_dim=768`` gives ViT-L/14-shaped embeddings for the LAION aesthetic MLP.
    """
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    directory = Path(directory)
    tokenizer = build_char_clip_tokenizer()
    vision = dict(image_size=image_size, patch_size=8, hidden_size=32, intermediate_size=37,
                  num_attention_heads=4, num_hidden_layers=2)
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(text_config=_text_config(tokenizer), vision_config=vision,
                                 projection_dim=projection_dim))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    ).save_pretrained(directory)
    return directory
