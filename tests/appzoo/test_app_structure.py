"""App structure: six app names, their --help keys, pluggable classes swapped from outside the package, EasyNLP's
lookups, the layout measurements (no upward imports, no import circles, no long functions) and one-way config."""
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from easynlp_bp.appzoo import APPS
from easynlp_bp.cli import main

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = "plugins.user_classes"
APP_NAMES = ["beautiful_prompt", "beautiful_prompt_data", "beautiful_prompt_eval", "beautiful_prompt_ppo",
             "beautiful_prompt_reward", "beautiful_prompt_score"]


def test_the_six_app_names_are_the_contract():
    assert APPS.names() == APP_NAMES


@pytest.mark.parametrize("app_name", APP_NAMES)
def test_help_lists_every_key_of_the_app(app_name, capsys):
    assert main([f"--app_name={app_name}", "--help"]) == 0
    out = capsys.readouterr().out
    app = APPS.get(app_name)
    keys = [f.name for cls in app.help_params() for f in dataclasses.fields(cls)]
    keys += [f"{kind}_class" for kind in app.components]
    assert keys, app_name
    missing = [key for key in keys if f"  {key}=" not in out]
    assert not missing, missing
    assert "=(required)" not in out


def test_layout_measurements():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "architecture_report.py"), "--check"],
                          capture_output=True, text=True)
    report = json.loads(proc.stdout)
    assert report["upward_imports"] == []
    assert report["import_cycles"] == []
    assert report["folder_cycles"] == [], report["folder_cycle_imports"]
    assert report["functions_over_60_lines"] == []
    assert report["app_modules_over_200_lines"] == [], report["app_module_lines"]
    assert proc.returncode == 0


