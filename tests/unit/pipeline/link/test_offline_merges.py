"""Merging identities of several cameras (pipeline/link/offline.py, ``MergeEvidence``): a merge is weighed
by every pair of camera clusters it makes one person, not only the candidate pair that proposed it."""

from __future__ import annotations

import numpy as np
import pytest

from reidpipe.pipeline.config import LinkerConfig
from reidpipe.pipeline.link import offline as O
from reidpipe.pipeline.link.calibration import NegativeModel, PositiveModel
from reidpipe.pipeline.link.constraints import Constraints
from reidpipe.pipeline.link.groups import Groups


def _unit(cos_to_a: float, cos_to_c: float) -> np.ndarray:
    """A unit vector in 3-d with the given cosines to A = e0 and C = (cos .2, sin .2, 0)."""
    ca, sa = np.cos(0.2), np.sin(0.2)
    y = (cos_to_c - cos_to_a * ca) / sa
    return np.array([cos_to_a, y, np.sqrt(max(0.0, 1 - cos_to_a**2 - y**2))])


def _three_cameras(cos_b_to_c: float):
    """Person A in cam0 and cam2 (cosine 0.98); B in cam1, fairly like A's cam0 look (cosine 0.6) and
    ``cos_b_to_c`` to A's cam2 look. Candidates: A0-A2 (strong), A0-B1 (passes alone)."""
    G = np.stack([_unit(1.0, np.cos(0.2)), _unit(0.6, cos_b_to_c), _unit(np.cos(0.2), 1.0)])
    code = np.array([0, 1, 2])
    start, end = np.array([0.0, 20.0, 40.0]), np.array([10.0, 30.0, 50.0])
    cl = O.Clusters(G=G, code=code, family=np.arange(3), start=start, end=end, of=np.arange(3), sightings={})
    neg = NegativeModel(median=0.0, scale=0.15, n=300)
    models = [
        O.CameraPairModel(f"cam{a}~cam{b}", (a, b), neg, np.zeros(0), 1.0, (1, 1)) for a, b in ((0, 1), (0, 2), (1, 2))
    ]
    positive = PositiveModel(mu=4.0, sigma=1.0, n=20)
    sim = np.array([G[0] @ G[2], G[0] @ G[1]])
    cand = O.Candidates(
        i=np.array([0, 0]), j=np.array([2, 1]), sim=sim, z=neg.z(sim), gap=np.array([30.0, 10.0]), pair=np.array([1, 0])
    )
    return cl, models, positive, cand


def _evidence(cos_b_to_c: float) -> O.MergeEvidence:
    cl, models, positive, _ = _three_cameras(cos_b_to_c)
    return O.MergeEvidence(cl, models, [positive] * 3, [None] * 3)


def _merge(cos_b_to_c: float, weigh_identities: bool) -> np.ndarray:
    cl, models, positive, cand = _three_cameras(cos_b_to_c)
    rules = Constraints(LinkerConfig(), ["cam0", "cam1", "cam2"])
    groups = Groups(cl.start, cl.end, cl.code, cl.family)
    evidence = O.MergeEvidence(cl, models, [positive] * 3, [None] * 3) if weigh_identities else None
    score = np.array([5.0, 0.5])  # A0-A2 certain; A0-B1 just over odds of 1 on its own
    O._merge_in_order(groups, cand, score, rules, evidence)
    return groups.labels()


def test_a_weak_link_does_not_join_a_person_whose_other_sighting_disagrees():
    labels = _merge(cos_b_to_c=-0.1, weigh_identities=True)
    assert labels[0] == labels[2] and labels[1] != labels[0]
    # pair by pair (the linker before identities were weighed) B joins A
    assert len(set(_merge(cos_b_to_c=-0.1, weigh_identities=False).tolist())) == 1


def test_a_weak_link_that_the_other_sighting_confirms_is_made():
    assert len(set(_merge(cos_b_to_c=0.6, weigh_identities=True).tolist())) == 1


def test_identities_sum_the_likelihood_ratio_of_every_new_pair():
    cl, models, positive, _ = _three_cameras(0.6)
    ids = O.MergeEvidence(cl, models, [positive] * 3, [None] * 3)
    ids.joined(0, 0, 2)  # A0 and A2 are one identity (root 0)
    expected = float(positive.llr(models[2].negatives.z(cl.G[1] @ cl.G[2]), 299))  # B1-A2, the pair besides B1-A0
    assert ids.other_pairs_llr(0, 1, 0, 1) == pytest.approx(expected, abs=1e-3)
    assert expected > 2.0  # B looks like A's cam2 sighting too
    disagree = _evidence(-0.1)
    disagree.joined(0, 0, 2)
    assert disagree.other_pairs_llr(0, 1, 0, 1) < -5.0
    fresh = _evidence(-0.1)
    assert fresh.other_pairs_llr(0, 1, 0, 1) == 0.0  # two single clusters: only the candidate pair


def test_a_round_tabulated_at_once_weighs_merges_as_pairs_computed_when_asked():
    cl, models, positive, cand = _three_cameras(0.6)
    asked, tabulated = (O.MergeEvidence(cl, models, [positive] * 3, [None] * 3) for _ in range(2))
    for ids in (asked, tabulated):
        ids.joined(0, 0, 2)  # A0 and A2 are one identity (root 0)
    tabulated.tabulate(np.array([0, 1, 0]), cand.i, cand.j)
    assert set(tabulated._known) == {(0, 1), (1, 2)}  # the pairs of two identities the candidates connect
    assert tabulated.other_pairs_llr(0, 1, 0, 1) == asked.other_pairs_llr(0, 1, 0, 1) > 2.0
