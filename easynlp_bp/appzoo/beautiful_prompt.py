"""App ``beautiful_prompt``: SFT (train), held-out loss + text statistics (evaluate), beautify (predict), serve.

Glue only: the recipe is :mod:`easynlp_bp.sft.training`, the data :mod:`easynlp_bp.sft.data` and
:mod:`easynlp_bp.sft.pair_tables`, generation :mod:`easynlp_bp.prompting.predictor`. Flags left unset take a
preset: the paper's SFT settings for pretrained models, and a from-scratch preset for the tiny default.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar, Optional

from easynlp_bp.appzoo.base import APPS, App, with_preset
from easynlp_bp.io import Table, read_table
from easynlp_bp.options import option
from easynlp_bp.sft.pair_tables import (SFTData, embedded_default_sft_data, reject_too_long_in_table, select_training_pairs,
                                   sft_data_from_tables)
from easynlp_bp.prompting.predictor import PredictorParams, split_rejected_rows
from easynlp_bp.serving.config import ServeFields

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BeautifulPromptParams(PredictorParams, ServeFields):
    """``user_defined_parameters`` of ``beautiful_prompt`` (generation keys apply to predict/evaluate/serve)."""

    option_modes: ClassVar[tuple[str, ...]] = ("train",)  # the keys below; the bases declare their own

    pretrain_model_name_or_path: Optional[str] = field(
        default=None, metadata={"help": "modelzoo name, local dir or HF hub id to fine-tune (default: tiny-bloom-bp)."}
    )
    min_pick_score: Optional[float] = field(default=None, metadata={"help": "Drop pairs with pick_score below (paper 18.5)."})
    min_target_tokens: Optional[int] = field(default=None, metadata={"help": "Drop targets shorter than this (paper 25)."})
    short_target_tokens: Optional[int] = field(default=None, metadata={"help": "Targets shorter than this (paper 35) ..."})
    short_target_drop: Optional[float] = field(default=None, metadata={"help": "... are dropped with this probability (paper 0.3)."})
    default_data_size: int = field(default=4000, metadata={"help": "Pairs the embedded default generates when --tables is not given."})
    eval_generation_samples: int = option(32, "Rows whose generations evaluate measures.", modes=("evaluate",))
    bf16: str = field(default="auto", metadata={"help": "true, false or auto (on with a CUDA GPU or a CPU with native bf16: mixed precision, fp32 weights)."})
    group_by_length: bool = field(default=False, metadata={
        "help": "Batch pairs of similar length together (less padding: faster SFT, see docs/benchmarks.md)."})


@APPS.register("beautiful_prompt")
class BeautifulPromptApp(App):
    """SFT of a causal LM on (raw_prompt -> prompt) pairs, evaluation, and batch beautification."""

    modes = ("train", "evaluate", "predict", "serve")
    prompt_modes = ("predict",)
    table_output_modes = ("predict",)
    params_cls = BeautifulPromptParams
    description = "BeautifulPrompt SFT, evaluation, prediction and serving (the main app)."
    default_checkpoint_dir = "outputs/beautiful_prompt"
    components = {
        "dataset": "BeautifulPromptDataset",
        "model": "BeautifulPromptModel",
        "predictor": "BeautifulPromptPredictor",
        "evaluator": "BeautifulPromptEvaluator",
    }

    # ----------------------------------------------------------------- building blocks (also the EasyNLP lookups)
    def read(self, source: str, with_target: bool) -> Table:
        fields = [self.first_sequence] + ([self.second_sequence] if with_target else [])
        return read_table(source, input_schema=self.args.input_schema, skip_first_line=self.args.skip_first_line,
                          required=fields, text_fields=fields,
                          max_chars=self.params.max_input_chars if not with_target else None)

    def build_model(self, train_texts=None):
        return self.component("model").from_pretrained(
            self.params.pretrain_model_name_or_path, train_texts=train_texts,
            trust_remote_code=self.params.trust_remote_code, seed=self.args.random_seed)

    def build_dataset(self, rows, tokenizer, sequence_length: int):
        return self.component("dataset")(rows, tokenizer, sequence_length, self.first_sequence, self.second_sequence)

    def build_predictor(self, params: Optional[PredictorParams] = None):
        from easynlp_bp.serving.launch import load_predictor, predictor_params_of

        return load_predictor(self.args.checkpoint_dir, params or predictor_params_of(self.params),
                              predictor_cls=self.component("predictor"), first_sequence=self.first_sequence)

    def build_evaluator(self, valid_dataset):
        return self.component("evaluator")(valid_dataset)

    def dataset_from_file(self, data_file: str, max_seq_length: int = 384):
        """A (raw_prompt, prompt) table read into the app's dataset class, tokenised by the app's model."""
        table = self.read(data_file, with_target=True)
        self.log_rejects(table, directory=str(Path(data_file).parent))
        model = self.build_model([f"{r[self.first_sequence]}\n{r[self.second_sequence]}" for r in table.rows])
        return self.build_dataset(table.rows, model.tokenizer, max_seq_length)

    # ----------------------------------------------------------------- train
    def _training_data(self) -> SFTData:
        """Train and dev pairs from --tables, or the embedded default's generated pairs."""
        tables = self.table_sources("train", 0, 2, "train[,dev]")
        if not tables:
            return embedded_default_sft_data(self.params.default_data_size, self.args.random_seed, self.checkpoint_dir)
        return sft_data_from_tables(self.read_each(tables, lambda source: self.read(source, with_target=True)))

    def _settings(self, is_from_scratch: bool) -> dict:
        """Flags and filter keys as given, else the preset's value."""
        from easynlp_bp.sft.training import sft_preset

        preset = sft_preset(is_from_scratch)
        given = {key: getattr(self.args, key) if hasattr(self.args, key) else getattr(self.params, key) for key in preset}
        return with_preset(preset, given)

    def train(self) -> dict:
        from easynlp_bp.sft.training import save_final_model, sft_checkpoint_card, train_sft
        from easynlp_bp.training_arguments import final_train_loss

        if self.params.quantize != "none":  # int8 inference only: training updates float weights
            raise ValueError(f"quantize={self.params.quantize} is for predict/evaluate/serve; drop it for --mode=train.")
        source = self.resolve_base_model()
        hp = self._settings(source.is_from_scratch)
        logger.info("SFT settings (%s preset for unset flags): %s",
                    "from-scratch" if source.is_from_scratch else "paper", hp)
        data = self._training_data()
        train_rows, accounting = data.train.rows, data.accounting
        bp = self.build_model([f"{r[self.first_sequence]}\n{r[self.second_sequence]}" for r in train_rows])
        kept_rows, dev_rows = select_training_pairs(data, bp.tokenizer, hp, self.args.random_seed, self.first_sequence,
                                                    self.second_sequence, self.checkpoint_dir)
        train_set = self.build_dataset(kept_rows, bp.tokenizer, hp["sequence_length"])
        dev_set = self.build_dataset(dev_rows, bp.tokenizer, hp["sequence_length"]) if dev_rows else None
        trainer, train_output = train_sft(bp.model, bp.tokenizer, train_set, dev_set, self.checkpoint_dir, hp,
                            seed=self.args.random_seed, bf16=self.params.bf16,
                            group_by_length=self.params.group_by_length,
                            resume_from_checkpoint=self.args.resume_from_checkpoint)
        result = {
            "train_pairs": len(kept_rows), "filtered": len(train_rows) - len(kept_rows) - accounting["too_long"],
            "too_long": accounting["too_long"], "dev_pairs": len(dev_rows),
            "train_target_tokens": train_set.target_token_count(), "global_step": trainer.state.global_step,
            "final_train_loss": final_train_loss(trainer.state.log_history, train_output),
        }
        if dev_set is not None:
            result["eval_loss"] = trainer.evaluate()["eval_loss"]

        def finalize(staging: Path) -> None:
            card = sft_checkpoint_card(source.location, source.is_from_scratch, hp, result,
                                       [r[self.first_sequence] for r in kept_rows], data.describe(self.args.table_list))
            self.finish_training(card, directory=staging, model_source=source.__dict__, hyperparameters=hp,
                                 data=accounting, result=result)

        save_final_model(trainer, bp.tokenizer, self.checkpoint_dir, finalize)
        if trainer.is_world_process_zero():
            logger.info("Saved the SFT model to %s: %s", self.checkpoint_dir, result)
        return result

    # ----------------------------------------------------------------- evaluate
    def evaluate(self) -> dict:
        from easynlp_bp.serving.launch import predictor_params_of

        # the paper evaluates greedy outputs
        predictor = self.build_predictor(replace(predictor_params_of(self.params), decoding="greedy",
                                                 num_return_sequences=1))
        tables = self.table_sources("evaluate", 0, 1, "one table of (raw_prompt, prompt) pairs")
        source = tables[0] if tables else str(Path(self.checkpoint_dir) / "data" / "dev.jsonl")
        table = self.read(source, with_target=True)
        length = self.args.sequence_length or 384
        reject_too_long_in_table(table, predictor.tokenizer, length, self.first_sequence)  # rejects, not an abort
        self.log_eval_rejects(table)
        dataset = self.build_dataset(table.rows, predictor.tokenizer, length)
        sample = table.rows[: self.params.eval_generation_samples]
        results = {"source": source, "rows": len(table.rows), "rejected": len(table.rejects),
                   **self.build_evaluator(dataset).evaluate(
                       predictor, [(r[self.first_sequence], r[self.second_sequence]) for r in sample])}
        out_path = self.write_eval_results(results)
        logger.info("Evaluation written to %s: loss %.4f, perplexity %.2f", out_path, results["eval_loss"],
                    results["perplexity"])
        return results

    # ----------------------------------------------------------------- predict
    def predict(self) -> dict:
        from easynlp_bp.default.vocabulary import DEMO_RAW_PROMPTS

        tables = self.table_sources("predict", 0, 1, "one table of raw prompts")
        output_schema, append = self.output_columns("predictions,beams", ("predictions", "beams", "statuses", "warnings", "scores"))
        self.check_outputs_writable(reads=[self.checkpoint_dir])
        if self.args.prompt is not None:
            if tables:
                raise ValueError("--prompt and --tables both give the prompts to beautify; pass one of them.")
            given = self.args.prompt
            table = Table.from_texts("--prompt", self.first_sequence, [given] if isinstance(given, str) else given)
        elif tables:
            table = self.read(tables[0], with_target=False)
        else:
            logger.info("No --tables: beautifying the demo prompts %s.", DEMO_RAW_PROMPTS)
            table = Table.from_texts("demo", self.first_sequence, DEMO_RAW_PROMPTS)
        self.check_append_cols(table, append)
        rows = self.build_predictor().run(table.rows, self.first_sequence)
        rows = split_rejected_rows(table, rows, self.first_sequence)
        return self.write_predictions(rows, table, output_schema + append)  # EasyNLP's order

    # ----------------------------------------------------------------- serve
    def serve(self) -> dict:
        """HTTP API + web demo on host:port (docs/serving.md); blocks until interrupted."""
        from easynlp_bp.serving.launch import serve_checkpoint

        return serve_checkpoint(self.args.checkpoint_dir, self.params, predictor_cls=self.component("predictor"))
