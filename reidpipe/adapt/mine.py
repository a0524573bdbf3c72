"""Pseudo-identities from a finished run: which tracks are one person, by the run's own decisions.

The rules, each the run's own evidence (docs/training.md, "Adapting to your cameras"):

1. **A track is one person.** Where the linker cut a track because its appearance changed to someone
   else's (``split_from``), each piece is a track of its own.
2. **A confident link joins.** The tracks of one identity are one pseudo-identity, except a track
   whose link was a close call: its margin over the runner-up identity (``link.margin``) below
   ``min_margin``, or its similarity to the rest of its identity (``link.score``) less than
   ``min_z`` spreads above what two different people of that camera pair typically reach (the
   pair's negative model in the run's operating point: ``median + min_z * scale``). Such a track is
   **left out** (dropped, not made a pseudo-identity of its own): the linker thought it was that
   person, so as a separate pseudo-identity it would teach the model that one person is two, and a
   wrong merge would teach that two people are one; both poison training more than a missing track.
3. **Two tracks that coexist in one camera are two people.** If a pseudo-identity still holds two
   tracks of one camera that overlap in time (the linker allows a brief overlap for a tracker's
   duplicate track), the shorter is left out.
4. A track with no appearance evidence (``link.score`` 0: it failed the linker's quality gate) is
   left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_MIN_MARGIN = 0.0
DEFAULT_MIN_Z = 1.0


@dataclass(frozen=True)
class LinkRule:
    """When a track's membership of its identity is trusted (module docstring, rule 2)."""

    min_margin: float = DEFAULT_MIN_MARGIN
    min_z: float = DEFAULT_MIN_Z


@dataclass
class MinedTrack:
    """One track of a run: its camera, number and detected (not interpolated) points."""

    run: int
    camera: str
    track: int
    identity: int
    points: list[dict[str, Any]]

    @property
    def first(self) -> int:
        return int(self.points[0]["frame"])

    @property
    def last(self) -> int:
        return int(self.points[-1]["frame"])


@dataclass
class PseudoIdentity:
    """Tracks taken to be one person: one run identity's trusted tracks."""

    run: int
    identity: int
    tracks: list[MinedTrack] = field(default_factory=list)

    @property
    def cameras(self) -> list[str]:
        return sorted({t.camera for t in self.tracks})


@dataclass
class LeftOut:
    """A track not used, and why."""

    run: int
    identity: int
    camera: str
    track: int
    reason: str  # uncertain_link | coexists | no_evidence

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run, "identity": self.identity, "camera": self.camera, "track": self.track,
                "reason": self.reason}  # fmt: skip


@dataclass
class Mined:
    identities: list[PseudoIdentity] = field(default_factory=list)
    left_out: list[LeftOut] = field(default_factory=list)


def mine_run(trajectories: dict[str, Any], run: int, rule: LinkRule) -> Mined:
    """The pseudo-identities of one run's ``trajectories.json`` (already validated) and the tracks
    left out."""
    out = Mined()
    linker = trajectories.get("linker") or {}
    for ident in trajectories["identities"]:
        tracks = [_track(t, run, int(ident["id"])) for t in ident["tracks"]]
        tracks = [t for t in tracks if t.points]
        tracks.sort(key=lambda t: (t.first, t.camera, t.track))
        kept = []
        for k, (raw, t) in enumerate(zip(_raw_sorted(ident, tracks), tracks)):
            why = _doubt(raw, t, tracks, k, linker, rule)
            if why:
                out.left_out.append(LeftOut(run, t.identity, t.camera, t.track, why))
            else:
                kept.append(t)
        kept, coexisting = _without_coexisting(kept)
        out.left_out += [LeftOut(run, t.identity, t.camera, t.track, "coexists") for t in coexisting]
        if kept:
            out.identities.append(PseudoIdentity(run, int(ident["id"]), kept))
    return out


def _track(raw: dict[str, Any], run: int, identity: int) -> MinedTrack:
    points = [p for p in raw["points"] if not p.get("interpolated")]
    return MinedTrack(run, str(raw["camera"]), int(raw["track"]), identity, points)


def _raw_sorted(ident: dict[str, Any], tracks: list[MinedTrack]) -> list[dict[str, Any]]:
    by_key = {(str(t["camera"]), int(t["track"])): t for t in ident["tracks"]}
    return [by_key[(t.camera, t.track)] for t in tracks]


def _doubt(raw: dict[str, Any], t: MinedTrack, tracks: list[MinedTrack], k: int, linker: dict, rule: LinkRule):
    """Why track ``k`` of its identity is not trusted (rule 2 and 4), or None."""
    link = raw["link"]
    score = float(link["score"])
    if len(tracks) == 1:
        return "no_evidence" if score <= 0.0 else None
    margin = link.get("margin")
    if margin is not None and float(margin) < rule.min_margin:
        return "uncertain_link"
    neighbour = tracks[k - 1] if k > 0 else tracks[1]  # the sighting the link was made against
    level = score_level(linker, t.camera, neighbour.camera, rule.min_z)
    if level is not None and score < level:
        return "uncertain_link"
    return None


def score_level(linker: dict[str, Any], cam_a: str, cam_b: str, min_z: float) -> float | None:
    """``median + min_z * scale`` of the negative model of a camera (same camera) or camera pair in
    the run's operating point; None where the run has none (a fallback decision)."""
    if cam_a == cam_b:
        entry = (linker.get("in_camera") or {}).get(cam_a) or {}
    else:
        cross = linker.get("cross_camera") or {}
        entry = cross.get(f"{cam_a}~{cam_b}") or cross.get(f"{cam_b}~{cam_a}") or {}
    median, scale = entry.get("median"), entry.get("scale")
    if not isinstance(median, (int, float)) or not isinstance(scale, (int, float)):
        return None  # checked finite and bounded when the run was opened (adapt.runs)
    return float(median) + min_z * float(scale)


def _without_coexisting(tracks: list[MinedTrack]) -> tuple[list[MinedTrack], list[MinedTrack]]:
    """Rule 3: of two tracks of one camera that overlap in time, the shorter goes."""
    kept: list[MinedTrack] = []
    dropped: list[MinedTrack] = []
    for t in sorted(tracks, key=lambda t: -len(t.points)):
        if any(coexist(o, t) for o in kept):
            dropped.append(t)
        else:
            kept.append(t)
    kept.sort(key=lambda t: (t.first, t.camera, t.track))
    return kept, dropped


def coexist(a: MinedTrack, b: MinedTrack) -> bool:
    """Two tracks of one camera seen in a common frame range (two people, rule 3)."""
    return a.run == b.run and a.camera == b.camera and a.first <= b.last and b.first <= a.last


__all__ = ["LeftOut", "LinkRule", "Mined", "MinedTrack", "PseudoIdentity", "coexist", "mine_run", "score_level"]
