"""One prompt from the shell: ``--prompt "a cat"``, refused where it has no meaning."""
from __future__ import annotations

from easynlp_bp.cli import main


def test_one_prompt_from_the_shell(tiny_model_dir, capsys):
    """`--prompt "a cat"` beautifies one prompt without a file and prints it with its notes."""
    code = main(["--app_name=beautiful_prompt", "--mode=predict", f"--checkpoint_dir={tiny_model_dir}",
                 "--prompt=东京の夜景", "--user_defined_parameters=num_return_sequences=2 seed=1"])
    out = capsys.readouterr().out
    assert code == 0 and ">>> 东京の夜景" in out
    assert out.count("  - 东京の夜景") == 2 and "note: the input looks" in out  # kept verbatim, with the warning


def test_prompt_repeats_for_several_prompts(tiny_model_dir, capsys):
    code = main(["--app_name=beautiful_prompt", "--mode=predict", f"--checkpoint_dir={tiny_model_dir}",
                 "--prompt", "a cat", "--prompt=a dog", "--user_defined_parameters=num_return_sequences=1 seed=1"])
    out = capsys.readouterr().out
    assert code == 0 and out.index(">>> a cat") < out.index(">>> a dog")


def test_prompt_is_refused_where_it_does_not_apply(tmp_path, tiny_model_dir, capsys):
    table = tmp_path / "in.tsv"
    table.write_text("raw_prompt\na cat\n", encoding="utf-8")
    assert main(["--app_name=beautiful_prompt", "--mode=predict", f"--checkpoint_dir={tiny_model_dir}",
                 "--prompt=a dog", f"--tables={table}"]) == 2
    assert "--prompt and --tables both" in capsys.readouterr().err
    assert main(["--app_name=beautiful_prompt", "--mode=evaluate", f"--checkpoint_dir={tiny_model_dir}",
                 "--prompt=a dog"]) == 2
    assert "--prompt does not apply" in capsys.readouterr().err


def test_one_greedy_prompt_prints_no_loading_bar_or_budget_warning(tmp_path, tiny_model_dir):
    """A fresh process (transformers warns once per process): stderr has neither the weight-loading bar nor
    transformers' "Both max_new_tokens and max_length" warning, for a model whose generation_config sets
    max_length (as every SFT and PPO model folder does)."""
    import json
    import shutil
    import subprocess
    import sys

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    (model_dir / "generation_config.json").write_text(json.dumps({"max_length": 384, "do_sample": True}))
    done = subprocess.run(
        [sys.executable, "-m", "easynlp_bp.cli", "--app_name=beautiful_prompt", "--mode=predict",
         f"--checkpoint_dir={model_dir}", "--prompt=a cat",
         "--user_defined_parameters=decoding=greedy num_return_sequences=1 max_new_tokens=8 guard=false"],
        capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and ">>> a cat" in done.stdout, done.stderr[-2000:]
    assert "Loading weights" not in done.stderr and "max_new_tokens` (=" not in done.stderr, done.stderr[-2000:]
