"""Union-find over tracklets (or camera clusters) that keeps each group's sightings, so a merge is
refused when the constraints (:mod:`.constraints`) say the two groups cannot be one person."""

from __future__ import annotations

import numpy as np

from reidpipe.pipeline.link.constraints import Constraints, Sightings


class Groups:
    def __init__(
        self,
        starts: np.ndarray,
        ends: np.ndarray,
        code: np.ndarray,
        family: np.ndarray,
        sightings: dict[int, Sightings] | None = None,
        where: np.ndarray | None = None,
    ):
        """Items with one interval each (``starts``/``ends``/``code``/``family``, and where each began and
        ended: ``where``, see :func:`.constraints.places`; unknown when not given), or, for
        the items in ``sightings``, the intervals given there (an item that is itself a group)."""
        self.starts, self.ends, self.code, self.family = starts, ends, code, family
        self.where = np.full((len(starts), 6), np.nan) if where is None else where
        self.parent = list(range(len(starts)))  # a list: find reads it item by item (numpy items cost ~5x)
        self._sight: dict[int, Sightings] = dict(sightings or {})  # roots whose sightings are not one interval

    def find(self, a: int) -> int:
        parent = self.parent
        root = a
        while parent[root] != root:
            root = parent[root]
        while parent[a] != root:
            parent[a], a = root, parent[a]
        return root

    def sightings(self, root: int) -> Sightings:
        s = self._sight.get(root)
        if s is None:
            # views of the item's rows, never written (a merge concatenates): new one-element arrays
            # cost ~0.4 s of 120,000 calls for 100,000 tracklets in `reidpipe bench --linker-only`
            one = slice(root, root + 1)
            s = Sightings(self.starts[one], self.ends[one], self.code[one], self.family[one], self.where[one])
        return s

    def merge(self, a: int, b: int, rules: Constraints, one_per_camera: bool = False, brief: float = 0.0) -> bool:
        """Merge the groups of ``a`` and ``b`` unless they are one already or conflict (``brief``: see
        :meth:`.Constraints.coexist`)."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        sa, sb = self.sightings(ra), self.sightings(rb)
        if rules.groups(sa, sb, one_per_camera=one_per_camera, brief=brief):
            return False
        self.parent[rb] = ra
        self._sight[ra] = sa + sb
        self._sight.pop(rb, None)
        return True

    def multi(self) -> dict[int, Sightings]:
        """Root -> sightings of the groups of 2+ items."""
        return {r: s for r, s in self._sight.items() if self.find(r) == r}

    def roots(self) -> np.ndarray:
        """Each item's root (what :meth:`find` returns), by pointer jumping."""
        roots = np.array(self.parent, np.int64)
        while True:
            up = roots[roots]
            if np.array_equal(up, roots):
                return roots
            roots = up

    def labels(self) -> np.ndarray:
        """A compact label 0..K-1 per item."""
        return np.unique(self.roots(), return_inverse=True)[1].reshape(-1)


__all__ = ["Groups"]
