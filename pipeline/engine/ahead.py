"""Rounds of frames detected ahead of their use, on a pool of detect threads (:class:`DetectAhead`).

The frame loop of recordings does not wait for the detector: each round of frames (one per camera)
is handed to the pool as soon as it is read, and the loop tracks the oldest round whose detections
are ready while the next ones are detected. The detector's inference leaves the interpreter free
(ONNX Runtime and OpenVINO release the GIL), so tracking, cropping and linking fill the cores while
it runs. With a detector that runs on its calling thread alone (``enable_parallel_rounds``: ONNX
Runtime on the CPU with one intra-op thread) the pool has one thread per usable core, at most
``MAX_THREADS``, and rounds are detected side by side; otherwise one detect thread runs them in
turn. Results come back in the order the rounds went in, whatever order they finish in, so a run's
output is the same as detecting in line.

``depth`` rounds are kept in flight (the frames they hold are the memory it costs): one more than the
threads, so that every thread has a round while the loop tracks one, and a round with nothing to
detect (``detect_every`` 2 in lockstep) does not leave the detector idle.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from reidpipe.cpus import usable_cpus

MAX_THREADS = 8  # detect threads at most (each holds a round of frames)

K = TypeVar("K")


def detect_threads(detector: Any) -> int:
    """The detect threads for ``detector``: one per usable core (at most ``MAX_THREADS``) when it can
    run on several at once (``enable_parallel_rounds``, called here: it may reload the model), else
    one. A registered detector without that method runs on one."""
    enable = getattr(detector, "enable_parallel_rounds", None)
    parallel = bool(enable()) if callable(enable) else False
    return max(1, min(usable_cpus(), MAX_THREADS)) if parallel else 1


class DetectAhead(Generic[K]):
    """``put(key, fn, *args)`` hands a round to the pool and returns the rounds now due, oldest first,
    as ``(key, result)``; ``drain()`` the rest once the input has ended; ``close()`` ends the pool
    (waiting for the round it is running, dropping those not started). An error of ``fn`` is raised
    when its round comes due, in the caller's thread."""

    def __init__(self, threads: int = 1, depth: int | None = None):
        self.threads = max(1, int(threads))
        self.depth = self.threads + 1 if depth is None else max(0, int(depth))
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="detect")
        self._pending: deque[tuple[K, Future[Any]]] = deque()

    def put(self, key: K, fn: Callable[..., Any], *args: Any) -> list[tuple[K, Any]]:
        self._pending.append((key, self._pool.submit(fn, *args)))
        return [self._next() for _ in range(len(self._pending) - self.depth)]

    def drain(self) -> Iterator[tuple[K, Any]]:
        while self._pending:
            yield self._next()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()

    def _next(self) -> tuple[K, Any]:
        key, future = self._pending.popleft()
        return key, future.result()
