"""App ``beautiful_prompt_reward``: train an aesthetic or PickScore reward model, evaluate it, score prompts.

Training uses the HF ``Trainer`` (bf16, DDP/DeepSpeed, TensorBoard, ``--resume_from_checkpoint`` come
with it). Columns: the prompt is ``--second_sequence`` (default ``prompt``), the raw prompt
``--first_sequence`` (default ``raw_prompt``, read by the pickscore RM only), the label ``--label_name``
(default ``aesthetic_score`` or ``pick_score`` by ``reward_type``). Without ``--tables``, train labels the
embedded default's pairs with the heuristic stand-in scorer (not real image scores).
"""
from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from easynlp_bp.appzoo.base import APPS, App
from easynlp_bp.reward.formats import (
    DEFAULT_LABEL_NAME,
    REWARD_TYPES,
    check_reward_type,
    format_reward_input,
)
from easynlp_bp.io import Table, read_table, rejects_path_for, write_rejects, write_table
from easynlp_bp.io.readers import float_field_validator
from easynlp_bp.training_arguments import build_training_arguments

logger = logging.getLogger(__name__)

# Unset flags take these values: the reference RM settings (DESIGN.md section 2) for pretrained backbones,
# and a from-scratch preset for a model built at random from a config (the embedded default).
PAPER_RM = {
    "learning_rate": 1e-5, "epoch_num": 1, "micro_batch_size": 16, "sequence_length": 384,
    "weight_decay": 0.0, "warmup_proportion": 0.0, "gradient_accumulation_steps": 1, "max_grad_norm": 1.0,
    "logging_steps": 10, "save_checkpoint_steps": 500,
}
FROM_SCRATCH_RM = {
    **PAPER_RM, "learning_rate": 1e-3, "epoch_num": 3, "micro_batch_size": 32, "sequence_length": 128,
    "warmup_proportion": 0.05, "logging_steps": 20,
}


