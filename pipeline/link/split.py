"""Tracklet splitting: a track the tracker carried from one person to another is cut where its
appearance changes (docs/design.md §4.2).

Trackers swap identities where people cross or walk together and the detector misses one of them for
a few frames. Such a track is half one person, half another: whichever identity it joins, the other
half is lost, and it can block the right link (one track per person per camera at a time).

**While a track is open** (:func:`add_crop`), every embedded crop is a :class:`Segment` of the
tracklet, in time order; beyond ``MAX_SEGMENTS`` the two most similar neighbours are merged, which keeps
the points where the appearance changes. **When it closes** (:func:`candidate_segments`), only the
segments of its candidate cuts are kept: the two-way split of its crops whose sides are least similar
(each side at least ``MIN_SIDE`` crops), and the same within each side: at most four segments, a
handful of vectors whatever the track's length.

**At linking** (offline: files, ``--refine``), :func:`split_tracklets` decides per camera with the
run's own data, in camera-centred features as the linker compares them:

1. ``_split_similarity``: the cosine between the two sides of each track's best cut;
2. most tracks are one person, so a camera's split similarities are a sample of "one person at two
   moments": a robust fit (median, 1.4826 MAD; at least ``MIN_TRACKS`` tracks, else nothing is cut);
3. a cut is made when its similarity is a low outlier of that sample (below the Bonferroni level over
   the camera's tracks, family-wise ``ALPHA``) **and** below the camera's re-entry level (the level at
   which the linker merges two of the camera's tracklets as one person: two sides above it would be
   joined again);
4. each side of a cut is cut again by the same rule (two swaps in one track).

Pieces keep the points of their side, from its first crop to its last (the frames between two sides,
where the track went from one person to the other, are left out); their feature is the
quality-weighted mean of their crops. The first piece keeps
the track's number; the others are numbered from ``SPLIT_BASE`` + 1 up in their camera and carry
``split_from``. Offline, every track is judged at the end with all the camera's tracks; online (live
streams without ``--refine``) each track is judged as it closes, with the camera's tracks so far.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from reidpipe.pipeline.link import calibration as cal
from reidpipe.pipeline.types import Segment, Tracklet

MAX_SEGMENTS = 64  # crops kept per open track (the most similar neighbours merge beyond)
MIN_SIDE = 3  # embedded crops on each side of a cut
MIN_TRACKS = 8  # tracks with a candidate cut a camera needs for its split sample to be fitted
# pieces cut from a track are numbered from here up in each camera: a range the tracker's own numbers
# (1, 2, ...) never reach, so that a live run can cut a track while the tracker goes on numbering
SPLIT_BASE = 1_000_000


# ------------------------------------------------------------------------------ while a track is open
def add_crop(t: Tracklet, frame: int, embedding: np.ndarray, quality: float) -> None:
    """Record one embedded crop of an open tracklet, in time order (crops embedded out of order, as
    with ``--embed-budget``, are put in their place)."""
    q = max(float(quality), 1e-6)
    seg = Segment(first=int(frame), last=int(frame), total=np.asarray(embedding, np.float32) * q, weight=q)
    k = len(t.segments)
    while k > 0 and t.segments[k - 1].first > seg.first:
        k -= 1
    t.segments.insert(k, seg)
    if len(t.segments) > MAX_SEGMENTS:
        k = _most_similar_neighbours(t.segments)
        t.segments[k : k + 2] = [t.segments[k] + t.segments[k + 1]]


def _unit(X: np.ndarray) -> np.ndarray:
    return X / np.maximum(np.linalg.norm(X, axis=-1, keepdims=True), 1e-12)


def _most_similar_neighbours(segments: list[Segment]) -> int:
    U = _unit(np.stack([s.total for s in segments]))
    return int(np.argmax(np.einsum("ij,ij->i", U[:-1], U[1:])))


# ------------------------------------------------------------------------------ when it closes
def _best_cut(segments: list[Segment], mean: np.ndarray | None = None) -> tuple[int, float] | None:
    """``(b, cosine)``: the boundary before ``segments[b]`` whose two sides (each >= ``MIN_SIDE``
    crops) are least similar, with ``mean`` (the camera's mean feature) subtracted; None when the
    segments hold too few crops for any cut."""
    if len(segments) < 2:
        return None
    totals = np.stack([s.total for s in segments]).astype(np.float64)
    weights = np.array([s.weight for s in segments])
    crops = np.cumsum([s.crops for s in segments])
    left, wl = np.cumsum(totals, 0)[:-1], np.cumsum(weights)[:-1]
    right, wr = totals.sum(0) - left, weights.sum() - wl
    if mean is not None:
        left, right = left - wl[:, None] * mean, right - wr[:, None] * mean
    sims = np.einsum("ij,ij->i", _unit(left), _unit(right))
    valid = (crops[:-1] >= MIN_SIDE) & (crops[-1] - crops[:-1] >= MIN_SIDE)
    if not valid.any():
        return None
    b = int(np.flatnonzero(valid)[np.argmin(sims[valid])])
    return b + 1, float(sims[b])


def _joined(segments: list[Segment]) -> Segment:
    out = segments[0]
    for s in segments[1:]:
        out = out + s
    return out


def candidate_segments(segments: list[Segment]) -> list[Segment]:
    """The segments a closing track keeps: those between its candidate cuts (the best cut and the best
    cut of each side), at most four."""
    if not segments:
        return []
    best = _best_cut(segments)
    if best is None:
        return [_joined(segments)]
    b = best[0]
    cuts = {b}
    for lo, hi in ((0, b), (b, len(segments))):
        inner = _best_cut(segments[lo:hi])
        if inner is not None:
            cuts.add(lo + inner[0])
    edges = [0, *sorted(cuts), len(segments)]
    return [_joined(segments[a:z]) for a, z in zip(edges[:-1], edges[1:])]


# ------------------------------------------------------------------------------ at linking
@dataclass(frozen=True)
class Split:
    """One track cut where its appearance changed to another person's."""

    camera: str
    track: int  # the track that was cut; its first piece keeps the number
    parts: list[int]  # the pieces' track numbers, in time order
    frames: list[int]  # where each later piece starts
    spans: list[list[float]]  # [start, end] seconds, per piece
    left_out: int  # points between the sides (either person's), in no piece

    def to_json(self) -> dict[str, Any]:
        """The ``track_split`` event's fields and the operating point's record."""
        return {
            "camera": self.camera,
            "track": self.track,
            "parts": self.parts,
            "frames": self.frames,
            "spans": self.spans,
            "left_out": self.left_out,
        }


@dataclass
class SplitReport:
    """What :func:`split_tracklets` did, for the operating point and the log."""

    cameras: dict[str, dict[str, Any]] = field(default_factory=dict)
    splits: list[Split] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"cameras": self.cameras, "splits": [s.to_json() for s in self.splits]}


