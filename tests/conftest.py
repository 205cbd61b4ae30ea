"""Shared fixtures: tiny BLOOM models built from configs and a tokenizer trained by the project."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_configure(config):
    config.addinivalue_line("markers", "real_data: needs ../shared/data (skipped when it is absent)")
    config.addinivalue_line("markers", "slow: takes more than ~30 s on 2 CPU cores")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data folder; tests using it are skipped (with the reason) when it is absent."""
    data = Path(os.environ.get("EASYNLP_BP_SHARED_DATA", SHARED_DATA))
    if not data.is_dir():
        pytest.skip(f"real data folder {data} is not present")
    return data


@pytest.fixture(scope="session")
def synthetic_pairs() -> list[dict]:
    from easynlp_bp.default.pairs import make_pairs

    # the short ones (raw prompts of up to 18 words): tiny models and short sequence lengths keep tests fast
    return [pair for pair in make_pairs(1400, seed=1) if len(pair["raw_prompt"].split()) <= 18][:600]


@pytest.fixture(scope="session")
def tiny_tokenizer(synthetic_pairs):
    from easynlp_bp.default.tokenizer import train_bpe_tokenizer
    from easynlp_bp.text.template import INSTRUCTION_TEMPLATE

    texts = [INSTRUCTION_TEMPLATE] + [f"{p['raw_prompt']}\n{p['prompt']}" for p in synthetic_pairs]
    return train_bpe_tokenizer(texts, vocab_size=600)


def build_tiny_bloom(tokenizer, hidden_size: int = 32, n_layer: int = 2, n_head: int = 4, seed: int = 0):
    """A randomly initialised BLOOM causal LM matching ``tokenizer`` (no download)."""
    import torch
    from transformers import BloomConfig, BloomForCausalLM

    config = BloomConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, n_layer=n_layer, n_head=n_head,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id, hidden_dropout=0.0, attention_dropout=0.0,
    )
    torch.manual_seed(seed)
    return BloomForCausalLM(config).eval()


@pytest.fixture
def tiny_bloom(tiny_tokenizer):
    return build_tiny_bloom(tiny_tokenizer)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer):
    """A saved HF model directory (safetensors + tokenizer) of a random tiny BLOOM."""
    path = tmp_path_factory.mktemp("tiny_bloom")
    build_tiny_bloom(tiny_tokenizer).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def ppo_sft_dir(tmp_path_factory, tiny_model_dir, synthetic_pairs):
    """A stand-in SFT directory: the tiny random model plus the embedded default's data layout."""
    import shutil

    from easynlp_bp.io import write_table

    path = tmp_path_factory.mktemp("ppo_sft")
    shutil.copytree(tiny_model_dir, path, dirs_exist_ok=True)
    write_table(str(path / "data" / "train.jsonl"), synthetic_pairs[40:200], ["raw_prompt", "prompt"])
    write_table(str(path / "data" / "dev.jsonl"), synthetic_pairs[:40], ["raw_prompt", "prompt"])
    return path


@pytest.fixture(scope="session")
def trained_sft_dir(tmp_path_factory):
    """The embedded default trained briefly through the CLI (shared by CLI, predictor and later stages): 71
    steps in batches of 32, far too few to learn copying (``default_sft_dir`` is the main job's model)."""
    from easynlp_bp.cli import main

    out = tmp_path_factory.mktemp("sft")
    code = main([
        "--app_name=beautiful_prompt", "--mode=train", f"--checkpoint_dir={out}", "--micro_batch_size=32",
        "--epoch_num=3", "--logging_steps=5", "--user_defined_parameters=default_data_size=800",
    ])
    assert code == 0
    return out


@pytest.fixture(scope="session")
def default_sft_dir(tmp_path_factory) -> Path:
    """The embedded default trained exactly as the main job trains it (no flags: the from-scratch preset;
    ~7 minutes on 2 CPU cores, so only slow tests use it)."""
    from easynlp_bp.cli import main

    out = tmp_path_factory.mktemp("default") / "beautiful_prompt"
    assert main(["--app_name=beautiful_prompt", "--mode=train", f"--checkpoint_dir={out}"]) == 0
    return out
