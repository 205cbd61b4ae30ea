"""App ``beautiful_prompt_data``: build cleaned (raw_prompt -> prompt) pairs from a raw prompt corpus.

``--mode=predict --tables=<corpus> --outputs=<pairs.jsonl>``; the keys of
:class:`~easynlp_bp.pipelines.collect.CollectConfig` are its ``user_defined_parameters``.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from easynlp_bp.appzoo.base import APPS, App
from easynlp_bp.pipelines.collect.pipeline import CollectConfig, collect_pairs

logger = logging.getLogger(__name__)


@APPS.register("beautiful_prompt_data")
class BeautifulPromptDataApp(App):
    """Quality split, teacher/BLIP pair making and cleaning filters over a prompt corpus."""

    modes = ("predict",)
    params_cls = CollectConfig
    description = "Build low->high prompt pairs from a raw prompt corpus (quality split, summarize/caption/expand, filters)."

    def predict(self) -> dict:
        tables = self.args.table_list
        if len(tables) != 1:
            raise ValueError(f"--tables takes exactly one corpus for beautiful_prompt_data; got {len(tables)}.")
        if not self.args.outputs:
            raise ValueError("--outputs is required: the JSONL file the pairs go to, e.g. --outputs=out/pairs.jsonl.")
        config = self.params
        if self.args.first_sequence and not config.text_field:
            config = replace(config, text_field=self.args.first_sequence)
        result = collect_pairs(tables[0], self.args.outputs, config)
        self.write_run_config(str(Path(self.args.outputs).parent), pairs=result.stats["pairs"])
        summary = Path(self.args.outputs[: -len(".jsonl")] + ".summary.txt")
        logger.info("Summary:\n%s", summary.read_text(encoding="utf-8"))
        return {"outputs": self.args.outputs, "pairs": result.stats["pairs"]["total"],
                "rejects": len(result.rejects)}
