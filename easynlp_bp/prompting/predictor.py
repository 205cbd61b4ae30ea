"""BeautifulPromptPredictor: batched prompt beautification with the seed snippet's sampling defaults.

Prompts are sorted by length and left-padded into batches, generated with ``model.generate`` (or, for top-k
sampling, the equivalent and faster ``sampling.sample_sequences``), and the output is the decoded *new* tokens only (no string stripping, so "focus" stays "focus"). Optionally each
output is cut at a comma or word boundary to fit the CLIP text encoder's 77-token window. Banned words are
blocked in ``generate`` (``bad_words_ids``) and checked again on the decoded text, since a byte-level BPE can
spell a word with other tokens than the ones banned.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Optional, Sequence

import torch

from easynlp_bp.prompting.sampling import (
    SamplingSettings,
    fast_sampler_handles,
    row_generators,
    row_seed,
    sample_sequences,
    supports_fast_sampling,
)
from easynlp_bp.devices import resolve_device
from easynlp_bp.prompting.banned_words import BannedWords
from easynlp_bp.prompting.generated_only import prompt_safe_generate_kwargs
from easynlp_bp.prompting.input_text import visible_text
from easynlp_bp.prompting.rerank import build_reranker, rerank
from easynlp_bp.prompting.guard import FaithfulnessGuard, PromptResult, guard_outputs
from easynlp_bp.prompting.language import detect_language
from easynlp_bp.text.clip_cap import ClipLengthCap
from easynlp_bp.text.template import TARGET_SEPARATOR, build_prompt
from easynlp_bp.models.int8 import quantize_int8
from easynlp_bp.models.kernels import use_fused_kernels
from easynlp_bp.components import COMPONENTS
from easynlp_bp.options import convert_options, options_where, unknown_names_message
from easynlp_bp.prompting.params import DECODING_MODES, MAX_RETURN_SEQUENCES, PredictorParams  # noqa: F401
from easynlp_bp.progress import progress_bar

logger = logging.getLogger(__name__)
MIN_NEW_TOKENS = 4  # an input is beautified only if the model can copy it and still add this many tokens

@COMPONENTS.register("BeautifulPromptPredictor")
class BeautifulPromptPredictor:
    """Turn simple descriptions into detailed Stable Diffusion prompts.

    Example:
        >>> predictor = BeautifulPromptPredictor("outputs/beautiful_prompt", PredictorParams(seed=42))
        >>> predictor.predict(["1 girl"])          # [[five prompts]]
        >>> predictor.run([{"raw_prompt": "1 girl"}])  # rows with "predictions" and "beams"
    """

    def __init__(self, model_dir: str, params: Optional[PredictorParams] = None, *, model=None, tokenizer=None,
                 first_sequence: str = "raw_prompt"):
        from easynlp_bp.models.causal_lm import BeautifulPromptModel

        self.params = params or PredictorParams()
        self.first_sequence = first_sequence  # the input column run() reads (EasyNLP's first_sequence)
        int8 = self.params.quantize == "int8"
        self.device = resolve_device("cpu" if int8 and self.params.device == "auto" else self.params.device)
        if model is None:
            loaded = BeautifulPromptModel.from_pretrained(model_dir, trust_remote_code=self.params.trust_remote_code)
            model, tokenizer = loaded.model, loaded.tokenizer
        use_fused_kernels(model)  # a model handed in is patched here; a loaded one already was (a no-op)
        self.model = model.to(self.device).eval()
        if int8:  # a given model too, in place: its Linear layers become int8 ones (easynlp_bp/models/int8.py)
            quantize_int8(self.model)
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        self._clip_tokenizers: dict[str, object] = {}
        self._rerankers: dict[str, object] = {}
        self.clip_cap = None
        if self.params.max_clip_tokens is not None:
            self.clip_cap = self.clip_cap_for(self.params)

    def clip_cap_for(self, params: PredictorParams) -> Optional[ClipLengthCap]:
        """The CLIP length cap of ``params`` (tokenizers are loaded once per name and kept)."""
        if params.max_clip_tokens is None:
            return None
        if params.clip_tokenizer not in self._clip_tokenizers:
            tokenizer = None  # None: ClipLengthCap's packaged OpenAI CLIP vocabulary
            if params.clip_tokenizer is not None:
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(params.clip_tokenizer)
            try:
                self._clip_tokenizers[params.clip_tokenizer] = ClipLengthCap(tokenizer, params.max_clip_tokens)
            except ImportError as err:  # a missing package is a setup error the CLI reports in one line
                raise ValueError(f"max_clip_tokens: {err}") from err
        cap = self._clip_tokenizers[params.clip_tokenizer]
        return ClipLengthCap(cap.tokenizer, params.max_clip_tokens) if cap.max_tokens != params.max_clip_tokens else cap

    def resolve_params(self, overrides: Optional[dict] = None) -> PredictorParams:
        """This predictor's params with ``overrides`` applied (validated; unknown names raise ValueError)."""
        if not overrides:
            return self.params
        valid = [f.name for f in dataclasses.fields(PredictorParams)]
        unknown = sorted(set(overrides) - set(valid))
        if unknown:
            raise ValueError(unknown_names_message(unknown, valid, "predictor option(s)"))
        fixed = sorted(f.name for f in options_where(PredictorParams, fixed=True) if f.name in overrides)
        if fixed:
            verb = "is" if len(fixed) == 1 else "are"
            raise ValueError(f"{', '.join(fixed)} {verb} fixed when the predictor is built; build another predictor.")
        overrides = convert_options(overrides, PredictorParams)
        if "decoding" in overrides and "num_return_sequences" not in overrides:
            overrides = {**overrides, "num_return_sequences": None}  # the new decoding's own default count
        return dataclasses.replace(self.params, **overrides)

    def _generation_kwargs(self, max_new_tokens: int, params: Optional[PredictorParams] = None) -> dict:
        """HF ``generate`` kwargs of ``params`` for a batch whose largest budget is ``max_new_tokens``: the one place
        an option becomes generation behaviour (the fast sampler is used only when it implements every kwarg here,
        :func:`fast_sampler_handles`)."""
        p = params or self.params
        kwargs = {
            "max_new_tokens": max_new_tokens,
            "num_return_sequences": p.num_return_sequences,
            "repetition_penalty": p.repetition_penalty,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.tokenizer.eos_token_id,
        }
        # a model's generation_config.min_new_tokens is honoured on both paths, as generate would
        min_new = p.min_new_tokens if p.min_new_tokens is not None else getattr(
            getattr(self.model, "generation_config", None), "min_new_tokens", None)
        if min_new:
            kwargs["min_new_tokens"] = min_new
        if p.no_repeat_ngram_size:
            kwargs["no_repeat_ngram_size"] = p.no_repeat_ngram_size
        if p.decoding == "sample":
            kwargs.update(do_sample=True, temperature=p.temperature, top_k=p.top_k, top_p=p.top_p)
        elif p.decoding == "greedy":
            kwargs.update(do_sample=False, num_beams=1)
        else:
            kwargs.update(do_sample=False, num_beams=p.num_beams)
        return kwargs

    def _generate_new_tokens(self, batch, params: PredictorParams, extra_kwargs: dict,
                             lengths: Sequence[int], seeds: Optional[list[int]] = None) -> torch.Tensor:
        """New tokens of one left-padded batch, each row cut to its own budget (see :meth:`predict`).

        Args:
            lengths: each prompt's own token count (not the padded width): its budget is
                ``params.max_new_tokens_for(length)``, so one long prompt does not starve its neighbours; the batch
                generates up to the largest budget and each row is cut to its own.
            seeds: ``B * R`` per-row seeds for seeded sampling, or None.
        """
        budgets = [params.max_new_tokens_for(n) for n in lengths]
        kwargs = {**self._generation_kwargs(max(budgets), params), **extra_kwargs}
        new_tokens = self._sample_or_generate(batch, params, kwargs, seeds)  # (B * R, T)
        per_input = new_tokens.shape[0] // len(lengths)
        for row, budget in enumerate(budgets):
            new_tokens[row * per_input : (row + 1) * per_input, budget:] = self.tokenizer.pad_token_id
        return new_tokens

    def _sample_or_generate(self, batch, params: PredictorParams, kwargs: dict, seeds: Optional[list[int]]):
        """The fast sampler when it implements every kwarg (:func:`fast_sampler_handles`), else HF ``generate``
        (one sequence at a time when seeded)."""
        prompt_length = batch["input_ids"].shape[1]
        if fast_sampler_handles(kwargs) and supports_fast_sampling(self.model):
            processors = None
            if "bad_words_ids" in kwargs:
                from transformers import LogitsProcessorList
                from transformers.generation.logits_process import NoBadWordsLogitsProcessor

                processors = LogitsProcessorList(
                    [NoBadWordsLogitsProcessor(kwargs["bad_words_ids"], self.tokenizer.eos_token_id)]
                )
            settings = SamplingSettings.from_generate_kwargs(kwargs, penalize_prompt=params.penalize_prompt)
            generators = row_generators(seeds) if seeds is not None else None
            return sample_sequences(self.model, batch["input_ids"], batch["attention_mask"], settings, processors,
                                    generators)
        if seeds is not None:
            return self._generate_seeded_rows(batch, kwargs, seeds, params)
        output = self.model.generate(**batch, **self._prompt_safe(kwargs, prompt_length, params))
        return output[:, prompt_length:]

    def _prompt_safe(self, kwargs: dict, prompt_length: int, params: PredictorParams) -> dict:
        """``generate`` kwargs: penalties on the generated part only, and the model's ``max_length`` unset (the
        budget is ``max_new_tokens``; both set makes transformers warn on every call)."""
        return {**prompt_safe_generate_kwargs(kwargs, prompt_length, params.penalize_prompt,
                                              getattr(self.model, "generation_config", None)), "max_length": None}

    def _generate_seeded_rows(self, batch, kwargs: dict, seeds: list[int], params: PredictorParams) -> torch.Tensor:
        """HF ``generate`` shares one random stream across a batch, so seeded sampling on this path runs
        each (prompt, sequence) alone, with the global RNG set to its own seed (slower, reproducible)."""
        repeats = len(seeds) // batch["input_ids"].shape[0]
        single = {**kwargs, "num_return_sequences": 1}
        rows = []
        for index, seed in enumerate(seeds):
            keep = batch["attention_mask"][index // repeats].bool()
            ids = batch["input_ids"][index // repeats][keep].unsqueeze(0)  # (1, own length), no padding
            torch.manual_seed(seed)
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                      **self._prompt_safe(single, ids.shape[1], params))
            rows.append(out[0, ids.shape[1]:])
        return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=self.tokenizer.pad_token_id)

    def predict(self, raw_prompts: Sequence[str], overrides: Optional[dict] = None,
                progress: bool = False) -> list[list[str]]:
        """Beautify each raw prompt (a single ``str`` is one prompt); returns one list of outputs per input, in
        input order.

        ``overrides`` (e.g. ``{"seed": 1, "temperature": 0.7, "banned_words": ["blood"]}``) replace
        :class:`PredictorParams` fields for this call only. With ``max_clip_tokens``, an output that cannot
        be cut to fit is dropped, and an input none of whose outputs fit gets an empty list (never "");
        :meth:`predict_results` says why, and what the faithfulness guard did to each output.
        """
        return [result.outputs for result in self.predict_results(raw_prompts, overrides, progress)]

    def predict_with_reasons(
        self, raw_prompts: Sequence[str], overrides: Optional[dict] = None, progress: bool = False
    ) -> tuple[list[list[str]], list[Optional[str]]]:
        """:meth:`predict`, plus per input the reason it has no (or fewer) outputs (or None)."""
        results = self.predict_results(raw_prompts, overrides, progress)
        return [r.outputs for r in results], [r.reason for r in results]

    @torch.no_grad()
    def predict_results(self, raw_prompts: Sequence[str], overrides: Optional[dict] = None,
                        progress: bool = False) -> list[PromptResult]:
        """Beautify each raw prompt; one :class:`PromptResult` per input (outputs, each output's guard status,
        warnings, and the reason an input has no outputs).

        Every interface (:meth:`predict`, :meth:`run`, the server, the OpenAI endpoints) answers through this
        method: a subclass that changes outputs overrides it. Inputs in a language the model was not trained
        on, and inputs too long to copy, are answered with the user's text verbatim (continued by the model
        where there is room) and a warning; with ``guard`` each output is checked (:mod:`easynlp_bp.prompting.guard`).

        ``progress``: show a progress bar with ETA on stderr (batch predict; off for serving's small calls).
        """
        params = self.resolve_params(overrides)
        raw_prompts = [raw_prompts] if isinstance(raw_prompts, str) else list(raw_prompts)  # a str is one prompt
        for index, text in enumerate(raw_prompts):
            reason = self.input_problem(text, params)
            if reason:
                raise ValueError(f"raw prompt {index} {reason}. (run() rejects such rows one by one instead.)")
        if params.seed is not None:
            torch.manual_seed(params.seed)  # greedy/beam need no randomness; this keeps any other use seeded
        visible = [visible_text(text) for text in raw_prompts]
        results, keep = self._plan(visible, params)
        for text, clean, result in zip(raw_prompts, visible, results):
            if clean != " ".join(text.split()):
                result.warnings.append("control or invisible characters (escapes, zero-width, BOM) were removed "
                                       "from the input.")
        raw_prompts = visible
        todo = [i for i, r in enumerate(results) if r.reason is None]
        texts = self._generate_texts([raw_prompts[i] for i in todo], params, [keep[i] for i in todo], 0, progress)
        for i, outputs in zip(todo, texts):
            results[i].outputs = outputs
            results[i].statuses = [results[i].statuses[0] if results[i].statuses else
                                   ("ok" if params.guard else "unchecked")] * len(outputs)
        if params.guard:
            guard_outputs(self, raw_prompts, [results[i] for i in todo], todo, params, keep)
        clip_cap = self.clip_cap if params is self.params else self.clip_cap_for(params)
        if clip_cap is not None:
            for result in results:
                result.cap(clip_cap)
        if params.rerank != "none":
            rerank(results, raw_prompts, self.reranker_for(params))
        return results

    def reranker_for(self, params: PredictorParams):
        """The scorer of ``params.rerank`` (built once per mode: the RMs and the encoder load once)."""
        if params.rerank not in self._rerankers:
            self._rerankers[params.rerank] = build_reranker(params.rerank, params.rerank_reward_models,
                                                            str(self.device))
        return self._rerankers[params.rerank]

    def _plan(self, raw_prompts: list[str], params: PredictorParams) -> tuple[list[PromptResult], list[bool]]:
        """Per input: its result so far (a language reject, a preset status, warnings) and whether the output
        must start with the input verbatim (``keep_input``, an unsupported language, or, with the guard on, an
        input too long to copy and extend within the token budget)."""
        results = [PromptResult() for _ in raw_prompts]
        keep = [params.keep_input] * len(raw_prompts)
        languages = self.languages()
        for index, text in enumerate(raw_prompts):
            result = results[index]
            language = detect_language(text)
            if language not in languages:
                note = (f"the input looks {language!r}, a language this model was not trained on "
                        f"({', '.join(languages)})")
                if params.unsupported_language == "reject":
                    result.reason = f"{note}; unsupported_language=reject"
                    continue
                if params.unsupported_language == "keep":
                    keep[index] = True
                    result.statuses = ["kept_input"]
                    result.warnings.append(f"{note}: it is kept verbatim and modifiers are added (Stable "
                                           "Diffusion's CLIP text encoder reads non-Latin scripts poorly).")
            if not params.guard:
                continue  # research mode: the model's own answer, whatever the input's length
            room = params.max_new_tokens_for(len(self.tokenizer(build_prompt(text)).input_ids))
            copy_length = len(self.tokenizer(text, add_special_tokens=False).input_ids)
            if copy_length + MIN_NEW_TOKENS > room:
                keep[index] = True
                result.statuses = ["too_long"]
                result.warnings.append(f"the input has {copy_length} tokens, more than this model can copy and "
                                       f"extend ({room} new tokens): it is returned as given, continued where there "
                                       "is room.")
        return results, keep

    def languages(self) -> list[str]:
        """Languages the model was trained on: its config's ``beautiful_prompt_languages`` (recorded by SFT),
        else English (BeautifulPrompt's data), unless ``model_languages`` says otherwise."""
        if self.params.model_languages:
            return list(self.params.model_languages)
        return list(getattr(self.model.config, "beautiful_prompt_languages", None) or ["en"])

    def guard_for(self, params: PredictorParams) -> FaithfulnessGuard:
        """The guard of ``params``: its ``guard_word_recall``, else the model's recorded default, else 1.0."""
        recall = params.guard_word_recall
        if recall is None:
            recall = getattr(self.model.config, "beautiful_prompt_guard_word_recall", None)
        return FaithfulnessGuard(min_word_recall=1.0 if recall is None else float(recall))

    def _generate_texts(self, raw_prompts: list[str], params: PredictorParams, keep: list[bool], attempt: int,
                        progress: bool = False) -> list[list[str]]:
        """``num_return_sequences`` finished outputs per raw prompt (before the CLIP cap).

        ``keep[i]``: the output starts with raw prompt ``i`` verbatim and the model only continues it.
        ``attempt``: 0 for the first draw; a re-sample draws other sequences (seeded: other per-row seeds).
        """
        banned = BannedWords(params.banned_words)
        generation_kwargs = {"bad_words_ids": banned.token_ids(self.tokenizer)} if banned.words else {}
        seeded = params.seed is not None and params.decoding == "sample"
        starts = [_output_start(t) if k else "" for t, k in zip(raw_prompts, keep)]
        encoded = [self.tokenizer(build_prompt(t) + (TARGET_SEPARATOR + _phrase_end(s) if s else ""),
                                  add_special_tokens=False).input_ids for t, s in zip(raw_prompts, starts)]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        results: list[list[str]] = [[] for _ in raw_prompts]
        first_index = attempt * MAX_RETURN_SEQUENCES  # a re-sample's sequences are not the first draw's
        bar = progress_bar(len(order), "predict", "prompt", enabled=None if progress else False)
        for start in range(0, len(order), params.batch_size):
            batch_index = order[start : start + params.batch_size]
            batch = self.tokenizer.pad(
                {"input_ids": [encoded[i] for i in batch_index]}, padding=True, return_tensors="pt"
            ).to(self.device)
            seeds = ([row_seed(params.seed, raw_prompts[i], first_index + r) for i in batch_index
                      for r in range(params.num_return_sequences)] if seeded else None)
            new_tokens = self._generate_new_tokens(  # (B * num_return, new)
                batch, params, generation_kwargs, [len(encoded[i]) for i in batch_index], seeds)
            texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            per_input = len(texts) // len(batch_index)
            for position, original in enumerate(batch_index):
                results[original] = [_finish(starts[original], t, banned)
                                     for t in texts[position * per_input : (position + 1) * per_input]]
            bar.update(len(batch_index))
        bar.close()
        return results

    @staticmethod
    def input_problem(text: object, params: PredictorParams) -> Optional[str]:
        """Why ``text`` cannot be beautified (empty, not text, too long), or None when it can."""
        if not isinstance(text, str) or not visible_text(text):
            return f"is empty, invisible or not text: {text!r}"
        if len(text) > params.max_input_chars:
            return f"has {len(text)} characters, more than max_input_chars={params.max_input_chars}"
        return None

    def run(self, rows: Sequence[dict], first_sequence: Optional[str] = None) -> list[dict]:
        """EasyNLP-style: rows in, rows out with ``predictions`` (first output), ``beams`` (all), ``statuses``
        (the guard's, one per beam) and ``warnings``.

        ``first_sequence``: the input column (default: the one given to the constructor, ``raw_prompt``).
        A row that cannot be beautified (missing, empty or over-long text, or no output fits
        ``max_clip_tokens``) is not fatal: it comes back with ``predictions=None``, ``beams=[]`` and the reason
        in ``reject_reason`` (see :func:`split_rejected_rows`).
        """
        first_sequence = first_sequence or self.first_sequence
        if isinstance(rows, (str, dict)):
            raise TypeError("run() takes a list of row dicts; for one prompt use predict('a cat').")
        if rows and not any(first_sequence in row for row in rows):  # a wrong column name, not bad rows
            raise KeyError(f"row 0 has no {first_sequence!r} column (columns: {', '.join(rows[0])}); "
                           "pass first_sequence=<the input column>.")
        problems = [self.input_problem(row.get(first_sequence), self.params) for row in rows]
        reasons = [f"field {first_sequence!r} {p}" if p else None for p in problems]
        good = [i for i, reason in enumerate(reasons) if reason is None]
        results = self.predict_results([rows[i][first_sequence] for i in good], progress=True) if good else []
        by_index = dict(zip(good, results))
        for index, result in by_index.items():
            if not result.outputs:
                reasons[index] = f"{first_sequence}: {result.reason or 'no output'}"
            for warning in result.warnings:
                logger.warning("Row %d: %s", index, warning)
        out_rows = []
        for index, row in enumerate(rows):
            if reasons[index] is None:
                result = by_index[index]
                out_rows.append({**row, "predictions": result.outputs[0], "beams": result.outputs,
                                 "statuses": result.statuses, "warnings": result.warnings,
                                 **({"scores": result.scores} if result.scores else {})})
            else:
                logger.warning("Row %d rejected: %s.", index, reasons[index])
                out_rows.append({**row, "predictions": None, "beams": [], "reject_reason": reasons[index]})
        return out_rows


