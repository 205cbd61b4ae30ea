"""The RL stage earns its place: the main job's PPO model beats its SFT start on real prompts it never saw.

Runs the README's main job after SFT (the two reward models and PPO with the embedded default's preset, exactly as
``scripts/quickstart.sh`` does) and compares the PPO model with its SFT start by the run's own reward, paired over
prompts (``benchmarks/bench_rl_gain.py``: predict defaults, one output each, guard off). ~10 minutes on 2 cores.
"""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETS = ("partiprompts", "t2i_compbench")


def _bench():
    spec = importlib.util.spec_from_file_location("bench_rl_gain", ROOT / "benchmarks" / "bench_rl_gain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.real_data
def test_main_job_ppo_beats_its_sft_start_on_real_prompts(tmp_path, default_sft_dir, shared_data):
    from easynlp_bp.cli import main

    for kind in ("aesthetic", "pickscore"):
        assert main(["--app_name=beautiful_prompt_reward", "--mode=train", f"--checkpoint_dir={tmp_path}/reward_{kind}",
                     f"--user_defined_parameters=reward_type={kind} pretrain_model_name_or_path={default_sft_dir}"]) == 0
    ppo = tmp_path / "beautiful_prompt_ppo"
    assert main(["--app_name=beautiful_prompt_ppo", "--mode=train", f"--checkpoint_dir={ppo}",
                 f"--user_defined_parameters=pretrain_model_name_or_path={default_sft_dir} "
                 f"reward_model_aesthetic={tmp_path}/reward_aesthetic reward_model_pickscore={tmp_path}/reward_pickscore"]) == 0
    run = json.loads((ppo / "run_config.json").read_text())
    assert run["resolved"]["ppo_config"]["group_size"] == 4  # the embedded default's preset
    out = tmp_path / "gain.json"
    assert _bench().main([f"--sft_dir={default_sft_dir}", f"--ppo_dir={ppo}", f"--data={shared_data}", "--limit=600",
                          f"--sets={','.join(SETS)}", f"--output={out}"]) == 0
    result = json.loads(out.read_text())
    for name in SETS:
        report = result["sets"][name]
        assert report["reward"]["t"] >= 3, (name, report["reward"])
        assert report["ppo"]["empty"] == 0
        # words kept whole: PPO still loses a few (1-3 points measured, docs/ppo.md; a rise is the aim, not yet
        # reached), so this guards against more drift than that, not for the rise
        assert report["ppo"]["all_words_kept"] >= report["sft"]["all_words_kept"] - 0.04, (name, report)
