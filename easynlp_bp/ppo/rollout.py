"""Rollouts: sample responses in chunks, cut them at EOS, and score log-probs/values with one forward.

Alignment (checklist P4): in ``cat(query, response)`` the logit at position ``i`` predicts token ``i+1``,
so response log-probs and values are read from positions ``Q-1 … Q+R-2``. Log-probs are float32
log-softmax of ``logits / temperature`` (N1, N4), recomputed here rather than taken from generate (N3).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

import torch
from torch import nn

from easynlp_bp.ppo.frozen_trunk import first_tensor
from easynlp_bp.text.template import build_prompt


@dataclass
class RolloutBatch:
    """One rollout batch. Queries are left-padded, responses right-padded (pad after EOS).

    Shapes: B episodes, Q query positions, R response positions.
    """

    query_ids: torch.Tensor  # (B, Q) left-padded instruction prompts
    query_mask: torch.Tensor  # (B, Q)
    response_ids: torch.Tensor  # (B, R) sampled tokens, pad after EOS
    response_mask: torch.Tensor  # (B, R) 1 up to and including EOS (or the last token if truncated)
    truncated: torch.Tensor  # (B,) bool: no EOS within max_new_tokens
    logprobs: Optional[torch.Tensor] = None  # (B, R) old log π (float32)
    ref_logprobs: Optional[torch.Tensor] = None  # (B, R) log π_ref
    values: Optional[torch.Tensor] = None  # (B, R) old V
    scores: Optional[torch.Tensor] = None  # (B,) raw reward of each response
    reward_terms: dict[str, float] = field(default_factory=dict)  # batch means of each reward term (for the logs)
    trunk_hidden: Optional[torch.Tensor] = None  # (B, Q+R, H) frozen-trunk output, on the model's device
    raw_prompts: list[str] = field(default_factory=list)
    reference_prompts: Optional[list[str]] = None
    responses: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return self.query_ids.shape[0]

    def input_ids(self, index: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask) of ``cat(query, response)`` for the rows ``index`` (all by default)."""
        q, qm, r, rm = self.query_ids, self.query_mask, self.response_ids, self.response_mask
        if index is not None:
            q, qm, r, rm = q[index], qm[index], r[index], rm[index]
        return torch.cat([q, r], dim=1), torch.cat([qm, rm.to(qm.dtype)], dim=1)

    def real_columns(self, index: torch.Tensor) -> tuple[int, int]:
        """(start, response_len): the rows ``index`` have real tokens only in columns ``start ..
        Q + response_len - 1`` of ``cat(query, response)``; the others are every row's left padding or its padding
        after EOS. A forward on those columns alone gives the same log-probs and values (the mask already hid the
        rest; checklist P3) for less compute when the rows are shorter than the batch's longest.
        """
        query_real = self.query_mask[index].bool().any(0)  # (Q,) left padding: a prefix of False
        response_real = self.response_mask[index].bool().any(0)  # (R,) padding after EOS: a suffix of False
        start = int(query_real.int().argmax()) if bool(query_real.any()) else self.query_ids.shape[1]
        response_len = int(response_real.nonzero().max()) + 1 if bool(response_real.any()) else 1
        return start, response_len