def split_rejected_rows(table, rows: list[dict], first_sequence: str) -> list[dict]:
    """Move rows :meth:`BeautifulPromptPredictor.run` marked ``reject_reason`` into ``table``'s rejects (with
    their row numbers and input columns); returns the rows that have outputs, in order. ``table`` is the
    ``io.Table`` they came from; afterwards its ``rows``/``row_numbers`` are those returned rows and their numbers
    (so rows read = rows + rejects still holds)."""
    kept, numbers = [], []
    for number, source_row, row in zip(table.row_numbers, table.rows, rows):
        if "reject_reason" in row:
            table.reject(number, row["reject_reason"], row.get(first_sequence, ""), fields=source_row)
        else:
            kept.append(row)
            numbers.append(number)
    table.rows, table.row_numbers = kept, numbers
    table.rejects.sort(key=lambda r: r.row)
    return kept


def _output_start(raw_prompt: str) -> str:
    """What a ``keep_input`` output starts with: the raw prompt as typed, outer whitespace removed."""
    return raw_prompt.strip()


def _phrase_end(start: str) -> str:
    """``start`` closed with a comma unless it ends in punctuation, so the model adds phrases rather than
    changing the user's last word ("1 girl" must not become "1 girls")."""
    return start if start[-1] in ".,;:!?" else start + ","


def _finish(start: str, generated: str, banned: BannedWords) -> str:
    """One output: the generated text without control or invisible characters (a byte-level model can emit
    them as well as read them) and banned phrases, after ``start`` (the kept input) if any.

    The user's own words are never removed, only banned phrases of the continuation.
    """
    generated = visible_text(generated)
    if not start:
        return banned.remove(generated)
    continuation = banned.remove(generated).strip(" ,")
    if not continuation:
        return start
    return f"{_phrase_end(start)} {continuation}"
