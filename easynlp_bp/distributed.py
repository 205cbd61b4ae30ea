"""Launch a distributed run: ``--worker_gpu`` processes per machine on ``--worker_count`` machines.

The command re-runs itself once per process; each process sees ``LOCAL_RANK`` and the HF Trainer (or
accelerate) joins the process group. With CUDA the launcher is ``accelerate launch --multi_gpu``. Without
CUDA it is ``torch.distributed.run`` (torchrun) with the gloo backend, because ``accelerate launch --cpu``
starts a single process unless MPI is installed. That is how tests prove the path on a CPU.
"""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from typing import Sequence

from easynlp_bp.arguments import EasyNLPArgs

logger = logging.getLogger(__name__)

LAUNCHED_ENV = "EASYNLP_BP_LAUNCHED"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def is_main_process() -> bool:
    """Whether this is the first process of the run (or the only one): the one that writes shared files.

    Read from ``RANK``, which torchrun and ``accelerate launch`` set, so asking needs no process group."""
    return os.environ.get("RANK", "0") == "0"


def launch_command(args: EasyNLPArgs, argv: Sequence[str], use_cuda: bool) -> list[str]:
    """The launcher command line for this run (the original flags are passed through unchanged)."""
    per_machine = args.worker_gpu or 1
    multi_node = args.worker_count > 1
    rank = os.environ.get("MACHINE_RANK", os.environ.get("NODE_RANK", "0"))
    address = os.environ.get("MASTER_ADDR", "127.0.0.1")
    port = os.environ.get("MASTER_PORT") or str(_free_port() if not multi_node else 29500)
    if use_cuda:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
                   "--num_processes", str(per_machine * args.worker_count),
                   "--num_machines", str(args.worker_count), "--main_process_port", port]
        if multi_node:
            command += ["--machine_rank", rank, "--main_process_ip", address]
        return command + ["--module", "easynlp_bp.cli", *argv]
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={per_machine}",
               f"--nnodes={args.worker_count}", f"--node_rank={rank}",
               f"--master_addr={address}", f"--master_port={port}"]
    return command + ["-m", "easynlp_bp.cli", *argv]


def launch_distributed(args: EasyNLPArgs, argv: Sequence[str]) -> int:
    """Run the job on all processes of this machine and return the launcher's exit code."""
    import torch

    if os.environ.get(LAUNCHED_ENV):
        raise ValueError(
            "easynlp was started by its own launcher but sees no LOCAL_RANK; refusing to launch again."
        )
    command = launch_command(args, argv, torch.cuda.is_available())
    logger.info("Launching %d process(es) per machine on %d machine(s): %s",
                args.worker_gpu or 1, args.worker_count, " ".join(command))
    return subprocess.call(command, env={**os.environ, LAUNCHED_ENV: "1"})


def finish_distributed() -> None:
    """Wait for every process, then tear the process group down.

    Without it a gloo worker that finishes first can abort at exit ("terminate called without an active
    exception") while rank 0 is still saving, which fails the whole launch.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
