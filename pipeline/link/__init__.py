"""Cross-camera linking: per-camera tracklets -> global identities (docs/design.md §4).

    Linker(config, cameras)          the facade the runner uses
      .add(t) / .add_many(ts)        online: an identity for each tracklet as it closes (online.py)
      .pop_merges()                  online: identities merged since the last call (later evidence)
      .cut(ts)                       online: closing tracks that swapped people cut into pieces
      .pop_splits()                  the tracks cut since the last call
      .finalize()                    the identities (re-decided offline with ``refine``: offline.py)
      .link(ts)                      batch: everything offline
      .operating_point               what the decisions were calibrated with (calibration.py)
      .final_tracklets               after finalize: the tracklets, a cut one as its pieces

The modules, one concern each: ``quality`` (which tracklets may drive a link), ``features`` (pooling,
camera centring), ``constraints`` (what can never be one person), ``calibration`` (z-scores against
the run's own negatives, Bonferroni levels, the Bayesian decision), ``evidence`` (transit times and
co-occurrence learned from confident links), ``groups`` (constrained union-find), ``split`` (tracks
the tracker carried from one person to another, cut where the appearance changes), ``online`` and
``offline`` (the two passes). Every tracklet ever added ends in exactly one identity (a cut one as
its pieces, each in one); identities are numbered 1..N by first sighting.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from reidpipe.errors import ConfigError
from reidpipe.pipeline.config import LinkerConfig
from reidpipe.pipeline.link.calibration import OperatingPoint
from reidpipe.pipeline.link.constraints import Constraints
from reidpipe.pipeline.link.offline import link_offline, reentry_levels
from reidpipe.pipeline.link.online import OnlineLinker
from reidpipe.pipeline.link.quality import linkable
from reidpipe.pipeline.link.split import Split, SplitReport, split_tracklets
from reidpipe.pipeline.types import Identity, LinkEvidence, Tracklet
from reidpipe.pipeline.validate import problems

if TYPE_CHECKING:
    from reidpipe.pipeline.engine.spill import PointStore

DEFAULT_FALLBACK_SIMILARITY = 0.5


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while the block runs (as it was after). The linker holds
    no reference cycles to collect, and the collections its many small objects trigger each walk
    every object the run holds (every tracklet's points): ~1 s of 100,000 tracklets' linking in
    `reidpipe bench --linker-only`."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class Linker:
    """Online + offline cross-camera linker (see the package docstring)."""

    def __init__(
        self,
        config: LinkerConfig | None = None,
        cameras: list[str] | None = None,
        keep_features: bool = False,
        store: PointStore | None = None,
    ):
        self.config = _checked(config or LinkerConfig(), list(cameras or []))
        self.cameras = list(cameras or [])
        self.rules = Constraints(self.config, self.cameras)
        self._online = OnlineLinker(self.config, self.rules)
        # online: a tracklet that left the window of recent ones keeps its feature (else: no vector)
        self.keep_features = keep_features
        # as registered (the tracker's tracks); online with a ``store`` (the runner's point file), a
        # track no decision reads again is retired there (:meth:`_release`), so memory plateaus
        from reidpipe.pipeline.engine.spill import TrackShelf  # (spill reads link.constraints)

        self.tracklets = TrackShelf(store)
        # what the identities hold once finalized: the tracklets, a split one replaced by its pieces
        self.final_tracklets: Sequence[Tracklet] = []
        self.split_report: SplitReport | None = None
        self._next_piece: dict[str, int] = {}  # camera -> number of its next piece (split.SPLIT_BASE up)
        self.pieces: dict[tuple[str, int], Tracklet] = {}  # the pieces of the tracks cut, by key
        self._new_splits: list[Split] = []
        self._evidence: dict[tuple[str, int], LinkEvidence] = {}
        self._online_of: list[int] = []  # tracklet -> online identity
        self.operating_point: OperatingPoint | None = None

    def linkable(self, t: Tracklet) -> bool:
        return linkable(t, self.config)

    def _register(self, t: Tracklet, known: set[tuple[str, int]] | None = None) -> tuple[int, int]:
        """Keep ``t``; ``known``: the keys of the tracklets kept so far (updated), when the caller has
        them (a batch: looking each key up in the shelf is a pass over every tracklet kept)."""
        if not t.points:
            raise ValueError(f"tracklet {t.camera}/{t.track} has no points")
        if (t.key in known) if known is not None else (self.tracklets.find(t.key) is not None):
            raise ValueError(f"tracklet {t.camera}/{t.track} was already added to the linker")
        if known is not None:
            known.add(t.key)
        self.rules.add_camera(t.camera)
        idx = self.tracklets.append(t)
        self._evidence[t.key] = LinkEvidence(score=0.0)
        self._online_of.append(-1)
        return idx, self.rules.cameras.index(t.camera)

    def _record(self, idx: int, gid: int, ev: LinkEvidence) -> tuple[int, LinkEvidence]:
        """Keep a closing tracklet's online identity (0-based inside, 1-based ids outside)."""
        if ev.runner_up is not None:
            ev = replace(ev, runner_up=ev.runner_up + 1)
        self._online_of[idx] = gid
        self._evidence[self.tracklets.key(idx)] = ev
        return gid + 1, ev

    # ------------------------------------------------------------------ online
    def add(self, t: Tracklet) -> tuple[int, LinkEvidence]:
        """Link one closing tracklet; returns its online identity id and evidence."""
        return self.add_many([t])[0]

    def add_many(self, tracklets: list[Tracklet]) -> list[tuple[int, LinkEvidence]]:
        """Tracklets that close together, assigned jointly (one-to-one)."""
        out: dict[int, tuple[int, LinkEvidence]] = {}
        joint, unlinkable = [], []
        for k, t in enumerate(tracklets):
            idx, cam = self._register(t)
            if self.linkable(t):
                joint.append((k, idx, t, cam))
            else:
                out[k] = self._record(idx, self._online.add_unlinkable(idx, t, cam), LinkEvidence(score=0.0))
                unlinkable.append(idx)
        results = self._online.add_many([(idx, t, cam) for _, idx, t, cam in joint]) if joint else []
        for (k, idx, _, _), (gid, ev) in zip(joint, results):
            out[k] = self._record(idx, gid, ev)
        self._release(unlinkable)
        return [out[k] for k in range(len(tracklets))]

    def _release(self, unlinkable: list[int]) -> None:
        """Online (no ``refine``): the tracklets no decision reads again (those that left the window of
        recent ones, online.HISTORY, and those that can never link) are retired to the run's point
        file (``store``; without one, only their vectors go), so a long run's memory plateaus. With
        ``keep_features`` (a gallery stores them at the end) they stay, their feature kept and their
        segments joined into one (the crop count and weight the gallery stores)."""
        released = self._online.pop_released()
        if self.config.refine:  # the final offline pass reads every tracklet's vectors
            return
        for _, t in released:
            if self.keep_features and t.segments:
                t.segments = [sum(t.segments[1:], start=t.segments[0])]
            elif not self.keep_features:
                t.feature, t.segments = None, []
        if self.keep_features or self.tracklets.store is None:
            return
        for idx in [*unlinkable, *(idx for idx, _ in released)]:
            self._online.forget(idx)
            self.tracklets.retire(idx, self._evidence.pop(self.tracklets.key(idx)))

    def pop_merges(self) -> list[tuple[int, int]]:
        """Online identity ids ``(merged, into)`` joined since the last call: the linker found, with
        what it has seen since, that two identities it gave out are one person (see online.py)."""
        return [(a + 1, b + 1) for a, b in self._online.pop_merges()]

    # ------------------------------------------------------------------ results
    def finalize(self) -> list[Identity]:
        """The identities, sorted by first sighting, ids 1..N; re-decided offline with ``refine``."""
        if self.config.refine:
            with collector_paused():
                return self._offline()
        self._online.flush()  # the merges still waiting for evidence (pop_merges reports them)
        self.operating_point = self._online.operating_point
        if self.operating_point is not None and self.split_report is not None:
            self.operating_point.splits = self.split_report
        from reidpipe.pipeline.engine.spill import ShelfTracks

        self.final_tracklets = self.tracklets
        groups: dict[int, list[int]] = {}  # online identity -> its tracklets, by index (none is read)
        for idx, g in enumerate(self._online_of):
            groups.setdefault(self._online.root(g), []).append(idx)
        order = self.tracklets.order
        ranked = sorted((sorted(g, key=order) for g in groups.values()), key=lambda g: order(g[0]))
        final = {self._online.root(self._online_of[g[0]]): gid for gid, g in enumerate(ranked, start=1)}
        return [
            Identity(id=gid, tracklets=ShelfTracks(self.tracklets, g), evidence=_Evidence(self, g, final))
            for gid, g in enumerate(ranked, start=1)
        ]

    def evidence_at(self, idx: int, final: dict[int, int] | None = None) -> LinkEvidence:
        """Tracklet ``idx``'s online evidence; with ``final`` (online identity -> the id it ended in,
        once finalized) its runner-up as that id, or none once it has joined its runner-up."""
        key = self.tracklets.key(idx)
        ev = self._evidence[key] if key in self._evidence else self.tracklets.evidence(idx)
        if final is None or ev.runner_up is None:
            return ev
        other = final[self._online.root(ev.runner_up - 1)]
        if other == final[self._online.root(self._online_of[idx])]:
            return replace(ev, runner_up=None, margin=None)
        return replace(ev, runner_up=other)

    def link(self, tracklets: list[Tracklet]) -> list[Identity]:
        """Batch linking: register ``tracklets`` (no online pass) and decide everything offline."""
        with collector_paused():
            known = {self.tracklets.key(i) for i in range(len(self.tracklets))}
            for t in tracklets:
                self._register(t, known)
            return self._offline()

    def _offline(self) -> list[Identity]:
        # tracklets by object identity here, not by key: building 1.2 million (camera, track) keys cost
        # 1 of 12 s for 100,000 tracklets in `reidpipe bench --linker-only`
        linkable = [t for t in self.tracklets if self.linkable(t)]
        units = self._split(linkable)
        cut = self.split_report is not None and bool(self.split_report.splits)
        self.final_tracklets = self._replace_split(units) if cut else list(self.tracklets)
        linked = [t for t in units if self.linkable(t)] if cut else linkable
        labels, evidence, self.operating_point = link_offline(linked, self.config, self.rules)
        if self.split_report is not None:
            self.operating_point.splits = self.split_report
        groups: dict[int, list[Tracklet]] = {}
        evidence_of: dict[int, LinkEvidence] = {}
        for t, lab, ev in zip(linked, labels.tolist(), evidence):
            groups.setdefault(lab, []).append(t)
            evidence_of[id(t)] = ev
        alone = [[t] for t in self.final_tracklets if id(t) not in evidence_of]
        for (t,) in alone:
            evidence_of[id(t)] = LinkEvidence(score=0.0)
        identities = self._identities(list(groups.values()) + alone, lambda t: evidence_of[id(t)])
        final = {id(t): ident.id for ident in identities for t in ident.tracklets}
        for ev in evidence:  # runner-up labels of the solution -> identity ids
            if ev.runner_up is not None:
                ev.runner_up = final[id(groups[ev.runner_up][0])]
        return identities

    def _split(self, linkable: list[Tracklet]) -> list[Tracklet]:
        """Offline: the linkable tracklets with every track that swapped people cut into its pieces,
        judged with all of each camera's tracks (split.py)."""
        self.split_report = None
        if not self.config.split or not any(len(t.segments) > 1 for t in linkable):
            return linkable
        units, self.split_report = self._judge(linkable, linkable)
        return units

    @property
    def cuts_at_close(self) -> bool:
        """Whether :meth:`cut` decides a closing track for good (online), rather than the end (``refine``)."""
        return not (self.config.refine and self.config.split)

    def cut(self, closing: list[Tracklet]) -> list[Tracklet]:
        """Online (no ``refine``): the closing tracklets, a track that swapped people replaced by its
        pieces, judged with the camera's tracks so far (split.py); each piece is then linked as a
        tracklet of its own. With ``refine`` they are returned as they are: the end decides."""
        if self.config.refine or not self.config.split:
            return list(closing)
        if not any(self.linkable(t) and len(t.segments) > 1 for t in closing):
            return list(closing)
        for t in closing:
            self.rules.add_camera(t.camera)
        pool = self._online.recent() + [t for t in closing if self.linkable(t)]
        units, report = self._judge(pool, closing)
        done = self.split_report.splits if self.split_report is not None else []
        self.split_report = SplitReport(cameras=report.cameras, splits=done + report.splits)  # the latest rules
        return units

    def _judge(self, pool: list[Tracklet], tracklets: list[Tracklet]) -> tuple[list[Tracklet], SplitReport]:
        """``tracklets``, those of ``pool`` that swapped people cut (rules fitted on ``pool``); the cuts
        are queued for :meth:`pop_splits` and their pieces kept in ``pieces``."""
        levels, means = reentry_levels(pool, self.config, self.rules)
        units, report = split_tracklets(pool, tracklets, levels, means, self._next_piece)
        self._new_splits += report.splits
        parts = {(s.camera, n) for s in report.splits for n in s.parts}
        self.pieces.update({u.key: u for u in units if u.key in parts})
        return units, report

    def pop_splits(self) -> list[Split]:
        """The tracks cut since the last call."""
        out, self._new_splits = self._new_splits, []
        return out

    def _replace_split(self, units: list[Tracklet]) -> list[Tracklet]:
        """Every registered tracklet in order, a split one replaced by its pieces."""
        pieces: dict[tuple[str, int], list[Tracklet]] = {}
        for u in units:
            parent = (u.camera, u.split_from if u.split_from is not None else u.track)
            pieces.setdefault(parent, []).append(u)
        return [p for t in self.tracklets for p in pieces.get(t.key, [t])]

    def _identities(
        self, groups: list[list[Tracklet]], evidence_of: Callable[[Tracklet], LinkEvidence] | None = None
    ) -> list[Identity]:
        """Identities 1..N by first sighting; ``evidence_of(t)``: a tracklet's evidence (default: as
        recorded online)."""
        evidence_of = evidence_of or (lambda t: self._evidence[t.key])

        def order(t: Tracklet) -> tuple[float, str, int]:
            return (t.start_t, t.camera, t.track)

        groups = sorted((sorted(g, key=order) for g in groups if g), key=lambda g: order(g[0]))
        return [
            Identity(id=gid, tracklets=list(g), evidence={t.key: evidence_of(t) for t in g})
            for gid, g in enumerate(groups, start=1)
        ]


