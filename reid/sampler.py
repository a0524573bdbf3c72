"""Batch samplers for ReID training, deterministic per (seed, epoch) and DDP-aware.

``PKSampler``: identity-balanced batches of P identities × K images (16 × 4 by default), as in BoT /
CLIP-ReID's ``RandomIdentitySampler``: each identity's images are shuffled (an identity with fewer than
K images is sampled with replacement up to K) and cut into chunks of K; batches draw P random
identities that still have a chunk left, until fewer than P remain.

``RandomBatchSampler``: a random permutation of all images cut into batches (CLIP-ReID stage 1).

Both yield lists of ``(index, seed)`` pairs; ``seed`` drives that sample's augmentation, so an epoch
is the same for any number of loader workers and after ``--resume``. Under DDP (``world_size`` > 1),
every rank builds the same epoch (same seed) and takes a disjoint share of its batches
(``batches[rank::world_size]``, the list first cut to a multiple of ``world_size``): each rank runs the
same number of steps and no image of a batch is seen twice.
"""

from __future__ import annotations

import abc

import numpy as np


class _EpochSampler(abc.ABC):
    def __init__(self, seed: int = 0, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world size {world_size}")
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch]))

    @abc.abstractmethod
    def epoch_batches(self) -> list[list[int]]:
        """All ranks' batches of this epoch (lists of dataset indices)."""

    def _local(self) -> list[list[tuple[int, int]]]:
        batches = self.epoch_batches()
        n = len(batches) - len(batches) % self.world_size
        seeds = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, 1])).integers(
            0, 2**31 - 1, size=(max(n, 1), max((len(b) for b in batches), default=1))
        )
        out = []
        for bi in range(self.rank, n, self.world_size):
            out.append([(int(i), int(seeds[bi, j])) for j, i in enumerate(batches[bi])])
        return out

    def __iter__(self):
        return iter(self._local())

    def __len__(self) -> int:
        n = len(self.epoch_batches())
        return (n - n % self.world_size) // self.world_size


class PKSampler(_EpochSampler):
    def __init__(self, pids: list[int], p: int = 16, k: int = 4, seed: int = 0, rank: int = 0, world_size: int = 1):
        super().__init__(seed, rank, world_size)
        self.p, self.k = int(p), int(k)
        if self.p < 1 or self.k < 1:
            raise ValueError(f"P×K sampler needs P, K >= 1 (got {p}×{k})")
        self.index_by_pid: dict[int, list[int]] = {}
        for i, pid in enumerate(pids):
            self.index_by_pid.setdefault(int(pid), []).append(i)
        if len(self.index_by_pid) < self.p:
            raise ValueError(
                f"P×K sampler: {len(self.index_by_pid)} identities in the training set, fewer than P={self.p}"
            )
        self._cache: tuple[int, list[list[int]]] | None = None

    def epoch_batches(self) -> list[list[int]]:
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        rng = self._rng()
        chunks: dict[int, list[list[int]]] = {}
        for pid in sorted(self.index_by_pid):
            idxs = list(self.index_by_pid[pid])
            if len(idxs) < self.k:
                idxs = list(rng.choice(idxs, size=self.k, replace=True))
            else:
                idxs = list(rng.permutation(idxs))
            n = len(idxs) // self.k
            chunks[pid] = [idxs[j * self.k : (j + 1) * self.k] for j in range(n)]
        avail = [pid for pid in sorted(chunks) if chunks[pid]]
        batches = []
        while len(avail) >= self.p:
            chosen = rng.choice(len(avail), size=self.p, replace=False)
            batch: list[int] = []
            for c in sorted(chosen):
                batch.extend(int(i) for i in chunks[avail[c]].pop(0))
            batches.append(batch)
            avail = [pid for pid in avail if chunks[pid]]
        self._cache = (self.epoch, batches)
        return batches


class RandomBatchSampler(_EpochSampler):
    def __init__(
        self, n: int, batch_size: int = 64, seed: int = 0, rank: int = 0, world_size: int = 1, drop_last: bool = False
    ):
        super().__init__(seed, rank, world_size)
        self.n, self.batch_size, self.drop_last = int(n), int(batch_size), drop_last

    def epoch_batches(self) -> list[list[int]]:
        perm = self._rng().permutation(self.n)
        batches = [perm[i : i + self.batch_size].tolist() for i in range(0, self.n, self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches
