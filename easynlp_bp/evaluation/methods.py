"""Prompt methods compared in the evaluation: the raw prompt, BeautifulPrompt checkpoints, causal-LM expanders.

A method is given as ``name=kind:source`` (``raw``; ``sft=predictor:outputs/sft``;
``magic=causal_lm:Gustavosta/MagicPrompt-Stable-Diffusion``). Checkpoints decode greedily with repetition
penalty 1.2, as the reference evaluation; a causal-LM expander continues the raw prompt (MagicPrompt style).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

KINDS = ("raw", "predictor", "causal_lm")


@dataclass
class MethodSpec:
    """One method: its table name, kind and source (model dir or hub id; none for raw)."""

    name: str
    kind: str
    source: Optional[str] = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"method {self.name!r}: kind {self.kind!r} is unknown; use one of {', '.join(KINDS)}.")
        if self.kind != "raw" and not self.source:
            raise ValueError(f"method {self.name!r} ({self.kind}) needs a model dir or id: {self.name}={self.kind}:<dir>.")


def parse_methods(text: str) -> list[MethodSpec]:
    """``"raw,sft=predictor:out/sft,magic=causal_lm:dir"`` -> specs; a bare directory is a predictor."""
    specs = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item == "raw":
            specs.append(MethodSpec("raw", "raw"))
            continue
        name, _, rest = item.partition("=") if "=" in item else (item.rstrip("/").split("/")[-1], "", item)
        kind, _, source = rest.partition(":") if rest.split(":", 1)[0] in KINDS else ("predictor", "", rest)
        specs.append(MethodSpec(name, kind, source))
    names = [s.name for s in specs]
    if not specs or len(set(names)) != len(names):
        raise ValueError(f"methods={text!r} must name at least one method, each once (got {names}).")
    return specs


class PromptMethod:
    """Turns raw prompts into the prompts a method gives to the image model."""

    def __init__(self, spec: MethodSpec, max_new_tokens: int = 77, seed: int = 42, device: str = "auto"):
        self.spec = spec
        self.max_new_tokens = max_new_tokens
        self.seed = seed
        self.device = device
        self._predictor = None

    def _load(self):
        from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams

        if self.spec.kind == "predictor":
            params = PredictorParams(decoding="greedy", num_return_sequences=1, repetition_penalty=1.2,
                                     max_new_tokens=self.max_new_tokens, seed=self.seed, device=self.device)
            return BeautifulPromptPredictor(self.spec.source, params)
        return CausalLMExpander(self.spec.source, self.max_new_tokens, self.device)

    def expand(self, raw_prompts: Sequence[str]) -> list[str]:
        if self.spec.kind == "raw":
            return list(raw_prompts)
        if self._predictor is None:
            self._predictor = self._load()
        return [outputs[0] for outputs in self._predictor.predict(list(raw_prompts), progress=True)]


class CausalLMExpander:
    """A plain continuation model (MagicPrompt, Promptist-style GPT-2): output = raw prompt + greedy continuation."""

    def __init__(self, source: str, max_new_tokens: int, device: str = "auto"):
        from easynlp_bp.devices import resolve_device
        from easynlp_bp.models.causal_lm import load_causal_lm

        self.device = resolve_device(device)
        model, self.tokenizer = load_causal_lm(source, flag="methods")
        self.model = model.to(self.device).eval()
        self.max_new_tokens = max_new_tokens

    def predict(self, raw_prompts: Sequence[str], progress: bool = False) -> list[list[str]]:
        """One greedy continuation per raw prompt (``progress``: a bar on stderr, as the Predictor's)."""
        import torch

        from easynlp_bp.progress import progress_bar_over

        outputs = []
        prompts = progress_bar_over(raw_prompts, "expand", "prompt") if progress else raw_prompts
        for text in prompts:  # one at a time: no padding side assumptions about a foreign tokenizer
            ids = self.tokenizer(text, return_tensors="pt").to(self.device)
            with torch.no_grad():
                generated = self.model.generate(**ids, do_sample=False, max_new_tokens=self.max_new_tokens,
                                                repetition_penalty=1.2,
                                                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
            continuation = self.tokenizer.decode(generated[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
            outputs.append([f"{text}{continuation}".strip()])
        return outputs
