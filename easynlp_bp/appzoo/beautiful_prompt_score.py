"""App ``beautiful_prompt_score`` (``--mode=predict``): images for every (raw_prompt, prompt) row, scored.

Writes ``pick_score`` / ``aesthetic_score`` (means over K seeds) with the per-seed values: the labels the
reward models train on. ``--worker_gpu N`` shards rows over N processes; a killed run resumes where it
stopped (see :mod:`easynlp_bp.pipelines.scoring.labeling`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

from easynlp_bp.appzoo.base import APPS, App
from easynlp_bp.io import read_table, rejects_path_for, write_rejects
from easynlp_bp.pipelines.scoring.params import ScoringParams

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreParams(ScoringParams):
    """``user_defined_parameters`` of ``beautiful_prompt_score``: the generation and scorer keys."""

    score_against: Optional[str] = field(default=None, metadata={
        "help": "Column text-image scorers compare images with (default --first_sequence or raw_prompt, as the paper)."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.scorer_names:
            raise ValueError("beautiful_prompt_score needs at least one scorer, e.g. scorers=pickscore,aesthetic.")


@APPS.register("beautiful_prompt_score")
class BeautifulPromptScoreApp(App):
    """Generate K images per prompt with Stable Diffusion, score each, write per-seed values and means."""

    modes = ("predict",)
    params_cls = ScoreParams
    description = "Generate images for prompts and score them (PickScore, aesthetic, CLIPScore): RM labels."

    def predict(self) -> dict:
        from accelerate import PartialState

        from easynlp_bp.pipelines.scoring.generation import ImageGenerator
        from easynlp_bp.pipelines.scoring.labeling import LabelingConfig, label_columns, label_rows, merge_shards
        from easynlp_bp.pipelines.scoring.scorers import SCORERS, build_scorers

        tables = self.args.table_list
        if len(tables) != 1:
            raise ValueError(f"--mode=predict of beautiful_prompt_score reads one table (--tables); got {len(tables)}.")
        if not self.args.outputs:
            raise ValueError("--outputs is required: it is the label table and where progress is kept for resuming.")
        prompt_field = self.second_sequence
        against = self.params.score_against or self.first_sequence
        needs_text = any(SCORERS.get(n).text_role for n in self.params.scorer_names)
        fields = ([against] if needs_text and against != prompt_field else []) + [prompt_field]
        table = read_table(tables[0], input_schema=self.args.input_schema, skip_first_line=self.args.skip_first_line,
                           required=fields, text_fields=fields)
        config = LabelingConfig(output=self.args.outputs, prompt_field=prompt_field, score_against=against,
                                save_images=self.params.save_images)
        state = PartialState()
        device = str(state.device) if state.num_processes > 1 else None
        generator = ImageGenerator.from_config(self.params.generation_config(device))
        scorers = build_scorers(self.params.scorer_names, self.params.scorer_options(device))
        counts = label_rows(table.rows, generator, scorers, config, rank=state.process_index,
                            world=state.num_processes)
        state.wait_for_everyone()
        result = {"read": table.n_read, "rows": len(table.rows), "rejected": len(table.rejects), **counts,
                  "outputs": self.args.outputs}
        if state.is_main_process:
            append = [c.strip() for c in (self.args.append_cols or "").split(",") if c.strip()]
            inputs = append or fields
            with_nsfw = getattr(generator.pipeline, "safety_checker", None) is not None
            merge_shards(len(table.rows), inputs + label_columns(scorers, with_nsfw), self.args.outputs)
            write_rejects(rejects_path_for(self.args.outputs), table.rejects, table.source)
            self.write_run_config(f"{self.args.outputs}.parts", generation=generator.config.__dict__,
                                  scorers={s.name: s.description for s in scorers}, score_against=against)
            logger.info("Wrote %d labeled rows to %s (%d labeled in this run, %d rejected rows in %s).",
                        len(table.rows), self.args.outputs, counts["labeled_now"], len(table.rejects),
                        rejects_path_for(self.args.outputs))
        return result
