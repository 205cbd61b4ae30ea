"""Scorers on a tiny CLIPModel, the LAION aesthetic MLP, and the beautiful_prompt_score app (labels, resume)."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from easynlp_bp.cli import main
from easynlp_bp.pipelines.scoring.generation import GenerationConfig, ImageGenerator
from easynlp_bp.pipelines.scoring.scorers import (
    SCORERS,
    AestheticMLP,
    AestheticScorer,
    ClipEmbedder,
    ScorerOptions,
    build_scorers,
    load_aesthetic_mlp,
)
from fixtures.tiny_diffusion import save_tiny_clip, save_tiny_stable_diffusion

REAL_AESTHETIC = "aesthetic_predictor/sac+logos+ava1-l14-linearMSE.pth"


@pytest.fixture(scope="module")
def tiny_sd_dir(tmp_path_factory):
    return save_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny_sd"))


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="module")
def tiny_aesthetic_weights(tmp_path_factory):
    """A LAION-shaped MLP for the tiny CLIP's 32-d embeddings, saved the way LAION saved theirs."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("aesthetic") / "tiny_aesthetic.pth"
    torch.save(AestheticMLP(input_size=32).state_dict(), path)
    return path


def noise_images(n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(n)]


def test_scorers_are_registered_and_say_what_they_score_against():
    assert {"pickscore", "aesthetic", "clipscore"} <= set(SCORERS.names())
    assert SCORERS.get("pickscore").text_role == "raw_prompt"
    assert SCORERS.get("clipscore").text_role == "raw_prompt"
    assert SCORERS.get("aesthetic").text_role is None
    with pytest.raises(KeyError, match="Did you mean 'pickscore'"):
        SCORERS.get("pickscor")


def test_pickscore_and_clipscore_are_the_clip_formulas(tiny_clip_dir):
    pick, clip = build_scorers(["pickscore", "clipscore"], {
        "pickscore": ScorerOptions(model=str(tiny_clip_dir), device="cpu"),
        "clipscore": ScorerOptions(model=str(tiny_clip_dir), device="cpu"),
    })
    images, texts = noise_images(3), ["a cat", "a dog", "a red car"]
    embedder = pick.embedder
    cosine = (embedder.embed_images(images) * embedder.embed_texts(texts)).sum(-1)
    assert torch.allclose(embedder.embed_images(images).norm(dim=-1), torch.ones(3), atol=1e-5)
    expected_pick = embedder.model.logit_scale.exp().item() * cosine
    assert np.allclose(pick.score(images, texts), expected_pick.numpy(), atol=1e-4)
    assert np.allclose(clip.score(images, texts), (100 * cosine.clamp(min=0)).numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="needs one text"):
        pick.score(images, texts[:2])