def response_mask_from_eos(response_ids: torch.Tensor, eos_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask, truncated): 1 up to and including the first EOS; all ones when there is no EOS.

    Built from the EOS position, never from ``ids != pad`` (checklist P1).
    """
    is_eos = response_ids == eos_token_id  # (B, R)
    has_eos = is_eos.any(dim=1)
    first_eos = torch.where(has_eos, is_eos.int().argmax(dim=1), torch.full_like(has_eos, response_ids.shape[1] - 1, dtype=torch.long))
    positions = torch.arange(response_ids.shape[1], device=response_ids.device)
    mask = (positions.unsqueeze(0) <= first_eos.unsqueeze(1)).long()
    return mask, ~has_eos


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(s) for s in sequences)
    ids = torch.tensor([[pad_id] * (longest - len(s)) + list(s) for s in sequences], dtype=torch.long)
    mask = torch.tensor([[0] * (longest - len(s)) + [1] * len(s) for s in sequences], dtype=torch.long)
    return ids, mask


def right_pad(tensors: Sequence[torch.Tensor], width: int, value: int) -> torch.Tensor:
    return torch.cat([torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value) for t in tensors])


@torch.no_grad()
def generate_responses(
    model, tokenizer, raw_prompts: Sequence[str], *, chunk_size: int, max_new_tokens: int,
    temperature: float, top_k: int, top_p: float, device: torch.device, trunk_layer: Optional[nn.Module] = None,
) -> RolloutBatch:
    """Sample one response per prompt (``chunk_size`` prompts per call), undistorted (N2).

    ``model`` is the plain causal LM (unwrapped); the returned batch has no log-probs yet. ``trunk_layer``: the
    last frozen decoder layer; its outputs while sampling (every prompt position, then each sampled token as it
    is fed back) are kept in ``batch.trunk_hidden``, so scoring need not run the frozen trunk again.
    """
    encoded = [tokenizer(build_prompt(p), add_special_tokens=False).input_ids for p in raw_prompts]
    query_ids, query_mask = left_pad(encoded, tokenizer.pad_token_id)
    sample = chunk_sampler(model, tokenizer, max_new_tokens=max_new_tokens, temperature=temperature,
                           top_k=top_k, top_p=top_p)
    responses, recorded = [], []
    for start in range(0, len(encoded), chunk_size):
        ids = query_ids[start : start + chunk_size].to(device)
        mask = query_mask[start : start + chunk_size].to(device)
        keep = mask.sum(0) > 0  # drop columns that are padding for the whole chunk
        with recorded_outputs(trunk_layer) as outputs:
            responses.append(sample(ids[:, keep], mask[:, keep]).cpu())
        recorded.append((int(keep.sum()), outputs))
    width = max(r.shape[1] for r in responses)
    response_ids = right_pad(responses, width, tokenizer.pad_token_id)
    response_mask, truncated = response_mask_from_eos(response_ids, tokenizer.eos_token_id)
    response_ids = torch.where(response_mask.bool(), response_ids, torch.full_like(response_ids, tokenizer.pad_token_id))
    texts = [
        tokenizer.decode(row[: int(m.sum())], skip_special_tokens=True).strip()
        for row, m in zip(response_ids, response_mask)
    ]
    trunk = assemble_trunk_hidden(recorded, [r.shape[1] for r in responses], query_ids.shape[1], width) \
        if trunk_layer is not None else None
    return RolloutBatch(query_ids=query_ids, query_mask=query_mask, response_ids=response_ids,
                        response_mask=response_mask, truncated=truncated, trunk_hidden=trunk,
                        raw_prompts=list(raw_prompts), responses=texts)


@contextlib.contextmanager
def recorded_outputs(layer: Optional[nn.Module]) -> Iterator[list]:
    """Within the block, each output of ``layer`` (its hidden states, detached) is appended to the yielded list."""
    outputs: list = []
    if layer is None:
        yield outputs
        return
    hook = layer.register_forward_hook(lambda module, args, output: outputs.append(first_tensor(output).detach()))
    try:
        yield outputs
    finally:
        hook.remove()


def assemble_trunk_hidden(recorded: list, new_tokens: list[int], query_len: int,
                          response_len: int) -> Optional[torch.Tensor]:
    """(B, Q+R, H) trunk outputs in the batch's layout from each chunk's recorded layer outputs; None when a
    chunk's outputs do not cover its positions (a sampler that ran the layer differently).

    Chunk ``i`` recorded its ``kept`` prompt columns, then one position per fed-back token: all sampled tokens
    but the last, which never entered the model. Its position (and all padding) stays 0: no log-prob or value
    reads the output there, and masked keys get no attention.
    """
    hidden, row = None, 0
    for (kept, outputs), n_new in zip(recorded, new_tokens):
        chunk = torch.cat(outputs, dim=1) if outputs else None  # (b, kept + n_new - 1, H)
        if chunk is None or chunk.shape[1] != kept + n_new - 1:
            return None
        if hidden is None:
            rows = sum(len(o[0]) if o else 0 for _, o in recorded)
            hidden = chunk.new_zeros(rows, query_len + response_len, chunk.shape[-1])
        hidden[row : row + len(chunk), query_len - kept : query_len - kept + chunk.shape[1]] = chunk
        row += len(chunk)
    return hidden


def zero_unfilled_trunk(trunk: torch.Tensor, query_mask: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """``trunk`` (B, Q+R, H) recorded while sampling, with 0 wherever the trunk never ran: padding, and each
    row's last sampled token (it never entered the model). No used output reads those positions, but a
    non-finite value there would still reach them (0 attention weight times NaN is NaN, and a NaN log-prob times
    a 0 mask is NaN), turning every row of the batch NaN through the whitening; zeros cannot."""
    filled = torch.cat([query_mask.bool(), response_mask.bool()], dim=1)  # (B, Q+R)
    lengths = response_mask.sum(1)
    rows = torch.nonzero(lengths > 0).squeeze(1)
    filled[rows, query_mask.shape[1] + lengths[rows] - 1] = False
    return trunk.masked_fill(~filled.to(trunk.device).unsqueeze(-1), 0.0)


def chunk_sampler(model, tokenizer, *, max_new_tokens: int, temperature: float, top_k: int, top_p: float):
    """A function (ids, mask) -> new token ids (B, T) of one left-padded chunk, pad after EOS.

    With top_k 0 and top_p 1 (the undistorted rollout setting) it is the project's KV-cache loop
    (``prompting/sampling.py``), whose draw is HF's: same global seed, same tokens as ``generate``, without
    generate's per-step bookkeeping. Other settings use HF ``generate`` with a clean generation config. Either
    way the model's own ``generation_config`` (``no_repeat_ngram_size``, ``repetition_penalty``,
    ``bad_words_ids``, ...) is ignored: the log-probs PPO computes are those of the undistorted policy, so
    sampling from anything else would bias the KL and the ratio.
    """
    from transformers import GenerationConfig

    from easynlp_bp.prompting.sampling import SamplingSettings, sample_sequences

    if top_k == 0 and top_p == 1.0 and not getattr(model.config, "is_encoder_decoder", False):
        settings = SamplingSettings(max_new_tokens=max_new_tokens, top_k=0, top_p=1.0, temperature=temperature,
                                    pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        return lambda ids, mask: sample_sequences(model, ids, mask, settings)
    generation_config = GenerationConfig(
        do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p, max_new_tokens=max_new_tokens,
        min_new_tokens=0, repetition_penalty=1.0, num_beams=1,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )

    def generate(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with model_generation_config(model, generation_config):
            out = model.generate(input_ids=ids, attention_mask=mask, generation_config=generation_config)
        return out[:, ids.shape[1] :]

    return generate


@contextlib.contextmanager
def model_generation_config(model, config) -> Iterator[None]:
    """Within the block ``model.generation_config`` is ``config``: ``generate`` fills the fields a passed config
    leaves at their defaults from the model's own config, so a clean config alone does not keep them out."""
    saved = model.generation_config
    model.generation_config = config
    try:
        yield
    finally:
        model.generation_config = saved


