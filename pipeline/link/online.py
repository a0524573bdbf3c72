"""Online linking: an identity for each tracklet as it closes (live streams; the default of ``run``).

Decisions are the offline ones (:mod:`.offline`), taken with what has been seen so far (causal):
when tracklets close, everything linkable seen so far (the most recent ``HISTORY``) is re-decided
offline — so the calibration, the positive model and the transit times always use all the evidence of
the run up to now — and then, step by step:

1. ``_identity_of``: each closing tracklet takes the online identity of the tracklets the solution
   puts it with (the identity most of them have; the earliest on a tie), unless that would break a
   constraint; else it founds an identity;
2. ``_merge``: two identities given out earlier are **merged** (the later into the earlier) when the
   solution puts every one of their recent linkable tracklets into one identity, no constraint
   forbids it, and the solutions still agree once the tracks that were open then have had time to
   close. Early in a run the linker has too few negatives to calibrate and no transit times yet, so
   it cannot link the first people it sees; once it can, their identities join. A merge is never
   undone, so it first waits (``_pending``) for the run's typical tracklet duration (the median of
   the recent ones, learned from the run): a track that was still open when the merge was proposed,
   and is the better match of one of the two, has closed by then and parts them in a later solution,
   which drops the merge. When the stream ends (:meth:`flush`) every merge the last solution still
   supports is made. A merge is reported (``pop_merges``, the run's ``identity_merge`` event);
   nothing is ever split and a tracklet never moves to another identity, so online decisions only
   ever add evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from reidpipe.pipeline.config import LinkerConfig
from reidpipe.pipeline.link.calibration import OperatingPoint
from reidpipe.pipeline.link.constraints import Constraints, Sightings, places
from reidpipe.pipeline.link.offline import link_offline
from reidpipe.pipeline.types import LinkEvidence, Tracklet

# linkable tracklets re-decided at each close (the most recent ones); older ones are never read
# again: their vectors are released (Linker._release), so a run's memory stops growing there
HISTORY = 5000


@dataclass(slots=True)
class _Identity:
    index: int
    # None before its first tracklet, and again once none of its tracklets is in the window: no
    # decision can join or merge it then (mates and merges come from the window), so its
    # sightings are never read again and a long run's memory plateaus
    sightings: Sightings | None = None
    members: list[int] = field(default_factory=list)


class OnlineLinker:
    def __init__(self, config: LinkerConfig, rules: Constraints):
        self.config, self.rules = config, rules
        self.identities: list[_Identity] = []
        self._linkable: list[tuple[int, Tracklet]] = []  # (tracklet index, tracklet): the last HISTORY
        self._in_window: dict[int, int] = {}  # identity -> how many of its tracklets are in the window
        self._released: list[tuple[int, Tracklet]] = []  # (index, tracklet) that left the window, not yet popped
        self._of: dict[int, int] = {}  # tracklet index -> online identity (as given out)
        self._into: dict[int, int] = {}  # merged identity -> the identity it was merged into
        self._merges: list[tuple[int, int]] = []  # (merged, into) not yet popped
        # proposed merges (earlier identity, later identity) -> (stream time proposed, tracklets then)
        self._pending: dict[tuple[int, int], tuple[float, list[int]]] = {}
        self._now = -np.inf  # stream time: the latest end of a closed linkable tracklet
        self._last: tuple[np.ndarray, list] | None = None  # the latest solution (labels, recent)
        self.operating_point: OperatingPoint | None = None

    def _new(self) -> _Identity:
        ident = _Identity(index=len(self.identities))
        self.identities.append(ident)
        return ident

    @property
    def _brief(self) -> float:
        """Overlaps in one camera the solutions may have allowed (rule 1's exception, offline.py step
        2): what a solution put together, the online identities may hold."""
        return self.config.min_duration

    def _sighting(self, t: Tracklet, cam: int) -> Sightings:
        return Sightings.one(t.start_t, t.end_t, cam, self.rules.family(t), places([t])[0])

    def _join(self, idx: int, t: Tracklet, cam: int, ident: _Identity) -> int:
        one = self._sighting(t, cam)
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
        self._now = max(self._now, *(t.end_t for _, t, _ in items))
        recent = self._linkable[-HISTORY:]
        labels, evidence, self.operating_point = link_offline(
            [t for _, t in recent], self.config, self.rules, final=False
        )
        row = {idx: r for r, (idx, _) in enumerate(recent)}
        out = []
        for idx, t, cam in items:
            r = row[idx]
            ident = self._identity_of(labels, recent, r, t, cam)
            out.append((self._join(idx, t, cam, ident), evidence[r]))
            self._in_window[ident.index] = self._in_window.get(ident.index, 0) + 1
        self._merge(labels, recent, _settling_time(recent))
        self._last = (labels, recent)
        answer = [(gid, self._runner_up_identity(ev, labels, recent)) for gid, ev in out]
        if len(self._linkable) > HISTORY:  # the window moves on: what left it is never read again
            for idx, _ in self._linkable[:-HISTORY]:
                self._leave_window(self.root(self._of[idx]))
            self._released += self._linkable[:-HISTORY]
            del self._linkable[:-HISTORY]
        return answer

    def recent(self) -> list[Tracklet]:
        """The linkable tracklets of the window (the last ``HISTORY``), oldest first."""
        return [t for _, t in self._linkable]

    def pop_released(self) -> list[tuple[int, Tracklet]]:
        """The tracklets (index, tracklet) that left the window since the last call."""
        out, self._released = self._released, []
        return out

    def _leave_window(self, gid: int) -> None:
        left = self._in_window[gid] - 1
        if left:
            self._in_window[gid] = left
        else:
            del self._in_window[gid]

    def forget(self, idx: int) -> None:
        """Tracklet ``idx`` (out of the window, or never linkable) is not read again by any decision:
        its identity is no longer looked up, and an identity none of whose tracklets is in the window
        (nor in a merge still waiting) lets its sightings go (its ``members`` keep it)."""
        gid = self.root(self._of.pop(idx))
        waiting = {self.root(g) for pair in self._pending for g in pair}
        if gid not in self._in_window and gid not in waiting:
            self.identities[gid].sightings = None

    def flush(self) -> None:
        """The stream has ended, no evidence is still to come: every pending merge that the latest
        solution supports is made."""
        if self._last is not None:
            self._merge(*self._last, wait=0.0)

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
        one = self._sighting(t, cam)
        for gid in sorted(set(mates), key=lambda g: (-mates.count(g), g)):
            ident = self.identities[gid]
            assert ident.sightings is not None  # an identity in _of has joined a tracklet
            if not self.rules.groups(ident.sightings, one, brief=self._brief):
                return ident
        return self._new()

    def _merge(self, labels: np.ndarray, recent: list, wait: float) -> None:
        """Propose the merges of the identities the solution puts wholly into one of its identities;
        make those proposed at least ``wait`` seconds ago that no solution has parted since."""
        label_of = {idx: int(labels[q]) for q, (idx, _) in enumerate(recent)}
        for pair in self._proposals(labels, recent):
            if pair not in self._pending:
                members = self.identities[pair[0]].members + self.identities[pair[1]].members
                self._pending[pair] = (self._now, members)
        for pair, (since, members) in list(self._pending.items()):
            if len({label_of[i] for i in members if i in label_of}) > 1:  # a later solution parts them
                del self._pending[pair]
            elif self._now - since >= wait:
                del self._pending[pair]
                into, other = sorted((self.root(pair[0]), self.root(pair[1])))
                if into != other:
                    self._merge_pair(self.identities[into], self.identities[other])

    def _proposals(self, labels: np.ndarray, recent: list) -> list[tuple[int, int]]:
        """(earlier, later) identities all of whose recent members the solution gives one label."""
        label_sets: dict[int, set[int]] = {}  # identity -> the solution's labels of its recent members
        for q, (idx, _) in enumerate(recent):
            label_sets.setdefault(self.root(self._of[idx]), set()).add(int(labels[q]))
        whole: dict[int, list[int]] = {}  # label -> identities all of whose recent members carry it
        for gid, labs in label_sets.items():
            if len(labs) == 1:
                whole.setdefault(labs.pop(), []).append(gid)
        pairs = []
        for gids in whole.values():
            first, *later = sorted(gids)
            pairs += [(first, gid) for gid in later]
        return pairs

    def _merge_pair(self, into: _Identity, other: _Identity) -> None:
        assert into.sightings is not None and other.sightings is not None
        if self.rules.groups(into.sightings, other.sightings, brief=self._brief):  # a constraint forbids it
            return
        into.sightings = into.sightings + other.sightings
        into.members.extend(other.members)
        if other.index in self._in_window:
            self._in_window[into.index] = self._in_window.get(into.index, 0) + self._in_window.pop(other.index)
        other.members = []
        self._into[other.index] = into.index
        self._merges.append((other.index, into.index))

    def groups(self) -> list[list[int]]:
        return [list(i.members) for i in self.identities if i.members]


def _settling_time(recent: list) -> float:
    """How long a proposed merge waits: the median duration of the recent linkable tracklets (about
    the time the tracks open when it was proposed take to close)."""
    return float(np.median([t.end_t - t.start_t for _, t in recent])) if recent else 0.0


__all__ = ["OnlineLinker"]
