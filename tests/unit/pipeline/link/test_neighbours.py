"""Linker at scale: blocked / FAISS / time-blocked neighbour search agrees with the truth (pipeline/link/neighbours.py, pipeline/link.py)."""

from __future__ import annotations

import numpy as np
import pytest

from reidpipe.pipeline.bench.synthetic import pairwise_scores, synthetic_tracklets, time_linking
from reidpipe.pipeline.config import LinkerConfig
from reidpipe.pipeline.link import Linker
from reidpipe.pipeline.link.neighbours import candidate_pairs


def labels_of(tracklets, identities) -> np.ndarray:
    pos = {t.key: i for i, t in enumerate(tracklets)}
    out = np.full(len(tracklets), -1)
    for ident in identities:
        for t in ident.tracklets:
            out[pos[t.key]] = ident.id
    return out


@pytest.mark.parametrize("cfg", [{"backend": "numpy"}, {"backend": "auto"}, {"max_gap": 300.0}])
def test_2k_synthetic_tracklets_recover_people(cfg):
    ts, truth = synthetic_tracklets(2000, dim=128, cameras=4, seed=1, return_labels=True)
    idents = Linker(LinkerConfig(refine=True, **cfg), ["cam0", "cam1", "cam2", "cam3"]).link(ts)
    pred = labels_of(ts, idents)
    assert (pred > 0).all()  # every tracklet in exactly one identity
    assert sum(len(i.tracklets) for i in idents) == len(ts)
    assert [i.id for i in idents] == list(range(1, len(idents) + 1))
    firsts = [i.tracklets[0].start_t for i in idents]
    assert firsts == sorted(firsts)
    s = pairwise_scores(truth, pred)
    assert s["precision"] >= 0.999 and s["recall"] >= 0.99
    for ident in idents:  # no identity holds two coexisting tracklets of one camera
        tr = ident.tracklets
        for a in range(len(tr)):
            for b in range(a + 1, len(tr)):
                if tr[a].camera == tr[b].camera:
                    assert tr[a].end_t < tr[b].start_t or tr[b].end_t < tr[a].start_t


def test_time_blocked_search_equals_brute_force():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((700, 8)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    starts = np.sort(rng.uniform(0, 1000, 700))
    ends = starts + rng.uniform(1, 20, 700)
    i, j, s = candidate_pairs(X, k=699, threshold=0.6, starts=starts, ends=ends, max_gap=50.0)
    S = X @ X.T
    gap = np.maximum(starts[None, :] - ends[:, None], starts[:, None] - ends[None, :])
    ok = np.triu((S >= 0.6) & (gap <= 50.0), k=1)
    assert set(zip(i.tolist(), j.tolist())) == set(zip(*np.nonzero(ok)))
    assert np.allclose(s, S[i, j], atol=1e-5) and (np.diff(s) <= 1e-7).all()


def test_time_linking_returns_seconds():
    assert 0.0 < time_linking(500, dim=64) < 60.0


def test_entries_ordered_by_row_then_similarity_as_lexsort_orders_them():
    from reidpipe.pipeline.link.neighbours import _by_row_then_similarity

    rng = np.random.default_rng(3)
    rows = rng.integers(0, 40, 5000)
    levels = np.array([0.0, -0.0, 1e-45, -1e-45, -0.5, 0.25, 0.9, -1.0, 1.0], np.float32)
    for sims in (rng.standard_normal(5000).astype(np.float32), rng.choice(levels, 5000)):  # ties, both zeros
        assert np.array_equal(_by_row_then_similarity(rows, sims), np.lexsort((-sims, rows)))


def test_a_batch_naming_a_tracklet_twice_or_one_added_before_is_refused():
    ts = synthetic_tracklets(20, dim=16, cameras=2, seed=4)
    with pytest.raises(ValueError, match=f"tracklet {ts[3].camera}/{ts[3].track} was already added"):
        Linker(LinkerConfig(refine=True), ["cam0", "cam1"]).link([*ts, ts[3]])
    linker = Linker(LinkerConfig(refine=True), ["cam0", "cam1"])
    linker.add(ts[0])
    with pytest.raises(ValueError, match=f"tracklet {ts[0].camera}/{ts[0].track} was already added"):
        linker.link(ts)