@dataclass
class _CameraRule:
    mean: np.ndarray
    median: float
    scale: float
    z: float  # Bonferroni level (one-sided, below the median)
    level: float  # the camera's re-entry cosine

    def cuts(self, similarity: float) -> bool:
        return (similarity - self.median) / self.scale < -self.z and similarity < self.level


def _split_similarity(t: Tracklet, mean: np.ndarray) -> float | None:
    best = _best_cut(t.segments, mean) if len(t.segments) > 1 else None
    return None if best is None else best[1]


@dataclass
class _Sample:
    """Steps 1-2: the camera's "one person at two moments" sample (``tracks`` compared) and its robust
    fit (None with fewer than ``MIN_TRACKS``)."""

    tracks: int
    fit: tuple[float, float, float] | None  # median, scale, Bonferroni z

    @property
    def low_level(self) -> float | None:
        """The cosine below which a similarity is a low outlier of the sample."""
        return None if self.fit is None else self.fit[0] - self.fit[2] * self.fit[1]


def _one_person_sample(tracks: list[Tracklet], mean: np.ndarray) -> _Sample:
    sims = np.array([s for s in (_split_similarity(t, mean) for t in tracks) if s is not None])
    if sims.size < MIN_TRACKS:
        return _Sample(int(sims.size), None)
    med = float(np.median(sims))
    scale = max(float(np.median(np.abs(sims - med))) * 1.4826, 1e-3)
    return _Sample(int(sims.size), (med, scale, cal.bonferroni_z(int(sims.size))))


def one_person_model(tracks: list[Tracklet], mean: np.ndarray) -> tuple[float, float] | None:
    """The camera's "one person at two moments" sample's robust fit (median, scale) in cosines
    (camera-centred with ``mean``); None when the camera has too few tracks."""
    fit = _one_person_sample(tracks, mean).fit
    return None if fit is None else (fit[0], fit[1])


def one_person_level(tracks: list[Tracklet], mean: np.ndarray) -> float | None:
    """The cosine (camera-centred with ``mean``) below which two sightings look less alike than one
    person's own track at two moments: the level under which step 3 cuts a track (a low outlier of
    the camera's sample), without the re-entry condition. None when the camera has too few tracks."""
    return _one_person_sample(tracks, mean).low_level


def _camera_rule(
    tracks: list[Tracklet], mean: np.ndarray, level: float, report: SplitReport, cam: str
) -> _CameraRule | None:
    sample = _one_person_sample(tracks, mean)
    if sample.fit is None:
        report.cameras[cam] = {"tracks": sample.tracks, "note": f"fewer than {MIN_TRACKS} tracks to compare: no cut"}
        return None
    med, scale, z = sample.fit
    report.cameras[cam] = {
        "tracks": sample.tracks,
        "median": round(med, 4),
        "scale": round(scale, 4),
        "z": round(z, 3),
        "reentry_level": round(level, 4),
        "threshold": round(min(med - z * scale, level), 4),
    }
    return _CameraRule(mean=mean, median=med, scale=scale, z=z, level=level)


