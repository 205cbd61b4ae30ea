"""Batched top-k -> top-p sampling with one shared prefill: the Predictor's fast path for ``decoding=sample``,
and (top_k 0, top_p 1: HF's own draw, the same tokens as ``generate`` under one seed) the PPO rollouts' sampler.

Written by hand because HF ``generate`` is slow here for two reasons it cannot avoid (measured in
docs/benchmarks.md): with ``num_return_sequences=R`` it runs the prompt through the model R times, and with a
250k vocabulary its top-p warper sorts, cumsums and samples over the *whole* vocabulary every step, which
costs more than the model at batch 16+. Here the prompt is run once and its KV cache repeated R times, and
top-p works on the ``top_k`` survivors only. The sampling distribution is the one of HF's chain
``repetition penalty -> temperature -> top-k -> top-p`` (``tests/prompting/test_sampling.py`` checks it against HF);
rows with ties at a cut fall back to HF's own warpers so that tie-breaking is HF's too.

On BLOOM the decode steps skip ``BloomModel.forward``'s per-step rebuild of ALiBi and masks
(:mod:`easynlp_bp.prompting.bloom_decoding`: bitwise the same logits, so the same tokens).

With per-row generators (:func:`row_generators`, seeded from the seed, the prompt and the sequence index),
each row draws its own uniforms and samples by inverse CDF, so a seeded prompt's output does not depend on
its batch neighbours or on ``num_return_sequences``.
"""
from __future__ import annotations

import hashlib
import inspect
import logging
from dataclasses import dataclass
from typing import Optional

import torch

from easynlp_bp.prompting.bloom_decoding import BloomStaticDecoder, supports_static_bloom_decoding

logger = logging.getLogger(__name__)

# generation_config fields that add logits processors this module does not implement: if a model sets one,
# the Predictor uses HF generate so that the model's configured behaviour is kept.
UNSUPPORTED_GENERATION_FIELDS = (
    "no_repeat_ngram_size", "encoder_no_repeat_ngram_size", "bad_words_ids", "forced_bos_token_id",
    "forced_eos_token_id", "suppress_tokens", "begin_suppress_tokens", "sequence_bias", "exponential_decay_length_penalty",
    "epsilon_cutoff", "eta_cutoff", "typical_p", "min_p", "guidance_scale", "renormalize_logits", "watermarking_config",
)


# The HF ``generate`` kwargs that :func:`sample_sequences` implements (``bad_words_ids`` as a logits processor the
# caller builds). A call that needs any other kwarg must go to ``generate``: the Predictor routes by this set, so
# a new generation option is never silently dropped on the fast path.
FAST_SAMPLER_KWARGS = frozenset({
    "max_new_tokens", "num_return_sequences", "repetition_penalty", "pad_token_id", "eos_token_id",
    "min_new_tokens", "do_sample", "temperature", "top_k", "top_p", "bad_words_ids",
})


def fast_sampler_handles(kwargs: dict) -> bool:
    """Whether :func:`sample_sequences` does all that ``generate(**kwargs)`` would: top-k sampling with only
    :data:`FAST_SAMPLER_KWARGS`."""
    return bool(kwargs.get("do_sample")) and kwargs.get("top_k", 0) > 0 and set(kwargs) <= FAST_SAMPLER_KWARGS


@dataclass(frozen=True)
class SamplingSettings:
    """What one :func:`sample_sequences` call does (the meaning of each field is HF ``generate``'s)."""

    max_new_tokens: int
    top_k: int  # 0: off (HF's meaning), the whole vocabulary stays
    top_p: float = 1.0
    temperature: float = 1.0
    repetition_penalty: float = 1.0
    penalize_prompt: bool = True  # False: the penalty sees only the sampled tokens (the prompt is not penalised)
    num_return_sequences: int = 1
    min_new_tokens: int = 0
    pad_token_id: int = 0
    eos_token_id: Optional[int] = None

    @classmethod
    def from_generate_kwargs(cls, kwargs: dict, penalize_prompt: bool = True) -> "SamplingSettings":
        """The settings of ``generate(**kwargs)`` (kwargs within :data:`FAST_SAMPLER_KWARGS`)."""
        extra = set(kwargs) - FAST_SAMPLER_KWARGS
        if extra:
            raise ValueError(f"the fast sampler does not implement {', '.join(sorted(extra))}; use generate.")
        names = {f for f in cls.__dataclass_fields__} - {"penalize_prompt"}
        values = {k: v for k, v in kwargs.items() if k in names and v is not None}
        return cls(**values, penalize_prompt=penalize_prompt)

    def __post_init__(self) -> None:
        if self.top_k < 0:
            raise ValueError(f"top_k={self.top_k} must be >= 0 (0: off).")
        if not 0 < self.top_p <= 1 or self.temperature <= 0 or self.repetition_penalty <= 0:
            raise ValueError(f"top_p={self.top_p} must be in (0, 1]; temperature and repetition_penalty positive.")


