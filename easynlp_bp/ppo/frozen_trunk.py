"""Frozen-trunk reuse: run the frozen bottom of a causal LM once per rollout batch, then only its top layers.

With ``num_layers_unfrozen = N > 0`` the embeddings and the bottom ``L - N`` decoder layers never change during
PPO, and the reference shares them with the policy (``value_head.build_reference``). Their output for a rollout
is therefore the same in the old-log-prob forward, the reference forward and every PPO epoch's forward:
:meth:`TrunkSplit.trunk_hidden` computes it once, and :meth:`TrunkSplit.top_only` makes the model's own
``forward`` run only the top layers on it (the layer list is swapped for the top layers, and a pre-hook hands
the cached hidden states to the first of them). The embeddings, the attention mask / ALiBi and the position
handling still run in the model's forward (cheap), so the top layers see exactly the inputs of a full pass.

Hand-written because no library does this for an HF model: trl's ``num_shared_layers`` shares only the
weights, and trlx's hydra heads re-implement the top blocks per architecture.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch
from torch import nn


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


class _TrunkDone(Exception):
    """Raised by the hook on the last frozen layer: the rest of the forward is not needed."""

    def __init__(self, hidden: torch.Tensor):
        super().__init__()
        self.hidden = hidden


def first_tensor(output) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output[0]


class TrunkSplit:
    """A causal LM's decoder split into a frozen bottom (run once) and the top ``num_layers_unfrozen`` layers.

    Example:
        >>> split = TrunkSplit(causal_lm, num_layers_unfrozen=2)
        >>> hidden = split.trunk_hidden(input_ids=ids, attention_mask=mask)     # (B, T, H), no grad
        >>> with split.top_only(hidden):
        ...     logits = causal_lm(input_ids=ids, attention_mask=mask).logits   # only the top 2 layers ran
    """

    def __init__(self, model: nn.Module, num_layers_unfrozen: int):
        self.model = model
        self.container, self.layers_name, self.layers = find_decoder_layers(model)
        n = len(self.layers)
        if not 0 < num_layers_unfrozen < n:
            raise ValueError(
                f"num_layers_unfrozen={num_layers_unfrozen}: a frozen trunk needs 1..{n - 1} top layers of the "
                f"model's {n} (with all layers training there is no trunk to reuse)."
            )
        self.n_frozen = n - num_layers_unfrozen

    @torch.no_grad()
    def trunk_hidden(self, **model_inputs) -> torch.Tensor:
        """Output (B, T, H) of the last frozen layer for ``model_inputs`` (the model's forward keywords)."""
        hook = self.layers[self.n_frozen - 1].register_forward_hook(self._stop_with_output)
        try:
            decoder = getattr(self.model, "base_model", self.model)  # no LM head: it would not run anyway
            decoder(**model_inputs)
        except _TrunkDone as done:
            return done.hidden
        finally:
            hook.remove()
        raise RuntimeError(f"{type(self.model).__name__} never ran decoder layer {self.n_frozen - 1}.")

    @staticmethod
    def _stop_with_output(module, args, output):
        raise _TrunkDone(first_tensor(output).detach())

    @contextlib.contextmanager
    def top_only(self, trunk_hidden: torch.Tensor) -> Iterator[None]:
        """Within the block, the model's forward runs only the top layers, starting from ``trunk_hidden``.

        Shapes must match the inputs the forward gets: ``trunk_hidden`` is (B, T, H) for (B, T) input ids.
        """
        top = self.layers[self.n_frozen :]

        def feed_cached(module, args, kwargs):
            if args:
                return (trunk_hidden, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": trunk_hidden}

        hook = top[0].register_forward_pre_hook(feed_cached, with_kwargs=True)
        setattr(self.container, self.layers_name, nn.ModuleList(list(top)))
        try:
            yield
        finally:
            setattr(self.container, self.layers_name, self.layers)
            hook.remove()


def shares_trunk(policy_model: nn.Module, reference_model: nn.Module, num_layers_unfrozen: int) -> bool:
    """True when the reference runs the very same frozen modules as the policy (so one trunk pass serves both)."""
    if num_layers_unfrozen <= 0:
        return False
    ours = frozen_trunk_modules(policy_model, num_layers_unfrozen)
    theirs = frozen_trunk_modules(reference_model, num_layers_unfrozen)
    return len(ours) == len(theirs) and all(a is b for a, b in zip(ours, theirs))


def trunk_cache_bytes(hidden: Optional[torch.Tensor]) -> int:
    """Bytes held by a cached trunk output (0 when there is none)."""
    return 0 if hidden is None else hidden.numel() * hidden.element_size()
