"""Make a saved model directory usable by the whole Hugging Face ecosystem, not only by this project.

After ``save_pretrained`` a directory loads in the transformers that wrote it. SD front-ends pin older
releases (4.46 is common), and plain ``generate()``/``pipeline()`` users read ``generation_config.json``
and the model card, so :func:`finalize_checkpoint` also:

* names a tokenizer class every release knows (transformers 5 writes ``TokenizersBackend``, which 4.x
  cannot import; ``PreTrainedTokenizerFast`` loads the same ``tokenizer.json`` in both);
* writes ``torch_dtype`` beside 5.x's ``dtype`` in ``config.json`` (4.x reads only the former);
* writes the seed snippet's sampling settings into ``generation_config.json``;
* for reward models, puts the label scale into ``config.json`` so one line turns logits into label units;
* writes a model card ``README.md`` (base model, data, template, settings, metrics, warnings).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from easynlp_bp.io.writers import write_text_atomically

logger = logging.getLogger(__name__)

PUBLISHED_MODELS = ("alibaba-pai/pai-bloom-1b1-text2prompt-sd", "alibaba-pai/pai-bloom-1b1-text2prompt-sd-v2")
STAND_IN_WARNING = (
    "**Stand-in model.** This checkpoint is the project's *embedded default*: a tiny BLOOM-architecture model "
    "initialised at random and trained on pairs the project generates itself (and, for reward models, on "
    "labels from a heuristic stand-in scorer, not PickScore or the LAION aesthetic model). It shows that the "
    "pipeline runs end to end; it is not BeautifulPrompt. For real use start from "
    + " or ".join(f"`{m}`" for m in PUBLISHED_MODELS) + " or `bigscience/bloom-1b1` and real pair data."
)
REWARD_SCORE_ONE_LINER = (
    "score = model(**batch).logits[:, 0] * model.config.reward_label_std + model.config.reward_label_mean"
)


@dataclass
class CheckpointCard:
    """What a model card says about one checkpoint (``kind``: sft, ppo or reward)."""

    kind: str
    base_model: str
    data: str
    settings: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    is_stand_in: bool = False
    reward: Optional[dict] = None  # reward_type, label_name, label_mean, label_std
    languages: Optional[list] = None  # generators: the training prompts' languages (the Predictor's language policy)
    generation: Optional[dict] = None  # generators: generation_config.json (prompting.params.seed_generation_settings)


def make_tokenizer_config_portable(directory: str | Path) -> None:
    """Name ``PreTrainedTokenizerFast`` instead of 5.x-only backend class names in ``tokenizer_config.json``."""
    path = Path(directory) / "tokenizer_config.json"
    if not path.is_file() or not (Path(directory) / "tokenizer.json").is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("tokenizer_class") in (None, "TokenizersBackend"):
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        write_text_atomically(str(path), json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def write_chat_template(directory: Path) -> None:
    """``chat_template.jinja``: the last user message rendered into the instruction template, so that
    ``pipeline("text-generation", model=dir)([{"role": "user", "content": "a cat"}])`` beautifies "a cat"
    (transformers reads the file beside the tokenizer; there is no system or assistant turn in this format)."""
    from easynlp_bp.text.template import INSTRUCTION_TEMPLATE

    before, after = INSTRUCTION_TEMPLATE.split("{raw_prompt}")
    template = ("{%- set users = messages | selectattr('role', 'equalto', 'user') | list -%}"
                "{{ " + json.dumps(before) + " + (users[-1]['content'] | trim) + " + json.dumps(after) + " }}")
    write_text_atomically(str(directory / "chat_template.jinja"), template)


def _update_model_config(directory: Path, card: CheckpointCard) -> None:
    path = directory / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if "dtype" in config and "torch_dtype" not in config:
        config["torch_dtype"] = config["dtype"]
    if card.reward is not None:
        config.update({f"reward_{key}": value for key, value in card.reward.items()})
    if card.languages:
        config["beautiful_prompt_languages"] = list(card.languages)
    write_text_atomically(str(path), json.dumps(config, indent=2) + "\n")


def write_generation_config(directory: str | Path, settings: dict) -> dict:
    """Write ``settings`` (sampling keys of ``GenerationConfig``) and the model's special token ids to
    ``generation_config.json``; returns ``settings``."""
    from transformers import GenerationConfig

    directory = Path(directory)
    model_config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    ids = {k: model_config.get(k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    GenerationConfig(**settings, **{k: v for k, v in ids.items() if v is not None}).save_pretrained(directory)
    return settings


def _table(values: dict) -> str:
    if not values:
        return "(none recorded)\n"
    rows = "".join(f"| `{key}` | {json.dumps(value, default=str)} |\n" for key, value in values.items())
    return "| name | value |\n|---|---|\n" + rows


def render_model_card(card: CheckpointCard, generation: dict, model_dir: str | Path = ".") -> str:
    """The ``README.md`` text: YAML metadata, then what, how to use (a snippet that runs as written, loading
    ``model_dir``), data, settings, metrics."""
    from huggingface_hub import ModelCardData

    from easynlp_bp.text.template import INSTRUCTION_TEMPLATE

    is_reward = card.kind == "reward"
    metadata = ModelCardData(
        library_name="transformers", language=list(card.languages or ["en"]), tags=["beautifulprompt", "stable-diffusion", "prompt-engineering"],
        pipeline_tag="text-classification" if is_reward else "text-generation",
        base_model=None if card.is_stand_in else card.base_model,
    )
    title = {"sft": "BeautifulPrompt SFT model", "ppo": "BeautifulPrompt PPO model",
             "reward": f"BeautifulPrompt reward model ({(card.reward or {}).get('type', '')})"}[card.kind]
    parts = [f"---\n{metadata.to_yaml()}\n---\n", f"# {title}\n",
             "Trained with easynlp_bp (BeautifulPrompt, Cao et al., EMNLP 2023 Industry Track).\n"]
    if card.is_stand_in:
        parts.append(STAND_IN_WARNING + "\n")
    parts.append(f"- **Base model:** `{card.base_model}`\n- **Data:** {card.data}\n")
    if is_reward:
        reward = card.reward or {}
        parts.append(
            "## Use\n\nThe network predicts a z-score; `config.json` holds the label scale "
            f"(`{reward.get('label_name')}`: mean {reward.get('label_mean')}, std {reward.get('label_std')}). "
            "With plain transformers, scores in label units are one line:\n\n"
            f"```python\n{REWARD_SCORE_ONE_LINER}\n```\n\n"
            "(`easynlp --app_name=beautiful_prompt_reward --mode=predict` and `RewardModel.score` do this.)\n")
    else:
        parts.append(
            "## Use\n\nThe model continues the instruction template below; `generation_config.json` holds the "
            "seed snippet's sampling settings, so `generate()` and `pipeline()` sample like the paper's demo:\n\n"
            "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f"model_dir = {str(model_dir)!r}  # this folder\n"
            f"TEMPLATE = {INSTRUCTION_TEMPLATE!r}\n"
            "tokenizer = AutoTokenizer.from_pretrained(model_dir)\n"
            "model = AutoModelForCausalLM.from_pretrained(model_dir)\n"
            "prompt = TEMPLATE.format(raw_prompt=\"1 girl\")\n"
            "ids = tokenizer(prompt, return_tensors=\"pt\").input_ids\n"
            "out = model.generate(ids, num_return_sequences=5)\n"
            "print([text.strip() for text in tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)])\n"
            "```\n\n"
            f"Generation settings:\n\n{_table(generation)}\n"
            f"Trained on prompts in: {', '.join(card.languages or ['en'])} (other languages are kept verbatim by "
            "the BeautifulPrompt Predictor, with a warning).\n")
    parts.append(f"## Training settings\n\n{_table(card.settings)}\n## Metrics\n\n{_table(card.metrics)}")
    return "\n".join(parts)


def finalize_checkpoint(directory: str | Path, card: CheckpointCard, model_dir: str | Path | None = None) -> None:
    """Make ``directory`` (already saved with ``save_pretrained``) portable and give it a model card.

    ``model_dir``: where the model will be loaded from, for the card's snippet, when ``directory`` is a staging
    folder (:func:`easynlp_bp.models.folder_checks.staged_model_dir`); default ``directory``. Every file is
    replaced atomically, so a kill here never leaves a torn ``config.json``.

    Raises:
        FileNotFoundError: no ``config.json`` (the model was not saved yet).
        ValueError: a generator card (sft, ppo) without ``generation`` settings.
    """
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"{directory} has no config.json; save the model before finalize_checkpoint.")
    if card.kind != "reward" and card.generation is None:
        raise ValueError(f"A {card.kind} checkpoint needs its sampling settings: pass CheckpointCard(generation="
                         "easynlp_bp.prompting.params.seed_generation_settings()).")
    make_tokenizer_config_portable(directory)
    _update_model_config(directory, card)
    generation: dict[str, Any] = {}
    if card.kind != "reward":
        generation = write_generation_config(directory, card.generation)
        write_chat_template(directory)
    shown = Path(model_dir if model_dir is not None else directory).resolve()
    write_text_atomically(str(directory / "README.md"), render_model_card(card, generation, shown))
    logger.info("%s: portable tokenizer config, generation settings and model card written.", directory)


def is_stand_in_checkpoint(directory: str | Path) -> bool:
    """True when ``directory``'s model card says it is the embedded default (so its descendants say so too)."""
    card = Path(directory) / "README.md"
    return card.is_file() and "**Stand-in model.**" in card.read_text(encoding="utf-8")
