"""Linker rules and search (pipeline/link/constraints.py, pipeline/link/neighbours.py): the bulk check of
many single-sighting pairs agrees with the group check, a group conflict holds whatever else the groups
hold, and the half-band time-blocked search keeps each row's k best neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from reidpipe.pipeline.config import LinkerConfig
from reidpipe.pipeline.link.constraints import Constraints, Sightings
from reidpipe.pipeline.link.neighbours import candidate_pairs


@pytest.mark.parametrize("seed", range(6))
def test_bulk_pair_rules_match_the_group_check(seed):
    rng = np.random.default_rng(seed)
    cams = ["a", "b", "c"]
    m = 3000
    # times on a coarse grid so that touching intervals, equal starts and exact window edges occur
    starts = rng.integers(0, 60, m).astype(np.float64)
    ends = starts + rng.integers(0, 8, m)
    code = rng.integers(0, 3, m)
    cfg = LinkerConfig(
        non_overlapping=bool(seed % 2),
        max_gap=[None, 5.0, 12.0][seed % 3],
        transit={("a", "b"): (2.0, 6.0), ("c", "a"): (0.0, 3.0)} if seed < 4 else {},
        transit_symmetric=seed % 2 == 0,
    )
    rules = Constraints(cfg, cams)
    ii = rng.integers(0, m, 4000)
    jj = rng.integers(0, m, 4000)
    bulk = rules.pairs(starts[ii], ends[ii], code[ii], starts[jj], ends[jj], code[jj])
    for k, (a, b) in enumerate(zip(ii.tolist(), jj.tolist())):
        sa, sb = Sightings.one(starts[a], ends[a], code[a], a), Sightings.one(starts[b], ends[b], code[b], b)
        if starts[a] == starts[b] and ends[a] == ends[b]:
            continue  # equal intervals: which one is "first" is a tie either way
        assert bool(bulk[k]) == rules.groups(sa, sb), (starts[a], ends[a], code[a], starts[b], ends[b], code[b])
        if rules.coexist(starts[a], ends[a], code[a], starts[b], ends[b], code[b]):
            other = Sightings.one(float(rng.integers(0, 60)), 100.0, 2, m)  # a coexisting pair stays a conflict
            assert rules.groups(sa + other, sb) and rules.groups(sa, sb + other)
    assert bulk.any() and (~bulk).any()


def test_one_per_camera_rule_for_cross_camera_links():
    rules = Constraints(LinkerConfig(), ["a", "b"])
    a1, a2, b1 = Sightings.one(0, 5, 0, 0), Sightings.one(50, 60, 0, 1), Sightings.one(20, 30, 1, 2)
    assert not rules.groups(a1 + b1, a2)  # re-entry into camera a: allowed in-camera
    assert rules.groups(a1 + b1, a2, one_per_camera=True)  # but not as a second cross-camera link


def test_the_pieces_of_a_cut_track_never_join_again():
    from reidpipe.pipeline.types import Tracklet

    rules = Constraints(LinkerConfig(), ["a", "b"])
    first, second = Tracklet(camera="a", track=7, points=[]), Tracklet(camera="a", track=1000001, split_from=7)
    other = Tracklet(camera="a", track=1000001 + 1, split_from=9)
    assert rules.family(first) == rules.family(second) != rules.family(other)
    p1, p2 = Sightings.one(0, 5, 0, rules.family(first)), Sightings.one(6, 9, 0, rules.family(second))
    b1 = Sightings.one(20, 30, 1, rules.family(Tracklet(camera="b", track=7)))
    assert rules.groups(p1, p2) and rules.groups(p1 + b1, p2)  # directly or through another camera
    assert not rules.groups(p1, Sightings.one(6, 9, 0, rules.family(other)))


@pytest.mark.parametrize("k", [1, 3, 7])
def test_time_blocked_search_keeps_each_rows_k_best_in_its_window(k):
    rng = np.random.default_rng(k)
    n = 900
    centers = rng.standard_normal((60, 16))
    X = (centers[rng.integers(0, 60, n)] + 0.5 * rng.standard_normal((n, 16))).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    starts = rng.uniform(0, 3000, n)  # unsorted: the search sorts them itself
    ends = starts + rng.uniform(0, 30, n)
    i, j, s = candidate_pairs(X, k=k, threshold=0.5, starts=starts, ends=ends, max_gap=120.0)
    S = X.astype(np.float64) @ X.T.astype(np.float64)
    gap = np.maximum(starts[None, :] - ends[:, None], starts[:, None] - ends[None, :])
    S[(gap > 120.0) | np.eye(n, dtype=bool)] = -np.inf
    want = set()
    for r in range(n):
        ok = np.flatnonzero(S[r] >= 0.5)
        for c in ok[np.argsort(-S[r, ok])][:k]:  # the row's k most similar above the threshold
            want.add((min(r, c), max(r, c)))
    got = set(zip(i.tolist(), j.tolist()))
    assert got == want and len(want) > n // 4
    assert (i < j).all() and (np.diff(s) <= 1e-7).all()
    assert np.allclose(s, S[i, j], atol=1e-5)
