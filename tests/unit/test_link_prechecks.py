"""Linker speed-ups keep the rules (pipeline/link.py): the vectorised pair pre-checks agree with the
scalar constraint check, and the half-band time-blocked search keeps each row's k best neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from reidpipe.pipeline.config import LinkerConfig
from reidpipe.pipeline.link import Linker, _Constraints
from reidpipe.pipeline.neighbours import candidate_pairs


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_pair_rules_match_the_scalar_conflict_check(seed):
    rng = np.random.default_rng(seed)
    cams = ["a", "b", "c"]
    m = 3000
    # times on a coarse grid so that touching intervals, equal starts and exact window edges occur
    starts = rng.integers(0, 60, m).astype(np.float64)
    ends = starts + rng.integers(0, 8, m)
    code = rng.integers(0, 3, m)
    cfg = LinkerConfig(non_overlapping=bool(seed % 2), max_gap=[None, 5.0, 12.0][seed % 3],
                       transit={("a", "b"): (2.0, 6.0), ("c", "a"): (0.0, 3.0)} if seed < 4 else {},
                       transit_symmetric=seed % 2 == 0)
    linker = Linker(cfg, cams)
    ii = rng.integers(0, m, 4000)
    jj = rng.integers(0, m, 4000)
    never, single = linker._pair_rules(ii, jj, starts, ends, code, np.asarray(cams))
    rules = _Constraints(cfg)
    for k, (a, b) in enumerate(zip(ii.tolist(), jj.tolist())):
        sa = [(starts[a], ends[a], cams[code[a]])]
        sb = [(starts[b], ends[b], cams[code[b]])]
        assert bool(single[k]) == rules.conflict(sa, sb), (sa, sb)
        if never[k]:  # dropped before the merge loop: must conflict whatever else the groups hold
            other = [(float(rng.integers(0, 60)), 100.0, "c")]
            assert rules.conflict(sa + other, sb) and rules.conflict(sa, sb + other)
    assert single.any() and (~single).any()


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
    S = (X.astype(np.float64) @ X.T.astype(np.float64))
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