def supports_fast_sampling(model) -> bool:
    """Whether :func:`sample_sequences` does what ``model.generate`` would do with this model's config."""
    from transformers import GenerationConfig

    if getattr(model.config, "is_encoder_decoder", False):
        return False
    config = getattr(model, "generation_config", None)
    if config is None:
        return True
    defaults = GenerationConfig()
    return all(getattr(config, name, None) == getattr(defaults, name, None) for name in UNSUPPORTED_GENERATION_FIELDS)


def apply_repetition_penalty_(scores: torch.Tensor, seen_ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's penalty in place: every id in ``seen_ids`` (N, T) has its score divided (>0) or multiplied (<0).

    Same result as HF's processor (which builds a full-vocabulary mask); duplicates write the same value.
    """
    if penalty == 1.0 or seen_ids.shape[1] == 0:
        return scores
    seen = scores.gather(1, seen_ids)
    scores.scatter_(1, seen_ids, torch.where(seen < 0, seen * penalty, seen / penalty))
    return scores


def top_k_top_p_candidates(scores: torch.Tensor, top_k: int, top_p: float, temperature: float):
    """The tokens HF's ``temperature -> top-k -> top-p`` chain keeps, and their logits, per row.

    Args:
        scores: (N, V) float logits after the processors (penalties, banned words).
        top_k: 0 keeps the whole vocabulary (sorted; top-p still applies).
    Returns:
        ``(logits, ids, exact)``: (N, k) tempered logits (``-inf`` where top-p removes the token), (N, k) token
        ids, and (N,) bool, False where a tie at the top-k or top-p cut makes the result depend on HF's tie
        order (those rows must be sampled with HF's warpers).
    """
    k = min(top_k, scores.shape[-1]) if top_k > 0 else scores.shape[-1]
    if k < scores.shape[-1]:
        # HF keeps every token tied with the k-th: the row is exact when the (k+1)-th largest is strictly smaller.
        # (One topk of k+1 instead of a full-vocabulary compare-and-count: that count cast a (N, V) bool tensor to
        # int64, a fifth of a decode step at BLOOM's 250,880 entries.)
        values, ids = torch.topk(scores, k + 1)  # (N, k+1), descending
        exact = values[:, k] < values[:, k - 1]
        values, ids = values[:, :k], ids[:, :k]
        inner_tie = (values[:, 1:] == values[:, :-1]).any(-1)
        if bool(inner_tie.any()):  # the order of equal values is topk's own choice: take topk(k)'s for those rows
            rows = inner_tie.nonzero().squeeze(1)
            values[rows], ids[rows] = torch.topk(scores[rows], k)
    else:
        values, ids = torch.topk(scores, k)  # (N, V): every token is a candidate, no cut to tie at
        exact = torch.ones(scores.shape[0], dtype=torch.bool, device=scores.device)
    logits = values / temperature
    if top_p < 1.0:
        probs = logits.softmax(-1)
        # HF sorts ascending and removes a token when the cumulative mass up to it is <= 1 - top_p: in descending
        # order that is the tail sum from the token to the smallest one, summed smallest first as HF does.
        tail_mass = probs.flip(-1).cumsum(-1).flip(-1)
        remove = tail_mass <= (1 - top_p)
        remove[:, 0] = False  # min_tokens_to_keep = 1
        logits = logits.masked_fill(remove, -float("inf"))
        exact &= ~(values[:, 1:] == values[:, :-1]).any(-1)
    return logits, ids, exact


def row_seed(seed: int, prompt: str, index: int) -> int:
    """A 63-bit seed for sequence ``index`` of ``prompt`` under ``seed`` (stable across runs and machines)."""
    digest = hashlib.sha256(f"{seed}\x00{index}\x00{prompt}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def row_generators(seeds: list[int]) -> list[torch.Generator]:
    """One CPU generator per row, seeded with ``seeds`` (CPU so that the stream is the same on every device)."""
    return [torch.Generator().manual_seed(s) for s in seeds]


def _draw(probs: torch.Tensor, generators: Optional[list]) -> torch.Tensor:
    """One index per row of ``probs`` (N, K): ``multinomial``, or inverse CDF on each row's own uniform."""
    if generators is None:
        return torch.multinomial(probs, 1).squeeze(1)
    uniforms = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in generators]).to(probs.device)
    cdf = probs.double().cumsum(-1)  # (N, K); a zero-probability index is never chosen
    choice = torch.searchsorted(cdf, (uniforms * cdf[:, -1]).unsqueeze(1), right=True).squeeze(1)
    return choice.clamp(max=probs.shape[-1] - 1)


