"""The documentation's code blocks run as written, on the tiny embedded default.

Every ``bash``/``python`` block of README.md and docs/*.md runs in order, page by page, in a scratch
working directory (see ``docs_runner.py``), except blocks marked ``<!-- requires: gpu|hub|checkout -->``
or ``<!-- docs-test: fragment -->`` (listed on the generated page ``not_executed.md``); blocks marked
``<!-- docs-test: slow -->`` run with ``-m slow``. A static check validates every ``easynlp`` command of
every block (skipped ones and ``examples/*.sh`` included) against the flags and the apps' keys.
"""
from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path

import pytest

from docs_runner import REPO, CodeBlock, extract_blocks, make_sandbox, pages_with_blocks, run_page

PAGES = pages_with_blocks()
FAST_PAGES = sorted(p for p, blocks in PAGES.items()
                    if any(b.runnable and "slow" not in b.markers for b in blocks))
SLOW_PAGES = sorted(p for p, blocks in PAGES.items() if any(b.runnable and "slow" in b.markers for b in blocks))


@pytest.fixture
def sandbox(tmp_path, trained_sft_dir):
    return make_sandbox(tmp_path / "work", trained_sft_dir)


@pytest.mark.parametrize("page", FAST_PAGES)
def test_page_examples_run(page, sandbox):
    failures = run_page(PAGES[page], sandbox, include_slow=False)
    assert not failures, "\n\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("page", SLOW_PAGES)
def test_page_examples_run_with_slow_blocks(page, sandbox):
    failures = run_page(PAGES[page], sandbox, include_slow=True)
    assert not failures, "\n\n".join(failures)


def test_every_page_is_covered_and_markers_are_known():
    """Extraction finds the blocks (an unknown marker would raise) and most runnable ones are run."""
    blocks = [b for blocks in PAGES.values() for b in blocks if b.language in ("bash", "python")]
    assert len(blocks) >= 30
    run = [b for b in blocks if b.runnable]
    assert len(run) >= len(blocks) // 3, [b.test_id for b in blocks if not b.runnable]
    assert {"README.md", "docs/quickstart.md"} <= set(PAGES)


