"""Online linking: an identity for each tracklet as it closes (live streams; the default of ``run``).

Decisions are the offline ones (:mod:`.offline`), taken with what has been seen so far (causal):
when tracklets close, everything linkable seen so far (the most recent ``HISTORY``) is re-decided
offline — so the calibration, the positive model and the transit times always use all the evidence of
the run up to now — and then, step by step:

1. ``_identity_of``: each closing tracklet takes the online identity of the tracklets the solution
   puts it with (the identity most of them have; the earliest on a tie), unless that would break a
   constraint; else it founds an identity;
2. ``_merges``: two identities given out earlier are **merged** (the later into the earlier) when the
   solution now puts every one of their recent linkable tracklets into one identity and no constraint
   forbids it. Early in a run the linker has too few negatives to calibrate and no transit times yet,
   so it cannot link the first people it sees; once it can, their identities join. A merge is
   reported (``pop_merges``, the run's ``identity_merge`` event); nothing is ever split and a
   tracklet never moves to another identity, so online decisions only ever add evidence.

Measured on the three development twins (OSNet, ``--online``; MTMC IDF1 / link F1): without merges
0.787 / 0.667, 0.720 / 0.596, 0.767 / 0.627; with them 0.872 / 0.903, 0.808 / 0.743, 0.872 / 0.889.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

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
        self._of: dict[int, int] = {}  # tracklet index -> online identity (as given out)
        self._into: dict[int, int] = {}  # merged identity -> the identity it was merged into
        self._merges: list[tuple[int, int]] = []  # (merged, into) not yet popped
        self.operating_point: OperatingPoint | None = None

    def _new(self) -> _Identity:
        ident = _Identity(index=len(self.identities))
        self.identities.append(ident)
        return ident

    def _join(self, idx: int, t: Tracklet, cam: int, ident: _Identity) -> int:
        one = Sightings.one(t.start_t, t.end_t, cam, self.rules.family(t))
        ident.sightings = one if ident.sightings is None else ident.sightings + one
        ident.members.append(idx)
        self._of[idx] = ident.index
        return ident.index

    def add_unlinkable(self, idx: int, t: Tracklet, cam: int) -> int:
        return self._join(idx, t, cam, self._new())

    def root(self, gid: int) -> int:
        """The identity ``gid`` is now part of (itself unless it was merged)."""
        while gid in self._into:
            gid = self._into[gid]
        return gid

    def pop_merges(self) -> list[tuple[int, int]]:
        """The merges (merged identity, identity it joined) made since the last call."""
        out, self._merges = self._merges, []
        return out

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
        self._merge(labels, recent)
        return [(gid, self._runner_up_identity(ev, labels, recent)) for gid, ev in out]

    def _runner_up_identity(self, ev: LinkEvidence, labels: np.ndarray, recent: list) -> LinkEvidence:
        """The evidence with its runner-up (a label of the offline solution) as an online identity."""
        if ev.runner_up is None:
            return ev
        mates = [self.root(self._of[idx]) for q, (idx, _) in enumerate(recent) if labels[q] == ev.runner_up]
        return replace(ev, runner_up=min(mates, key=lambda g: (-mates.count(g), g)) if mates else None)

    def _identity_of(self, labels: np.ndarray, recent: list, r: int, t: Tracklet, cam: int) -> _Identity:
        mates = [
            self.root(self._of[idx]) for q, (idx, _) in enumerate(recent) if labels[q] == labels[r] and idx in self._of
        ]
        one = Sightings.one(t.start_t, t.end_t, cam, self.rules.family(t))
        for gid in sorted(set(mates), key=lambda g: (-mates.count(g), g)):
            ident = self.identities[gid]
            assert ident.sightings is not None  # an identity in _of has joined a tracklet
            if not self.rules.groups(ident.sightings, one):
                return ident
        return self._new()

    def _merge(self, labels: np.ndarray, recent: list) -> None:
        """Merge the identities that the solution now puts wholly into one of its identities."""
        label_sets: dict[int, set[int]] = {}  # identity -> the solution's labels of its recent members
        for q, (idx, _) in enumerate(recent):
            label_sets.setdefault(self.root(self._of[idx]), set()).add(int(labels[q]))
        whole: dict[int, list[int]] = {}  # label -> identities all of whose recent members carry it
        for gid, labs in label_sets.items():
            if len(labs) == 1:
                whole.setdefault(labs.pop(), []).append(gid)
        for gids in whole.values():
            first, *later = sorted(gids)
            for gid in later:
                self._merge_pair(self.identities[first], self.identities[gid])

    def _merge_pair(self, into: _Identity, other: _Identity) -> None:
        assert into.sightings is not None and other.sightings is not None
        if self.rules.groups(into.sightings, other.sightings):  # a constraint forbids it
            return
        into.sightings = into.sightings + other.sightings
        into.members.extend(other.members)
        other.members = []
        self._into[other.index] = into.index
        self._merges.append((other.index, into.index))

    def groups(self) -> list[list[int]]:
        return [list(i.members) for i in self.identities if i.members]


__all__ = ["OnlineLinker"]
