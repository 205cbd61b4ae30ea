"""The policy with a value head, the frozen trunk for ``num_layers_unfrozen`` and the shared-trunk reference.

With ``num_layers_unfrozen = N > 0`` only the top N decoder layers, the final norm and an untied LM head
train. The reference model is a shallow copy that *shares* the frozen modules (embeddings, bottom layers)
with the policy and holds frozen copies of the rest, so no second full model is kept in memory (trlx's
"hydra" reference; unlike trlx, tied input embeddings are frozen too, so the reference never drifts).
"""
from __future__ import annotations

import copy
import inspect
import logging
from typing import Optional

import torch
from torch import nn

logger = logging.getLogger(__name__)

VALUE_HEAD_FILE = "value_head.safetensors"


def find_decoder_layers(model: nn.Module) -> tuple[nn.Module, str, nn.ModuleList]:
    """(container module, attribute name, layer list): the ModuleList of the decoder blocks of a causal LM."""
    n_layers = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layer", None)
    for module in model.modules():
        for name, child in module.named_children():
            if isinstance(child, nn.ModuleList) and len(child) == n_layers:
                return module, name, child
    raise ValueError(f"Cannot find the {n_layers} decoder layers of {type(model).__name__}.")


def count_decoder_layers(model: nn.Module) -> int:
    return len(find_decoder_layers(model)[2])


def frozen_trunk_modules(model: nn.Module, num_layers_unfrozen: int) -> list[nn.Module]:
    """Modules that stay frozen: everything of the decoder before its top ``num_layers_unfrozen`` layers.

    That is the children of the layers' container registered *before* the layer list (embeddings, their
    norm), the bottom layers, and a tied LM head (its weight is the input embedding).
    """
    container, layers_name, layers = find_decoder_layers(model)
    n = len(layers)
    if num_layers_unfrozen > n:
        raise ValueError(
            f"num_layers_unfrozen={num_layers_unfrozen} is larger than the model's {n} decoder layers; "
            f"choose 1..{n}, or -1 to train all layers."
        )
    frozen: list[nn.Module] = []
    for name, child in container.named_children():
        if name == layers_name:
            break
        frozen.append(child)
    frozen.extend(layers[: n - num_layers_unfrozen])
    return frozen


class PolicyWithValueHead(nn.Module):
    """A causal LM plus a scalar value per position, read from the last hidden state.

    Example:
        >>> policy = PolicyWithValueHead(causal_lm, num_layers_unfrozen=1)
        >>> logits, values = policy(input_ids, attention_mask)   # (B, T, V), (B, T)
    """

    def __init__(self, base: nn.Module, num_layers_unfrozen: int = -1):
        super().__init__()
        self.base = base
        self.num_layers_unfrozen = num_layers_unfrozen
        hidden = base.config.hidden_size
        self.value_head = nn.Linear(hidden, 1)
        # Zero init (checklist U7): the critic starts at V = 0 and cannot disturb the first updates.
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)
        self._accepts_position_ids = "position_ids" in inspect.signature(base.forward).parameters
        if num_layers_unfrozen > 0:
            for module in frozen_trunk_modules(base, num_layers_unfrozen):
                module.requires_grad_(False)
            output = base.get_output_embeddings()
            if output is not None and output.weight is base.get_input_embeddings().weight:
                output.requires_grad_(False)
        self.eval()  # dropout off in every pass (checklist N5); training never switches it back on

    def train(self, mode: bool = True) -> "PolicyWithValueHead":
        """Dropout stays off: PPO's ratio and KL assume the same deterministic policy in both passes."""
        return super().train(False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, "output_hidden_states": True,
                  "use_cache": False}
        if self._accepts_position_ids:
            kwargs["position_ids"] = position_ids_from_mask(attention_mask)
        out = self.base(**kwargs)
        hidden = out.hidden_states[-1]  # (B, T, H)
        values = self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1)  # (B, T)
        return out.logits, values


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """``cumsum(mask) - 1`` (0 on left padding): positions as if the sequence were not padded (checklist P3)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class ReferenceModel(nn.Module):
    """The frozen reference policy (logits only), in eval mode; see :func:`build_reference`."""

    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        self._accepts_position_ids = "position_ids" in inspect.signature(base.forward).parameters
        self.eval()

    def train(self, mode: bool = True) -> "ReferenceModel":
        return super().train(False)

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False}
        if self._accepts_position_ids:
            kwargs["position_ids"] = position_ids_from_mask(attention_mask)
        return self.base(**kwargs).logits


def build_reference(policy: PolicyWithValueHead) -> ReferenceModel:
    """A frozen reference for ``policy``: shares the frozen trunk when ``num_layers_unfrozen > 0``,
    else a full copy. Build it before training starts (it copies the current weights)."""
    shared: dict[int, object] = {}
    if policy.num_layers_unfrozen > 0:
        for module in frozen_trunk_modules(policy.base, policy.num_layers_unfrozen):
            shared[id(module)] = module
            for param in module.parameters():
                shared[id(param)] = param  # keeps a tied LM head pointing at the shared embedding
    # deepcopy's memo maps an object to its "copy": mapping the shared modules to themselves reuses them.
    return ReferenceModel(copy.deepcopy(policy.base, memo=shared))


def save_value_head(policy: PolicyWithValueHead, directory: str) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in policy.value_head.state_dict().items()}
    save_file(state, f"{directory}/{VALUE_HEAD_FILE}")


def load_value_head(policy: PolicyWithValueHead, directory: str) -> Optional[bool]:
    """Load ``value_head.safetensors`` from ``directory`` into ``policy``; False when it is absent."""
    from pathlib import Path

    from safetensors.torch import load_file

    path = Path(directory) / VALUE_HEAD_FILE
    if not path.exists():
        return False
    policy.value_head.load_state_dict(load_file(str(path)))
    return True
