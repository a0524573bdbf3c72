"""The device and process settings of a training run: a device that cannot be used is one clear line,
and the ``torchrun`` variables place the process."""

from __future__ import annotations

import pytest
import torch

from reidpipe.errors import ConfigError
from reidpipe.trainers.runtime import Processes, resolve_device


def test_devices_resolve_or_name_the_bad_value():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match=r"bad device 'gpu0'; use auto, cpu, cuda or cuda:N"):
        resolve_device("gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error is for machines without CUDA")
def test_cuda_on_a_machine_without_it_says_so():
    with pytest.raises(ConfigError, match="CUDA is not available; use --set device=cpu"):
        resolve_device("cuda:0")


def test_torchrun_variables_place_the_process(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert Processes.from_environment() == Processes(world=1, rank=0, local_rank=0)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    procs = Processes.from_environment()
    assert (procs.world, procs.rank, procs.local_rank, procs.is_main) == (4, 3, 1, False)