def test_unknown_marker_is_an_error(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- requires: tpu -->\n```bash\necho hi\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"page.md:1: unknown code-block marker\(s\) \['tpu'\]"):
        extract_blocks(page)


# --- a documented flag renamed: the doc test fails -------------------------------------------------------

def _broken_copy(tmp_path: Path, page: str, old: str, new: str) -> list[CodeBlock]:
    text = (REPO / page).read_text(encoding="utf-8")
    assert old in text, f"{page} no longer documents {old!r}; update this test"
    copy = tmp_path / Path(page).name
    copy.write_text(text.replace(old, new), encoding="utf-8")
    return extract_blocks(copy, relative_to=tmp_path)


def test_renamed_flag_in_a_bash_block_fails(tmp_path, sandbox):
    # (--checkpoint_path is EasyNLP's alias of --checkpoint_dir, so the typo is a real misspelling)
    blocks = _broken_copy(tmp_path, "docs/quickstart.md", "--checkpoint_dir=", "--checkpoint_dri=")
    failures = run_page(blocks, sandbox, include_slow=False)
    assert failures
    assert "Unknown argument(s): --checkpoint_dri (did you mean --checkpoint_dir?)" in failures[0]


def test_renamed_key_in_a_python_block_fails(tmp_path, sandbox):
    blocks = _broken_copy(tmp_path, "README.md", "num_return_sequences=5", "num_sequences=5")
    failures = run_page([b for b in blocks if b.language == "python"], sandbox, include_slow=False)
    assert len(failures) == 1
    assert "Unknown --user_defined_parameters key(s) num_sequences" in failures[0]


# --- static check of every easynlp command, run or not ---------------------------------------------------

def _easynlp_commands(text: str) -> list[str]:
    """``easynlp ...`` command lines of a shell text, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines()
            if re.match(r"^\s*(CUDA_VISIBLE_DEVICES=\S+\s+)?(\S*/)?easynlp\s", line)]


def _check_command(command: str) -> None:
    from easynlp_bp.appzoo import APPS
    from easynlp_bp.arguments import EasyNLPArgs, split_user_defined_parameters
    from easynlp_bp.cli import build_parser
    from easynlp_bp.easynlp_compat import UDP_IGNORED_KEYS, UDP_KEY_ALIASES

    tokens = shlex.split(command.split(" #")[0], posix=True)
    flags = [t.split("=", 1)[0] for t in tokens[1:] if t.startswith("--")]
    # every option the real parser takes: EasyNLPArgs fields, EasyNLP's aliases and its no-meaning flags
    valid = {o for a in build_parser()._actions for o in a.option_strings if o.startswith("--")}
    assert {f"--{f.name}" for f in dataclasses.fields(EasyNLPArgs)} <= valid
    unknown = [f for f in flags if f not in valid]
    assert not unknown, f"unknown flag(s) {unknown} in: {command}"
    values = dict(t[2:].split("=", 1) for t in tokens[1:] if t.startswith("--") and "=" in t)
    app = values.get("app_name")
    assert app in APPS.names(), f"unknown --app_name={app} in: {command}"
    if "$" in values.get("user_defined_parameters", "$"):
        keys = [m for m in re.findall(r"(?:^|\s)(\w+)=", values.get("user_defined_parameters", ""))]
    else:
        keys = list(split_user_defined_parameters(values["user_defined_parameters"]))
    valid_keys = {f.name for f in dataclasses.fields(APPS.get(app).params_cls)}
    valid_keys |= set(UDP_KEY_ALIASES) | set(UDP_IGNORED_KEYS)  # EasyNLP's seq-gen keys (mapped or warned)
    assert not set(keys) - valid_keys, f"unknown key(s) {set(keys) - valid_keys} for {app} in: {command}"


def _all_shell_texts() -> list[tuple[str, str]]:
    texts = [(b.test_id, b.code) for blocks in PAGES.values() for b in blocks if b.language == "bash"]
    texts += [(str(p.relative_to(REPO)), p.read_text(encoding="utf-8"))
              for p in sorted((REPO / "examples").rglob("*.sh"))]
    return texts


def test_every_documented_easynlp_command_uses_real_flags_and_keys():
    commands = [(where, c) for where, text in _all_shell_texts() for c in _easynlp_commands(text)]
    assert len(commands) >= 20
    problems = []
    for where, command in commands:
        try:
            _check_command(command)
        except AssertionError as err:
            problems.append(f"{where}: {err}")
    assert not problems, "\n".join(problems)


def test_static_check_catches_a_renamed_flag_and_key():
    with pytest.raises(AssertionError, match=r"unknown flag\(s\) \['--epochs'\]"):
        _check_command("easynlp --app_name=beautiful_prompt --mode=train --epochs=3")
    with pytest.raises(AssertionError, match=r"unknown key\(s\) \{'num_beamz'\} for beautiful_prompt"):
        _check_command('easynlp --app_name=beautiful_prompt --user_defined_parameters="num_beamz=2"')


def test_example_accelerate_configs_load_with_accelerate():
    import json

    from accelerate.commands.config.config_args import load_config_from_file

    configs = REPO / "examples" / "beautiful_prompt" / "configs"
    ddp = load_config_from_file(str(configs / "accelerate_multi_gpu.yaml"))
    zero2 = load_config_from_file(str(configs / "accelerate_deepspeed_zero2.yaml"))
    assert (ddp.distributed_type.value, ddp.num_processes) == ("MULTI_GPU", 4)
    assert zero2.distributed_type.value == "DEEPSPEED"
    ds_file = REPO / zero2.deepspeed_config["deepspeed_config_file"]
    assert json.loads(ds_file.read_text())["zero_optimization"]["stage"] == 2
