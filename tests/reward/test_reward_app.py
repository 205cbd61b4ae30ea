"""App ``beautiful_prompt_reward`` through the CLI: a tiny RM learns a known function of the text
(Spearman >= 0.8 on held-out rows within a CPU-minute), evaluate/predict, bad input, the embedded default."""
from __future__ import annotations

import json
import math
import random
import re
import time

import pytest
import torch

from easynlp_bp.cli import main

GOOD_WORDS = ["masterpiece", "detailed", "golden", "cinematic", "vivid"]
OTHER_WORDS = ["cat", "dog", "house", "tree", "girl", "river", "car", "sky", "stone", "road"]


def synthetic_rows(n: int, seed: int) -> list[dict]:
    """Label = number of GOOD_WORDS in the prompt + N(0, 0.3) noise; the prompt's other words are filler."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        k = rng.randint(0, len(GOOD_WORDS))
        words = rng.sample(GOOD_WORDS, k) + [rng.choice(OTHER_WORDS) for _ in range(rng.randint(1, 6))]
        rng.shuffle(words)
        rows.append({"prompt": " ".join(words), "aesthetic_score": k + rng.gauss(0.0, 0.3)})
    return rows


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def synthetic_rm(tmp_path_factory):
    """A tiny RM (BLOOM config, hidden 64, 2 layers) trained on the synthetic task through the CLI."""
    root = tmp_path_factory.mktemp("synthetic_rm")
    config_dir = root / "config"
    config_dir.mkdir()
    (config_dir / "config.json").write_text(json.dumps({
        "architectures": ["BloomForCausalLM"], "model_type": "bloom", "hidden_size": 64, "n_layer": 2,
        "n_head": 4, "hidden_dropout": 0.0, "attention_dropout": 0.0, "vocab_size": 300,
    }))
    train = write_jsonl(root / "train.jsonl", synthetic_rows(640, seed=0))
    dev = write_jsonl(root / "dev.jsonl", synthetic_rows(200, seed=1))
    out = root / "rm"
    cpu_start = time.process_time()
    code = main([
        "--app_name=beautiful_prompt_reward", "--mode=train", f"--tables={train},{dev}", f"--checkpoint_dir={out}",
        "--epoch_num=3", "--learning_rate=3e-3", "--micro_batch_size=32", "--logging_steps=10",
        "--save_checkpoint_steps=100000", f"--user_defined_parameters=reward_type=aesthetic pretrain_model_name_or_path={config_dir}",
    ])
    assert code == 0
    return {"dir": out, "dev": dev, "root": root, "train_cpu_s": time.process_time() - cpu_start}


def test_tiny_rm_learns_a_known_function_of_the_text(synthetic_rm, capsys):
    assert synthetic_rm["train_cpu_s"] < 60.0, synthetic_rm["train_cpu_s"]
    code = main(["--app_name=beautiful_prompt_reward", "--mode=evaluate", f"--checkpoint_dir={synthetic_rm['dir']}",
                 f"--tables={synthetic_rm['dev']}"])
    assert code == 0
    results = json.loads((synthetic_rm["dir"] / "eval_results.json").read_text())
    assert json.loads(capsys.readouterr().out) == results  # printed as well as written
    assert results["count"] == 200 and results["rejected"] == 0
    assert results["spearman"] >= 0.8, results
    assert results["pearson"] >= 0.8 and results["mse"] < 0.6  # label variance is about 3
    saved = json.loads((synthetic_rm["dir"] / "reward_config.json").read_text())
    assert saved["reward_type"] == "aesthetic" and saved["label_std"] > 1.0
    assert (synthetic_rm["dir"] / "model.safetensors").is_file() and (synthetic_rm["dir"] / "tokenizer.json").is_file()


def test_predict_scores_in_label_units_and_rejects_bad_rows(synthetic_rm):
    from easynlp_bp.models.reward_model import RewardModel

    table = synthetic_rm["root"] / "to_score.tsv"
    table.write_text("prompt\tid\n"
                     "masterpiece detailed golden cinematic vivid cat\t1\n"
                     "   \t2\n"
                     "dog tree\t3\n"
                     "only-one-column\n", encoding="utf-8")
    out = synthetic_rm["root"] / "scores.jsonl"
    code = main(["--app_name=beautiful_prompt_reward", "--mode=predict", f"--checkpoint_dir={synthetic_rm['dir']}",
                 f"--tables={table}", f"--outputs={out}", "--append_cols=id,prompt", "--output_schema=score"])
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    rejects = [json.loads(line) for line in (synthetic_rm["root"] / "scores.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["1", "3"]
    assert [(r["row"], r["reason"]) for r in rejects] == [
        (3, "field 'prompt' is empty"), (5, "expected 2 columns (prompt, id), found 1")]
    assert len(rows) + len(rejects) == 4  # nothing lost
    rm = RewardModel.from_pretrained(str(synthetic_rm["dir"]))
    expected = rm.score([""] * 2, [rows[0]["prompt"], rows[1]["prompt"]])
    assert [r["score"] for r in rows] == pytest.approx(expected.tolist(), abs=1e-5)
    assert rows[0]["score"] > rows[1]["score"] + 2.0  # five good words against none


def test_bad_labels_and_empty_prompts_become_rejects_with_their_row(synthetic_rm, tmp_path):
    from easynlp_bp.appzoo.beautiful_prompt_reward import BeautifulPromptRewardApp
    from easynlp_bp.cli import parse_args

    table = tmp_path / "bad.tsv"
    table.write_text("prompt\taesthetic_score\n"
                     "a cat\t5.5\n"
                     "a dog\tnan\n"
                     "a fox\tinf\n"
                     "a owl\tgood\n"
                     "\t4.0\n"
                     "a cow\t\n"
                     "a bee\t6\n"
                     "a elk\t1e308\n"     # overflows every mean and MSE: a broken row, not "all labels equal"
                     "a gnu\t-1e308\n", encoding="utf-8")
    args, _ = parse_args(["--app_name=beautiful_prompt_reward", f"--tables={table}", f"--checkpoint_dir={tmp_path / 'rm'}"])
    train_rows, dev_rows, accounting = BeautifulPromptRewardApp(args)._training_tables()
    assert [(r["prompt"], r["aesthetic_score"]) for r in train_rows] == [("a cat", 5.5), ("a bee", 6.0)]
    assert accounting[str(table)] == {"read": 9, "kept": 2, "rejected": 7}
    rejects = [json.loads(line) for line in (tmp_path / "rm" / "rejects.bad.tsv.jsonl").read_text().splitlines()]
    assert [(r["row"], r["reason"]) for r in rejects] == [
        (3, "field 'aesthetic_score'='nan' is not finite"),
        (4, "field 'aesthetic_score'='inf' is not finite"),
        (5, "field 'aesthetic_score'='good' is not a number"),
        (6, "field 'prompt' is empty"),
        (7, "field 'aesthetic_score' is missing"),
        (9, "field 'aesthetic_score'='1e308' is out of range (|value| <= 1e+12); check the column"),
        (10, "field 'aesthetic_score'='-1e308' is out of range (|value| <= 1e+12); check the column"),
    ]

    # Evaluate reads labels the same way: the bad rows are rejected, the good ones scored.
    code = main(["--app_name=beautiful_prompt_reward", "--mode=evaluate", f"--checkpoint_dir={synthetic_rm['dir']}",
                 f"--tables={table}", f"--outputs={tmp_path / 'eval.json'}"])
    assert code == 0
    results = json.loads((tmp_path / "eval.json").read_text())
    assert (results["count"], results["rejected"], results["read"]) == (2, 7, 9)
    assert results["mse"] is not None and math.isfinite(results["mse"])


@pytest.mark.parametrize("argv, message", [
    (["--user_defined_parameters=reward_type=clip"], "reward_type='clip' is unknown; use one of aesthetic, pickscore"),
    (["--tables={pairs}"], r"missing column\(s\) aesthetic_score; found raw_prompt, prompt"),
    (["--tables={pairs}", "--user_defined_parameters=reward_type=pickscore"], r"missing column\(s\) pick_score"),
    (["--tables={pairs}", "--label_name=score"], r"missing column\(s\) score"),
    (["--user_defined_parameters=rewardtype=aesthetic"], "Unknown --user_defined_parameters key"),
])
def test_bad_usage_is_a_clear_error(tmp_path, capsys, argv, message):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [{"raw_prompt": "a cat", "prompt": "a cat, 8k"}])
    argv = [a.format(pairs=pairs) for a in argv]
    code = main(["--app_name=beautiful_prompt_reward", "--mode=train", f"--checkpoint_dir={tmp_path / 'rm'}", *argv])
    assert code == 2
    assert re.search(message, capsys.readouterr().err)


def test_reward_type_mismatch_and_missing_model_are_errors(synthetic_rm, tmp_path, capsys):
    code = main(["--app_name=beautiful_prompt_reward", "--mode=evaluate", f"--checkpoint_dir={synthetic_rm['dir']}",
                 "--user_defined_parameters=reward_type=pickscore"])
    assert code == 2
    assert "holds a aesthetic reward model, but reward_type=pickscore was given" in capsys.readouterr().err
    code = main(["--app_name=beautiful_prompt_reward", "--mode=predict", f"--checkpoint_dir={tmp_path / 'none'}",
                 f"--tables={synthetic_rm['dev']}"])
    assert code == 2
    assert "No trained reward model at" in capsys.readouterr().err


def test_embedded_default_trains_a_pickscore_rm_on_heuristic_labels(tmp_path, caplog):
    """No --tables: the default pairs are labelled by the heuristic stand-in, and the log says so."""
    out = tmp_path / "rm_ps"
    with caplog.at_level("WARNING"):
        code = main(["--app_name=beautiful_prompt_reward", "--mode=train", f"--checkpoint_dir={out}",
                     "--epoch_num=1", "--sequence_length=64",
                     "--user_defined_parameters=reward_type=pickscore default_data_size=24"])
    assert code == 0
    assert "HEURISTIC stand-in scorer" in caplog.text and "not image-based" in caplog.text
    config = json.loads((out / "reward_config.json").read_text())
    assert (config["reward_type"], config["label_name"], config["max_length"]) == ("pickscore", "pick_score", 64)
    assert 19.0 < config["label_mean"] < 22.0
    dev = [json.loads(line) for line in (out / "data" / "dev.jsonl").read_text().splitlines()]
    train = (out / "data" / "train.jsonl").read_text().splitlines()
    assert len(dev) == 60 and len(train) == 84 and set(dev[0]) == {"raw_prompt", "prompt", "aesthetic_score", "pick_score"}
    run = json.loads((out / "run_config.json").read_text())
    assert run["resolved"]["data"]["labels"] == "heuristic stand-in"
    assert math.isfinite(run["resolved"]["result"]["dev"]["mse"])
    from easynlp_bp.models.reward_model import RewardModel

    rm = RewardModel.from_pretrained(str(out), reward_type="pickscore")
    assert rm.tokenizer.pad_token_id != rm.tokenizer.eos_token_id
    assert rm.score(["a cat"], ["a cat, 8k"]).dtype == torch.float32


@pytest.mark.parametrize("rank, writes", [("0", True), ("1", False)])
def test_only_the_first_process_writes_the_labelled_default_rows(tmp_path, monkeypatch, rank, writes):
    from easynlp_bp.reward.label_tables import embedded_default_reward_rows

    monkeypatch.setenv("RANK", rank)
    train, dev, _ = embedded_default_reward_rows(40, seed=0, checkpoint_dir=str(tmp_path))
    assert train and dev
    assert (tmp_path / "data" / "train.jsonl").exists() is writes