def test_architecture_report_sees_an_upward_import(tmp_path):
    """The measuring script itself must catch a violation (run on a copy with one planted)."""
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "easynlp_bp", copy / "easynlp_bp", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "scripts", copy / "scripts")
    planted = copy / "easynlp_bp" / "io" / "planted.py"
    planted.write_text("def f():\n    from easynlp_bp.appzoo.base import App\n    return App\n")
    proc = subprocess.run([sys.executable, str(copy / "scripts" / "architecture_report.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["upward_imports"] == ["easynlp_bp.io.planted -> easynlp_bp.appzoo.base"]


def test_architecture_report_sees_a_folder_cycle(tmp_path):
    """Two folders that import each other through different modules: no module cycle, one folder cycle."""
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "easynlp_bp", copy / "easynlp_bp", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "scripts", copy / "scripts")
    for folder, module, target in (("planted_a", "x", "easynlp_bp.planted_b.y"), ("planted_b", "z", "easynlp_bp.planted_a.w")):
        (copy / "easynlp_bp" / folder).mkdir()
        (copy / "easynlp_bp" / folder / "__init__.py").write_text("")
        (copy / "easynlp_bp" / folder / f"{module}.py").write_text(f"import {target}\n")
    (copy / "easynlp_bp" / "planted_a" / "w.py").write_text("")
    (copy / "easynlp_bp" / "planted_b" / "y.py").write_text("")
    proc = subprocess.run([sys.executable, str(copy / "scripts" / "architecture_report.py"), "--check"],
                          capture_output=True, text=True)
    report = json.loads(proc.stdout)
    assert proc.returncode == 1
    assert ["easynlp_bp.planted_a", "easynlp_bp.planted_b"] in report["folder_cycles"]
    assert {"easynlp_bp.planted_a.x -> easynlp_bp.planted_b.y",
            "easynlp_bp.planted_b.z -> easynlp_bp.planted_a.w"} <= set(report["folder_cycle_imports"])
    assert not any("planted" in name for cycle in report["import_cycles"] for name in cycle)


def test_architecture_report_fails_on_an_app_module_over_200_lines(tmp_path):
    """An app is glue: a planted 201-line app module fails --check and is named."""
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "easynlp_bp", copy / "easynlp_bp", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "scripts", copy / "scripts")
    (copy / "easynlp_bp" / "appzoo" / "planted.py").write_text("x = 1\n" * 201)
    proc = subprocess.run([sys.executable, str(copy / "scripts" / "architecture_report.py"), "--check"],
                          capture_output=True, text=True)
    report = json.loads(proc.stdout)
    assert proc.returncode == 1
    assert report["app_modules_over_200_lines"] == ["easynlp_bp.appzoo.planted"]
    assert report["upward_imports"] == [] and report["functions_over_60_lines"] == []


def test_serve_entry_point_does_not_load_the_cli_or_the_appzoo():
    code = ("import sys, easynlp_bp.serve_cli as l; "
            "assert 'easynlp_bp.cli' not in sys.modules and 'easynlp_bp.appzoo' not in sys.modules, sorted(sys.modules); "
            "print(l.main(['--help']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "keys:" in proc.stdout and "port=8000" in proc.stdout


def test_params_are_frozen_and_constructors_read_no_files(tmp_path, monkeypatch):
    """An app is built from its flags alone; its params cannot be changed afterwards."""
    from easynlp_bp.cli import parse_args

    monkeypatch.chdir(tmp_path)
    for name in APP_NAMES:
        args, _ = parse_args([f"--app_name={name}", f"--checkpoint_dir={tmp_path / 'missing'}"])
        app = APPS.get(name)(args)
        field = dataclasses.fields(app.params)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(app.params, field, None)
    assert list(tmp_path.iterdir()) == []


def test_ppo_app_gives_the_trainer_a_plain_ppo_config(trained_sft_dir, tmp_path):
    from easynlp_bp.appzoo.beautiful_prompt_ppo import BeautifulPromptPPOApp
    from easynlp_bp.ppo.config import EMBEDDED_DEFAULT_PRESET
    from easynlp_bp.cli import parse_args
    from easynlp_bp.ppo.config import PPOConfig

    args, _ = parse_args(["--app_name=beautiful_prompt_ppo", "--learning_rate=0.002",
                          f"--user_defined_parameters=pretrain_model_name_or_path={trained_sft_dir} kl_target=3 alpha=0.5"])
    app = BeautifulPromptPPOApp(args)
    config = app.ppo_config(str(trained_sft_dir))
    assert type(config) is PPOConfig and not isinstance(app.params, PPOConfig)
    assert config.kl_target == 3 and config.learning_rate == 0.002  # given keys and flags win
    assert config.num_rollouts == EMBEDDED_DEFAULT_PRESET["num_rollouts"]  # the embedded default's preset
    assert app.params.alpha == 0.5
    assert app.ppo_config(str(tmp_path)).num_rollouts == PPOConfig().num_rollouts  # not the default: paper values


# ----------------------------------------------------------------- pluggable classes
@pytest.fixture
def plugins_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    import plugins.user_classes as user_classes

    return user_classes


def test_predictor_swapped_by_import_path_on_the_cli(trained_sft_dir, plugins_on_path, tmp_path):
    out = tmp_path / "pred.jsonl"
    assert main(["--app_name=beautiful_prompt", "--mode=predict", f"--checkpoint_dir={trained_sft_dir}",
                 f"--outputs={out}", "--output_schema=predictions",
                 f"--user_defined_parameters=predictor_class={PLUGINS}:ShoutingPredictor seed=1 "
                 "num_return_sequences=1 max_new_tokens=12"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(r["predictions"] == r["predictions"].upper() for r in rows)
    assert any(any(c.isalpha() for c in r["predictions"]) for r in rows)


def test_predictor_swapped_by_registered_name_through_get_application_predictor(trained_sft_dir, plugins_on_path):
    from easynlp_bp import get_application_predictor
    from easynlp_bp.components import COMPONENTS

    if "ShoutingPredictor" not in COMPONENTS:
        COMPONENTS.register("ShoutingPredictor")(plugins_on_path.ShoutingPredictor)
    predictor = get_application_predictor(
        app_name="beautiful_prompt", model_dir=str(trained_sft_dir), first_sequence="raw_prompt",
        sequence_length=384, user_defined_parameters={"predictor_class": "ShoutingPredictor", "seed": "3",
                                                      "num_return_sequences": "2", "max_new_tokens": "10"})
    assert type(predictor) is plugins_on_path.ShoutingPredictor
    outputs = predictor.predict(["a cat"])
    assert len(outputs[0]) == 2 and all(o == o.upper() for o in outputs[0])


def test_a_class_that_is_not_a_subclass_is_refused(trained_sft_dir, capsys):
    assert main(["--app_name=beautiful_prompt", "--mode=predict", f"--checkpoint_dir={trained_sft_dir}",
                 "--user_defined_parameters=predictor_class=collections:OrderedDict"]) == 2
    assert "not a subclass of BeautifulPromptPredictor" in capsys.readouterr().err
    assert main(["--app_name=beautiful_prompt", "--mode=predict", f"--checkpoint_dir={trained_sft_dir}",
                 "--user_defined_parameters=predictor_class=NoSuchPredictor"]) == 2
    assert "Unknown class 'NoSuchPredictor'" in capsys.readouterr().err


def test_dataset_model_and_evaluator_swapped_through_the_lookups(trained_sft_dir, plugins_on_path):
    from easynlp_bp import get_application_dataset, get_application_evaluator, get_application_model, \
        get_application_predictor

    udp = {"dataset_class": plugins_on_path.CountingDataset, "model_class": f"{PLUGINS}:TaggedModel",
           "evaluator_class": plugins_on_path.ConstantEvaluator}
    before = plugins_on_path.CountingDataset.built
    dataset = get_application_dataset("beautiful_prompt", pretrained_model_name_or_path=str(trained_sft_dir),
                                      data_file=str(trained_sft_dir / "data" / "dev.jsonl"), max_seq_length=384,
                                      user_defined_parameters=udp, is_training=False)
    assert isinstance(dataset, plugins_on_path.CountingDataset) and plugins_on_path.CountingDataset.built == before + 1
    assert len(dataset) == len((trained_sft_dir / "data" / "dev.jsonl").read_text().splitlines())
    model = get_application_model("beautiful_prompt", str(trained_sft_dir), user_defined_parameters=udp)
    assert model.model.config.user_tag == "tagged"
    evaluator = get_application_evaluator("beautiful_prompt", valid_dataset=dataset, user_defined_parameters=udp)
    predictor = get_application_predictor("beautiful_prompt", str(trained_sft_dir),
                                          "decoding=greedy max_new_tokens=8")
    assert predictor.params.num_return_sequences == 1
    results = evaluator.evaluate(predictor, [("a cat", "a cat, 8k")])
    assert results["user_evaluator"] is True and results["eval_loss"] > 0


def test_evaluator_swapped_on_the_cli(trained_sft_dir, plugins_on_path, tmp_path):
    out = tmp_path / "eval.json"
    assert main(["--app_name=beautiful_prompt", "--mode=evaluate", f"--checkpoint_dir={trained_sft_dir}",
                 f"--outputs={out}", "--user_defined_parameters=eval_generation_samples=2 max_new_tokens=8 "
                 f"evaluator_class={PLUGINS}:ConstantEvaluator"]) == 0
    assert json.loads(out.read_text())["user_evaluator"] is True


def test_ppo_trainer_swapped_on_the_cli(ppo_sft_dir, plugins_on_path, tmp_path):
    before = plugins_on_path.CountingPPOTrainer.steps
    assert main(["--app_name=beautiful_prompt_ppo", "--mode=train", f"--checkpoint_dir={tmp_path / 'ppo'}",
                 f"--user_defined_parameters=pretrain_model_name_or_path={ppo_sft_dir} reward=heuristic "
                 "num_rollouts=8 chunk_size=8 mini_batch_size=8 ppo_epochs=1 max_new_tokens=6 num_layers_unfrozen=1 "
                 f"eval_size=8 total_steps=2 trainer_class={PLUGINS}:CountingPPOTrainer"]) == 0
    assert plugins_on_path.CountingPPOTrainer.steps - before == 2  # one optimizer step per iteration here
    run_config = json.loads((tmp_path / "ppo" / "run_config.json").read_text())
    assert run_config["classes"] == {"trainer": f"{PLUGINS}:CountingPPOTrainer"}


def test_greedy_with_several_outputs_is_a_clear_error(trained_sft_dir, capsys):
    assert main(["--app_name=beautiful_prompt", "--mode=predict", f"--checkpoint_dir={trained_sft_dir}",
                 "--user_defined_parameters=decoding=greedy num_return_sequences=3"]) == 2
    err = capsys.readouterr().err
    assert "decoding=greedy has one output, but num_return_sequences=3" in err and "decoding=beam" in err
