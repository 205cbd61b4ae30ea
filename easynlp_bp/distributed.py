"""Launch a distributed run: ``--worker_gpu`` processes per machine on ``--worker_count`` machines.

The command re-runs itself under ``accelerate launch`` (torchrun underneath); each process then sees
``LOCAL_RANK`` and the HF Trainer joins the process group. Without CUDA the processes run on the CPU
with the gloo backend (that is how tests prove the path on a laptop).
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import Sequence

from easynlp_bp.arguments import EasyNLPArgs

logger = logging.getLogger(__name__)


def accelerate_command(args: EasyNLPArgs, argv: Sequence[str]) -> list[str]:
    """The ``accelerate launch`` command line for this run (flags after the script are passed through)."""
    import torch

    processes = args.worker_gpu or 1
    command = [sys.executable, "-m", "accelerate.commands.launch",
               "--num_processes", str(processes * args.worker_count),
               "--num_machines", str(args.worker_count)]
    if args.worker_count > 1:
        command += ["--machine_rank", os.environ.get("RANK", os.environ.get("MACHINE_RANK", "0")),
                    "--main_process_ip", os.environ.get("MASTER_ADDR", "127.0.0.1"),
                    "--main_process_port", os.environ.get("MASTER_PORT", "29500")]
    if torch.cuda.is_available():
        command += ["--multi_gpu"]
    else:
        command += ["--cpu", "--num_cpu_threads_per_process", "1"]
    return command + ["--module", "easynlp_bp.cli", *argv]


def launch_with_accelerate(args: EasyNLPArgs, argv: Sequence[str]) -> int:
    """Run the distributed job and return its exit code."""
    command = accelerate_command(args, argv)
    logger.info("Launching %d process(es) per machine on %d machine(s): %s",
                args.worker_gpu or 1, args.worker_count, " ".join(command))
    return subprocess.call(command)
