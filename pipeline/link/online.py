"""Online linking: an identity for each tracklet as it closes (live streams; the default of ``run``).

Decisions are the offline ones (:mod:`.offline`), taken with what has been seen so far and never
revised: when tracklets close, everything linkable seen so far (the most recent ``HISTORY``) is
re-decided offline — so the calibration, the positive model and the transit times always use all the
evidence of the run up to now — and each closing tracklet takes the online identity of the tracklets
the solution puts it with (the identity most of them have; the earliest on a tie), unless that would
break a constraint; else it founds an identity. Identities already given out stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reidpipe.pipeline.config import LinkerConfig
from reidpipe.pipeline.link.calibration import OperatingPoint
from reidpipe.pipeline.link.constraints import Constraints, Sightings
from reidpipe.pipeline.link.offline import link_offline
from reidpipe.pipeline.types import LinkEvidence, Tracklet

HISTORY = 5000  # linkable tracklets re-decided at each close (the most recent ones)


@dataclass
class _Identity:
    index: int
    sightings: Sightings | None = None
    members: list[int] = field(default_factory=list)


class OnlineLinker:
    def __init__(self, config: LinkerConfig, rules: Constraints):
        self.config, self.rules = config, rules
        self.identities: list[_Identity] = []
        self._linkable: list[tuple[int, Tracklet]] = []  # (tracklet index, tracklet)
        self._of: dict[int, int] = {}  # tracklet index -> online identity
        self.operating_point: OperatingPoint | None = None

    def _new(self) -> _Identity:
        ident = _Identity(index=len(self.identities))
        self.identities.append(ident)
        return ident

    def _join(self, idx: int, t: Tracklet, cam: int, ident: _Identity) -> int:
        one = Sightings.one(t.start_t, t.end_t, cam)
        ident.sightings = one if ident.sightings is None else ident.sightings + one
        ident.members.append(idx)
        self._of[idx] = ident.index
        return ident.index

    def add_unlinkable(self, idx: int, t: Tracklet, cam: int) -> int:
        return self._join(idx, t, cam, self._new())

    def add_many(self, items: list[tuple[int, Tracklet, int]]) -> list[tuple[int, LinkEvidence]]:
        """Linkable tracklets that close together: one offline solution decides them all."""
        self._linkable.extend((idx, t) for idx, t, _ in items)
        recent = self._linkable[-HISTORY:]
        labels, evidence, self.operating_point = link_offline([t for _, t in recent], self.config, self.rules)
        row = {idx: r for r, (idx, _) in enumerate(recent)}
        out = []
        for idx, t, cam in items:
            r = row[idx]
            ident = self._identity_of(labels, recent, r, t, cam)
            out.append((self._join(idx, t, cam, ident), evidence[r]))
        return out

    def _identity_of(self, labels: np.ndarray, recent: list, r: int, t: Tracklet, cam: int) -> _Identity:
        mates = [self._of[idx] for q, (idx, _) in enumerate(recent) if labels[q] == labels[r] and idx in self._of]
        one = Sightings.one(t.start_t, t.end_t, cam)
        for gid in sorted(set(mates), key=lambda g: (-mates.count(g), g)):
            ident = self.identities[gid]
            assert ident.sightings is not None  # an identity in _of has joined a tracklet
            if not self.rules.groups(ident.sightings, one):
                return ident
        return self._new()

    def groups(self) -> list[list[int]]:
        return [list(i.members) for i in self.identities]


__all__ = ["OnlineLinker"]