def _cut_points(segments: list[Segment], rule: _CameraRule) -> list[int]:
    """Indices of the boundaries cut (recursively, each side by the same rule), in order."""
    best = _best_cut(segments, rule.mean)
    if best is None or not rule.cuts(best[1]):
        return []
    b = best[0]
    left = _cut_points(segments[:b], rule)
    right = [b + c for c in _cut_points(segments[b:], rule)]
    return [*left, b, *right]


def _pieces(t: Tracklet, segments: list[Segment], cuts: list[int], numbers: list[int]) -> list[Tracklet]:
    """``t`` cut at the boundaries ``cuts`` of its ``segments``; piece k gets track number ``numbers[k]``.

    A side ends at its last crop and the next starts at its first: the frames in between, where the
    tracker went from one person to the other (people crossing: no crop is clean enough to embed), show
    either of them and are left out. Splitting them at a guessed frame made the pieces of two swapped
    tracks overlap by a frame or two, and one person's two pieces could then never be joined again."""
    edges = [0, *cuts, len(segments)]
    frames = np.array([p.frame for p in t.points])
    out = []
    for k, (a, z) in enumerate(zip(edges[:-1], edges[1:])):
        lo = 0 if a == 0 else int(np.searchsorted(frames, segments[a].first, side="left"))
        hi = len(frames) if z == len(segments) else int(np.searchsorted(frames, segments[z - 1].last, side="right"))
        seg = _joined(segments[a:z])
        feature = _unit(seg.total.astype(np.float32))
        out.append(
            replace(
                t,
                track=numbers[k],
                points=t.points[lo:hi],
                bank=[feature],
                qualities=[float(seg.weight)],
                feature=feature,
                thumbs=[],
                segments=[seg],
                split_from=None if numbers[k] == t.track else t.track,
            )
        )
    return [p for p in out if p.points]


def camera_rules(
    tracklets: list[Tracklet], levels: dict[str, float], means: dict[str, np.ndarray], report: SplitReport
) -> dict[str, _CameraRule | None]:
    """Per camera, the rule its tracks are cut by (None where too few tracks to compare)."""
    rules: dict[str, _CameraRule | None] = {}
    for cam in sorted({t.camera for t in tracklets}):
        if cam in levels and cam in means:
            rules[cam] = _camera_rule([t for t in tracklets if t.camera == cam], means[cam], levels[cam], report, cam)
    return rules


def cut(t: Tracklet, rule: _CameraRule | None, next_number: dict[str, int], report: SplitReport) -> list[Tracklet]:
    """``t``, or its pieces when the rule cuts it (recorded in ``report``). Pieces after the first are
    numbered from ``next_number[camera]`` (updated)."""
    cuts = _cut_points(t.segments, rule) if rule is not None and len(t.segments) > 1 else []
    if not cuts:
        return [t]
    first = next_number.setdefault(t.camera, SPLIT_BASE + 1)
    numbers = [t.track, *range(first, first + len(cuts))]
    next_number[t.camera] = first + len(cuts)
    pieces = _pieces(t, t.segments, cuts, numbers)
    report.splits.append(
        Split(
            camera=t.camera,
            track=t.track,
            parts=[p.track for p in pieces],
            frames=[p.points[0].frame for p in pieces[1:]],
            spans=[[round(p.start_t, 4), round(p.end_t, 4)] for p in pieces],
            left_out=len(t.points) - sum(len(p.points) for p in pieces),
        )
    )
    return pieces


def split_tracklets(
    pool: list[Tracklet],
    tracklets: list[Tracklet],
    levels: dict[str, float],
    means: dict[str, np.ndarray],
    next_number: dict[str, int],
) -> tuple[list[Tracklet], SplitReport]:
    """``tracklets`` with every swapped track of ``pool`` replaced by its pieces (see the module
    docstring); each camera's rule is fitted on the tracks of ``pool`` (the linkable ones).

    ``levels``: each camera's re-entry cosine; ``means``: its mean feature (camera centring);
    ``next_number``: the next number a piece gets in each camera (updated)."""
    report = SplitReport()
    rules = camera_rules(pool, levels, means, report)
    judged = {id(t) for t in pool}
    out = [p for t in tracklets for p in (cut(t, rules.get(t.camera), next_number, report) if id(t) in judged else [t])]
    return out, report


__all__ = [
    "MAX_SEGMENTS",
    "MIN_SIDE",
    "SPLIT_BASE",
    "SplitReport",
    "add_crop",
    "candidate_segments",
    "one_person_level",
    "split_tracklets",
]
