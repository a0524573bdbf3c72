"""The fallback linking threshold of a fine-tuned model keeps the given model's false-match share."""

from __future__ import annotations

import numpy as np
import pytest

from reidpipe.trainers.evaluation import LINK_THRESHOLD_BOUNDS, false_match_share, threshold_for_share


def _people(rng, n_people=30, per_cam=3, spread=0.6):
    centres = rng.normal(size=(n_people, 32))
    feats, pids, cams = [], [], []
    for pid, c in enumerate(centres):
        for cam in (1, 2):
            for _ in range(per_cam):
                feats.append(c + spread * rng.normal(size=32))
                pids.append(pid)
                cams.append(cam)
    return np.array(feats, np.float32), pids, cams


def test_threshold_for_share_inverts_false_match_share():
    feats, pids, cams = _people(np.random.default_rng(0))
    share = false_match_share(feats, pids, cams, 0.4)
    assert 0.0 < share < 0.5
    assert threshold_for_share(feats, pids, cams, share) == pytest.approx(0.4, abs=0.02)


def test_a_model_that_separates_people_better_gets_the_same_share_at_its_own_cosine():
    rng = np.random.default_rng(1)
    loose, pids, cams = _people(rng, spread=1.2)
    tight, _, _ = _people(np.random.default_rng(1), spread=0.4)
    share = false_match_share(loose, pids, cams, 0.5)
    t = threshold_for_share(tight, pids, cams, share)
    assert LINK_THRESHOLD_BOUNDS[0] <= t <= LINK_THRESHOLD_BOUNDS[1]
    assert false_match_share(tight, pids, cams, t) == pytest.approx(share, abs=0.01)
