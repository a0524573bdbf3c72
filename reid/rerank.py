"""k-reciprocal re-ranking (Zhong, Zheng, Cao, Li, CVPR 2017), memory-aware.

The algorithm of the reference code (k1=20, k2=6, lambda=0.3), computed without any
(query+gallery)² matrix:

1. ``d`` = squared Euclidean distance between all query+gallery features (as the CLIP-ReID / TransReID
   version computes it from features); each row is divided by its maximum. Only each row's
   ``k1+1`` nearest neighbours and its maximum are kept (found in row chunks).
2. For each image i: R(i, k1) = its k-reciprocal neighbours (j in i's top-(k1+1) and i in j's); expanded
   with R(j, k1/2) of each member j when more than 2/3 of that set lies in R(i, k1). V[i, j] =
   exp(-d[i, j]) over the expanded set, normalised to sum 1 (a sparse row).
3. Local query expansion: V[i] = mean of V over i's k2 nearest neighbours.
4. Jaccard distance between query i and gallery j = 1 - Σ min(V_i, V_j) / Σ max(V_i, V_j), written as
   1 - m / (2 - m) with m = Σ min (rows of V sum to 1); computed through an inverted index.
5. final = (1 - lambda) · Jaccard + lambda · d.

Memory is O((Q + G) · k1) plus one chunk of rows; time is dominated by step 2 (a Python loop, as in
the reference), about a minute per 10⁵ images.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


def _sqdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    d = (a * a).sum(1, keepdim=True) + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return d.clamp_(min=0)


def rerank_chunks(
    qf, gf, k1: int = 20, k2: int = 6, lambda_value: float = 0.3, chunk: int = 1024
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, final_dist[start:start+chunk])`` query×gallery blocks of re-ranked distances."""
    import scipy.sparse as sp

    q = torch.as_tensor(np.asarray(qf) if not isinstance(qf, torch.Tensor) else qf).float()
    g = torch.as_tensor(np.asarray(gf) if not isinstance(gf, torch.Tensor) else gf).float()
    feats = torch.cat([q, g]).double()
    nq, n = q.shape[0], feats.shape[0]
    kk = min(k1 + 1, n)
    # 1. top-(k1+1) neighbours and the row maxima
    rank = np.empty((n, kk), dtype=np.int64)
    rowmax = np.empty(n, dtype=np.float64)
    for s in range(0, n, chunk):
        d = _sqdist(feats[s : s + chunk], feats)
        rowmax[s : s + chunk] = d.max(1).values.numpy()
        _, idx = torch.topk(d, kk, dim=1, largest=False, sorted=True)
        rank[s : s + chunk] = idx.numpy()
    rowmax[rowmax <= 0] = 1.0

    def ndist(i: int, js: np.ndarray) -> np.ndarray:
        return _sqdist(feats[i : i + 1], feats[torch.as_tensor(js)])[0].numpy() / rowmax[i]

    half = int(np.around(k1 / 2)) + 1

    def k_reciprocal(i: int, k: int) -> np.ndarray:
        fwd = rank[i, :k]
        back = rank[fwd, :k]
        return fwd[(back == i).any(axis=1)]

    # 2. sparse V
    rows, cols, vals = [], [], []
    for i in range(n):
        kr = k_reciprocal(i, kk)
        exp = kr
        for c in kr:
            ckr = k_reciprocal(int(c), half)
            if len(np.intersect1d(ckr, kr)) > 2.0 / 3.0 * len(ckr):
                exp = np.append(exp, ckr)
        exp = np.unique(exp)
        w = np.exp(-ndist(i, exp))
        rows.append(np.full(len(exp), i))
        cols.append(exp)
        vals.append(w / w.sum())
    V = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    # 3. query expansion
    if k2 != 1:
        qe_rows = np.repeat(np.arange(n), k2)
        qe_cols = rank[:, :k2].reshape(-1)
        Q = sp.csr_matrix((np.full(len(qe_rows), 1.0 / k2), (qe_rows, qe_cols)), shape=(n, n))
        V = (Q @ V).tocsr()
    Vc = V.tocsc()
    # 4./5. per query chunk
    gfeats = feats[nq:]
    for s in range(0, nq, chunk):
        e = min(nq, s + chunk)
        orig = _sqdist(feats[s:e], gfeats).numpy() / rowmax[s:e, None]
        jac = np.empty_like(orig)
        for i in range(s, e):
            row = V.getrow(i)
            acc = np.zeros(n)
            for k, v in zip(row.indices, row.data):
                lo, hi = Vc.indptr[k], Vc.indptr[k + 1]
                js = Vc.indices[lo:hi]
                acc[js] += np.minimum(v, Vc.data[lo:hi])
            m = acc[nq:]
            jac[i - s] = 1.0 - m / (2.0 - m)
        yield s, jac * (1.0 - lambda_value) + orig * lambda_value


def rerank(qf, gf, k1: int = 20, k2: int = 6, lambda_value: float = 0.3) -> np.ndarray:
    """The whole re-ranked query×gallery distance matrix (for small sets)."""
    return np.concatenate([d for _, d in rerank_chunks(qf, gf, k1, k2, lambda_value)], axis=0)
