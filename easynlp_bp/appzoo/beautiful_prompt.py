"""App ``beautiful_prompt``: SFT (train), held-out loss + text statistics (evaluate), beautify (predict).

Training uses the HF ``Trainer`` so bf16, gradient accumulation, DDP/DeepSpeed, TensorBoard, progress
bars and ``--resume_from_checkpoint`` come from a well-kept library. Flags left unset take a preset:
the paper's SFT settings for pretrained models, and a from-scratch preset for the tiny default.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from easynlp_bp.appzoo.base import APPS, App
from easynlp_bp.sft.data import (
    BeautifulPromptDataset,
    PairFilterConfig,
    collate_left_padded,
    filter_pairs,
)
from easynlp_bp.evaluation.text_statistics import text_statistics
from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams, split_rejected_rows
from easynlp_bp.io import Table, output_columns, read_table, rejects_path_for, write_rejects, write_table
from easynlp_bp.training_arguments import build_training_arguments, final_train_loss
from easynlp_bp.serving.config import ServeFields

logger = logging.getLogger(__name__)

DEFAULT_CHECKPOINT_DIR = "outputs/beautiful_prompt"

# Unset flags take these values. PAPER_SFT is the reference (DESIGN.md section 2); FROM_SCRATCH is for a
# model built at random from a config (the embedded default), which needs a much larger learning rate,
# and whose project-trained tokenizer makes the reference's BLOOM-token length filters meaningless.
PAPER_SFT = {
    "learning_rate": 2e-5, "epoch_num": 4, "micro_batch_size": 16, "sequence_length": 384,
    "weight_decay": 0.0, "warmup_proportion": 0.03, "gradient_accumulation_steps": 1, "max_grad_norm": 1.0,
    "logging_steps": 10, "save_checkpoint_steps": 500,
    "min_pick_score": 18.5, "min_target_tokens": 25, "short_target_tokens": 35, "short_target_drop": 0.3,
}
FROM_SCRATCH_SFT = {
    **PAPER_SFT, "learning_rate": 3e-3, "epoch_num": 6, "micro_batch_size": 32, "sequence_length": 128,
    "logging_steps": 20, "min_target_tokens": 0, "short_target_tokens": 0, "short_target_drop": 0.0,
}


@dataclass
class BeautifulPromptParams(PredictorParams, ServeFields):
    """``user_defined_parameters`` of ``beautiful_prompt`` (generation keys apply to predict/evaluate/serve)."""

    pretrain_model_name_or_path: Optional[str] = field(
        default=None, metadata={"help": "modelzoo name, local dir or HF hub id to fine-tune (default: tiny-bloom-bp)."}
    )
    min_pick_score: Optional[float] = field(default=None, metadata={"help": "Drop pairs with pick_score below (paper 18.5)."})
    min_target_tokens: Optional[int] = field(default=None, metadata={"help": "Drop targets shorter than this (paper 25)."})
    short_target_tokens: Optional[int] = field(default=None, metadata={"help": "Targets shorter than this (paper 35) ..."})
    short_target_drop: Optional[float] = field(default=None, metadata={"help": "... are dropped with this probability (paper 0.3)."})
    default_data_size: int = field(default=4000, metadata={"help": "Pairs the embedded default generates when --tables is not given."})
    eval_generation_samples: int = field(default=32, metadata={"help": "Rows whose generations evaluate measures."})
    bf16: str = field(default="auto", metadata={"help": "true, false or auto (on when a CUDA GPU is used)."})
    group_by_length: bool = field(default=False, metadata={
        "help": "Batch pairs of similar length together (less padding: faster SFT, see docs/benchmarks.md)."})


@APPS.register("beautiful_prompt")
class BeautifulPromptApp(App):
    """SFT of a causal LM on (raw_prompt -> prompt) pairs, evaluation, and batch beautification."""

    modes = ("train", "evaluate", "predict", "serve")
    params_cls = BeautifulPromptParams
    description = "BeautifulPrompt SFT, evaluation, prediction and serving (the main app)."

    @property
    def checkpoint_dir(self) -> str:
        return self.args.checkpoint_dir or DEFAULT_CHECKPOINT_DIR

    @property
    def first_sequence(self) -> str:
        return self.args.first_sequence or "raw_prompt"

    @property
    def second_sequence(self) -> str:
        return self.args.second_sequence or "prompt"

    # ----------------------------------------------------------------- data
    def _read(self, source: str, with_target: bool) -> Table:
        fields = [self.first_sequence] + ([self.second_sequence] if with_target else [])
        return read_table(
            source,
            input_schema=self.args.input_schema,
            skip_first_line=self.args.skip_first_line,
            required=fields,
            text_fields=fields,
            max_chars=self.params.max_input_chars if not with_target else None,
        )

    def _training_tables(self) -> tuple[list[dict], list[dict], dict]:
        """(train rows, dev rows, accounting) from --tables, or the embedded default's generated pairs."""
        tables = self.args.table_list
        if not tables:
            from easynlp_bp.default.pairs import make_pairs

            pairs = make_pairs(self.params.default_data_size, seed=self.args.random_seed)
            n_dev = max(16, len(pairs) // 20)
            data_dir = Path(self.checkpoint_dir) / "data"
            write_table(str(data_dir / "train.jsonl"), pairs[n_dev:], ["raw_prompt", "prompt"])
            write_table(str(data_dir / "dev.jsonl"), pairs[:n_dev], ["raw_prompt", "prompt"])
            logger.info("No --tables: generated %d embedded-default pairs into %s.", len(pairs), data_dir)
            return pairs[n_dev:], pairs[:n_dev], {"embedded_default_pairs": len(pairs)}
        if len(tables) > 2:
            raise ValueError(f"--tables takes train[,dev] for --mode=train; got {len(tables)} files.")
        accounting = {}
        read = [self._read(t, with_target=True) for t in tables]
        for table in read:
            if table.rejects:
                path = Path(self.checkpoint_dir) / f"rejects.{Path(table.source).name}.jsonl"
                write_rejects(str(path), table.rejects, table.source)
                logger.warning("%s: %d rows rejected, listed in %s.", table.source, len(table.rejects), path)
            accounting[table.source] = {"read": table.n_read, "kept": len(table.rows), "rejected": len(table.rejects)}
        return read[0].rows, (read[1].rows if len(read) > 1 else []), accounting

    # ----------------------------------------------------------------- train
    def _resolved(self, preset: dict) -> dict:
        """Flags and filter keys as given, else the preset's value."""
        values = {}
        for key, default in preset.items():
            given = getattr(self.args, key, None) if hasattr(self.args, key) else getattr(self.params, key)
            values[key] = default if given is None else given
        return values

    def train(self) -> dict:
        from transformers import Trainer

        from easynlp_bp.sft.model import BeautifulPromptModel
        from easynlp_bp.modelzoo import resolve_model_source

        source = resolve_model_source(self.params.pretrain_model_name_or_path)
        hp = self._resolved(FROM_SCRATCH_SFT if source.is_from_scratch else PAPER_SFT)
        logger.info("SFT settings (%s preset for unset flags): %s",
                    "from-scratch" if source.is_from_scratch else "paper", hp)
        train_rows, dev_rows, accounting = self._training_tables()
        texts = [f"{r[self.first_sequence]}\n{r[self.second_sequence]}" for r in train_rows]
        bp = BeautifulPromptModel.from_pretrained(
            self.params.pretrain_model_name_or_path, train_texts=texts,
            trust_remote_code=self.params.trust_remote_code, seed=self.args.random_seed,
        )
        filter_config = PairFilterConfig(
            min_pick_score=hp["min_pick_score"], min_target_tokens=hp["min_target_tokens"],
            short_target_tokens=hp["short_target_tokens"], short_target_drop=hp["short_target_drop"],
            seed=self.args.random_seed,
        )
        report = filter_pairs(train_rows, bp.tokenizer, filter_config, self.second_sequence)
        if report.dropped:
            path = Path(self.checkpoint_dir) / "filtered_pairs.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                for index, reason in report.dropped:
                    handle.write(json.dumps({"reason": reason, **train_rows[index]}, ensure_ascii=False) + "\n")
            logger.info("Data filter dropped %d of %d pairs (listed in %s).", len(report.dropped), len(train_rows), path)
        if not report.kept:
            raise ValueError("No training pairs left after filtering; see filtered_pairs.jsonl in --checkpoint_dir.")
        kept_rows = [train_rows[i] for i in report.kept]
        make = lambda rows: BeautifulPromptDataset(  # noqa: E731
            rows, bp.tokenizer, hp["sequence_length"], self.first_sequence, self.second_sequence
        )
        train_set, dev_set = make(kept_rows), (make(dev_rows) if dev_rows else None)
        training_args = build_training_arguments(
            self.checkpoint_dir, hp, seed=self.args.random_seed, bf16=self.params.bf16, has_eval=dev_set is not None,
            n_train_examples=len(train_set), adam_beta1=0.9, adam_beta2=0.95,  # the reference's AdamW betas
            # each epoch still sees every pair once; only which pairs share a batch changes
            train_sampling_strategy="group_by_length" if self.params.group_by_length else "random",
        )
        trainer = Trainer(
            model=bp.model,
            args=training_args,
            train_dataset=train_set,
            eval_dataset=dev_set,
            data_collator=lambda batch: collate_left_padded(batch, bp.tokenizer.pad_token_id),
        )
        resume = self.args.resume_from_checkpoint
        train_output = trainer.train(resume_from_checkpoint=True if resume == "last" else resume)
        trainer.save_model(self.checkpoint_dir)
        result = {
            "train_pairs": len(kept_rows), "filtered": len(report.dropped), "dev_pairs": len(dev_rows),
            "train_target_tokens": train_set.target_token_count(), "global_step": trainer.state.global_step,
            "final_train_loss": final_train_loss(trainer.state.log_history, train_output),
        }
        if dev_set is not None:
            result["eval_loss"] = trainer.evaluate()["eval_loss"]
        if trainer.is_world_process_zero():
            bp.tokenizer.save_pretrained(self.checkpoint_dir)
            from easynlp_bp.hf_checkpoint import CheckpointCard, finalize_checkpoint

            finalize_checkpoint(self.checkpoint_dir, CheckpointCard(
                kind="sft", base_model=source.location, is_stand_in=source.is_from_scratch, settings=hp, metrics=result,
                data=", ".join(self.args.table_list) or f"embedded default: {accounting.get('embedded_default_pairs')} generated pairs"))
            from easynlp_bp.training_plots import plot_log_history

            plot_log_history(trainer.state.log_history, str(Path(self.checkpoint_dir) / "training_curves.png"))
            self.write_run_config(self.checkpoint_dir, model_source=source.__dict__, hyperparameters=hp,
                                  data=accounting, result=result)
            logger.info("Saved the SFT model to %s: %s", self.checkpoint_dir, result)
        return result

    # ----------------------------------------------------------------- evaluate
    def evaluate(self) -> dict:
        import torch

        predictor = self._predictor(PredictorParams(**{**self._predictor_kwargs(), "decoding": "greedy",
                                                       "num_return_sequences": 1}))
        tables = self.args.table_list
        source = tables[0] if tables else str(Path(self.checkpoint_dir) / "data" / "dev.jsonl")
        table = self._read(source, with_target=True)
        dataset = BeautifulPromptDataset(table.rows, predictor.tokenizer, self.args.sequence_length or 384,
                                         self.first_sequence, self.second_sequence)
        total_loss, total_tokens = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(dataset), 16):
                batch = collate_left_padded([dataset[i] for i in range(start, min(start + 16, len(dataset)))],
                                            predictor.tokenizer.pad_token_id)
                batch = {k: v.to(predictor.device) for k, v in batch.items()}
                logits = predictor.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                labels = batch["labels"][:, 1:]
                loss = torch.nn.functional.cross_entropy(
                    logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                    ignore_index=-100, reduction="sum")
                total_loss += loss.item()
                total_tokens += int((labels != -100).sum())
        sample = table.rows[: self.params.eval_generation_samples]
        generations = [out[0] for out in predictor.predict([r[self.first_sequence] for r in sample])]
        mean_loss = total_loss / max(total_tokens, 1)
        results = {
            "source": source, "rows": len(table.rows), "rejected": len(table.rejects),
            "eval_loss": mean_loss, "perplexity": math.exp(min(mean_loss, 50)),
            "generated": text_statistics(generations, predictor.tokenizer),
            "reference": text_statistics([r[self.second_sequence] for r in sample], predictor.tokenizer),
            "samples": [{"raw_prompt": r[self.first_sequence], "generated": g} for r, g in zip(sample[:5], generations)],
        }
        out_path = Path(self.args.outputs or Path(self.checkpoint_dir) / "eval_results.json")
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
        logger.info("Evaluation written to %s: loss %.4f, perplexity %.2f", out_path, mean_loss, results["perplexity"])
        return results

    # ----------------------------------------------------------------- predict
    def _predictor_kwargs(self) -> dict:
        names = PredictorParams.__dataclass_fields__
        return {name: getattr(self.params, name) for name in names}

    def _predictor(self, params: Optional[PredictorParams] = None) -> BeautifulPromptPredictor:
        model_dir = self.checkpoint_dir
        if not Path(model_dir).exists() and self.args.checkpoint_dir is None:
            raise FileNotFoundError(
                f"No model at {model_dir}. Train one first (easynlp --app_name=beautiful_prompt --mode=train) "
                "or pass --checkpoint_dir=<model dir or hub id>."
            )
        return BeautifulPromptPredictor(model_dir, params or PredictorParams(**self._predictor_kwargs()))

    def predict(self) -> dict:
        from easynlp_bp.default.vocabulary import DEMO_RAW_PROMPTS

        tables = self.args.table_list
        if len(tables) > 1:
            raise ValueError(f"--mode=predict reads one table; got {len(tables)}: {self.args.tables}.")
        if tables:
            table = self._read(tables[0], with_target=False)
        else:
            logger.info("No --tables: beautifying the demo prompts %s.", DEMO_RAW_PROMPTS)
            table = Table(source="demo")
            for number, text in enumerate(DEMO_RAW_PROMPTS, start=1):
                table.keep(number, {self.first_sequence: text})
        columns = output_columns(self.args.output_schema, self.args.append_cols, known=("predictions", "beams"),
                                 default="predictions,beams", input_columns=list(table.rows[0]) if table.rows else [],
                                 source=table.source)  # checked before the model is loaded
        predictor = self._predictor()
        rows = split_rejected_rows(table, predictor.run(table.rows, self.first_sequence), self.first_sequence)
        result = {"rows": rows, "columns": columns, "rejects": table.rejects, "read": table.n_read}
        if self.args.outputs:
            write_table(self.args.outputs, rows, columns)
            rejects_path = rejects_path_for(self.args.outputs)
            write_rejects(rejects_path, table.rejects, table.source)
            logger.info("Wrote %d rows to %s and %d rejects to %s (read %d).", len(rows), self.args.outputs,
                        len(table.rejects), rejects_path, table.n_read)
            result["outputs"] = self.args.outputs
        else:
            result["print_rows"] = rows
        return result

    # ----------------------------------------------------------------- serve
    def serve(self) -> dict:
        """HTTP API + web demo on host:port (docs/serving.md); blocks until interrupted."""
        from easynlp_bp.serving.launch import serve_checkpoint

        return serve_checkpoint(self.args.checkpoint_dir, self.params)
