"""P x K sampler: identity balance, determinism per epoch, disjoint DDP shares."""

from __future__ import annotations

from collections import Counter

import pytest

from reidpipe.reid.sampler import PKSampler, RandomBatchSampler


def _pids():
    # 10 identities with 2..9 images (identity 0 has fewer than K)
    return [pid for pid in range(10) for _ in range(2 + pid % 8)]


def test_batches_are_p_identities_times_k_images():
    pids = _pids()
    s = PKSampler(pids, p=4, k=4, seed=0)
    batches = list(s)
    assert len(batches) == len(s) > 0
    for b in batches:
        idx = [i for i, _ in b]
        c = Counter(pids[i] for i in idx)
        assert len(b) == 16 and len(c) == 4 and set(c.values()) == {4}


def test_deterministic_per_epoch_and_different_across_epochs():
    a, b = PKSampler(_pids(), 4, 2, seed=3), PKSampler(_pids(), 4, 2, seed=3)
    a.set_epoch(5)
    b.set_epoch(5)
    assert list(a) == list(b)
    b.set_epoch(6)
    assert list(a) != list(b)


def test_ddp_ranks_get_disjoint_equal_shares_of_the_same_epoch():
    pids = _pids()
    full = PKSampler(pids, 2, 2, seed=1)
    full.set_epoch(2)
    shares = []
    for rank in range(3):
        s = PKSampler(pids, 2, 2, seed=1, rank=rank, world_size=3)
        s.set_epoch(2)
        shares.append([tuple(b) for b in s])
    assert len({len(x) for x in shares}) == 1 and len(shares[0]) == len(full) // 3
    flat = [b for share in shares for b in share]
    assert len(set(flat)) == len(flat)  # no batch twice
    assert set(flat) <= {tuple(b) for b in full}  # all from the single-process epoch


def test_too_few_identities_and_random_batches():
    with pytest.raises(ValueError, match="fewer than P"):
        PKSampler([0, 0, 1, 1], p=3, k=2)
    r = RandomBatchSampler(10, batch_size=4, seed=0)
    idx = sorted(i for b in r for i, _ in b)
    assert idx == list(range(10)) and [len(b) for b in r] == [4, 4, 2]
