"""Training threads: the ``threads`` key sets torch's threads (bounded), and the settings are reported."""

from __future__ import annotations

import torch

from reidpipe.trainers.cpu import configure_threads


def test_threads_are_set_and_reported(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    before = torch.get_num_threads()
    try:
        assert configure_threads(1) == {"threads": 1, "omp_wait_policy": "PASSIVE"}
        assert torch.get_num_threads() == 1
        assert configure_threads(10_000)["threads"] == 256  # bounded
    finally:
        torch.set_num_threads(before)