@dataclass
class RewardParams:
    """``user_defined_parameters`` of ``beautiful_prompt_reward``."""

    reward_type: Optional[str] = field(
        default=None,
        metadata={"help": f"Which RM: {' or '.join(REWARD_TYPES)} (train: default aesthetic; evaluate/predict: "
                          "default the trained model's, and a different one is an error)."},
    )
    pretrain_model_name_or_path: Optional[str] = field(
        default=None, metadata={"help": "Backbone: modelzoo name, local dir or HF hub id (default: tiny-bloom-bp)."}
    )
    normalize_labels: bool = field(
        default=True, metadata={"help": "Train on (label-mean)/std; mean/std are saved, scores come back in label units."}
    )
    default_data_size: int = field(
        default=400, metadata={"help": "Embedded-default pairs (5 heuristically labelled prompts each) without --tables."}
    )
    batch_size: int = field(default=32, metadata={"help": "Prompts per forward pass in evaluate and predict."})
    max_input_chars: int = field(default=4000, metadata={"help": "Prompts (and raw prompts) longer than this many characters are rejected; "
                                                 "long ones below it are cut from the left to --sequence_length tokens."})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, cuda:N or auto (evaluate/predict)."})
    bf16: str = field(default="auto", metadata={"help": "true, false or auto (on when a CUDA GPU is used)."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from the model dir."})

    def __post_init__(self) -> None:
        if self.reward_type is not None:
            check_reward_type(self.reward_type)
        if self.bf16 not in ("true", "false", "auto"):
            raise ValueError(f"bf16={self.bf16!r} must be true, false or auto.")
        if self.default_data_size < 20 or self.batch_size < 1:
            raise ValueError("default_data_size must be at least 20 and batch_size at least 1.")


@APPS.register("beautiful_prompt_reward")
class BeautifulPromptRewardApp(App):
    """Reward models (aesthetic, PickScore) for BeautifulPrompt's PPO stage."""

    modes = ("train", "evaluate", "predict")
    params_cls = RewardParams
    description = "Train / evaluate a text-only reward model (reward_type=aesthetic|pickscore); score prompts."

    def __init__(self, args):
        super().__init__(args)
        # Train: the given type or aesthetic. Evaluate/predict: replaced by the trained model's in _load.
        self.reward_type = self.params.reward_type or "aesthetic"

    @property
    def checkpoint_dir(self) -> str:
        return self.args.checkpoint_dir or f"outputs/reward_{self.reward_type}"

    @property
    def raw_field(self) -> str:
        return self.args.first_sequence or "raw_prompt"

    @property
    def prompt_field(self) -> str:
        return self.args.second_sequence or "prompt"

    @property
    def label_name(self) -> str:
        return self.args.label_name or DEFAULT_LABEL_NAME[self.reward_type]

    # ----------------------------------------------------------------- data
    def _read(self, source: str, with_label: bool, label_name: Optional[str] = None) -> Table:
        """Read ``source``; rows with an empty prompt (or raw prompt) or a non-finite label become rejects."""
        fields = [self.prompt_field] + ([self.raw_field] if self.reward_type == "pickscore" else [])
        label = label_name or self.label_name
        return read_table(
            source,
            input_schema=self.args.input_schema,
            skip_first_line=self.args.skip_first_line,
            required=fields + ([label] if with_label else []),
            text_fields=fields,
            max_chars=self.params.max_input_chars,
            validators=[float_field_validator(label)] if with_label else (),
        )

    def _log_rejects(self, table: Table) -> Optional[str]:
        if not table.rejects:
            return None
        path = Path(self.checkpoint_dir) / f"rejects.{Path(table.source).name}.jsonl"
        write_rejects(str(path), table.rejects, table.source)
        logger.warning("%s: %d of %d rows rejected, listed in %s.", table.source, len(table.rejects), table.n_read, path)
        return str(path)

    def _training_tables(self) -> tuple[list[dict], list[dict], dict]:
        """(train rows, dev rows, accounting) from --tables, or heuristically labelled default pairs."""
        tables = self.args.table_list
        if not tables:
            from easynlp_bp.default.heuristic_scorer import make_reward_rows

            if self.args.label_name is not None or self.args.first_sequence or self.args.second_sequence:
                raise ValueError("--label_name/--first_sequence/--second_sequence need --tables; the embedded "
                                 "default has the columns raw_prompt, prompt, aesthetic_score, pick_score.")
            rows = make_reward_rows(self.params.default_data_size, seed=self.args.random_seed)
            n_dev = 5 * max(10, self.params.default_data_size // 20)  # whole pairs: a pair's 5 variants stay together
            columns = ["raw_prompt", "prompt", "aesthetic_score", "pick_score"]
            data_dir = Path(self.checkpoint_dir) / "data"
            write_table(str(data_dir / "train.jsonl"), rows[n_dev:], columns)
            write_table(str(data_dir / "dev.jsonl"), rows[:n_dev], columns)
            logger.warning(
                "No --tables: labelled %d embedded-default prompts with the HEURISTIC stand-in scorer "
                "(modifier counts, length, relevance; easynlp_bp/default/heuristic_scorer.py) into %s. These "
                "are not image-based aesthetic or PickScore labels; train on real labels for a real RM.",
                len(rows), data_dir,
            )
            return rows[n_dev:], rows[:n_dev], {"embedded_default_rows": len(rows), "labels": "heuristic stand-in"}
        if len(tables) > 2:
            raise ValueError(f"--tables takes train[,dev] for --mode=train; got {len(tables)} files.")
        accounting, read = {}, []
        for source in tables:
            table = self._read(source, with_label=True)
            self._log_rejects(table)
            accounting[table.source] = {"read": table.n_read, "kept": len(table.rows), "rejected": len(table.rejects)}
            read.append(table)
        if not read[0].rows:
            raise ValueError(f"{read[0].source}: no usable rows ({len(read[0].rejects)} rejected); see the rejects file.")
        return read[0].rows, (read[1].rows if len(read) > 1 else []), accounting

    def _resolved(self, preset: dict) -> dict:
        """Flags as given, else the preset's value (never rewriting a given flag)."""
        return {key: default if getattr(self.args, key) is None else getattr(self.args, key)
                for key, default in preset.items()}

    # ----------------------------------------------------------------- train
    def train(self) -> dict:
        from transformers import Trainer

        from easynlp_bp.reward.data import RewardDataset, collate_reward_batch, label_scaling
        from easynlp_bp.reward.model import RewardModel
        from easynlp_bp.modelzoo import resolve_model_source

        source = resolve_model_source(self.params.pretrain_model_name_or_path)
        hp = self._resolved(FROM_SCRATCH_RM if source.is_from_scratch else PAPER_RM)
        logger.info("RM settings (%s preset for unset flags): %s", "from-scratch" if source.is_from_scratch else "paper", hp)
        train_rows, dev_rows, accounting = self._training_tables()
        reward_type, label = self.reward_type, self.label_name
        # The tokenizer of a from-config backbone learns the RM's own input texts (EOS is a special token).
        tokenizer_texts = [format_reward_input(reward_type, r.get(self.raw_field, ""), r[self.prompt_field], "")
                           for r in train_rows]
        rm = RewardModel.from_pretrained(
            self.params.pretrain_model_name_or_path, reward_type=reward_type, train_texts=tokenizer_texts,
            max_length=hp["sequence_length"], trust_remote_code=self.params.trust_remote_code,
            seed=self.args.random_seed,
        )
        rm.config.label_name = label
        if self.params.normalize_labels:
            rm.config.label_mean, rm.config.label_std = label_scaling([r[label] for r in train_rows], label)
        make = lambda rows: RewardDataset(rm, rows, label, self.raw_field, self.prompt_field)  # noqa: E731
        train_set, dev_set = make(train_rows), (make(dev_rows) if dev_rows else None)
        training_args = build_training_arguments(
            self.checkpoint_dir, hp, seed=self.args.random_seed, bf16=self.params.bf16, has_eval=dev_set is not None
        )
        trainer = Trainer(
            model=rm.model, args=training_args, train_dataset=train_set, eval_dataset=dev_set,
            data_collator=lambda batch: collate_reward_batch(batch, rm.tokenizer.pad_token_id),
        )
        resume = self.args.resume_from_checkpoint
        trainer.train(resume_from_checkpoint=True if resume == "last" else resume)
        trainer.save_model(self.checkpoint_dir)
        result = {
            "reward_type": reward_type, "label_name": label, "train_rows": len(train_rows), "dev_rows": len(dev_rows),
            "label_mean": rm.config.label_mean, "label_std": rm.config.label_std,
            "global_step": trainer.state.global_step,
            "final_train_loss": next((e["loss"] for e in reversed(trainer.state.log_history) if "loss" in e), None),
        }
        if dev_rows:
            result["dev"] = self._metrics(rm, dev_rows, label)
        if trainer.is_world_process_zero():
            rm.save_pretrained(self.checkpoint_dir, save_model=False)
            from easynlp_bp.training_plots import plot_log_history

            plot_log_history(trainer.state.log_history, str(Path(self.checkpoint_dir) / "training_curves.png"))
            self.write_run_config(self.checkpoint_dir, model_source=source.__dict__, hyperparameters=hp,
                                  data=accounting, result=result)
            logger.info("Saved the %s reward model to %s: %s", reward_type, self.checkpoint_dir, result)
        return result

    # ----------------------------------------------------------------- evaluate
    def _load(self):
        from easynlp_bp.devices import resolve_device
        from easynlp_bp.reward.model import REWARD_CONFIG_FILE, RewardModel

        if not (Path(self.checkpoint_dir) / REWARD_CONFIG_FILE).is_file():
            raise FileNotFoundError(
                f"No trained reward model at {self.checkpoint_dir} (no {REWARD_CONFIG_FILE}). Train one first "
                "(easynlp --app_name=beautiful_prompt_reward --mode=train) or pass --checkpoint_dir."
            )
        rm = RewardModel.from_pretrained(self.checkpoint_dir, trust_remote_code=self.params.trust_remote_code)
        if self.params.reward_type not in (None, rm.config.reward_type):
            raise ValueError(
                f"--checkpoint_dir={self.checkpoint_dir} holds a {rm.config.reward_type} reward model, but "
                f"reward_type={self.params.reward_type} was given; drop reward_type or pass the other model."
            )
        self.reward_type = rm.config.reward_type
        return rm.to(resolve_device(self.params.device))

    def _metrics(self, rm, rows: list[dict], label: str) -> dict:
        from easynlp_bp.reward.metrics import regression_metrics

        scores = rm.score([r.get(self.raw_field, "") for r in rows], [r[self.prompt_field] for r in rows],
                          batch_size=self.params.batch_size)
        return regression_metrics(scores.tolist(), [float(r[label]) for r in rows])

    def evaluate(self) -> dict:
        rm = self._load()
        label = self.args.label_name or rm.config.label_name
        tables = self.args.table_list
        if len(tables) > 1:
            raise ValueError(f"--mode=evaluate reads one table; got {len(tables)}: {self.args.tables}.")
        source = tables[0] if tables else str(Path(self.checkpoint_dir) / "data" / "dev.jsonl")
        table = self._read(source, with_label=True, label_name=label)
        rejects_file = self._log_rejects(table)
        if not table.rows:
            raise ValueError(f"{source}: no usable rows to evaluate ({len(table.rejects)} rejected).")
        results = {"source": source, "reward_type": rm.config.reward_type, "label_name": label,
                   "read": table.n_read, "rejected": len(table.rejects), "rejects_file": rejects_file,
                   **self._metrics(rm, table.rows, label)}
        out_path = Path(self.args.outputs or Path(self.checkpoint_dir) / "eval_results.json")
        out_path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(results, indent=2, ensure_ascii=False)
        out_path.write_text(text, encoding="utf-8")
        sys.stdout.write(text + "\n")  # the CLI's answer (the issue asks for the metrics printed)
        logger.info("Evaluation written to %s: MSE %.4f, Pearson %.3f, Spearman %.3f",
                    out_path, results["mse"], results["pearson"], results["spearman"])
        return results

    # ----------------------------------------------------------------- predict
    def predict(self) -> dict:
        tables = self.args.table_list
        if len(tables) != 1:
            raise ValueError(f"--mode=predict scores one table given with --tables (a {self.prompt_field!r} column); "
                             f"got {len(tables)}.")
        rm = self._load()
        output_schema = [c.strip() for c in (self.args.output_schema or "score").split(",") if c.strip()]
        for name in output_schema:
            if name not in ("score", rm.config.label_name):
                raise ValueError(f"--output_schema column {name!r} is unknown; use score (or {rm.config.label_name}).")
        table = self._read(tables[0], with_label=False)
        append = [c.strip() for c in (self.args.append_cols or "").split(",") if c.strip()]
        for name in append:
            if table.rows and name not in table.rows[0]:
                raise ValueError(f"--append_cols column {name!r} is not in {table.source}.")
        scores = rm.score([r.get(self.raw_field, "") for r in table.rows], [r[self.prompt_field] for r in table.rows],
                          batch_size=self.params.batch_size).tolist()
        rows = [{**row, **{name: score for name in output_schema}} for row, score in zip(table.rows, scores)]
        columns = append + output_schema
        result = {"scored_rows": rows, "columns": columns, "rejects": table.rejects, "read": table.n_read}
        if self.args.outputs:
            write_table(self.args.outputs, rows, columns)
            rejects_path = rejects_path_for(self.args.outputs)
            write_rejects(rejects_path, table.rejects, table.source)
            logger.info("Wrote %d scores to %s and %d rejects to %s (read %d).", len(rows), self.args.outputs,
                        len(table.rejects), rejects_path, table.n_read)
            result["outputs"] = self.args.outputs
        else:
            for row in rows:
                sys.stdout.write(f"{row[output_schema[0]]:.4f}\t{row[self.prompt_field]}\n")
            for reject in table.rejects:
                sys.stdout.write(f"rejected row {reject.row}: {reject.reason}\n")
        return result
