"""App ``beautiful_prompt_ppo``: PPO (paper) or GRPO/RLOO (trl) from an SFT checkpoint; held-out evaluation.

The policy starts from ``pretrain_model_name_or_path`` (a ``beautiful_prompt`` SFT directory, default
``outputs/beautiful_prompt``) and is written to ``--checkpoint_dir`` as a HF model directory that the
``beautiful_prompt`` predictor loads directly. Unset keys take the paper's PPO settings, or a small
preset when the SFT model is the embedded default (a tiny model built from a config).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional

from easynlp_bp.appzoo.base import APPS, App, with_preset
from easynlp_bp.models.finished_checkpoint import CheckpointCard, is_stand_in_checkpoint
from easynlp_bp.models.modelzoo import trained_from_config
from easynlp_bp.options import check_options, option
from easynlp_bp.ppo.config import EMBEDDED_DEFAULT_PRESET, FLAG_TO_FIELD, UNUSED_FLAGS, PPOConfig
from easynlp_bp.ppo.prompt_tables import hold_out, read_prompt_rows, sft_data_tables
from easynlp_bp.prompting.params import seed_generation_settings
from easynlp_bp.reward.spec import REWARD_KEYS, build_reward, reward_spec

logger = logging.getLogger(__name__)

DEFAULT_SFT_DIR = "outputs/beautiful_prompt"
DEFAULT_CHECKPOINT_DIR = "outputs/beautiful_prompt_ppo"
RL_ALGORITHMS = ("ppo", "grpo", "rloo")
# b of the consistency term, chosen by the sweep in docs/consistency.md (benchmarks/sweep_consistency.py).
DEFAULT_CONSISTENCY_WEIGHT = 1.0


@dataclass(frozen=True)
class PPOAppParams:
    """``user_defined_parameters`` of ``beautiful_prompt_ppo`` besides the :class:`PPOConfig` keys."""

    pretrain_model_name_or_path: str = field(default=DEFAULT_SFT_DIR, metadata={"help": "SFT model directory the policy (and reference) start from."})
    rl_algorithm: str = option("ppo", "ppo (this project's, the paper's), grpo or rloo (trl).", choices=RL_ALGORITHMS)
    reward: str = option("model", "model (two trained RMs) or heuristic (the embedded default's stand-in scorers).",
                         choices=("model", "heuristic"))
    reward_model_aesthetic: Optional[str] = field(default=None, metadata={"help": "Directory of the aesthetic RM (beautiful_prompt_reward)."})
    reward_model_pickscore: Optional[str] = field(default=None, metadata={"help": "Directory of the PickScore RM."})
    alpha: float = field(default=0.7, metadata={"help": "Weight of the PickScore RM in the combined reward (paper 0.7)."})
    delta_reward: bool = field(default=True, metadata={"help": "Subtract the reference prompt's reward (paper: yes)."})
    length_coef: float = field(default=0.0, metadata={"help": "Weight of the reward's length term (0: off)."})
    consistency_weight: float = option(
        DEFAULT_CONSISTENCY_WEIGHT, "b: weight of b·cosine(raw, prompt) of sentence embeddings in the reward, deltaed "
                                    "like the RMs (0: off).", ge=0, fix="0 switches the term off")
    consistency_model: str = field(default="all-MiniLM-L6-v2", metadata={
        "help": "Sentence encoder of the consistency term: the bundled all-MiniLM-L6-v2, a sentence-transformers dir or hub id."})
    reward_batch_size: int = field(default=32, metadata={"help": "Prompts per RM forward."})
    num_generations: int = option(4, "grpo/rloo: completions per prompt (the group).", ge=2, fix="a group baseline needs two")
    beta: float = option(0.04, "grpo/rloo: KL anchor to the SFT model (>0: text-only RMs are easy to game).", ge=0)
    reward_terms: Optional[str] = option(
        None, "The reward as name:weight,... over the registered terms (aesthetic, pickscore, consistency, "
              "word_recall, repetition, clip_length, length, or your own; see docs/ppo.md). Unset: "
              "(1-alpha)·aesthetic + alpha·pickscore + consistency_weight·consistency (+ length_coef·length).")
    max_input_chars: int = option(2000, "Prompt rows (raw or reference prompt) longer than this are rejected, so one "
                                        "huge row cannot take the machine's memory.", ge=1)

    def __post_init__(self) -> None:
        check_options(self)  # choices and bounds, as declared above
        if self.reward_terms is not None:
            from easynlp_bp.reward.terms import parse_reward_terms, term_class

            for name, _ in parse_reward_terms(self.reward_terms):
                term_class(name)  # unknown names fail here, before any model is loaded


@APPS.register("beautiful_prompt_ppo")
class BeautifulPromptPPOApp(App):
    """PPO / GRPO / RLOO of a BeautifulPrompt SFT model against the combined reward."""

    modes = ("train", "evaluate")
    params_cls = PPOAppParams
    description = "RL stage: PPO with adaptive KL (or rl_algorithm=grpo|rloo through trl), and held-out evaluation."

    config_cls = PPOConfig
    default_checkpoint_dir = DEFAULT_CHECKPOINT_DIR
    components = {
        "model": "BeautifulPromptModel",
        "trainer": "PPOTrainer",
    }

    def _pop_config_keys(self, raw: dict) -> dict:
        """PPO keys of ``user_defined_parameters`` plus the EasyNLP flags that mean a PPO setting."""
        for flag, replacement in UNUSED_FLAGS.items():
            if getattr(self.args, flag) is not None:
                hint = f"; use user_defined_parameters {replacement}=..." if replacement else ""
                raise ValueError(f"--{flag} does not apply to beautiful_prompt_ppo{hint}.")
        for flag, key in FLAG_TO_FIELD.items():
            value = getattr(self.args, flag)
            if value is not None:
                if key in raw and str(raw[key]) != str(value):
                    raise ValueError(f"--{flag}={value} and user_defined_parameters {key}={raw[key]} disagree; give one.")
                raw[key] = value
        raw.setdefault("seed", self.args.random_seed)
        return super()._pop_config_keys(raw)

    def ppo_config(self, sft_dir: str) -> PPOConfig:
        """The trainer's config: the given keys over the preset (embedded default or the paper's defaults)."""
        preset = EMBEDDED_DEFAULT_PRESET if trained_from_config(sft_dir) else {}
        return PPOConfig(**with_preset(preset, self.config_overrides))

    def _sft_dir(self) -> str:
        path = self.params.pretrain_model_name_or_path
        if not Path(path).is_dir():
            raise FileNotFoundError(f"SFT model {path} does not exist. Train one first (easynlp --app_name=beautiful_prompt "
                                    "--mode=train) or pass user_defined_parameters pretrain_model_name_or_path=<SFT dir>.")
        return path

    def _read_prompts(self, source: str) -> list[dict]:
        rows, table = read_prompt_rows(source, raw_column=self.first_sequence, prompt_column=self.second_sequence,
                                       max_chars=self.params.max_input_chars, input_schema=self.args.input_schema,
                                       skip_first_line=self.args.skip_first_line)
        self.log_rejects(table)
        return rows

    def _prompt_tables(self, sft_dir: str) -> tuple[list[dict], list[dict]]:
        tables = self.table_sources("train", 0, 2, "train[,dev] prompt tables") or sft_data_tables(sft_dir)
        train = self._read_prompts(tables[0])
        if not train:
            raise ValueError(f"{tables[0]} has no usable prompt rows.")
        if len(tables) > 1:
            return train, self._read_prompts(tables[1])
        return hold_out(train, self.ppo_config(sft_dir).eval_size, self.args.random_seed, tables[0])

    def reward_spec(self) -> list[tuple[str, float]]:
        """The reward's terms and weights (:func:`easynlp_bp.reward.spec.reward_spec`)."""
        p = self.params
        embedded = trained_from_config(p.pretrain_model_name_or_path) and not set(REWARD_KEYS) & self.given_params
        return reward_spec(p.reward_terms, p.alpha, p.consistency_weight, p.length_coef, embedded_default=embedded)

    def _reward_fn(self, device: str = "cpu"):
        """The combined reward; RM directories are checked here, at start-up."""
        from easynlp_bp.reward.terms import TermContext

        p = self.params
        context = TermContext(p.reward_model_aesthetic, p.reward_model_pickscore, heuristic=p.reward == "heuristic",
                              consistency_model=p.consistency_model, device=device, batch_size=p.reward_batch_size)
        return build_reward(self.reward_spec(), context, delta_reward=p.delta_reward)

    # ----------------------------------------------------------------- modes
    def train(self) -> dict:
        from accelerate import Accelerator

        from easynlp_bp.ppo.checkpoint import resolve_resume
        from easynlp_bp.ppo.training_loop import run_ppo

        sft_dir = self._sft_dir()
        config = self.ppo_config(sft_dir)
        train_rows, dev_rows = self._prompt_tables(sft_dir)
        accelerator = Accelerator()
        reward_fn = self._reward_fn(str(accelerator.device))
        if self.params.rl_algorithm != "ppo":
            from easynlp_bp.ppo.trl_alternatives import train_with_trl

            result = train_with_trl(self.params, config, sft_dir, reward_fn, train_rows, dev_rows, self.checkpoint_dir,
                                    resume_from=self.args.resume_from_checkpoint)
        else:
            bp = self.component("model").from_pretrained(sft_dir)
            trainer = self.component("trainer")(bp.model, None, reward_fn, bp.tokenizer, config, accelerator)
            resume = resolve_resume(self.args.resume_from_checkpoint, self.checkpoint_dir)
            summary = run_ppo(trainer, train_rows, dev_rows, self.checkpoint_dir, resume_from=resume)
            result = {k: v for k, v in summary.items() if k != "history"}
            if not accelerator.is_main_process:
                return result
        self.finish_training(
            CheckpointCard(kind="ppo", base_model=str(sft_dir), generation=seed_generation_settings(),
                           is_stand_in=is_stand_in_checkpoint(sft_dir),
                           data=f"{len(train_rows)} training prompts, {len(dev_rows)} held out",
                           settings=asdict(config) if self.params.rl_algorithm == "ppo" else {},
                           metrics={k: v for k, v in result.items() if isinstance(v, (int, float, str))}),
            sft_dir=sft_dir, ppo_config=asdict(config), reward_terms=self.reward_spec(), train_prompts=len(train_rows),
            dev_prompts=len(dev_rows), result=result)
        logger.info("RL (%s) done: %s", self.params.rl_algorithm,
                    {k: v for k, v in result.items() if k not in ("first_eval", "last_eval")})
        return result

    def evaluate(self) -> dict:
        """Mean reward, reference-prompt reward, KL to the SFT model and length on held-out prompts."""
        from accelerate import Accelerator

        sft_dir = self._sft_dir()
        if not Path(self.checkpoint_dir).is_dir():
            raise FileNotFoundError(f"--checkpoint_dir={self.checkpoint_dir} does not exist; train with --mode=train first.")
        tables = self.args.table_list
        rows = self._read_prompts(tables[0]) if tables else self._prompt_tables(sft_dir)[1]
        accelerator = Accelerator()
        reward_fn = self._reward_fn(str(accelerator.device))
        model_cls = self.component("model")
        policy = model_cls.from_pretrained(self.checkpoint_dir)
        reference = model_cls.from_pretrained(sft_dir).model
        config = replace(self.ppo_config(sft_dir), num_layers_unfrozen=-1, eval_size=max(len(rows), 1))
        trainer = self.component("trainer")(policy.model, reference, reward_fn, policy.tokenizer, config, accelerator)
        results = trainer.evaluate(rows, n_samples=5)
        out_path = self.write_eval_results(results, accelerator.is_main_process)
        if accelerator.is_main_process:
            logger.info("Evaluation written to %s: %s", out_path, {k: v for k, v in results.items() if k != "samples"})
        return results