def response_logprobs(logits: torch.Tensor, response_ids: torch.Tensor, query_len: int, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probs (B, R) of the response tokens, float32 response logits (B, R, V)).

    ``logits`` are those of ``cat(query, response)``: all Q+R positions (B, Q+R, V), or only the last ones
    (at least R+1, as a forward with ``logits_to_keep=R+1`` returns them); the response is read from the
    positions before its tokens either way.
    """
    R = response_ids.shape[1]
    dropped = query_len + R - logits.shape[1]  # positions the forward did not compute (logits_to_keep)
    start = query_len - 1 - dropped
    if dropped < 0 or start < 0:
        raise ValueError(f"logits cover {logits.shape[1]} positions; a query of {query_len} and a response of {R} "
                         f"need the last {R + 1} of {query_len + R}.")
    logits = logits[:, start : start + R].float() / temperature  # (B, R, V)
    logprobs = torch.log_softmax(logits, dim=-1).gather(-1, response_ids.unsqueeze(-1)).squeeze(-1)
    return logprobs, logits


def response_values(values: torch.Tensor, query_len: int, response_len: int) -> torch.Tensor:
    """Values (B, R) at the same positions as the log-probs: V of the state before each response token.

    ``values`` cover all Q+R positions or only the last ones (at least R+1), as in :func:`response_logprobs`.
    """
    start = values.shape[1] - response_len - 1
    return values[:, start : start + response_len].float()


@torch.no_grad()
def score_logprobs_and_values(policy, reference, batch: RolloutBatch, *, temperature: float,
                              forward_batch_size: int, device: torch.device, reuse_trunk: bool = False) -> None:
    """Fill ``batch.logprobs``, ``batch.values`` and ``batch.ref_logprobs`` (masked to 0 after EOS).

    Rows are scored ``forward_batch_size`` at a time in order of query length, each chunk on its real columns
    only (:meth:`RolloutBatch.real_columns`), so short queries are not padded to the batch's longest; logits are
    computed for the response positions only. ``reuse_trunk``: run the policy's frozen trunk once per chunk, feed
    it to the policy's and the reference's top layers (the reference must share the trunk), and keep it in
    ``batch.trunk_hidden`` (on ``device``; zeros on the columns a chunk left out) for the update; a trunk recorded
    while sampling (:func:`generate_responses`) is used as it is.
    """
    Q, R = batch.query_ids.shape[1], batch.response_ids.shape[1]
    logprobs, values, ref_logprobs = (torch.zeros(len(batch), R) for _ in range(3))
    recorded = batch.trunk_hidden if reuse_trunk else None
    if recorded is not None:
        recorded = zero_unfilled_trunk(recorded, batch.query_mask, batch.response_mask)
    trunk = recorded
    order = torch.argsort(batch.query_mask.sum(1), stable=True)
    for index in order.split(forward_batch_size):
        start, r = batch.real_columns(index)
        input_ids, attention_mask = (t[:, start : Q + r].to(device) for t in batch.input_ids(index))
        response_ids = batch.response_ids[index, :r].to(device)
        if recorded is not None:
            hidden = recorded[index.to(device), start : Q + r]
        else:
            hidden = policy.frozen_trunk_hidden(input_ids, attention_mask) if reuse_trunk else None
        logits, vals = policy(input_ids, attention_mask, logits_to_keep=r + 1, trunk_hidden=hidden)
        logprobs[index, :r] = response_logprobs(logits, response_ids, Q - start, temperature)[0].cpu()
        values[index, :r] = response_values(vals, Q - start, r).cpu()
        ref_logits = reference(input_ids, attention_mask, logits_to_keep=r + 1, trunk_hidden=hidden)
        ref_logprobs[index, :r] = response_logprobs(ref_logits, response_ids, Q - start, temperature)[0].cpu()
        if hidden is not None and recorded is None:
            if trunk is None:
                trunk = hidden.new_zeros(len(batch), Q + R, hidden.shape[-1])
            trunk[index.to(device), start : Q + r] = hidden
    mask = batch.response_mask.float()
    batch.logprobs = logprobs * mask
    batch.values = values * mask
    batch.ref_logprobs = ref_logprobs * mask
    batch.trunk_hidden = trunk
