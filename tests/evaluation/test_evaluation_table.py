"""The evaluation: methods, offline text metrics, the paper table + grids for 2 methods x 3 prompts, real prompt sets."""
from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image

from easynlp_bp.cli import main
from easynlp_bp.evaluation.methods import MethodSpec, PromptMethod, parse_methods
from easynlp_bp.text.metrics import clip_token_counter, content_words, is_nsfw, subject_preservation, text_metrics
from easynlp_bp.text.sentence_encoder import load_sentence_encoder
from easynlp_bp.pipelines.scoring.scorers import AestheticMLP
from fixtures.tiny_diffusion import save_tiny_clip, save_tiny_stable_diffusion


def test_parse_methods():
    specs = parse_methods("raw, sft=predictor:out/sft ,magic=causal_lm:Gustavosta/MagicPrompt-Stable-Diffusion,out/ppo")
    assert [(s.name, s.kind, s.source) for s in specs] == [
        ("raw", "raw", None), ("sft", "predictor", "out/sft"),
        ("magic", "causal_lm", "Gustavosta/MagicPrompt-Stable-Diffusion"), ("ppo", "predictor", "out/ppo")]
    with pytest.raises(ValueError, match="each once"):
        parse_methods("raw,raw")
    with pytest.raises(ValueError, match="needs a model dir or id"):
        MethodSpec("sft", "predictor")


def test_text_metrics_by_hand():
    count = clip_token_counter()
    assert count("A person riding a motorcycle") == 7  # OpenAI CLIP BPE: 5 tokens + BOS + EOS
    raw = ["a cat", "a dog"]
    prompts = ["a cat, a cat, oil painting", "a dog " + "masterpiece, " * 80]
    metrics = text_metrics(raw, prompts, nsfw_words={"oil painting", "gore"})
    assert metrics["count"] == 2 and metrics["over_77_rate"] == 0.5
    assert metrics["nsfw_rate"] == 0.5 and metrics["consistency"] is None
    assert (metrics["subject_all"], metrics["subject_half"], metrics["subject_mean"]) == (1.0, 1.0, 1.0)
    words = "a cat, a cat, oil painting".split()
    assert metrics["distinct_1"] == pytest.approx(len(set(words) | {"a", "dog", "masterpiece,"}) / (len(words) + 82))
    assert is_nsfw("Some GORE here", {"gore"}) and not is_nsfw("gorgeous", {"gore"})
    with pytest.raises(ValueError, match="must pair up"):
        text_metrics(raw, prompts[:1])


def test_subject_preservation_counts_content_words_by_hand():
    raw = ["a cat on the beach", "Two cups of coffee. The other has latte art.", "1 girl", "a the of"]
    prompts = [
        "an ancient bridge on the beach, 8k",          # cat dropped: 1 of 2 kept
        "two cups of coffee, latte art, masterpiece",  # two cups coffee latte art kept; "other" dropped: 5/6
        "1 boy, cinematic lighting",                   # girl dropped: 1 of 2 ("1" is a content word)
        "masterpiece",                                 # no content words: counts as kept
    ]
    assert content_words(raw[1]) == ["two", "cups", "coffee", "other", "latte", "art"]
    metrics = subject_preservation(raw, prompts)
    assert metrics == pytest.approx({"subject_all": 0.25, "subject_half": 1.0,
                                     "subject_mean": (0.5 + 5 / 6 + 0.5 + 1.0) / 4})
    assert subject_preservation(["a cat"], ["a catfish"])["subject_all"] == 0.0  # whole words only
    assert text_metrics(raw, prompts)["subject_mean"] == pytest.approx(metrics["subject_mean"])


def test_causal_lm_expander_continues_the_raw_prompt(tiny_model_dir):
    method = PromptMethod(MethodSpec("lm", "causal_lm", str(tiny_model_dir)), max_new_tokens=5, device="cpu")
    outputs = method.expand(["a cat", "a dog"])
    assert [o.startswith(r) for o, r in zip(outputs, ["a cat", "a dog"])] == [True, True]
    assert PromptMethod(MethodSpec("raw", "raw")).expand(["x"]) == ["x"]


@pytest.fixture(scope="module")
def tiny_eval_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_models")
    torch.manual_seed(0)
    torch.save(AestheticMLP(input_size=32).state_dict(), root / "aesthetic.pth")
    return save_tiny_stable_diffusion(root / "sd"), save_tiny_clip(root / "clip"), root / "aesthetic.pth"


