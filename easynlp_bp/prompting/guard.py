"""The faithfulness guard: a beautifier may add to the user's prompt, never garble it.

Each output is checked against its raw prompt (:meth:`FaithfulnessGuard.problem`): the user's content words
kept as whole words (a share, default all), the user's prompt syntax kept verbatim, no degenerate loop the user
did not write, not shorter than the user's text. The Predictor re-samples a failing output a bounded number of
times, then answers with the safe form, the user's text verbatim continued by the model (``keep_input``); each
output carries its :data:`GUARD_STATUSES` entry, so nothing is replaced silently.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from easynlp_bp.text.faithfulness import content_words, loop_share, protected_spans, subject_kept_share

#: What happened to one output: ``ok`` (passed first time), ``resampled`` (passed after re-sampling),
#: ``kept_input`` (the user's text verbatim + the model's continuation), ``unchecked`` (guard off),
#: ``too_long`` (the input is longer than the model can copy: returned as given).
GUARD_STATUSES = ("ok", "resampled", "kept_input", "unchecked", "too_long")
LOOP_TOLERANCE = 0.05  # a looped share of the output beyond the raw prompt's own (users may repeat themselves)


@dataclass(frozen=True)
class FaithfulnessGuard:
    """The checks an output must pass.

    Example:
        >>> FaithfulnessGuard().problem("a red sphere", "a red spams, 8k")
        'kept 67% of the input's words (sphere missing or misspelt); at least 100% required'
    """

    min_word_recall: float = 1.0
    max_loop_share: float = 0.2

    def problem(self, raw_prompt: str, output: str) -> Optional[str]:
        """Why ``output`` is not a faithful beautification of ``raw_prompt``, or None."""
        changed = [span for span in protected_spans(raw_prompt) if span not in output]
        if changed:
            return f"prompt syntax {changed[0]!r} not kept verbatim"
        recall = subject_kept_share(raw_prompt, output)
        if recall < self.min_word_recall:
            present = set(content_words(output))
            missing = [w for w in content_words(raw_prompt) if w not in present][:3]
            return (f"kept {recall:.0%} of the input's words ({', '.join(missing)} missing or misspelt); at least "
                    f"{self.min_word_recall:.0%} required")
        looped = loop_share(output)
        if looped > max(self.max_loop_share, loop_share(raw_prompt) + LOOP_TOLERANCE):
            return f"{looped:.0%} of the output is a repetition loop"
        if len(output.strip()) < len(raw_prompt.strip()):
            return "shorter than the input"
        return None


@dataclass
class PromptResult:
    """What the Predictor answers for one raw prompt.

    Attributes:
        outputs: the beautified prompts (may be empty: see ``reason``).
        statuses: one :data:`GUARD_STATUSES` entry per output.
        reason: why there are no (or fewer) outputs: a language reject, the CLIP cap; None otherwise.
        warnings: notes for the user (a language the model was not trained on, an input too long to beautify).
        scores: with ``rerank``, each output's score (outputs ordered best first); empty otherwise.
    """

    outputs: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    reason: Optional[str] = None
    warnings: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)  # with rerank: one per output, best first

    def cap(self, clip_cap) -> None:
        """Cut each output to ``clip_cap``'s window; outputs that cannot be cut are dropped (``reason`` says why)."""
        from easynlp_bp.text.clip_cap import ClipCapError

        kept, statuses, scores = [], [], []
        for index, (text, status) in enumerate(zip(self.outputs, self.statuses)):
            try:
                kept.append(clip_cap(text))
                statuses.append(status)
                scores += self.scores[index:index + 1]
            except ClipCapError as err:
                self.reason = str(err)
        self.outputs, self.statuses, self.scores = kept, statuses, scores


def guard_outputs(predictor, raw_prompts: Sequence[str], results: Sequence[PromptResult], indices: Sequence[int],
                  params, keep: Sequence[bool]) -> None:
    """Check every output of ``results`` (the inputs ``raw_prompts[indices]``) and repair failures in place:
    up to ``params.guard_resamples`` re-samples (sampling only: greedy and beam would repeat themselves), then
    the user's text verbatim continued by the model, then the user's text alone."""
    guard = predictor.guard_for(params)
    raws = [raw_prompts[i] for i in indices]
    failing = sorted((j, k) for j, result in enumerate(results) for k, output in enumerate(result.outputs)
                     if result.statuses[k] != "too_long" and guard.problem(raws[j], output))
    attempts = params.guard_resamples if params.decoding == "sample" else 0
    for attempt in range(1, attempts + 1):
        if not failing:
            return
        rows = sorted({j for j, _ in failing})
        fresh = predictor._generate_texts([raws[j] for j in rows], params, [keep[indices[j]] for j in rows], attempt)
        failing = _replace(failing, rows, fresh, results, raws, guard, "resampled")
    if failing:
        rows = sorted({j for j, _ in failing})
        kept = predictor._generate_texts([raws[j] for j in rows], params, [True] * len(rows), attempts + 1)
        for j, k in _replace(failing, rows, kept, results, raws, guard, "kept_input"):
            results[j].outputs[k], results[j].statuses[k] = raws[j].strip(), "kept_input"


def _replace(failing: list, rows: list[int], candidates: list[list[str]], results, raws, guard,
             status: str) -> list:
    """Put passing candidates in place of failing outputs (each candidate once); returns what still fails."""
    passing = {row: [c for c in options if guard.problem(raws[row], c) is None]
               for row, options in zip(rows, candidates)}
    still = []
    for j, k in failing:
        if passing.get(j):
            results[j].outputs[k], results[j].statuses[k] = passing[j].pop(0), status
        else:
            still.append((j, k))
    return still
