"""k-reciprocal re-ranking: a hand-checked case, and equality with a dense transcription of the algorithm."""

from __future__ import annotations

import numpy as np
import pytest

from reidpipe.reid.metrics import evaluate_ranking, pairwise_distance
from reidpipe.reid.rerank import rerank


def dense_reference(qf, gf, k1, k2, lam):
    """Zhong et al. 2017 with full (Q+G)^2 matrices, written directly from the paper's steps."""
    x = np.concatenate([qf, gf]).astype(np.float64)
    nq, n = len(qf), len(x)
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    d = d / d.max(axis=1, keepdims=True)
    rank = np.argsort(d, axis=1, kind="stable")

    def recip(i, k):
        return [j for j in rank[i, :k] if i in rank[j, :k]]

    V = np.zeros((n, n))
    for i in range(n):
        R = recip(i, k1 + 1)
        Rx = set(R)
        for c in R:
            Rc = recip(c, int(np.around(k1 / 2)) + 1)
            if len(set(Rc) & set(R)) > 2 / 3 * len(Rc):
                Rx |= set(Rc)
        idx = sorted(Rx)
        w = np.exp(-d[i, idx])
        V[i, idx] = w / w.sum()
    if k2 != 1:
        V = np.stack([V[rank[i, :k2]].mean(0) for i in range(n)])
    jac = np.zeros((nq, n))
    for i in range(nq):
        mins = np.minimum(V[i][None, :], V).sum(1)
        maxs = np.maximum(V[i][None, :], V).sum(1)
        jac[i] = 1 - mins / maxs
    return ((1 - lam) * jac + lam * d[:nq])[:, nq:]


@pytest.mark.parametrize("k1,k2", [(20, 6), (4, 2), (3, 1)])
def test_equals_dense_reference(k1, k2):
    rng = np.random.default_rng(k1)
    centers = rng.normal(size=(6, 16))
    qf = centers[rng.integers(0, 6, 7)] + 0.4 * rng.normal(size=(7, 16))
    gf = centers[rng.integers(0, 6, 30)] + 0.4 * rng.normal(size=(30, 16))
    ours = rerank(qf, gf, k1=k1, k2=k2, lambda_value=0.3)
    ref = dense_reference(qf, gf, k1, k2, 0.3)
    assert ours.shape == (7, 30)
    assert np.allclose(ours, ref, atol=1e-9)


def test_hub_negative_is_pushed_below_reciprocal_match():
    """2-D points, k1=3 (top-4 lists including oneself), k2=1, lambda=0.3.

    Query q=(0,0). Negative n1=(0.9,0) is q's nearest gallery image, but n1's own 4 nearest are itself
    and its tight group n1b, n1c, n1d: q is not among them, so n1 is not a k-reciprocal neighbour of q
    and shares no weight with q (Jaccard distance exactly 1). The true matches p1=(-1,0), p2=(-1.05,0.1)
    are in q's top-4 and have q in theirs: R(q) = {q, p1, p2}, so their Jaccard distance is < 1."""
    qf = np.array([[0.0, 0.0]])
    gf = np.array([[0.9, 0.0], [1.1, 0.25], [1.1, -0.25], [1.2, 0.0], [-1.0, 0.0], [-1.05, 0.1]])
    g_pids = [5, 5, 5, 5, 1, 1]  # n1 group = identity 5, p1/p2 = identity 1
    g_cams = [1] * 6
    before = pairwise_distance(qf, gf)
    assert int(np.argmin(before[0])) == 0  # n1 first
    res_before = evaluate_ranking([(0, before)], [1], g_pids, [0], g_cams, max_rank=6)
    assert res_before["rank1"] == 0.0
    after = rerank(qf, gf, k1=3, k2=1, lambda_value=0.3)
    # n1: Jaccard 1 -> 0.7 + 0.3 * d2(q, n1) / max_j d2(q, j) = 0.7 + 0.3 * 0.81 / 1.44
    assert after[0, 0] == pytest.approx(0.7 + 0.3 * 0.81 / 1.44, abs=1e-6)
    assert after[0, 4] < after[0, 0] and after[0, 5] < after[0, 0]
    res_after = evaluate_ranking([(0, after)], [1], g_pids, [0], g_cams, max_rank=6)
    assert res_after["rank1"] == 1.0
    assert res_after["mAP"] == 1.0 > res_before["mAP"]


def test_lambda_one_keeps_the_original_order():
    rng = np.random.default_rng(5)
    qf, gf = rng.normal(size=(4, 6)), rng.normal(size=(15, 6))
    a = rerank(qf, gf, k1=5, k2=2, lambda_value=1.0)
    b = pairwise_distance(qf, gf)
    assert (np.argsort(a, axis=1) == np.argsort(b, axis=1)).all()