class _Evidence(Mapping[tuple[str, int], LinkEvidence]):
    """An online identity's evidence by tracklet key, read when asked (a retired tracklet's from the
    run's point file), the runner-up given as the identity it ended in."""

    def __init__(self, linker: Linker, indices: list[int], final: dict[int, int]):
        self.linker, self.indices, self.final = linker, indices, final

    def _index(self, key: tuple[str, int]) -> int | None:
        return self.linker.tracklets.find(key, among=self.indices)

    def __getitem__(self, key: tuple[str, int]) -> LinkEvidence:
        idx = self._index(key)
        if idx is None:
            raise KeyError(key)
        return self.linker.evidence_at(idx, self.final)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and self._index(key) is not None  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return (self.linker.tracklets.key(i) for i in self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _checked(config: LinkerConfig, cameras: list[str]) -> LinkerConfig:
    for what, pairs in (("transit window", config.transit or {}), ("--adjacent", config.adjacent or [])):
        unknown = {c for pair in pairs for c in pair} - set(cameras)
        if cameras and unknown:
            raise ConfigError(f"{what} names unknown camera(s) {sorted(unknown)}; cameras are {cameras}")
    for key, value, problem, _ in problems(config, "link."):  # the settings' own rules (pipeline/config.py)
        raise ConfigError(f"{key}: {problem}, got {value!r}")
    if config.fallback_similarity is None:
        config = replace(config, fallback_similarity=DEFAULT_FALLBACK_SIMILARITY)
    return config


__all__ = ["Linker", "OperatingPoint"]
