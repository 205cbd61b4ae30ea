"""App ``beautiful_prompt_reward``: train an aesthetic or PickScore reward model, evaluate it, score prompts.

Glue only: the model is :mod:`easynlp_bp.models.reward_model`, its inputs :mod:`easynlp_bp.text.reward_formats`, the
tables :mod:`easynlp_bp.reward.label_tables`, the recipe :mod:`easynlp_bp.reward.training`. Columns: the prompt is ``--second_sequence`` (default ``prompt``),
the raw prompt ``--first_sequence`` (default ``raw_prompt``, read by the pickscore RM only), the label
``--label_name`` (default ``aesthetic_score`` or ``pick_score`` by ``reward_type``). Without ``--tables``,
train labels the embedded default's pairs with the heuristic stand-in scorer (not real image scores).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Optional

from easynlp_bp.appzoo.base import APPS, App, with_preset
from easynlp_bp.io import Table
from easynlp_bp.options import option
from easynlp_bp.reward.checkpoint import load_trained_reward_model
from easynlp_bp.reward.label_tables import (embedded_default_reward_rows, read_reward_table, reward_input_texts,
                                            reward_rows_from_tables)
from easynlp_bp.text.reward_formats import DEFAULT_LABEL_NAME, REWARD_TYPES, check_reward_type

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RewardParams:
    """``user_defined_parameters`` of ``beautiful_prompt_reward``."""

    option_modes: ClassVar[tuple[str, ...]] = ("train",)  # unless a key says otherwise

    reward_type: Optional[str] = field(
        default=None,
        metadata={"help": f"Which RM: {' or '.join(REWARD_TYPES)} (train: default aesthetic; evaluate/predict: "
                          "default the trained model's, and a different one is an error)."},
    )
    pretrain_model_name_or_path: Optional[str] = field(
        default=None, metadata={"help": "Backbone: modelzoo name, local dir or HF hub id (default: tiny-bloom-bp). The SFT model's dir "
                "(InstructGPT's choice) gives the PickScore RM a backbone that already relates raw prompt and prompt."}
    )
    normalize_labels: bool = field(
        default=True, metadata={"help": "Train on (label-mean)/std; mean/std are saved, scores come back in label units."}
    )
    default_data_size: int = field(
        default=400, metadata={"help": "Embedded-default pairs (6 heuristically labelled prompts each) without --tables."}
    )
    batch_size: int = option(32, "Prompts per forward pass in evaluate and predict.", modes=("evaluate", "predict"))
    max_input_chars: int = option(4000, "Prompts (and raw prompts) longer than this many characters are rejected; "
                                        "long ones below it are cut from the left to --sequence_length tokens.",
                                  modes=())
    device: str = option("auto", "cpu, cuda, cuda:N or auto (evaluate/predict).", modes=("evaluate", "predict"))
    bf16: str = field(default="auto", metadata={"help": "true, false or auto (on with a CUDA GPU or a CPU with native bf16: mixed precision, fp32 weights)."})
    trust_remote_code: bool = option(False, "Allow model code from the model dir.", modes=())

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
    components = {
        "dataset": "RewardDataset",
        "model": "RewardModel",
        "evaluator": "RewardEvaluator",
    }

    @property
    def train_reward_type(self) -> str:
        """The RM kind train builds: the given ``reward_type`` or aesthetic (evaluate/predict use the model's)."""
        return self.params.reward_type or "aesthetic"

    @property
    def train_label_name(self) -> str:
        return self.args.label_name or DEFAULT_LABEL_NAME[self.train_reward_type]

    @property
    def checkpoint_dir(self) -> str:
        return self.args.checkpoint_dir or f"outputs/reward_{self.train_reward_type}"

    # ----------------------------------------------------------------- building blocks (also the EasyNLP lookups)
    def read(self, source: str, reward_type: str, label: Optional[str]) -> Table:
        """Read ``source``; rows with an empty prompt (or raw prompt) or a non-finite label become rejects."""
        return read_reward_table(source, reward_type=reward_type, label=label, prompt_field=self.second_sequence,
                                 raw_field=self.first_sequence, max_chars=self.params.max_input_chars,
                                 input_schema=self.args.input_schema, skip_first_line=self.args.skip_first_line)

    def build_model(self, train_texts=None, max_length: int = 384):
        return self.component("model").from_pretrained(
            self.params.pretrain_model_name_or_path, reward_type=self.train_reward_type, train_texts=train_texts,
            max_length=max_length, trust_remote_code=self.params.trust_remote_code, seed=self.args.random_seed)

    def build_dataset(self, rm, rows, label: str):
        return self.component("dataset")(rm, rows, label, self.first_sequence, self.second_sequence)

    def build_evaluator(self, valid, label: Optional[str] = None):
        """The evaluator for ``valid``: rows, or a dataset that kept its rows and label (``RewardDataset``)."""
        rows = getattr(valid, "rows", valid)
        label = label or getattr(valid, "label_name", None) or self.args.label_name
        return self.component("evaluator")(rows, label, self.first_sequence, self.second_sequence, self.params.batch_size)

    def dataset_from_file(self, data_file: str, max_seq_length: int = 384):
        """A labelled table read into the app's dataset class (the model of ``pretrain_model_name_or_path``)."""
        label = self.train_label_name
        table = self.read(data_file, self.train_reward_type, label)
        self.log_rejects(table, directory=str(Path(data_file).parent))
        return self.build_dataset(self.build_model(max_length=max_seq_length), table.rows, label)

    def load_trained(self):
        """The trained RM in ``--checkpoint_dir`` on ``device``; a ``reward_type`` that disagrees is an error."""
        return load_trained_reward_model(self.component("model"), self.checkpoint_dir, self.params.reward_type,
                                         self.params.device, trust_remote_code=self.params.trust_remote_code)

    # ----------------------------------------------------------------- train
    def _training_tables(self) -> tuple[list[dict], list[dict], dict]:
        """(train rows, dev rows, accounting) from --tables, or heuristically labelled default pairs."""
        tables = self.table_sources("train", 0, 2, "train[,dev]")
        if not tables:
            if self.args.label_name is not None or self.args.first_sequence or self.args.second_sequence:
                raise ValueError("--label_name/--first_sequence/--second_sequence need --tables; the embedded "
                                 "default has the columns raw_prompt, prompt, aesthetic_score, pick_score.")
            return embedded_default_reward_rows(self.params.default_data_size, self.args.random_seed, self.checkpoint_dir)
        return reward_rows_from_tables(
            self.read_each(tables, lambda source: self.read(source, self.train_reward_type, self.train_label_name)))

    def train(self) -> dict:
        from easynlp_bp.reward.training import (is_tiny_backbone, reward_checkpoint_card, reward_preset,
                                                 save_final_reward_model, set_label_scale, train_reward_model)

        source = self.resolve_base_model()
        tiny = is_tiny_backbone(source)
        preset = reward_preset(tiny)
        hp = with_preset(preset, {key: getattr(self.args, key) for key in preset})
        logger.info("RM settings (%s preset for unset flags): %s", "from-scratch" if tiny else "paper", hp)
        reward_type, label = self.train_reward_type, self.train_label_name
        train_rows, dev_rows, accounting = self._training_tables()
        # The tokenizer of a from-config backbone learns the RM's own input texts (EOS is a special token).
        rm = self.build_model(reward_input_texts(train_rows, reward_type, self.first_sequence, self.second_sequence),
                              max_length=hp["sequence_length"])
        set_label_scale(rm, train_rows, label, self.params.normalize_labels)  # before the datasets normalise
        datasets = [self.build_dataset(rm, rows, label) if rows else None for rows in (train_rows, dev_rows)]
        trainer, result = train_reward_model(rm, *datasets, self.checkpoint_dir, hp, seed=self.args.random_seed,
                                             bf16=self.params.bf16, resume_from_checkpoint=self.args.resume_from_checkpoint)
        result = {"reward_type": reward_type, "label_name": label, "train_rows": len(train_rows),
                  "dev_rows": len(dev_rows), **result}
        if dev_rows:
            result["dev"] = self.build_evaluator(dev_rows, label).evaluate(rm)

        def finalize(staging: Path) -> None:
            card = reward_checkpoint_card(rm, source.location, source.is_from_scratch, hp, result,
                                          ", ".join(self.args.table_list) or "embedded default rows (heuristic stand-in labels)")
            self.finish_training(card, directory=staging, model_source=source.__dict__, hyperparameters=hp,
                                 data=accounting, result=result)

        save_final_reward_model(trainer, rm, self.checkpoint_dir, finalize)
        if trainer.is_world_process_zero():
            logger.info("Saved the %s reward model to %s: %s", reward_type, self.checkpoint_dir, result)
        return result

    # ----------------------------------------------------------------- evaluate
    def evaluate(self) -> dict:
        rm = self.load_trained()
        label = self.args.label_name or rm.config.label_name
        tables = self.table_sources("evaluate", 0, 1, "one labelled table")
        source = tables[0] if tables else str(Path(self.checkpoint_dir) / "data" / "dev.jsonl")
        table = self.read(source, rm.config.reward_type, label)
        rejects_file = self.log_eval_rejects(table)
        if not table.rows:
            raise ValueError(f"{source}: no usable rows to evaluate ({len(table.rejects)} rejected).")
        results = {"source": source, "reward_type": rm.config.reward_type, "label_name": label,
                   "read": table.n_read, "rejected": len(table.rejects), "rejects_file": rejects_file,
                   **self.build_evaluator(table.rows, label).evaluate(rm)}
        out_path = self.write_eval_results(results)
        logger.info("Evaluation written to %s: MSE %.4f, Pearson %.3f, Spearman %.3f",
                    out_path, results["mse"], results["pearson"], results["spearman"])
        return {**results, "print_json": True}

    # ----------------------------------------------------------------- predict
    def predict(self) -> dict:
        self.table_sources("predict", 1, 1, f"one table to score (a {self.second_sequence!r} column)")
        self.check_outputs_writable(reads=[self.checkpoint_dir])
        rm = self.load_trained()
        from easynlp_bp.models.reward_model import EASYNLP_SCORE_COLUMNS, score_rows

        output_schema, append = self.output_columns("score", ("score", rm.config.label_name, *EASYNLP_SCORE_COLUMNS))
        table = self.read(self.args.table_list[0], rm.config.reward_type, None)
        self.check_append_cols(table, append)
        rows = score_rows(rm, table.rows, self.first_sequence, self.second_sequence, batch_size=self.params.batch_size)
        result = self.write_predictions(rows, table, output_schema + append)  # EasyNLP's order
        return {**result, "print_columns": [output_schema[0], self.second_sequence]}