def test_eval_app_table_and_grids_for_two_methods_three_prompts(tmp_path, tiny_eval_models, tiny_model_dir):
    sd, clip, weights = tiny_eval_models
    table = tmp_path / "test.tsv"
    table.write_text("raw_prompt\na cat\n1 girl\na castle on a hill\n", encoding="utf-8")
    words = tmp_path / "nsfw.txt"
    words.write_text("castle\n", encoding="utf-8")
    out = tmp_path / "eval"
    udp = (f"methods=raw,sft=predictor:{tiny_model_dir} max_new_tokens=6 pretrain_model_name_or_path={sd} "
           f"num_inference_steps=2 height=32 width=32 num_seeds=2 device=cpu scorers=pickscore,aesthetic,clipscore "
           f"pickscore_model={clip} aesthetic_clip_model={clip} aesthetic_weights={weights} clipscore_model={clip} "
           f"consistency=false nsfw_wordlists={words}")
    assert main(["--app_name=beautiful_prompt_eval", "--mode=evaluate", f"--tables={table}", f"--outputs={out}",
                 f"--user_defined_parameters={udp}"]) == 0
    report = json.loads((out / "eval_table.json").read_text())
    rows = {r["method"]: r for r in report["table"]}
    assert list(rows) == ["raw", "sft"] and report["num_prompts"] == 3
    per_prompt = [json.loads(line) for line in (out / "per_prompt.jsonl").read_text().splitlines()]
    for method, row in rows.items():
        for column in ("pick_score", "aesthetic_score", "clip_score"):
            assert math.isfinite(row[column])
            assert row[column] == math.fsum(p[f"{column}/{method}"] for p in per_prompt) / 3
    assert rows["raw"]["nsfw_rate"] == pytest.approx(1 / 3)  # "a castle on a hill"
    assert rows["raw"]["subject_all"] == 1.0 and 0.0 <= rows["sft"]["subject_mean"] <= 1.0
    assert rows["raw"]["clip_tokens_mean"] == pytest.approx((4 + 5 + 14) / 3 + 2)  # char-level pipeline tokenizer: non-space chars + BOS/EOS
    markdown = (out / "eval_table.md").read_text()
    assert markdown.splitlines()[0].startswith("| Method | PickScore | Aesthetic | CLIPScore | Consistency")
    assert "| raw | " in markdown and "| sft | " in markdown
    grids = sorted((out / "grids").glob("*.png"))
    assert [g.name for g in grids] == ["0000.png", "0001.png", "0002.png"]
    assert Image.open(grids[0]).size == (120 + 2 * 32, 16 + 2 * 32)  # label + 2 seeds wide, title + 2 methods high
    items = json.loads((out / "ab" / "items.json").read_text())
    assert len(items) == 3 and {items[0]["left"]["method"], items[0]["right"]["method"]} == {"raw", "sft"}
    assert (out / "ab" / items[0]["left"]["image"]).is_file()


def test_eval_app_refuses_a_bad_ab_pair(tmp_path, tiny_model_dir):
    table = tmp_path / "test.tsv"
    table.write_text("raw_prompt\na cat\n", encoding="utf-8")
    udp = f"methods=raw,sft=predictor:{tiny_model_dir} scorers=none consistency=false ab_methods=raw,ppo max_new_tokens=4"
    assert main(["--app_name=beautiful_prompt_eval", "--mode=evaluate", f"--tables={table}",
                 f"--outputs={tmp_path / 'eval'}", f"--user_defined_parameters={udp}"]) == 2


def real_prompt_sets(shared_data, n: int = 24) -> dict[str, list[str]]:
    parti = (shared_data / "partiprompts" / "PartiPrompts.tsv").read_text(encoding="utf-8").splitlines()[1:]
    tifa = json.loads((shared_data / "tifa" / "tifa_v1.0_text_inputs.json").read_text(encoding="utf-8"))
    return {"parti": [line.split("\t")[0] for line in parti[:: len(parti) // n]][:n],
            "tifa": [item["caption"] for item in tifa[:: len(tifa) // n]][:n]}


@pytest.mark.slow
@pytest.mark.real_data
def test_offline_text_metrics_on_partiprompts_and_tifa(shared_data, default_sft_dir):
    """Offline text metrics of the main job's SFT model (it copies, then adds modifiers) on real prompt sets."""
    encoder = load_sentence_encoder()
    nsfw = {line.strip().lower() for line in (shared_data / "nsfw_wordlists" / "ldnoobw_en.txt").read_text().splitlines()
            if line.strip()}
    sft = PromptMethod(MethodSpec("sft", "predictor", str(default_sft_dir)), max_new_tokens=48, device="cpu")
    for name, raw_prompts in real_prompt_sets(shared_data).items():
        baseline = text_metrics(raw_prompts, raw_prompts, encoder=encoder, nsfw_words=nsfw)
        assert baseline["count"] == 24 and baseline["consistency"] == pytest.approx(1.0, abs=1e-4)
        assert baseline["over_77_rate"] == 0.0 and baseline["nsfw_rate"] == 0.0
        beautified = sft.expand(raw_prompts)
        metrics = text_metrics(raw_prompts, beautified, encoder=encoder, nsfw_words=nsfw)
        assert 0.3 <= metrics["consistency"] < 0.99  # the model adds modifiers, so not identical
        assert metrics["clip_tokens_mean"] > baseline["clip_tokens_mean"]  # beautified prompts are longer
        assert 0 < metrics["distinct_2"] <= 1
