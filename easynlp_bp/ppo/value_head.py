"""The policy with a value head, the frozen trunk for ``num_layers_unfrozen`` and the shared-trunk reference.

With ``num_layers_unfrozen = N > 0`` only the top N decoder layers, the final norm and an untied LM head
train. The reference model is a shallow copy that *shares* the frozen modules (embeddings, bottom layers)
with the policy and holds frozen copies of the rest, so no second full model is kept in memory (trlx's
"hydra" reference; unlike trlx, tied input embeddings are frozen too, so the reference never drifts).
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import logging
from typing import Optional

import torch
from torch import nn

from easynlp_bp.models.bloom_sdpa import last_positions_only
from easynlp_bp.ppo.frozen_trunk import (  # noqa: F401  (find_decoder_layers: re-exported)
    TrunkSplit, count_decoder_layers, find_decoder_layers, frozen_trunk_modules,
)

logger = logging.getLogger(__name__)

VALUE_HEAD_FILE = "value_head.safetensors"


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
        self.trunk = TrunkSplit(base, num_layers_unfrozen) if 0 < num_layers_unfrozen < count_decoder_layers(base) else None
        self.decoder_layers = tuple(find_decoder_layers(base)[2])  # a plain tuple: not registered twice
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

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int = 0,
                trunk_hidden: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, values) of the last ``logits_to_keep`` positions (0: all): (B, K, V) and (B, K).

        ``trunk_hidden`` (B, T, H): the cached output of the frozen trunk for these inputs
        (:meth:`frozen_trunk_hidden`); then only the top ``num_layers_unfrozen`` layers run.
        """
        kwargs = model_inputs(self.base, input_ids, attention_mask, logits_to_keep)
        with self._top_only(trunk_hidden), last_positions_only(self.decoder_layers, logits_to_keep):
            out = self.base(**kwargs, output_hidden_states=True)
        hidden = out.hidden_states[-1]  # (B, T, H) after the final norm; (B, K, H) when only K positions ran
        logits = out.logits
        if logits_to_keep:
            hidden, logits = hidden[:, -logits_to_keep:], logits[:, -logits_to_keep:]
        values = self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1)  # (B, K)
        return logits, values

    def frozen_trunk_hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Optional[torch.Tensor]:
        """Output (B, T, H) of the frozen trunk, to reuse in later forwards; None when all layers train."""
        if self.trunk is None:
            return None
        return self.trunk.trunk_hidden(**model_inputs(self.base, input_ids, attention_mask))

    def _top_only(self, trunk_hidden: Optional[torch.Tensor]):
        if trunk_hidden is None:
            return contextlib.nullcontext()
        return self.trunk.top_only(trunk_hidden)


def model_inputs(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 logits_to_keep: int = 0) -> dict:
    """Forward keywords of a scoring pass: no cache, ``position_ids`` from the mask where the model takes them
    (P3), and ``logits_to_keep`` where the model takes it (models without it compute all logits; callers slice)."""
    parameters = inspect.signature(model.forward).parameters
    kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False}
    if "position_ids" in parameters:
        kwargs["position_ids"] = position_ids_from_mask(attention_mask)
    if logits_to_keep and "logits_to_keep" in parameters:
        kwargs["logits_to_keep"] = logits_to_keep
    return kwargs


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """``cumsum(mask) - 1`` (0 on left padding): positions as if the sequence were not padded (checklist P3)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class ReferenceModel(nn.Module):
    """The frozen reference policy (logits only), in eval mode; see :func:`build_reference`.

    ``num_layers_unfrozen > 0``: the reference's bottom layers are the policy's frozen trunk, so a cached trunk
    output (``trunk_hidden``) can be fed to its top layers.
    """

    def __init__(self, base: nn.Module, num_layers_unfrozen: int = -1):
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        self.num_layers_unfrozen = num_layers_unfrozen
        self.trunk = TrunkSplit(base, num_layers_unfrozen) if 0 < num_layers_unfrozen < count_decoder_layers(base) else None
        self.decoder_layers = tuple(find_decoder_layers(base)[2])  # a plain tuple: not registered twice
        self.eval()

    def train(self, mode: bool = True) -> "ReferenceModel":
        return super().train(False)

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int = 0,
                trunk_hidden: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits (B, K, V) of the last ``logits_to_keep`` positions (0: all)."""
        kwargs = model_inputs(self.base, input_ids, attention_mask, logits_to_keep)
        top_only = contextlib.nullcontext() if trunk_hidden is None else self.trunk.top_only(trunk_hidden)
        with top_only, last_positions_only(self.decoder_layers, logits_to_keep):
            logits = self.base(**kwargs).logits
        return logits[:, -logits_to_keep:] if logits_to_keep else logits


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
    return ReferenceModel(copy.deepcopy(policy.base, memo=shared), policy.num_layers_unfrozen)


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
