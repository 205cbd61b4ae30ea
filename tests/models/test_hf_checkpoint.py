"""Checkpoints work for plain Hugging Face users: transformers 4.46 and 5 load them, generate() samples with
the seed snippet's settings, every checkpoint has a model card, reward models give label-scale scores with
one documented line, and a run shorter than logging_steps still logs a loss curve."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from easynlp_bp.cli import main
from easynlp_bp.prompting.params import seed_generation_settings

TRANSFORMERS_4 = ["transformers==4.46.3", "tokenizers==0.20.3", "huggingface_hub==0.26.5"]
PROBE = "a cat on a sofa"


@pytest.fixture(scope="module")
def short_sft_run(tmp_path_factory, synthetic_pairs, tiny_model_dir):
    """SFT of the tiny local BLOOM on 8 pairs for 4 optimizer steps (logging_steps preset: 10)."""
    root = tmp_path_factory.mktemp("short_sft")
    table = root / "pairs.jsonl"
    table.write_text("".join(json.dumps(p) + "\n" for p in synthetic_pairs[:8]))
    out = root / "model"
    code = main(["--app_name=beautiful_prompt", "--mode=train", f"--tables={table}", f"--checkpoint_dir={out}",
                 "--epoch_num=1", "--micro_batch_size=2", "--learning_rate=1e-3",
                 f"--user_defined_parameters=pretrain_model_name_or_path={tiny_model_dir} min_target_tokens=0 "
                 "short_target_tokens=0"])
    assert code == 0
    return out


def test_short_run_still_logs_a_loss_curve(short_sft_run):
    result = json.loads((short_sft_run / "run_config.json").read_text())["resolved"]["result"]
    assert result["global_step"] == 4
    assert result["final_train_loss"] is not None and result["final_train_loss"] > 0
    state = json.loads(next(short_sft_run.glob("checkpoint-*/trainer_state.json")).read_text())
    assert [e["step"] for e in state["log_history"] if "loss" in e] == [2, 4]


def test_checkpoint_has_sampling_settings_card_and_portable_tokenizer(short_sft_run):
    generation = json.loads((short_sft_run / "generation_config.json").read_text())
    assert {k: generation[k] for k in ("do_sample", "top_k", "top_p", "temperature", "repetition_penalty",
                                        "max_length")} == {"do_sample": True, "top_k": 50, "top_p": 0.95,
                                                           "temperature": 1.0, "repetition_penalty": 1.2,
                                                           "max_length": 384}
    assert json.loads((short_sft_run / "tokenizer_config.json").read_text())["tokenizer_class"] == \
        "PreTrainedTokenizerFast"
    card = (short_sft_run / "README.md").read_text()
    assert "Instruction: Give a simple description of the image to generate a drawing prompt." in card
    assert "pairs.jsonl" in card and "final_train_loss" in card and "repetition_penalty" in card
    assert "Stand-in model" not in card  # a local pretrained base is not the embedded default


def test_embedded_default_card_carries_the_stand_in_warning(tmp_path):
    from easynlp_bp.models.finished_checkpoint import CheckpointCard, render_model_card

    card = render_model_card(CheckpointCard(kind="sft", base_model="tiny-bloom-bp", data="generated",
                                            is_stand_in=True), {"top_k": 50})
    assert "**Stand-in model.**" in card and "alibaba-pai/pai-bloom-1b1-text2prompt-sd-v2" in card
    assert "base_model" not in card.split("---")[1]  # the YAML names no hub base for a random model


def _install_transformers_4(target: Path) -> None:
    marker = target / ".installed"
    if marker.exists():
        return
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), *TRANSFORMERS_4]
    if subprocess.run(pip, capture_output=True).returncode != 0:
        pytest.skip(f"could not pip-install {' '.join(TRANSFORMERS_4)} (no PyPI access?)")
    marker.write_text("\n".join(TRANSFORMERS_4))


LOAD_IN_4 = """
import json, sys, torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer
path, probe = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path).eval()
ids = tok(probe, return_tensors="pt").input_ids
with torch.no_grad():
    logits = model(ids).logits[0, -1]
g = model.generation_config
out = model.generate(ids, max_new_tokens=4, num_return_sequences=2)
print(json.dumps({"version": transformers.__version__, "ids": ids[0].tolist(), "logits": logits[:8].tolist(),
                  "sampling": [g.do_sample, g.top_k, g.top_p, g.repetition_penalty, g.max_length],
                  "generated": list(out.shape)}))
