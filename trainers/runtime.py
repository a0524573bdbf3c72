"""Where a training run executes: its device, its process group under ``torchrun``, its seed and the
environment record of the run folder (``environment.json``).

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is initialised with NCCL on
GPU and gloo on CPU; every rank seeds with ``seed + rank`` and rank 0 writes the run folder.
"""

from __future__ import annotations

import os
import platform
import random
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from reidpipe.errors import ConfigError


@dataclass(frozen=True)
class Processes:
    """This process's place among the ``torchrun`` processes (one process: world 1, rank 0)."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> Processes:
        env = os.environ
        return cls(int(env.get("WORLD_SIZE", "1")), int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0")))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """``auto`` (this rank's GPU, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``; CUDA asked for on a
    machine without it is a ``ConfigError``."""
    spec = str(spec or "auto")
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {spec!r} asked for but CUDA is not available; use --set device=cpu")
    if spec == "cuda":
        return torch.device(f"cuda:{local_rank}")
    try:
        return torch.device(spec)
    except RuntimeError:
        raise ConfigError(f"bad device {spec!r}; use auto, cpu, cuda or cuda:N") from None


def start_processes(procs: Processes, device_spec: str) -> None:
    """Join the ``torchrun`` process group (NCCL on GPU, gloo on CPU); nothing for one process."""
    if procs.world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and str(device_spec) != "cpu" else "gloo"
        torch.distributed.init_process_group(backend=backend)


def use_device(device: torch.device, deterministic: bool) -> None:
    """Make ``device`` current; on CUDA, cuDNN autotuning unless deterministic kernels are asked for."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def environment() -> dict[str, Any]:
    """Versions, machine and command line of this run (``environment.json``)."""
    from reidpipe import __version__

    env = {
        "reidpipe": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cudnn": torch.backends.cudnn.version(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "cpu_count": os.cpu_count(),
        "argv": sys.argv,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
    }
    for mod in ("torchvision", "open_clip", "numpy"):
        try:
            env[mod] = __import__(mod).__version__
        except (ImportError, AttributeError):  # optional, informational only
            env[mod] = None
    return env
