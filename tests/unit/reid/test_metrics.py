"""CMC / mAP of reidpipe.reid.metrics against an independent per-query reference written here."""

from __future__ import annotations

import numpy as np
import pytest

from reidpipe.reid.metrics import distance_chunks, evaluate, evaluate_ranking, pairwise_distance


def reference(dist, q_pids, g_pids, q_cams, g_cams, junk=(-1,), max_rank=10):
    """Plain-Python single-query protocol: sort by (distance, gallery index), drop same id + same camera and
    junk ids, AP = mean over the true matches of precision at their rank."""
    aps, firsts = [], []
    for i in range(len(q_pids)):
        order = sorted(range(len(g_pids)), key=lambda j: (dist[i][j], j))
        ranked = [j for j in order if not (g_pids[j] == q_pids[i] and g_cams[j] == q_cams[i]) and g_pids[j] not in junk]
        good = [r for r, j in enumerate(ranked, start=1) if g_pids[j] == q_pids[i]]
        if not good:
            continue
        aps.append(sum(n / r for n, r in enumerate(good, start=1)) / len(good))
        firsts.append(good[0])
    cmc = [sum(1 for f in firsts if f <= k) / len(firsts) for k in range(1, max_rank + 1)]
    return sum(aps) / len(aps), cmc, len(firsts)


def test_hand_computed_case_with_same_camera_exclusion_and_junk():
    # query: identity 1, camera 0
    g_pids = [1, 2, 1, -1, 1]
    g_cams = [0, 1, 1, 1, 2]
    dist = np.array([[0.1, 0.2, 0.3, 0.05, 0.4]])
    res = evaluate_ranking([(0, dist)], [1], g_pids, [0], g_cams, max_rank=5)
    # gallery 0 (same id, same camera) and 3 (junk) are removed: ranking = [2 (id 2), 1, 1]
    assert res["rank1"] == 0.0
    assert res["rank5"] == 1.0
    assert res["mAP"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert res["mINP"] == pytest.approx(2 / 3)
    assert res["num_query"] == 1 and res["num_gallery"] == 5


def test_ties_are_broken_by_gallery_order():
    dist = np.array([[0.5, 0.5, 0.5]])
    res = evaluate_ranking([(0, dist)], [7], [3, 7, 7], [0], [1, 1, 2], max_rank=3)
    assert res["rank1"] == 0.0
    assert res["mAP"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    res2 = evaluate_ranking([(0, dist)], [7], [7, 3, 7], [0], [1, 1, 2], max_rank=3)
    assert res2["rank1"] == 1.0
    assert res2["mAP"] == pytest.approx((1 / 1 + 2 / 3) / 2)


def test_query_without_valid_match_is_skipped():
    dist = np.array([[0.1, 0.2], [0.3, 0.1]])
    # query 0's only match is in its own camera -> skipped; query 1 matches at rank 1
    res = evaluate_ranking([(0, dist)], [1, 2], [1, 2], [0, 0], [0, 1], max_rank=2)
    assert res["num_skipped_query"] == 1 and res["num_valid_query"] == 1
    assert res["mAP"] == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_case_with_ties_junk_and_distractors_equals_reference(seed):
    rng = np.random.default_rng(seed)
    nq, ng = 25, 120
    q_pids = rng.integers(1, 9, nq).tolist()
    g_pids = rng.integers(-1, 9, ng).tolist()  # -1 junk, 0 distractors (kept as negatives)
    q_cams = rng.integers(0, 3, nq).tolist()
    g_cams = rng.integers(0, 3, ng).tolist()
    dist = rng.integers(0, 6, (nq, ng)).astype(float)  # many exact ties
    ref_map, ref_cmc, valid = reference(dist.tolist(), q_pids, g_pids, q_cams, g_cams)
    res = evaluate_ranking([(0, dist[:10]), (10, dist[10:])], q_pids, g_pids, q_cams, g_cams, max_rank=10)
    assert res["num_valid_query"] == valid
    assert res["mAP"] == pytest.approx(ref_map, abs=1e-12)
    assert res["cmc"] == pytest.approx(ref_cmc, abs=1e-12)
    assert res["rank1"] == pytest.approx(ref_cmc[0]) and res["rank10"] == pytest.approx(ref_cmc[9])
    assert 0.0 <= res["mAP"] <= 1.0


def test_feature_path_chunking_and_distances():
    rng = np.random.default_rng(3)
    qf, gf = rng.normal(size=(13, 8)), rng.normal(size=(40, 8))
    d = pairwise_distance(qf, gf)
    brute = ((qf[:, None, :] - gf[None, :, :]) ** 2).sum(-1)
    assert np.allclose(d, brute, atol=1e-4)
    dc = pairwise_distance(qf, gf, metric="cosine")
    qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    assert np.allclose(dc, 1 - qn @ gn.T, atol=1e-5)
    assert [s for s, _ in distance_chunks(qf, gf, chunk=5)] == [0, 5, 10]
    q_pids, g_pids = rng.integers(0, 5, 13), rng.integers(0, 5, 40)
    q_cams, g_cams = rng.integers(0, 2, 13), rng.integers(0, 2, 40)
    a = evaluate(qf, gf, q_pids, g_pids, q_cams, g_cams, chunk=4, max_rank=10)
    ref_map, ref_cmc, _ = reference(brute.tolist(), q_pids.tolist(), g_pids.tolist(), q_cams.tolist(), g_cams.tolist())
    assert a["mAP"] == pytest.approx(ref_map, abs=1e-9)
    assert a["cmc"] == pytest.approx(ref_cmc, abs=1e-9)
