"""Run the code blocks of a documentation page as a user would: in order, in a scratch working directory.

Shared by ``tests/test_docs_*.py``. The sandbox is the working directory a user of the Quickstart has:
``.venv`` (a link to the repository's), ``examples/``, ``integrations/`` and ``outputs/beautiful_prompt`` (the embedded
default, trained briefly once per test session instead of by ``bash scripts/quickstart.sh``). ``easynlp``
and ``python`` resolve to ``.venv/bin``; hub access is off.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from mkdocs_hooks import CodeBlock, all_blocks, extract_blocks  # noqa: E402

BLOCK_TIMEOUT_S = 900  # the slow pages train models; CI machines may be loaded
SERVER_START_TIMEOUT_S = 120


def make_sandbox(directory: Path, trained_sft_dir: Path) -> Path:
    """Lay out the Quickstart user's working directory under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in (".venv", "examples", "integrations"):
        link = directory / name
        if not link.exists():
            link.symlink_to(REPO / name)
    target = directory / "outputs" / "beautiful_prompt"
    if not target.exists():
        shutil.copytree(trained_sft_dir, target)
    return directory


def sandbox_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
    env.pop("PYTHONPATH", None)   # the block sees the installed package, as a user does
    return env


def _command(block: CodeBlock, workdir: Path) -> list[str]:
    if block.language == "python":
        script = workdir / f"_block_{Path(block.page).stem}_{block.line}.py"
        script.write_text(block.code, encoding="utf-8")
        return [str(REPO / ".venv" / "bin" / "python"), script.name]
    return ["bash", "-euo", "pipefail", "-c", block.code]


def run_block(block: CodeBlock, workdir: Path, timeout: float = BLOCK_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run one block to completion; the result keeps stdout and stderr."""
    return subprocess.run(_command(block, workdir), cwd=workdir, env=sandbox_env(), capture_output=True,
                          text=True, timeout=timeout)


def start_background(block: CodeBlock, workdir: Path) -> subprocess.Popen:
    """Start a server block and wait until the URL it logs accepts connections."""
    log = open(workdir / f"_server_{block.line}.log", "w+", encoding="utf-8")
    proc = subprocess.Popen(_command(block, workdir), cwd=workdir, env=sandbox_env(), stdout=log,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        match = re.search(r"http://([\d.]+):(\d+)", (workdir / log.name).read_text(encoding="utf-8"))
        if match and _port_open(match.group(1), int(match.group(2))):
            return proc
        time.sleep(0.5)
    stop_background(proc)
    raise AssertionError(f"{block.test_id}: server did not start:\n{(workdir / log.name).read_text()[-3000:]}")


def stop_background(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def run_page(blocks: list[CodeBlock], workdir: Path, include_slow: bool) -> list[str]:
    """Run a page's runnable blocks in order; returns a failure report per failed block (empty: all ran)."""
    failures, servers = [], []
    try:
        for block in blocks:
            if not block.runnable or ("slow" in block.markers and not include_slow):
                continue
            if "background" in block.markers:
                servers.append(start_background(block, workdir))
                continue
            try:
                result = run_block(block, workdir)
            except subprocess.TimeoutExpired:
                failures.append(f"{block.test_id}: timed out after {BLOCK_TIMEOUT_S} s")
                continue
            if result.returncode != 0:
                failures.append(f"{block.test_id} ({block.language}) exited {result.returncode}:\n"
                                f"{block.code}\n--- stdout\n{result.stdout[-2000:]}\n"
                                f"--- stderr\n{result.stderr[-3000:]}")
    finally:
        for proc in servers:
            stop_background(proc)
    return failures


def pages_with_blocks() -> dict[str, list[CodeBlock]]:
    pages: dict[str, list[CodeBlock]] = {}
    for block in all_blocks(REPO):
        pages.setdefault(block.page, []).append(block)
    return pages


__all__ = ["CodeBlock", "extract_blocks", "make_sandbox", "pages_with_blocks", "run_block", "run_page"]
