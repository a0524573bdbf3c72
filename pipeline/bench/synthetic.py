"""Synthetic tracklets for the linker's scaling tests and ``reidpipe bench --linker-only``.

:func:`synthetic_tracklets` makes people who walk through several cameras in order, with features a
per-person prototype plus noise and a per-camera bias; :func:`time_linking` times offline linking of
them; :func:`pairwise_scores` scores a clustering by counting pairs.
"""

from __future__ import annotations

import time

import numpy as np

from reidpipe.pipeline.config import LinkerConfig
from reidpipe.pipeline.link import Linker
from reidpipe.pipeline.types import Tracklet, TrackPoint


def synthetic_tracklets(
    n: int, dim: int = 512, cameras: int = 4, seed: int = 0, noise: float = 0.6, return_labels: bool = False
):
    """``n`` synthetic tracklets of ``dim``-d features for benchmarks and tests.

    People walk through ``cameras`` cameras in order (cam0 -> cam1 -> ...), each visiting 1 to
    ``cameras`` consecutive cameras, 5-40 s per visit, 5-30 s transit between cameras; arrivals are
    spread so that about 2.5 people are in view per camera per 10 s of timeline. A person's features
    are a random unit prototype plus Gaussian noise of relative norm ``noise`` (same-person cosine
    ~ 1 / (1 + noise**2) ~ 0.73 at the default; different people ~ 0 +- 1/sqrt(dim)), plus a small
    per-camera bias (lighting). With ``return_labels``, also returns the true person of each."""
    rng = np.random.default_rng(seed)
    cams = [f"cam{c}" for c in range(cameras)]
    bias = rng.standard_normal((cameras, dim)).astype(np.float32)
    bias *= 0.25 / np.linalg.norm(bias, axis=1, keepdims=True)
    tracklets: list[Tracklet] = []
    labels: list[int] = []
    pid = 0
    horizon = max(60.0, n * 1.5)
    counters = [0] * cameras
    while len(tracklets) < n:
        proto = rng.standard_normal(dim).astype(np.float32)
        proto /= np.linalg.norm(proto)
        visits = int(rng.integers(1, cameras + 1))
        first = int(rng.integers(0, cameras - visits + 1))
        t0 = float(rng.uniform(0, horizon))
        for v in range(visits):
            if len(tracklets) >= n:
                break
            c = first + v
            dur = float(rng.uniform(5, 40))
            g = rng.standard_normal(dim).astype(np.float32)
            f = proto + noise * g / np.linalg.norm(g) + bias[c]
            f /= np.linalg.norm(f)
            counters[c] += 1
            pts = [
                TrackPoint(frame=int(t * 10), t=t, bbox=(0.0, 0.0, 40.0, 100.0), score=0.9)
                for t in (t0, t0 + dur / 2, t0 + dur)
            ]
            tracklets.append(
                Tracklet(
                    camera=cams[c], track=counters[c], points=pts, bank=[], qualities=[0.5, 0.5], feature=f, closed=True
                )
            )
            labels.append(pid)
            t0 += dur + float(rng.uniform(5, 30))
        pid += 1
    if return_labels:
        return tracklets, np.asarray(labels)
    return tracklets


def time_linking(n: int, dim: int = 512, cameras: int = 4, seed: int = 0, config: LinkerConfig | None = None) -> float:
    """Seconds to link ``n`` synthetic tracklets offline (``Linker.link``); generation not timed.
    Default config: refine, linking window ``max_gap`` = 300 s (exact time-blocked search)."""
    ts = synthetic_tracklets(n, dim=dim, cameras=cameras, seed=seed)
    linker = Linker(config or LinkerConfig(refine=True, max_gap=300.0), [f"cam{c}" for c in range(cameras)])
    t0 = time.perf_counter()
    linker.link(ts)
    return time.perf_counter() - t0


def pairwise_scores(labels_true: np.ndarray, labels_pred: np.ndarray) -> dict[str, float]:
    """Pair-counting precision/recall/F1 of a clustering (pairs of items put together)."""
    from collections import Counter

    def pairs(counter) -> int:
        return sum(c * (c - 1) // 2 for c in counter.values())

    both = pairs(Counter(zip(labels_true.tolist(), labels_pred.tolist())))
    pred = pairs(Counter(labels_pred.tolist()))
    true = pairs(Counter(labels_true.tolist()))
    p = both / pred if pred else 1.0
    r = both / true if true else 1.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


__all__ = ["pairwise_scores", "synthetic_tracklets", "time_linking"]
