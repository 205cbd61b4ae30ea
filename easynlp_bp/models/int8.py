"""``quantize=int8``: dynamic int8 quantization of a causal LM's Linear layers, for beautifying on a CPU.

Every ``nn.Linear`` (attention, MLP and the LM head) becomes torch's ``DynamicQuantizedLinear``: int8 weights
(per-tensor scale), activations quantized per call, int8 x int8 matmuls in fbgemm / oneDNN (x86) or QNNPACK
(ARM). Embeddings and LayerNorms stay fp32. Outputs move a little (docs/benchmarks.md, "int8 CPU path").

Why ``torch.ao.quantization.quantize_dynamic`` and not torchao: both were tried on torch 2.13 CPU. torchao 0.18
installs from PyPI (its only compiled kernels are CUDA ones), but in eager mode its int8 tensors have no CPU
kernel, so ``quantize_`` with ``Int8WeightOnlyConfig`` or ``Int8DynamicActivationInt8WeightConfig`` made a
BLOOM-560m-sized MLP stack 1.5-10x *slower* than fp32 at decode shapes (1-80 rows), while ``quantize_dynamic``
made it 2-7x faster. torch 2.13 still ships ``quantize_dynamic`` but warns that ``torch.ao.quantization`` is
deprecated (the message still names 2.10 as the removal release); the two deprecation warnings of this one
call are filtered here, and a torch without it gets an error that says what to do.
"""
from __future__ import annotations

import logging
import warnings

import torch

logger = logging.getLogger(__name__)


def quantize_int8(model: torch.nn.Module) -> int:
    """Replace every ``nn.Linear`` of ``model`` (in place, eval mode) by a dynamic int8 Linear; returns how many.

    The model must be on the CPU. Weights are quantized once here; inference only from now on (no gradients).

    Example:
        >>> from transformers import BloomConfig, BloomForCausalLM
        >>> quantize_int8(BloomForCausalLM(BloomConfig(hidden_size=32, n_layer=2, n_head=4, vocab_size=100)))
        9

    Raises:
        ValueError: a parameter is not on the CPU.
        RuntimeError: this torch build has no ``torch.ao.quantization.quantize_dynamic`` or no int8 engine.
    """
    devices = {p.device.type for p in model.parameters()}
    if devices - {"cpu"}:
        raise ValueError(f"quantize=int8 needs the model on the CPU; it is on {', '.join(sorted(devices))}. "
                         "Use device=cpu.")
    quantize_dynamic = getattr(getattr(torch, "ao", None) and torch.ao.quantization, "quantize_dynamic", None)
    if quantize_dynamic is None or torch.backends.quantized.engine == "none":
        raise RuntimeError(f"torch {torch.__version__} has no dynamic int8 quantization on this machine "
                           "(torch.ao.quantization.quantize_dynamic); install the pinned torch "
                           "(pip install -c constraints.txt torch) or use quantize=none.")
    before = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    with warnings.catch_warnings():  # the deprecation notices of torch.ao (see the module docstring)
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor.*deprecated", category=UserWarning)
        quantize_dynamic(model.eval(), {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    left = sum(type(m) is torch.nn.Linear for m in model.modules())
    logger.info("quantize=int8: %d Linear layers now run dynamic int8 matmuls on the CPU (%s engine).",
                before - left, torch.backends.quantized.engine)
    return before - left


def count_int8_linears(model: torch.nn.Module) -> int:
    """How many of ``model``'s modules are torch's dynamic int8 Linear (0 for an unquantized model)."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    return sum(isinstance(m, DynamicQuantizedLinear) for m in model.modules())
