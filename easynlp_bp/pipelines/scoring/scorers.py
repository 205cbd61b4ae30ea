"""Image scorers chosen by name: PickScore, the LAION aesthetic predictor, CLIPScore (the ``SCORERS`` registry).

Every scorer maps (images, texts) to one float per image and says which text it scores against
(``text_role``); the paper scores PickScore and CLIPScore against the *raw* prompt. More scorers (HPS,
ImageReward) plug in with ``@SCORERS.register(name)`` on an :class:`ImageScorer` subclass.
CLIP images go through ``CLIPImageProcessorPil`` (PIL/numpy path): the default fast processor needs torchvision.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Optional, Sequence

import torch
from torch import nn

from easynlp_bp.registry import Registry

logger = logging.getLogger(__name__)

SCORERS: Registry[type["ImageScorer"]] = Registry("scorer")

PICKSCORE_MODEL = "yuvalkirstain/PickScore_v1"
PICKSCORE_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
CLIP_L14 = "openai/clip-vit-large-patch14"


@dataclass
class ScorerOptions:
    """Where a scorer's weights come from and where it runs (``None`` means the scorer's documented default)."""

    model: Optional[str] = field(default=None, metadata={"help": "CLIP model dir or hub id."})
    processor: Optional[str] = field(default=None, metadata={"help": "Dir/id of the image processor + tokenizer (default: model)."})
    weights: Optional[str] = field(default=None, metadata={"help": "Head weights file (aesthetic: the LAION .pth)."})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, cuda:N or auto."})
    batch_size: int = field(default=16, metadata={"help": "Images per forward pass."})

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"scorer batch_size={self.batch_size} must be at least 1.")


class ClipEmbedder:
    """L2-normalised CLIP image and text embeddings (``get_*_features(...).pooler_output`` in transformers 5)."""

    def __init__(self, model, image_processor, tokenizer, batch_size: int = 16):
        self.model = model.eval()
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.device = next(model.parameters()).device

    @classmethod
    def from_pretrained(cls, model: str, processor: Optional[str], device: str, batch_size: int,
                        flag: str = "model") -> "ClipEmbedder":
        """Load a CLIP model (a local folder is checked first: a torn or empty one is named as ``flag``)."""
        from transformers import AutoTokenizer, CLIPImageProcessorPil, CLIPModel

        from easynlp_bp.devices import resolve_device
        from easynlp_bp.models.folder_checks import check_model_dir

        if Path(model).is_dir():
            check_model_dir(model, flag=flag, needs_tokenizer=processor is None)

        torch_device = resolve_device(device)
        dtype = torch.float16 if torch_device.type == "cuda" else torch.float32
        source = processor or model
        return cls(CLIPModel.from_pretrained(model, dtype=dtype).to(torch_device),
                   CLIPImageProcessorPil.from_pretrained(source), AutoTokenizer.from_pretrained(source), batch_size)

    @staticmethod
    def _features(output) -> torch.Tensor:
        return output if isinstance(output, torch.Tensor) else output.pooler_output

    @torch.inference_mode()
    def embed_images(self, images: Sequence) -> torch.Tensor:
        """(N, D) float32 unit vectors for N PIL images."""
        out = []
        for start in range(0, len(images), self.batch_size):
            pixels = self.image_processor(images=list(images[start : start + self.batch_size]), return_tensors="pt")
            pixel_values = pixels["pixel_values"].to(self.device, self.model.dtype)
            out.append(self._features(self.model.get_image_features(pixel_values=pixel_values)).float())
        return nn.functional.normalize(torch.cat(out), dim=-1)

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, D) float32 unit vectors; texts beyond the 77-token window are truncated (CLIP's limit)."""
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(list(texts[start : start + self.batch_size]), padding=True, truncation=True,
                                   max_length=77, return_tensors="pt").to(self.device)
            out.append(self._features(self.model.get_text_features(**batch)).float())
        return nn.functional.normalize(torch.cat(out), dim=-1)


class ImageScorer:
    """Base of every scorer: ``score(images, texts) -> list[float]`` (one per image, texts aligned to images)."""

    name: ClassVar[str] = ""
    column: ClassVar[str] = ""  # output column of the labels, e.g. pick_score
    text_role: ClassVar[Optional[str]] = None  # which text it scores against; None: image only
    description: ClassVar[str] = ""

    @classmethod
    def from_options(cls, options: ScorerOptions) -> "ImageScorer":
        raise NotImplementedError

    def score(self, images: Sequence, texts: Optional[Sequence[str]] = None) -> list[float]:
        raise NotImplementedError

    def _check_texts(self, images: Sequence, texts: Optional[Sequence[str]]) -> Sequence[str]:
        if texts is None or len(texts) != len(images):
            raise ValueError(f"scorer {self.name!r} needs one text ({self.text_role}) per image; "
                             f"got {0 if texts is None else len(texts)} texts for {len(images)} images.")
        return texts


