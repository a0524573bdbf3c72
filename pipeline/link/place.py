"""Where two views of one room put a person: a floor-to-floor map learned from the run's own links.

Two cameras that see one room see each person at once in both, standing on one floor. The floor is a
plane, so where a person's feet are in one image says where they are in the other: a homography of
the feet points (the bottom centre of a box). The run's mutual best matches (each the other's most
similar cluster across the pair, found on appearance alone, offline.py step 4) give that map's
correspondences: the feet of each matched pair at every time both views saw them. Most are one
person even where few are confident links. :class:`FloorMap` fits it with OpenCV's RANSAC
(``cv2.findHomography``), so a wrong match's points are outliers and do not bend it, and keeps it
only where it holds: fitted on at least ``MIN_LINKS`` matches, with most of their points inliers.

A candidate pair of clusters seen at the same times is then read at its *place error*: the median,
over the times both views saw them, of the distance between where the map puts one's feet and where
the other's are, in the other's box heights. One person stands where the map puts them, to the map's
and the boxes' error: a few hundredths of a body height. Two people seen at once stand apart:

- **evidence**: the log-ratio of the density of the matches' place errors (those the map puts at one
  place) to that of all
  candidate pairs' (a :class:`.evidence.TransitModel` over errors in tenths of a body height, so
  that its kernels are at least a tenth wide: feet are known to about that, and the map is less
  sure away from where the links walked; each link read without itself), clipped like the time
  evidence, added to the decision's log-odds;
- **a hard rule**: a pair whose place error exceeds ``NOT_SAME_PLACE`` body heights is two people
  standing apart, whatever they look like, and is never linked.

Cameras that never see one person at once (disjoint views) have no common times: no map, nothing
changes. Neither does a pair of clusters that share no time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from reidpipe.pipeline.link.evidence import TransitModel
from reidpipe.pipeline.types import Tracklet

MIN_LINKS = 4  # matched pairs whose common times fit a map (four points fix a homography; four people)
MIN_INLIER_SHARE = 0.5  # of the links' correspondences, for the map to hold
RANSAC_HEIGHTS = 0.1  # a correspondence is an inlier within this share of a median box height
NOT_SAME_PLACE = 1.0  # body heights between where the map puts one and where the other stands: two people
SCALE = 1.0 / RANSAC_HEIGHTS  # place errors in tenths of a body height for the density ratio (bandwidth >= 1)
MAX_TIMES = 64  # common times read per pair (evenly spread)


Feet = dict[float, tuple[float, float, float]]  # time -> feet x, feet y, box height


def feet(tracklets: Iterable[Tracklet]) -> Feet:
    """time -> (feet x, feet y, box height) of the detected boxes of ``tracklets`` (one cluster)."""
    out: Feet = {}
    for t in tracklets:
        for p in t.points:
            if not p.interpolated and p.bbox[3] > p.bbox[1]:
                x1, y1, x2, y2 = p.bbox
                out[round(float(p.t), 3)] = ((x1 + x2) / 2.0, float(y2), float(y2 - y1))
    return out


def _common(a: Feet, b: Feet) -> tuple[np.ndarray, np.ndarray]:
    """(k, 3) rows of ``a`` and ``b`` at the times both hold, at most ``MAX_TIMES`` spread evenly."""
    times = sorted(a.keys() & b.keys())
    if len(times) > MAX_TIMES:
        times = [times[k] for k in np.linspace(0, len(times) - 1, MAX_TIMES).round().astype(int).tolist()]
    return np.array([a[t] for t in times], np.float64).reshape(-1, 3), np.array(
        [b[t] for t in times], np.float64
    ).reshape(-1, 3)


@dataclass
class FloorMap:
    """Homography ``H`` from camera A's feet points to camera B's, and the place evidence it gives."""

    H: np.ndarray
    links: int
    points: int
    inliers: int
    link_errors: np.ndarray  # the place errors (body heights) of the matched pairs at one place
    pair_errors: np.ndarray = field(
        default_factory=lambda: np.zeros(0)
    )  # of every pair fitted on (NaN: no common time)
    evidence: TransitModel | None = None

    @classmethod
    def fit(cls, pairs: list[tuple[Feet, Feet]]) -> FloorMap | None:
        """The map from the feet of matched pairs ``(A's, B's)``; None where it does not hold."""
        rows = [_common(a, b) for a, b in pairs]
        rows = [(a, b) for a, b in rows if len(a)]
        if len(rows) < MIN_LINKS:
            return None
        src = np.concatenate([a for a, _ in rows])
        dst = np.concatenate([b for _, b in rows])
        threshold = RANSAC_HEIGHTS * float(np.median(dst[:, 2]))
        H, mask = cv2.findHomography(src[:, :2], dst[:, :2], cv2.RANSAC, threshold)
        if H is None or mask is None or float(mask.mean()) < MIN_INLIER_SHARE:
            return None
        fm = cls(H=H, links=len(rows), points=int(len(src)), inliers=int(mask.sum()), link_errors=np.zeros(0))
        fm.pair_errors = np.array([fm.error(a, b) for a, b in pairs])
        fm.link_errors = fm.pair_errors[fm.at_one_place()]
        return fm

    def at_one_place(self) -> np.ndarray:
        """Which of the pairs fitted on the map puts at one place: the place evidence learns what one
        person looks like from those; a wrong match among the pairs stands apart and would widen it."""
        return np.isfinite(self.pair_errors) & (self.pair_errors <= NOT_SAME_PLACE)

    def error(self, a: Feet, b: Feet) -> float:
        """Median distance, over the times both hold, between where the map puts ``a``'s feet and
        ``b``'s feet, in ``b``'s box heights (NaN when they share no time)."""
        pa, pb = _common(a, b)
        if not len(pa):
            return float("nan")
        mapped = cv2.perspectiveTransform(pa[None, :, :2], self.H)[0]
        return float(np.median(np.linalg.norm(mapped - pb[:, :2], axis=1) / pb[:, 2]))

    def learn(self, background: np.ndarray) -> None:
        """The place evidence: the links' errors against ``background`` (all candidate pairs')."""
        bg = background[np.isfinite(background)]
        self.evidence = TransitModel(SCALE * self.link_errors, SCALE * bg)

    def llr(self, errors: np.ndarray, own: np.ndarray | None = None) -> np.ndarray:
        """Place evidence at ``errors`` (0 where NaN: no common time); ``own``: which are confident
        links (each read without itself); -inf beyond ``NOT_SAME_PLACE``."""
        out = np.zeros(errors.shape)
        seen = np.isfinite(errors)
        if self.evidence is not None and seen.any():
            out[seen] = self.evidence.llr(SCALE * errors[seen], None if own is None else own[seen])
        out[seen & (errors > NOT_SAME_PLACE)] = -np.inf
        return out

    def to_json(self) -> dict[str, Any]:
        q = np.percentile(self.link_errors, [50, 90]) if self.link_errors.size else [np.nan, np.nan]
        return {
            "links": self.links,
            "points": self.points,
            "inliers": self.inliers,
            "link_error_median": round(float(q[0]), 4),
            "link_error_p90": round(float(q[1]), 4),
            "homography": [[round(float(v), 6) for v in row] for row in self.H],
        }


@dataclass
class Places:
    """The floor maps of a solution's camera pairs and the place evidence of any cluster pair.

    ``maps``: camera pair index -> (its map, the camera code the map goes from); ``feet_of``: a
    cluster's feet; ``code``: each cluster's camera code."""

    maps: dict[int, tuple[FloorMap, int]]
    feet_of: Callable[[int], Feet]
    code: np.ndarray
    _errors: dict[tuple[int, int], float] = field(default_factory=dict)
    # per camera pair, the matched cluster pairs (source camera's first) its evidence learned from
    learned: dict[int, set[tuple[int, int]]] = field(default_factory=dict)

    def error(self, p: int, u: int, v: int) -> float:
        """Place error of clusters ``u`` and ``v`` under camera pair ``p``'s map (cached)."""
        fm, source = self.maps[p]
        if int(self.code[u]) != source:
            u, v = v, u
        if (u, v) not in self._errors:
            self._errors[(u, v)] = fm.error(self.feet_of(u), self.feet_of(v))
        return self._errors[(u, v)]

    def llr(self, pair: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Place evidence of cluster pairs ``(u, v)`` of camera pairs ``pair`` (0 without a map); a
        pair the evidence learned from is read without itself."""
        out = np.zeros(pair.shape)
        for p in np.unique(pair).tolist():
            if p not in self.maps:
                continue
            sel = np.flatnonzero(pair == p)
            errors = np.array([self.error(p, int(u[k]), int(v[k])) for k in sel.tolist()])
            own = np.array([self._ordered(p, int(u[k]), int(v[k])) in self.learned[p] for k in sel.tolist()], bool)
            out[sel] = self.maps[p][0].llr(errors, own)
        return out

    def _ordered(self, p: int, u: int, v: int) -> tuple[int, int]:
        """``(u, v)`` with the cluster of the camera pair ``p``'s map source first."""
        return (u, v) if int(self.code[u]) == self.maps[p][1] else (v, u)

    def to_json(self, p: int) -> dict[str, Any] | None:
        return self.maps[p][0].to_json() if p in self.maps else None


def fit_places(
    pair: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    confident: np.ndarray,
    sources: list[int],
    feet_of: Callable[[int], Feet],
    code: np.ndarray,
) -> Places:
    """Per camera pair (index into ``sources``: the camera code its map goes from), the floor map of
    its matched pairs (``confident``), its evidence learned against all its candidate pairs ``(i, j)``."""
    places = Places(maps={}, feet_of=feet_of, code=code)
    for p, source in enumerate(sources):
        mine = confident & (pair == p)
        if int(mine.sum()) < MIN_LINKS:
            continue
        ends = [(a, b) if int(code[a]) == source else (b, a) for a, b in zip(i[mine].tolist(), j[mine].tolist())]
        fm = FloorMap.fit([(feet_of(a), feet_of(b)) for a, b in ends])
        if fm is None:
            continue
        places.maps[p] = (fm, source)
        places.learned[p] = {e for e, one in zip(ends, fm.at_one_place().tolist()) if one}
        sel = np.flatnonzero(pair == p)
        fm.learn(np.array([places.error(p, int(i[k]), int(j[k])) for k in sel.tolist()]))
    return places


__all__ = ["NOT_SAME_PLACE", "FloorMap", "Places", "feet", "fit_places"]
