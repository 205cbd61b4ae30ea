"""PredictorParams: the one declaration of every generation option (name, type, bounds, choices, help, and
whether HTTP and OpenAI clients may set it).

The HTTP request schema (:mod:`easynlp_bp.serving.schemas`), the OpenAI parameter mapping
(:mod:`easynlp_bp.serving.openai_compat`), the options a response reports, ``--help`` and
``docs/cli_reference.md`` are all derived from the fields below; adding an option is one field here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from easynlp_bp.finite_numbers import require_finite
from easynlp_bp.options import check_options, option

DECODING_MODES = ("sample", "greedy", "beam")
MAX_RETURN_SEQUENCES = 16  # the server's limit too: 10,000 sequences of 384 tokens exhaust memory
MAX_SEED = 2**32 - 1
RERANK_MODES = ("none", "consistency", "reward")
QUANTIZE_MODES = ("none", "int8")  # applied by easynlp_bp/models/int8.py when the model loads
UNSUPPORTED_LANGUAGE_POLICIES = ("keep", "reject", "generate")  # numpy's and most front-ends' range; torch takes it as is


@dataclass(frozen=True)
class PredictorParams:
    """Generation options (``user_defined_parameters`` keys of predict, evaluate and serve; per-call overrides)."""

    option_modes: ClassVar[tuple[str, ...]] = ("predict", "evaluate", "serve")

    num_return_sequences: Optional[int] = option(
        None, "Beautified prompts per input (default 5; 1 with decoding=greedy, which has only one output).",
        ge=1, le=MAX_RETURN_SEQUENCES, http=True, openai="n",
        fix="ask for fewer, or run predict again with another seed")
    decoding: Optional[str] = option(
        None, "sample (seed snippet), greedy or beam. Unset: beam when num_beams > 1 (as in EasyNLP), else sample.",
        choices=DECODING_MODES, http=True)
    temperature: float = option(1.0, "Sampling temperature.", gt=0, le=5, http=True, openai="temperature",
                                fix="for the single most likely output use decoding=greedy")
    top_k: int = option(50, "Top-k sampling (0: off).", ge=0, le=1000, http=True)
    top_p: float = option(0.95, "Nucleus sampling mass.", gt=0, le=1, http=True, openai="top_p")
    repetition_penalty: float = option(1.2, "Repetition penalty (1.0: off).", ge=1, http=True)
    penalize_prompt: bool = option(
        False, "Apply the repetition penalty to the prompt's tokens too (HF generate's way). Off: only to what "
               "the model wrote, so copying the user's words is not penalised (docs/consistency.md).", http=True)
    num_beams: Optional[int] = option(
        None, "Beams; > 1 means beam search unless decoding is given (EasyNLP). Unset: 5 for decoding=beam.",
        ge=1, le=64)
    max_length: int = option(384, "Longest prompt + output in tokens.", ge=2)
    max_new_tokens: Optional[int] = option(
        None, "Cap on new tokens (overrides max_length).", ge=1, http=True, openai="max_tokens")
    min_new_tokens: Optional[int] = option(
        None, "Fewest new tokens before EOS may end an output (EasyNLP: min_decoder_length).", ge=0)
    no_repeat_ngram_size: int = option(
        0, "Never repeat an n-gram of this size in an output (0: off).", ge=0, http=True)
    seed: Optional[int] = option(
        None, "Seed that makes sampled output reproducible.", ge=0, le=MAX_SEED, http=True, openai="seed")
    batch_size: int = option(16, "Prompts per generate call.", ge=1)
    max_clip_tokens: Optional[int] = option(
        None, "Cut outputs to fit this many CLIP tokens (77: SD's window).", ge=3, le=1024, http=True)
    clip_tokenizer: Optional[str] = option(
        None, "CLIP tokenizer (dir or hub id) for max_clip_tokens; unset: OpenAI's CLIP vocabulary packaged in "
              "instant-clip-tokenizer (offline).")
    max_input_chars: int = option(2000, "Longer raw prompts are rejected.", ge=1)
    banned_words: list[str] = option(
        default_factory=list, help="Comma separated words never to output (whole words, any case).",
        max_items=64, http=True)
    keep_input: bool = option(
        False, "Start every output with the raw prompt verbatim; the model only continues it (Fooocus-style).",
        http=True)
    guard: bool = option(
        True, "Check each output against the input (its content words kept, its prompt syntax verbatim, no loop, "
              "not shorter); re-sample failures, then answer with the input verbatim continued by the model. "
              "Each output's status says what happened. false: raw model outputs (research).", http=True)
    guard_word_recall: Optional[float] = option(
        None, "Share of the input's content words each output must keep. Unset: the model's recorded default "
              "(config.json beautiful_prompt_guard_word_recall), else 1.0 (all).", ge=0, le=1, http=True)
    guard_resamples: int = option(2, "Re-samples of a failing output before the kept-input answer.", ge=0, le=8,
                                  http=True)
    unsupported_language: str = option(
        "keep", "An input in a language the model was not trained on: keep (the input verbatim plus modifiers, "
                "with a warning), reject (per row), or generate (as any input).",
        choices=UNSUPPORTED_LANGUAGE_POLICIES, http=True)
    model_languages: list[str] = option(
        default_factory=list, help="Languages the model was trained on (ISO 639-1, comma separated). Unset: the "
                                   "model's config (beautiful_prompt_languages, written by SFT), else en.",
        max_items=200, fixed=True)
    rerank: str = option(
        "none", "Order each input's outputs best first by a score reported per output: none, consistency (MiniLM "
                "cosine to the input) or reward (the RMs of rerank_reward_models + consistency: the PPO reward "
                "without the reference delta). Sample more (num_return_sequences) to choose from more.",
        choices=RERANK_MODES, http=True)
    rerank_reward_models: list[str] = option(
        default_factory=list, help="rerank=reward: the aesthetic RM directory, then the PickScore RM directory.",
        max_items=2, fixed=True)
    device: str = option("auto", "cpu, cuda, cuda:N or auto (with quantize=int8: cpu).", fixed=True)
    quantize: str = option(
        "none", "int8: the model's Linear layers run dynamic int8 matmuls on the CPU (torch's quantize_dynamic): "
                "faster decoding and less memory, outputs move slightly (docs/benchmarks.md, int8 CPU path). "
                "Applied when the model loads; CPU only.", choices=QUANTIZE_MODES, fixed=True)
    trust_remote_code: bool = option(False, "Allow model code from the model dir.", fixed=True)

    def __post_init__(self) -> None:
        require_finite(self)  # NaN passes every < / >= check
        # unset keys take their natural values (frozen: set once, here)
        if self.decoding is None:  # EasyNLP: num_beams > 1 means beam search
            object.__setattr__(self, "decoding", "beam" if (self.num_beams or 1) > 1 else "sample")
        if self.decoding == "beam" and self.num_beams is None:
            object.__setattr__(self, "num_beams", 5)
        if self.num_return_sequences is None:  # unset: the decoding's natural count
            object.__setattr__(self, "num_return_sequences", 1 if self.decoding == "greedy" else 5)
        check_options(self)  # types, choices and bounds of every field, as declared above
        self._check_combinations()

    def _check_combinations(self) -> None:
        """Options that are valid alone but not together."""
        if self.rerank == "reward" and len(self.rerank_reward_models) != 2:
            raise ValueError("rerank=reward needs rerank_reward_models=<aesthetic RM dir>,<PickScore RM dir> (the "
                             "beautiful_prompt_reward models); rerank=consistency needs none.")
        if self.decoding == "greedy" and self.num_return_sequences != 1:
            raise ValueError(
                f"decoding=greedy has one output, but num_return_sequences={self.num_return_sequences}; "
                "use num_return_sequences=1, decoding=beam for n distinct beams, or decoding=sample."
            )
        if self.decoding == "beam" and self.num_beams < self.num_return_sequences:
            raise ValueError(
                f"num_beams={self.num_beams} must be at least num_return_sequences={self.num_return_sequences}."
            )
        if self.quantize == "int8" and self.device.startswith("cuda"):
            raise ValueError(f"quantize=int8 runs on the CPU only, but device={self.device}; use device=cpu (or "
                             "auto), or quantize=none to generate on the GPU.")
        if any(not isinstance(w, str) or not w.strip() for w in self.banned_words):
            raise ValueError(f"banned_words={self.banned_words!r} must be non-empty words.")

    def max_new_tokens_for(self, prompt_length: int) -> int:
        """New tokens one prompt of ``prompt_length`` tokens may get: ``max_new_tokens``, else what fits
        ``max_length`` (at least 1)."""
        if self.max_new_tokens is not None:
            return self.max_new_tokens
        return max(1, self.max_length - prompt_length)


def seed_generation_settings() -> dict:
    """The ``generation_config.json`` of a finished generator checkpoint: the defaults above (the seed snippet's
    sampling settings), so plain ``generate()`` and ``pipeline()`` sample as the Predictor does by default."""
    seed = PredictorParams()
    return {"do_sample": True, "top_k": seed.top_k, "top_p": seed.top_p, "temperature": seed.temperature,
            "repetition_penalty": seed.repetition_penalty, "max_length": seed.max_length}