def _hf_warped_sample(scores: torch.Tensor, settings: SamplingSettings, generators: Optional[list] = None) -> torch.Tensor:
    """Sample rows with HF's own warpers (used for rows with ties, where HF's tie order decides)."""
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    warped = TemperatureLogitsWarper(settings.temperature)(None, scores) if settings.temperature != 1.0 else scores
    if settings.top_k > 0:
        warped = TopKLogitsWarper(settings.top_k)(None, warped)
    if settings.top_p < 1.0:
        warped = TopPLogitsWarper(settings.top_p)(None, warped)
    return _draw(warped.softmax(-1), generators)


def sample_next_tokens(scores: torch.Tensor, settings: SamplingSettings, generators: Optional[list] = None) -> torch.Tensor:
    """One sampled token per row of ``scores`` (N, V), from HF's top-k -> top-p distribution.

    ``generators``: optional one ``torch.Generator`` per row (see :func:`row_generators`). With top_k 0 and
    top_p 1 this is HF's own draw (softmax over the whole vocabulary, one ``multinomial``): with the same global
    seed and logits it picks the same tokens as ``generate``.
    """
    if settings.top_k == 0 and settings.top_p == 1.0:
        probs = (scores / settings.temperature if settings.temperature != 1.0 else scores).softmax(-1)
        return _draw(probs, generators)
    logits, ids, exact = top_k_top_p_candidates(scores, settings.top_k, settings.top_p, settings.temperature)
    choice = _draw(logits.softmax(-1), generators)  # (N,) index into the k candidates
    tokens = ids.gather(1, choice.unsqueeze(1)).squeeze(1)
    if not bool(exact.all()):
        rows = (~exact).nonzero().squeeze(1)
        tied = None if generators is None else [generators[i] for i in rows.tolist()]
        tokens[rows] = _hf_warped_sample(scores[rows], settings, tied)
    return tokens


