"""One prompt from the shell: ``--prompt "a cat"`` (issue 26), refused where it has no meaning."""
from __future__ import annotations

from easynlp_bp.cli import main


def test_one_prompt_from_the_shell(tiny_model_dir, capsys):
    """`--prompt "a cat"` beautifies one prompt without a file and prints it with its notes."""
    code = main(["--app_name=beautiful_prompt", "--mode=predict", f"--checkpoint_dir={tiny_model_dir}",
                 "--prompt=东京の夜景", "--user_defined_parameters=num_return_sequences=2 seed=1"])
    out = capsys.readouterr().out
    assert code == 0 and ">>> 东京の夜景" in out
    assert out.count("  - 东京の夜景") == 2 and "note: the input looks" in out  # kept verbatim, with the warning


def test_prompt_is_refused_where_it_does_not_apply(tmp_path, tiny_model_dir, capsys):
    table = tmp_path / "in.tsv"
    table.write_text("raw_prompt\na cat\n", encoding="utf-8")
    assert main(["--app_name=beautiful_prompt", "--mode=predict", f"--checkpoint_dir={tiny_model_dir}",
                 "--prompt=a dog", f"--tables={table}"]) == 2
    assert "--prompt and --tables both" in capsys.readouterr().err
    assert main(["--app_name=beautiful_prompt", "--mode=evaluate", f"--checkpoint_dir={tiny_model_dir}",
                 "--prompt=a dog"]) == 2
    assert "--prompt does not apply" in capsys.readouterr().err
