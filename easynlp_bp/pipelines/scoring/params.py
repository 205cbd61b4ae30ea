"""``user_defined_parameters`` shared by the apps that generate and score images (labels, evaluation)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from easynlp_bp.pipelines.scoring.generation import GenerationConfig
from easynlp_bp.pipelines.scoring.scorers import SCORERS, ScorerOptions


@dataclass(frozen=True)
class ScoringParams:
    """Diffusion model, sampling settings and scorers (defaults: the paper's evaluation)."""

    pretrain_model_name_or_path: str = field(
        default="runwayml/stable-diffusion-v1-5", metadata={"help": "Diffusers text-to-image model: local dir or hub id."})
    scheduler: str = field(default="euler_ancestral", metadata={"help": "euler_ancestral, euler, dpm_multistep, ddim, pndm or default."})
    num_inference_steps: int = field(default=20, metadata={"help": "Denoising steps."})
    guidance_scale: float = field(default=7.5, metadata={"help": "Classifier-free guidance scale."})
    height: int = field(default=512, metadata={"help": "Image height (multiple of 8)."})
    width: int = field(default=512, metadata={"help": "Image width (multiple of 8)."})
    negative_prompt: str = field(default="", metadata={"help": "Negative prompt for every image."})
    num_seeds: int = field(default=8, metadata={"help": "Images per prompt K (seeds seed..seed+K-1)."})
    seed: int = field(default=0, metadata={"help": "First image seed."})
    dtype: str = field(default="auto", metadata={"help": "auto (fp16 on GPU, fp32 on CPU), float32, float16, bfloat16."})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, cuda:N or auto (each process its own GPU)."})
    long_prompt: str = field(default="chunk", metadata={"help": "chunk (75-token chunks, nothing cut) or truncate (cut at 77, logged)."})
    scorers: str = field(default="pickscore,aesthetic", metadata={"help": "Comma separated scorer names; 'none' for no images."})
    pickscore_model: Optional[str] = field(default=None, metadata={"help": "PickScore CLIP (default yuvalkirstain/PickScore_v1)."})
    pickscore_processor: Optional[str] = field(default=None, metadata={"help": "Its processor (default laion/CLIP-ViT-H-14-laion2B-s32B-b79K)."})
    aesthetic_clip_model: Optional[str] = field(default=None, metadata={"help": "CLIP ViT-L/14 for the aesthetic MLP (default openai/clip-vit-large-patch14)."})
    aesthetic_weights: Optional[str] = field(default=None, metadata={"help": "Path to sac+logos+ava1-l14-linearMSE.pth."})
    clipscore_model: Optional[str] = field(default=None, metadata={"help": "CLIP for CLIPScore (default openai/clip-vit-large-patch14)."})
    scorer_batch_size: int = field(default=16, metadata={"help": "Images per scorer forward pass."})
    save_images: Optional[str] = field(default=None, metadata={"help": "Directory to keep the generated PNGs."})

    def __post_init__(self) -> None:
        for name in self.scorer_names:
            SCORERS.get(name)  # an unknown name fails here with a suggestion
        GenerationConfig(**self._generation_kwargs())  # validates the generation keys early

    @property
    def scorer_names(self) -> list[str]:
        names = [n.strip() for n in self.scorers.split(",") if n.strip()]
        return [] if names == ["none"] else names

    def _generation_kwargs(self) -> dict:
        return dict(model=self.pretrain_model_name_or_path, scheduler=self.scheduler,
                    num_inference_steps=self.num_inference_steps, guidance_scale=self.guidance_scale,
                    height=self.height, width=self.width, negative_prompt=self.negative_prompt,
                    num_seeds=self.num_seeds, seed=self.seed, dtype=self.dtype, device=self.device,
                    long_prompt=self.long_prompt)

    def generation_config(self, device: Optional[str] = None) -> GenerationConfig:
        """The generation settings; ``device`` replaces ``auto`` (a distributed process's own GPU)."""
        kwargs = self._generation_kwargs()
        if device is not None and self.device == "auto":
            kwargs["device"] = device
        return GenerationConfig(**kwargs)

    def scorer_options(self, device: Optional[str] = None) -> dict[str, ScorerOptions]:
        run_on = device if device is not None and self.device == "auto" else self.device
        common = dict(device=run_on, batch_size=self.scorer_batch_size)
        return {
            "pickscore": ScorerOptions(model=self.pickscore_model, processor=self.pickscore_processor, **common),
            "aesthetic": ScorerOptions(model=self.aesthetic_clip_model, weights=self.aesthetic_weights, **common),
            "clipscore": ScorerOptions(model=self.clipscore_model, **common),
        }