def test_aesthetic_mlp_loads_strictly(tmp_path, tiny_aesthetic_weights, tiny_clip_dir):
    mlp = load_aesthetic_mlp(tiny_aesthetic_weights)
    assert mlp.input_size == 32 and not mlp.training
    state = torch.load(tiny_aesthetic_weights, weights_only=True)
    state["layers.8.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match="does not match the LAION aesthetic MLP"):
        load_aesthetic_mlp(tmp_path / "extra.pth")
    torch.save({"weight": torch.zeros(1, 768)}, tmp_path / "v1.pth")
    with pytest.raises(ValueError, match="is not the LAION aesthetic MLP state dict"):
        load_aesthetic_mlp(tmp_path / "v1.pth")
    with pytest.raises(FileNotFoundError, match="aesthetic_weights"):
        load_aesthetic_mlp(tmp_path / "missing.pth")
    embedder = ClipEmbedder.from_pretrained(str(tiny_clip_dir), None, "cpu", 4)
    with pytest.raises(ValueError, match="takes 768-d embeddings but the CLIP model gives 32-d"):
        AestheticScorer(embedder, AestheticMLP(768))


@pytest.mark.real_data
def test_real_laion_aesthetic_weights(shared_data, tmp_path):
    mlp = load_aesthetic_mlp(shared_data / REAL_AESTHETIC)
    assert sorted(mlp.state_dict()) == sorted(torch.load(shared_data / REAL_AESTHETIC, map_location="cpu", weights_only=True))
    torch.manual_seed(0)
    unit = torch.nn.functional.normalize(torch.randn(16, 768), dim=-1)
    with torch.no_grad():
        scores = mlp(unit)
    assert scores.shape == (16,) and torch.isfinite(scores).all()
    assert 0 < scores.std() and scores.abs().max() < 100
    # Through the scorer: a ViT-L/14-shaped (768-d) tiny CLIP feeds the real head.
    clip_dir = save_tiny_clip(tmp_path / "clip768", projection_dim=768)
    scorer = AestheticScorer.from_options(ScorerOptions(model=str(clip_dir), weights=str(shared_data / REAL_AESTHETIC),
                                                        device="cpu"))
    assert all(math.isfinite(s) for s in scorer.score(noise_images(2)))


def write_pairs(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


PAIRS = [
    {"raw_prompt": "a cat", "prompt": "a cat on a sofa, oil painting, warm light"},
    {"raw_prompt": "1 girl", "prompt": "1 girl, portrait, detailed face, studio lighting"},
    {"raw_prompt": "a castle", "prompt": "a castle on a hill, " * 5 + "sunset"},  # > 77 tokens: chunked
    {"raw_prompt": "a boat", "prompt": "a boat at sea, storm, dramatic clouds"},
]


def score_argv(tiny_sd_dir, tiny_clip_dir, weights, table, outputs, extra: str = "") -> list[str]:
    udp = (f"pretrain_model_name_or_path={tiny_sd_dir} num_inference_steps=2 height=32 width=32 num_seeds=2 "
           f"device=cpu scorers=pickscore,aesthetic pickscore_model={tiny_clip_dir} "
           f"aesthetic_clip_model={tiny_clip_dir} aesthetic_weights={weights} {extra}")
    return ["--app_name=beautiful_prompt_score", "--mode=predict", f"--tables={table}", f"--outputs={outputs}",
            f"--user_defined_parameters={udp}"]


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def test_score_app_writes_exact_means_per_seed_values_and_rejects(tmp_path, tiny_sd_dir, tiny_clip_dir,
                                                                  tiny_aesthetic_weights):
    table = write_pairs(tmp_path / "pairs.jsonl", PAIRS[:3] + [{"raw_prompt": "empty", "prompt": ""}])
    outputs = tmp_path / "labels.jsonl"
    assert main(score_argv(tiny_sd_dir, tiny_clip_dir, tiny_aesthetic_weights, table, outputs)) == 0
    rows = read_jsonl(outputs)
    assert [r["raw_prompt"] for r in rows] == ["a cat", "1 girl", "a castle"]
    assert list(rows[0]) == ["raw_prompt", "prompt", "pick_score", "pick_score_per_seed", "aesthetic_score",
                             "aesthetic_score_per_seed", "seeds", "clip_tokens"]
    for row in rows:
        assert row["seeds"] == [0, 1] and len(row["pick_score_per_seed"]) == 2
        assert row["pick_score"] == math.fsum(row["pick_score_per_seed"]) / 2  # exact, not approximately
        assert row["aesthetic_score"] == math.fsum(row["aesthetic_score_per_seed"]) / 2
    assert rows[2]["clip_tokens"] > 77
    rejects = read_jsonl(f"{outputs}.rejects.jsonl")
    assert [(r["row"], r["reason"]) for r in rejects] == [(4, "field 'prompt' is empty")]
    # The per-seed values are the scores of the images that the generator makes for that seed, against the raw prompt.
    generator = ImageGenerator.from_config(GenerationConfig(model=str(tiny_sd_dir), num_inference_steps=2,
                                                            height=32, width=32, num_seeds=2, device="cpu"))
    pick, = build_scorers(["pickscore"], {"pickscore": ScorerOptions(model=str(tiny_clip_dir), device="cpu")})
    images = generator.generate(PAIRS[1]["prompt"]).images
    assert np.allclose(pick.score(images, ["1 girl"] * 2), rows[1]["pick_score_per_seed"], atol=1e-4)


def test_resume_skips_done_rows_drops_a_torn_line_and_refuses_other_input(tmp_path, tiny_sd_dir, tiny_clip_dir,
                                                                         tiny_aesthetic_weights):
    table = write_pairs(tmp_path / "pairs.jsonl", PAIRS)
    outputs = tmp_path / "labels.jsonl"
    argv = score_argv(tiny_sd_dir, tiny_clip_dir, tiny_aesthetic_weights, table, outputs)
    assert main(argv) == 0
    complete = read_jsonl(outputs)
    shard = Path(f"{outputs}.parts") / "shard-00000.jsonl"
    lines = shard.read_text(encoding="utf-8").splitlines(keepends=True)
    # A killed run: rows 0 and 2 finished, row 3 was half written.
    shard.write_text(lines[0] + lines[2] + lines[3][:40], encoding="utf-8")
    outputs.unlink()
    from easynlp_bp.appzoo.beautiful_prompt_score import BeautifulPromptScoreApp
    from easynlp_bp.cli import parse_args

    result = BeautifulPromptScoreApp(parse_args(argv)[0]).run()
    assert (result["already_done"], result["labeled_now"]) == (2, 2)
    assert read_jsonl(outputs) == complete  # nothing lost, nothing duplicated, same values, input order
    assert len(read_jsonl(shard)) == 4
    write_pairs(table, [PAIRS[1], PAIRS[0], PAIRS[2], PAIRS[3]])
    assert main(argv) == 2  # progress from another input is refused, not mixed in


@pytest.mark.slow  # a fresh interpreter imports torch + diffusers: ~20 s alone, more on a busy machine
def test_killed_process_resumes_without_redoing_rows(tmp_path, tiny_sd_dir, tiny_clip_dir, tiny_aesthetic_weights):
    """SIGKILL a real run after its first finished row; the rerun labels only the rest."""
    rows = PAIRS + [{"raw_prompt": f"a tree {i}", "prompt": f"a tree {i}, autumn, misty forest"} for i in range(4)]
    table = write_pairs(tmp_path / "pairs.jsonl", rows)
    outputs = tmp_path / "labels.jsonl"
    argv = score_argv(tiny_sd_dir, tiny_clip_dir, tiny_aesthetic_weights, table, outputs,
                      extra="num_seeds=1").copy()
    argv[-1] = argv[-1].replace("num_seeds=2 ", "")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, "-m", "easynlp_bp.cli", *argv], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shard = Path(f"{outputs}.parts") / "shard-00000.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not shard.exists() or shard.read_text().count("\n") < 1):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = shard.read_text().count("\n")
    assert 1 <= done_before < len(rows) and not outputs.exists()
    from easynlp_bp.appzoo.beautiful_prompt_score import BeautifulPromptScoreApp
    from easynlp_bp.cli import parse_args

    result = BeautifulPromptScoreApp(parse_args(argv)[0]).run()
    assert result["already_done"] == done_before
    assert result["already_done"] + result["labeled_now"] == len(rows)
    labeled = read_jsonl(outputs)
    assert [r["raw_prompt"] for r in labeled] == [r["raw_prompt"] for r in rows]
    assert sorted(r["_index"] for r in read_jsonl(shard)) == list(range(len(rows)))


def test_two_shards_then_resume_with_one_process_merge_in_input_order(tmp_path, tiny_sd_dir, tiny_clip_dir):
    """Rank 0 of a 2-process run finishes, rank 1 dies at once; a 1-process rerun does only rank 1's rows."""
    from easynlp_bp.pipelines.scoring.labeling import LabelingConfig, label_columns, label_rows, merge_shards

    generator = ImageGenerator.from_config(GenerationConfig(model=str(tiny_sd_dir), num_inference_steps=2,
                                                            height=32, width=32, num_seeds=1, device="cpu"))
    scorers = build_scorers(["clipscore"], {"clipscore": ScorerOptions(model=str(tiny_clip_dir), device="cpu")})
    config = LabelingConfig(output=str(tmp_path / "labels.jsonl"))
    assert label_rows(PAIRS, generator, scorers, config, rank=0, world=2) == {
        "assigned": 2, "already_done": 0, "labeled_now": 2}
    with pytest.raises(ValueError, match="not labeled yet"):
        merge_shards(len(PAIRS), ["raw_prompt"], config.output)
    assert label_rows(PAIRS, generator, scorers, config, rank=0, world=1) == {
        "assigned": 4, "already_done": 2, "labeled_now": 2}
    merged = merge_shards(len(PAIRS), ["raw_prompt", "prompt"] + label_columns(scorers), config.output)
    assert [r["_index"] for r in merged] == [0, 1, 2, 3]
    assert [r["raw_prompt"] for r in read_jsonl(config.output)] == [p["raw_prompt"] for p in PAIRS]