def _without_padding(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``ids`` (N, L) with each left pad replaced by the row's first real token, for the repetition penalty.

    HF penalises the pad id of left-padded rows, so a prompt's distribution depends on whether a longer
    neighbour padded it; a repeated real token changes nothing (the penalty is per distinct id).
    """
    first = mask.long().argmax(-1, keepdim=True)  # (N, 1) position of the first real token
    return torch.where(mask.bool(), ids, ids.gather(1, first))


def _sequence_buffer(prompt: torch.Tensor, mask: torch.Tensor, capacity: int, unpadded: bool) -> torch.Tensor:
    """(N, capacity) ids the repetition penalty and the processors see: the prompt (left pads replaced by each
    row's first token when ``unpadded``, see :func:`_without_padding`), then each sampled token written in place."""
    sequences = prompt.new_empty(prompt.shape[0], capacity)
    sequences[:, : prompt.shape[1]] = _without_padding(prompt, mask) if unpadded else prompt
    return sequences


def _forward_kwargs(model) -> set[str]:
    return set(inspect.signature(model.forward).parameters)


def _repeat_rows(buffer: torch.Tensor, repeats: int) -> torch.Tensor:
    """``buffer.repeat_interleave(repeats, dim=0)`` as one broadcast copy (the same values): torch's CPU
    ``repeat_interleave`` gathers through an index and took ~0.1 s per (16, 16, 101, 64) cache buffer, 5 s of a
    BLOOM-560m prefill at 5 return sequences."""
    repeated = buffer.unsqueeze(1).expand(buffer.shape[0], repeats, *buffer.shape[1:]).reshape(-1, *buffer.shape[1:])
    return repeated.contiguous()  # one prompt: reshape keeps the expanded view, whose rows share memory


def preallocated_cache(capacity: int):
    """An HF ``DynamicCache`` whose layers write each step's keys/values into buffers of ``capacity`` positions.

    ``DynamicCache`` concatenates the whole cache with the new position every step (a copy of all past keys and
    values per layer and step: a quarter of a PPO rollout's sampling time on the benchmark's model); here each
    step writes one slice and the attention reads a view of the filled part. Same values, same results.
    """
    from transformers.cache_utils import DynamicCache, DynamicLayer

    class PreallocatedLayer(DynamicLayer):
        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
                self.length = 0
                self.key_buffer = key_states.new_empty((*key_states.shape[:2], capacity, key_states.shape[3]))
                self.value_buffer = value_states.new_empty((*value_states.shape[:2], capacity, value_states.shape[3]))
            end = self.length + key_states.shape[-2]
            if end > capacity:
                raise ValueError(f"The preallocated cache holds {capacity} positions; {end} were written.")
            self.key_buffer[:, :, self.length : end] = key_states
            self.value_buffer[:, :, self.length : end] = value_states
            self.length = end
            self.keys, self.values = self.key_buffer[:, :, :end], self.value_buffer[:, :, :end]
            return self.keys, self.values

        def batch_repeat_interleave(self, repeats: int) -> None:
            if self.is_initialized and repeats != 1:
                self.key_buffer = _repeat_rows(self.key_buffer, repeats)
                self.value_buffer = _repeat_rows(self.value_buffer, repeats)
                self.keys, self.values = self.key_buffer[:, :, : self.length], self.value_buffer[:, :, : self.length]

    cache = DynamicCache()
    cache.layer_class_to_replicate = PreallocatedLayer
    return cache


@torch.no_grad()
def sample_sequences(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, settings: SamplingSettings,
                     logits_processor=None, generators: Optional[list] = None) -> torch.Tensor:
    """Sample ``num_return_sequences`` continuations of each left-padded prompt.

    Args:
        input_ids, attention_mask: (B, L) left-padded prompts.
        logits_processor: optional HF ``LogitsProcessorList`` applied to (N, V) scores every step
            (e.g. ``NoBadWordsLogitsProcessor``).
        generators: optional ``B * R`` per-row generators (row ``b*R + r``): seeded output per prompt.
    Returns:
        (B * R, new) new token ids, rows ``b*R .. b*R+R-1`` belonging to prompt ``b`` (HF's order); finished
        rows are padded with ``pad_token_id`` after their EOS, as ``generate`` does.
    """
    accepted = _forward_kwargs(model)
    repeats = settings.num_return_sequences

    def forward(ids, mask, cache, logits_to_keep=None):
        kwargs = {"input_ids": ids, "attention_mask": mask, "past_key_values": cache, "use_cache": True}
        if "position_ids" in accepted:  # absolute-position models (GPT-2, Llama); BLOOM's ALiBi uses the mask
            kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1]:]
        if logits_to_keep is not None and "logits_to_keep" in accepted:
            kwargs["logits_to_keep"] = logits_to_keep
        return model(**kwargs)

    # Prefill each prompt once, then repeat its cache R times (HF runs the prompt R times).
    capacity = input_ids.shape[1] + settings.max_new_tokens
    cache = preallocated_cache(capacity) if "past_key_values" in accepted else None
    output = forward(input_ids, attention_mask, cache, logits_to_keep=1)
    cache = output.past_key_values
    cache.batch_repeat_interleave(repeats)
    scores = output.logits[:, -1, :].float().repeat_interleave(repeats, 0)  # (N, V)
    mask = attention_mask.repeat_interleave(repeats, 0)
    decoder = BloomStaticDecoder(model, cache, mask, capacity) \
        if cache is not None and supports_static_bloom_decoding(model) else None
    sequences = _sequence_buffer(input_ids.repeat_interleave(repeats, 0), mask, capacity, generators is not None)
    length = input_ids.shape[1]
    unfinished = torch.ones(sequences.shape[0], dtype=torch.bool, device=sequences.device)
    pad = torch.full_like(unfinished, settings.pad_token_id, dtype=torch.long)
    seen_from = 0 if settings.penalize_prompt else input_ids.shape[1]
    for step in range(settings.max_new_tokens):
        apply_repetition_penalty_(scores, sequences[:, seen_from:length], settings.repetition_penalty)
        if logits_processor is not None:
            scores = logits_processor(sequences[:, :length], scores)
        if settings.eos_token_id is not None and step < settings.min_new_tokens:
            scores[:, settings.eos_token_id] = -float("inf")
        tokens = torch.where(unfinished, sample_next_tokens(scores, settings, generators), pad)
        sequences[:, length] = tokens
        length += 1
        if settings.eos_token_id is not None:
            unfinished &= tokens != settings.eos_token_id
        if not bool(unfinished.any()) or step == settings.max_new_tokens - 1:
            break
        if decoder is not None:
            scores = decoder.step(tokens).float()
        else:
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
            scores = forward(tokens[:, None], mask, cache).logits[:, -1, :].float()
    return sequences[:, input_ids.shape[1] : length].clone()