"""


@pytest.mark.slow
def test_transformers_4_46_loads_the_checkpoint_like_5_does(short_sft_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = Path(tempfile.gettempdir()) / "easynlp_bp_transformers446"
    _install_transformers_4(target)
    env = {**os.environ, "PYTHONPATH": str(target), "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, "-c", LOAD_IN_4, str(short_sft_run), PROBE], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    old = json.loads(done.stdout.strip().splitlines()[-1])
    assert old["version"] == "4.46.3"
    tok = AutoTokenizer.from_pretrained(short_sft_run)
    model = AutoModelForCausalLM.from_pretrained(short_sft_run).eval()
    ids = tok(PROBE, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits[0, -1]
    assert old["ids"] == ids[0].tolist()
    assert old["logits"] == pytest.approx(logits[:8].tolist(), abs=1e-4)
    assert old["sampling"] == [True, 50, 0.95, 1.2, 384]
    assert old["generated"][0] == 2


def test_reward_model_one_liner_gives_label_units(tmp_path, tiny_tokenizer):
    from transformers import AutoModelForSequenceClassification, BloomConfig, BloomForSequenceClassification

    from easynlp_bp.models.finished_checkpoint import REWARD_SCORE_ONE_LINER, CheckpointCard, finalize_checkpoint
    from easynlp_bp.models.reward_model import RewardConfig, RewardModel

    config = BloomConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, n_layer=2, n_head=4, num_labels=1,
                         pad_token_id=tiny_tokenizer.pad_token_id, eos_token_id=tiny_tokenizer.eos_token_id)
    torch.manual_seed(0)
    rm = RewardModel(BloomForSequenceClassification(config), tiny_tokenizer,
                     RewardConfig(reward_type="aesthetic", label_mean=6.0, label_std=0.5))
    rm.save_pretrained(str(tmp_path))
    finalize_checkpoint(tmp_path, CheckpointCard(kind="reward", base_model="x", data="d", reward={
        "type": "aesthetic", "label_name": "aesthetic_score", "label_mean": 6.0, "label_std": 0.5}))
    assert REWARD_SCORE_ONE_LINER in (tmp_path / "README.md").read_text()
    prompts = ["a cat, masterpiece", "a dog"]
    expected = RewardModel.from_pretrained(str(tmp_path)).score(prompts, prompts)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    tokenizer = tiny_tokenizer
    texts = [p + tokenizer.eos_token for p in prompts]
    scores = []
    for text in texts:  # one at a time: the plain user's simplest loop
        batch = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            scores.append(eval(REWARD_SCORE_ONE_LINER.split("= ", 1)[1])[0].item())
    assert scores == pytest.approx(expected.tolist(), abs=1e-4)
    assert expected.mean().item() != pytest.approx(0.0, abs=0.5)  # label units, not a z-score


def test_model_card_snippet_runs_as_written(tmp_path, tiny_model_dir):
    """The card's Python block is copied into a fresh interpreter unchanged: it must run and print five prompts
    without a leading space, and the card and config name the training languages."""
    import ast
    import re
    import shutil

    from easynlp_bp.models.finished_checkpoint import CheckpointCard, finalize_checkpoint

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    finalize_checkpoint(model_dir, CheckpointCard(kind="sft", base_model="tiny", data="generated",
                                                  languages=["en", "zh"], generation=seed_generation_settings()))
    card = (model_dir / "README.md").read_text(encoding="utf-8")
    snippet = re.search(r"```python\n(.*?)```", card, re.DOTALL).group(1)
    done = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    printed = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert len(printed) == 5 and all(text == text.strip() for text in printed)
    assert "Trained on prompts in: en, zh" in card
    assert json.loads((model_dir / "config.json").read_text())["beautiful_prompt_languages"] == ["en", "zh"]


def test_chat_template_renders_the_instruction_for_pipeline_users(tmp_path, tiny_model_dir):
    """transformers users: the last user message becomes the instruction template, in apply_chat_template and in
    pipeline("text-generation") with chat input (system and earlier turns are not part of the format)."""
    import shutil

    from transformers import AutoTokenizer, pipeline

    from easynlp_bp.models.finished_checkpoint import CheckpointCard, finalize_checkpoint
    from easynlp_bp.text.template import build_prompt

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    finalize_checkpoint(model_dir, CheckpointCard(kind="sft", base_model="tiny", data="generated",
                                                  generation=seed_generation_settings()))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a castle"},
                {"role": "assistant", "content": "a castle, 8k"}, {"role": "user", "content": " a red fox "}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == build_prompt("a red fox")
    reply = pipeline("text-generation", model=str(model_dir))(messages[-1:], max_new_tokens=5, do_sample=False)
    assert reply[0]["generated_text"][-1]["role"] == "assistant"
