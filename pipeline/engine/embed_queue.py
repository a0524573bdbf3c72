"""The crops waiting for the embedder, from every camera of a process (:class:`EmbedQueue`).

A camera worker hands it the crops its sampler chose (``add``), tells it when a frame is done
(``after_frame``) and, before pooling the features of closing tracklets, ``settle``\\ s them. The
queue embeds in batches that mix all cameras — ``batch`` crops, or what is waiting once its oldest
crop has waited ``MAX_WAIT_S`` seconds of video (so that a tracklet's crops are embedded long before
it closes: a track closes ``track_lost_frames`` after its last sighting), or when a tracklet that
has crops in it closes — and puts each embedding in its tracklet's bank.

- **Asynchronous** (``asynchronous=True``, ``embed_async``): a batch is embedded by ONE embed thread
  while the main thread goes on detecting (ONNX Runtime and OpenVINO release the GIL). The embed
  thread runs at a lower CPU priority (:func:`reidpipe.cpus.run_in_background`): a crop can wait, a
  frame cannot, so embedding takes the cores the detector leaves idle instead of slowing it. Batches are
  the same as synchronously and are embedded in the order they were made, and ``settle`` waits for
  every batch holding a crop of a closing tracklet, so features are exactly the synchronous ones. At
  most ``MAX_IN_FLIGHT`` batches wait for the thread (the main thread then waits: memory stays flat
  when the embedder is the slower stage). ``close`` embeds what is left and ends the thread.
- **Budget** (``budget`` crops per second of video, all cameras together; ``embed_budget``): the
  sampler's crops first go to a pool; after each frame the crops that the budget allows so far
  (``budget`` × the video seconds seen) are taken from the pool best first — crops of tracklets that
  have no crop embedded yet, then by quality divided by (1 + crops the tracklet already has). A
  tracklet that closes before any of its crops was taken gets its best one embedded anyway (no
  tracklet is left without a feature; the budget then runs ahead, and the next frames make up for
  it). The pool holds at most ``POOL_PER_BATCH`` × ``batch`` crops, plus the best one of each
  tracklet still without a feature; the worst go first. Every choice depends only on the crops and
  the video time, never on how fast the machine is: runs stay deterministic.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from reidpipe.cpus import run_in_background
from reidpipe.pipeline.engine.sampler import add_to_bank
from reidpipe.pipeline.engine.stats import StageTimer
from reidpipe.pipeline.link.split import add_crop
from reidpipe.pipeline.types import Tracklet

MAX_WAIT_S = 1.0  # a crop waits at most this many seconds of video for its batch to fill
MAX_IN_FLIGHT = 2  # batches waiting for the embed thread before the main thread waits
POOL_PER_BATCH = 4  # a budgeted pool holds this many batches of crops (plus one per featureless tracklet)


@dataclass
class _Crop:
    tracklet: Tracklet
    quality: float
    pixels: np.ndarray
    frame: int


class EmbedQueue:
    """Crops waiting for the embedder; see the module docstring. ``embedded`` counts the crops sent to
    the embedder (all of them are embedded once ``close`` returns)."""

    def __init__(
        self,
        embedder,
        *,
        bank_size: int,
        batch: int,
        timer: StageTimer,
        asynchronous: bool = False,
        budget: float | None = None,
    ):
        self.embedder = embedder
        self.bank_size = int(bank_size)
        self.batch = int(batch)
        self.timer = timer
        self.budget = budget
        self.pending: list[_Crop] = []  # the next batch
        self.pool: list[_Crop] = []  # budgeted crops not taken yet
        self.embedded = 0
        self._spent = 0  # crops taken from the pool or added without a budget (what the budget counts)
        self._taken: dict[int, int] = {}  # id(tracklet) -> crops of it sent to the embedder
        self._clock = 0.0  # video seconds seen (the furthest camera)
        self._oldest = 0.0  # the clock when the first crop of the waiting batch came
        self._start: dict[str, float] = {}
        self._thread = (
            ThreadPoolExecutor(1, thread_name_prefix="reidpipe-embed", initializer=run_in_background)
            if asynchronous
            else None
        )
        self._in_flight: deque[tuple[Future, set[int]]] = deque()

    # ------------------------------------------------------------------ what the workers call
    def add(self, tracklet: Tracklet, quality: float, crop: np.ndarray, frame: int | None = None) -> None:
        """A crop the sampler chose for ``tracklet`` on ``frame`` (default: its latest point's)."""
        if frame is None:
            frame = tracklet.points[-1].frame if tracklet.points else 0
        item = _Crop(tracklet, float(quality), crop, int(frame))
        if self.budget is None:
            self._take(item)
        else:
            self.pool.append(item)

    def after_frame(self, camera: str, t: float) -> None:
        """A frame of ``camera`` (time ``t`` s) is done: spend the budget, embed a full batch or one
        whose oldest crop has waited ``MAX_WAIT_S`` of video."""
        start = self._start.setdefault(camera, t)
        self._clock = max(self._clock, t - start)
        if self.budget is not None:
            self._spend()
        if len(self.pending) >= self.batch or (self.pending and self._clock - self._oldest >= MAX_WAIT_S):
            self.flush()

    def settle(self, tracklets: Sequence[Tracklet]) -> None:
        """Before ``tracklets`` are pooled: each gets its best crop if none was taken yet, their other
        pooled crops are dropped, and every crop of theirs is embedded (waiting for the embed thread)."""
        if not tracklets:
            return
        ids = {id(t) for t in tracklets}
        if self.pool:
            self._guarantee(ids)
        if any(id(c.tracklet) in ids for c in self.pending):
            self.flush()
        self._wait(lambda held: not held.isdisjoint(ids))
        for i in ids:
            self._taken.pop(i, None)

    def flush(self) -> None:
        """Embed the waiting batch (in the embed thread when asynchronous)."""
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        self.embedded += len(batch)
        if self._thread is None:
            self._embed(batch)
            return
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            self._wait(lambda held: True, oldest_only=True)
        self._in_flight.append((self._thread.submit(self._embed, batch), {id(c.tracklet) for c in batch}))

    def close(self) -> None:
        """Embed everything taken so far and end the embed thread (end of run, Ctrl-C)."""
        try:
            self.flush()
            self._wait(lambda held: True)
        finally:
            if self._thread is not None:
                self._thread.shutdown(wait=True)

    # ------------------------------------------------------------------ the steps
    def _embed(self, batch: list[_Crop]) -> None:
        with self.timer("embed"):
            feats = self.embedder.embed([c.pixels for c in batch])
            for c, f in zip(batch, feats):
                add_to_bank(c.tracklet, f, c.quality, self.bank_size)
                add_crop(c.tracklet, c.frame, f, c.quality)  # in time order, for tracklet splitting

    def _wait(self, holds, oldest_only: bool = False) -> None:
        """Wait for the in-flight batches up to the last one whose tracklet ids satisfy ``holds`` (they
        are embedded in order), or only for the oldest one; an error of the embed thread is raised here."""
        last = max((i for i, (_, held) in enumerate(self._in_flight) if holds(held)), default=-1)
        if oldest_only:
            last = min(last, 0)
        with self.timer("embed_wait"):
            for _ in range(last + 1):
                future = self._in_flight[0][0]
                try:
                    future.result()
                finally:  # a wait cut short by Ctrl-C keeps the batch to wait for at the stop
                    if future.done():
                        self._in_flight.popleft()

    def _take(self, item: _Crop) -> None:
        key = id(item.tracklet)
        self._taken[key] = self._taken.get(key, 0) + 1
        self._spent += 1
        if not self.pending:
            self._oldest = self._clock
        self.pending.append(item)

    def _priority(self, item: _Crop) -> tuple[bool, float]:
        taken = self._taken.get(id(item.tracklet), 0)
        return taken == 0, item.quality / (1 + taken)

    def _spend(self) -> None:
        """Take the best pooled crops the budget allows so far; then trim the pool."""
        assert self.budget is not None
        allowed = math.floor(self.budget * self._clock) - self._spent
        while allowed > 0 and self.pool:
            best = max(range(len(self.pool)), key=lambda i: self._priority(self.pool[i]))
            self._take(self.pool.pop(best))
            allowed -= 1
        self._trim()

    def _trim(self) -> None:
        cap = POOL_PER_BATCH * self.batch
        if len(self.pool) <= cap:
            return
        self.pool.sort(key=self._priority, reverse=True)
        kept, featureless = self.pool[:cap], set()
        for c in kept:
            if self._taken.get(id(c.tracklet), 0) == 0:
                featureless.add(id(c.tracklet))
        for c in self.pool[cap:]:  # the best crop of a tracklet with none taken is always kept
            key = id(c.tracklet)
            if self._taken.get(key, 0) == 0 and key not in featureless:
                kept.append(c)
                featureless.add(key)
        self.pool = kept

    def _guarantee(self, ids: set[int]) -> None:
        """Closing tracklets ``ids``: the best pooled crop of each one with none taken is taken now;
        their other pooled crops are dropped."""
        mine = [c for c in self.pool if id(c.tracklet) in ids]
        if not mine:
            return
        self.pool = [c for c in self.pool if id(c.tracklet) not in ids]
        for c in sorted(mine, key=lambda c: c.quality, reverse=True):
            if self._taken.get(id(c.tracklet), 0) == 0:
                self._take(c)