@SCORERS.register("pickscore")
class PickScoreScorer(ImageScorer):
    """PickScore (Kirstain et al. 2023): ``logit_scale.exp() * cos(image, text)`` of the PickScore CLIP-H."""

    name, column, text_role = "pickscore", "pick_score", "raw_prompt"
    description = "PickScore of each image against the raw prompt (human-preference CLIP, ~18-23 on real images)."

    def __init__(self, embedder: ClipEmbedder):
        self.embedder = embedder
        self.logit_scale = float(embedder.model.logit_scale.detach().exp())

    @classmethod
    def from_options(cls, options: ScorerOptions) -> "PickScoreScorer":
        model = options.model or PICKSCORE_MODEL
        processor = options.processor or (PICKSCORE_PROCESSOR if model == PICKSCORE_MODEL else None)
        return cls(ClipEmbedder.from_pretrained(model, processor, options.device, options.batch_size,
                                                flag="pickscore_model"))

    def score(self, images, texts=None) -> list[float]:
        texts = self._check_texts(images, texts)
        cosine = (self.embedder.embed_images(images) * self.embedder.embed_texts(texts)).sum(-1)
        return (self.logit_scale * cosine).tolist()


@SCORERS.register("clipscore")
class ClipScoreScorer(ImageScorer):
    """CLIPScore as torchmetrics reports it: ``100 * max(cos(image, text), 0)`` with CLIP ViT-L/14."""

    name, column, text_role = "clipscore", "clip_score", "raw_prompt"
    description = "CLIPScore (100 x clipped cosine) of each image against the raw prompt."

    def __init__(self, embedder: ClipEmbedder):
        self.embedder = embedder

    @classmethod
    def from_options(cls, options: ScorerOptions) -> "ClipScoreScorer":
        return cls(ClipEmbedder.from_pretrained(options.model or CLIP_L14, options.processor, options.device,
                                                options.batch_size, flag="clipscore_model"))

    def score(self, images, texts=None) -> list[float]:
        texts = self._check_texts(images, texts)
        cosine = (self.embedder.embed_images(images) * self.embedder.embed_texts(texts)).sum(-1)
        return (100.0 * cosine.clamp(min=0)).tolist()


class AestheticMLP(nn.Module):
    """The LAION "improved aesthetic predictor" head: 768 -> 1024 -> 128 -> 64 -> 16 -> 1 (dropouts between).

    Its layer indices reproduce the file's keys ``layers.{0,2,4,6,7}.{weight,bias}`` exactly.
    """

    def __init__(self, input_size: int = 768):
        super().__init__()
        self.input_size = input_size
        self.layers = nn.Sequential(
            nn.Linear(input_size, 1024), nn.Dropout(0.2),
            nn.Linear(1024, 128), nn.Dropout(0.2),
            nn.Linear(128, 64), nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N, input_size) L2-normalised CLIP image embeddings -> (N,) aesthetic scores (about 1-10)."""
        return self.layers(embeddings).squeeze(-1)


def load_aesthetic_mlp(path: str | Path) -> AestheticMLP:
    """Load ``sac+logos+ava1-l14-linearMSE.pth`` (or a safetensors file with the same keys), strictly.

    The file is read with ``torch.load(weights_only=True)``: tensors only, no code runs.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the keys or shapes differ from the LAION MLP's (the message lists them).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Aesthetic MLP weights {str(path)!r} not found; pass aesthetic_weights=<path to "
                                "sac+logos+ava1-l14-linearMSE.pth>.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "layers.0.weight" not in state:
        keys = list(state)[:10] if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{path} is not the LAION aesthetic MLP state dict (expected layers.0.weight ...; found {keys}).")
    model = AestheticMLP(input_size=state["layers.0.weight"].shape[1])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{path} does not match the LAION aesthetic MLP (768->1024->128->64->16->1): {err}") from err
    return model.eval()


@SCORERS.register("aesthetic")
class AestheticScorer(ImageScorer):
    """LAION aesthetic score: CLIP ViT-L/14 image embedding, L2-normalised, into :class:`AestheticMLP`."""

    name, column, text_role = "aesthetic", "aesthetic_score", None
    description = "LAION aesthetic predictor v2 on the image alone (no text)."

    def __init__(self, embedder: ClipEmbedder, mlp: AestheticMLP):
        projection = embedder.model.config.projection_dim
        if projection != mlp.input_size:
            raise ValueError(f"The aesthetic MLP takes {mlp.input_size}-d embeddings but the CLIP model gives "
                             f"{projection}-d; use CLIP ViT-L/14 ({CLIP_L14}) with these weights.")
        self.embedder = embedder
        self.mlp = mlp.to(embedder.device)

    @classmethod
    def from_options(cls, options: ScorerOptions) -> "AestheticScorer":
        if options.weights is None:
            raise ValueError("The aesthetic scorer needs aesthetic_weights=<path to sac+logos+ava1-l14-linearMSE.pth>.")
        mlp = load_aesthetic_mlp(options.weights)
        return cls(ClipEmbedder.from_pretrained(options.model or CLIP_L14, options.processor, options.device,
                                                options.batch_size, flag="aesthetic_clip_model"), mlp)

    @torch.inference_mode()
    def score(self, images, texts=None) -> list[float]:
        return self.mlp(self.embedder.embed_images(images)).tolist()


def build_scorers(names: Sequence[str], options: dict[str, ScorerOptions]) -> list[ImageScorer]:
    """Instantiate the scorers ``names`` (registry names) with their options (default options if absent)."""
    return [SCORERS.get(name).from_options(options.get(name, ScorerOptions())) for name in names]
