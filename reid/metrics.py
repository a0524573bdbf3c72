"""Single-query CMC and mAP, the standard ReID protocol, computed in query chunks.

For each query, the gallery is ranked by distance (ties broken by gallery order, a stable sort);
gallery images of the query's identity taken by the query's camera are removed, and so are images of
junk identities (``junk_pids``, default ``-1``: Market-1501's junk label). Distractors (Market's
``0000``) stay in the gallery as negatives. A query whose remaining gallery holds no image of its
identity is skipped (as in the reference implementations) and counted in ``num_skipped_query``.

- CMC@k = fraction of valid queries with a correct match in the first k ranks.
- AP = mean over the correct matches of (correct matches up to that rank) / rank; mAP = mean AP.
- mINP (Ye et al. 2021) = mean of (number of correct matches) / (rank of the last correct match).

Distances are computed ``chunk`` queries at a time against the whole gallery and never stored whole,
so MSMT17 (11,659 queries × 82,161 gallery images) needs about 250 MB (256 queries × 82,161
float32 distances and their int64 sort order) on top of the features.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

METRICS = ("euclidean", "cosine")


def _as_tensor(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).float()


def distance_chunks(qf, gf, metric: str = "euclidean", chunk: int = 256) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, dist[start:start+chunk])`` blocks of the query×gallery distance matrix.

    ``euclidean`` is the squared Euclidean distance (as torchreid / CLIP-ReID); ``cosine`` is
    1 - cosine similarity (features are L2-normalised first)."""
    if metric not in METRICS:
        raise ValueError(f"unknown distance {metric!r}; use one of {METRICS}")
    q, g = _as_tensor(qf), _as_tensor(gf)
    if metric == "cosine":
        q = torch.nn.functional.normalize(q, dim=1)
        g = torch.nn.functional.normalize(g, dim=1)
    g2 = (g * g).sum(1)
    for s in range(0, q.shape[0], chunk):
        qc = q[s : s + chunk]
        if metric == "cosine":
            d = 1.0 - qc @ g.T
        else:
            d = (qc * qc).sum(1, keepdim=True) + g2[None, :] - 2.0 * (qc @ g.T)
            d.clamp_(min=0)
        yield s, d.numpy()


def pairwise_distance(qf, gf, metric: str = "euclidean", chunk: int = 256) -> np.ndarray:
    """The whole distance matrix (for small sets); prefer ``distance_chunks`` for big ones."""
    return np.concatenate([d for _, d in distance_chunks(qf, gf, metric, chunk)], axis=0)


def evaluate_ranking(
    dist_blocks: Iterable[tuple[int, np.ndarray]],
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    max_rank: int = 50,
    junk_pids: tuple[int, ...] = (-1,),
) -> dict:
    """CMC / mAP / mINP from distance blocks (``(start, (n, num_gallery))``)."""
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    num_g = len(g_pids)
    max_rank = min(max_rank, num_g)
    g_junk = np.isin(g_pids, np.asarray(junk_pids)) if len(junk_pids) else np.zeros(num_g, bool)
    cmc_sum = np.zeros(max_rank, dtype=np.float64)
    aps, inps = [], []
    skipped = 0
    for start, block in dist_blocks:
        order_all = np.argsort(block, axis=1, kind="stable")
        for r in range(block.shape[0]):
            qi = start + r
            order = order_all[r]
            keep = ~(((g_pids[order] == q_pids[qi]) & (g_camids[order] == q_camids[qi])) | g_junk[order])
            matches = g_pids[order][keep] == q_pids[qi]
            if not matches.any():
                skipped += 1
                continue
            hits = np.flatnonzero(matches)
            first = hits[0]
            if first < max_rank:
                cmc_sum[first:] += 1
            precision = np.arange(1, len(hits) + 1) / (hits + 1)
            aps.append(precision.mean())
            inps.append(len(hits) / (hits[-1] + 1))
    valid = len(aps)
    if valid == 0:
        raise ValueError("no query has a correct match in the gallery (after same-camera and junk exclusion)")
    cmc = cmc_sum / valid
    res = {
        "mAP": float(np.mean(aps)),
        "mINP": float(np.mean(inps)),
        "cmc": cmc.tolist(),
        "num_query": len(q_pids),
        "num_valid_query": int(valid),
        "num_skipped_query": int(skipped),
        "num_gallery": int(num_g),
    }
    for k in (1, 5, 10, 20):
        res[f"rank{k}"] = float(cmc[min(k, max_rank) - 1])
    return res


def evaluate(
    qf,
    gf,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    metric: str = "euclidean",
    max_rank: int = 50,
    junk_pids: tuple[int, ...] = (-1,),
    chunk: int = 256,
) -> dict:
    """Rank ``gf`` for every row of ``qf`` and score it (see the module docstring)."""
    return evaluate_ranking(
        distance_chunks(qf, gf, metric, chunk),
        q_pids,
        g_pids,
        q_camids,
        g_camids,
        max_rank=max_rank,
        junk_pids=junk_pids,
    )
