"""Rounds detected ahead on a pool of detect threads (pipeline/engine/ahead.py): side by side where the
detector allows it, results in the order the rounds went in, an error raised when its round is due."""

from __future__ import annotations

import threading
import time

import pytest

from reidpipe.pipeline.engine import ahead as ahead_module
from reidpipe.pipeline.engine.ahead import DetectAhead, detect_threads


def test_rounds_run_side_by_side_and_come_back_in_order():
    running, most, lock = [0], [0], threading.Lock()

    def detect(n: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05 if n % 2 == 0 else 0.01)  # even rounds finish after the odd ones
        with lock:
            running[0] -= 1
        return n * 10

    pool: DetectAhead[int] = DetectAhead(threads=2)
    assert pool.depth == 3  # a round per thread, and one more while the loop tracks
    out = []
    try:
        for n in range(8):
            out += pool.put(n, detect, n)
        out += list(pool.drain())
    finally:
        pool.close()
    assert out == [(n, n * 10) for n in range(8)] and most[0] == 2


def test_a_failed_round_raises_in_the_callers_thread_when_it_is_due():
    def detect(n: int) -> int:
        if n == 1:
            raise ValueError("round 1")
        return n

    pool: DetectAhead[int] = DetectAhead(threads=1, depth=1)
    try:
        assert pool.put(0, detect, 0) == []
        assert pool.put(1, detect, 1) == [(0, 0)]
        with pytest.raises(ValueError, match="round 1"):
            pool.put(2, detect, 2)
    finally:
        pool.close()


def test_one_detect_thread_per_core_only_for_a_detector_that_can_share_them(monkeypatch):
    monkeypatch.setattr(ahead_module, "usable_cpus", lambda: 16)

    class Shares:
        def enable_parallel_rounds(self) -> bool:
            return True

    class Keeps:
        def enable_parallel_rounds(self) -> bool:
            return False

    assert detect_threads(Shares()) == ahead_module.MAX_THREADS == 8
    assert detect_threads(Keeps()) == 1 and detect_threads(object()) == 1  # a detector without the method
    monkeypatch.setattr(ahead_module, "usable_cpus", lambda: 2)
    assert detect_threads(Shares()) == 2
