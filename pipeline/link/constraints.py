"""Hard constraints of the linker: which tracklets can never be one person (docs/design.md §4.7).

A *group* is what the linker may merge: a tracklet, a camera cluster (one person's tracklets in one
camera) or an identity. Its sightings are arrays of (start, end, camera code). Two groups conflict
when any of these holds:

1. **coexistence**: a sighting of each overlaps in time in the same camera (one person is one track at
   a time per camera), or in any two cameras with ``non_overlapping``. One exception, asked for by the
   caller (``brief`` seconds): trackers start a second track on a person before the first is dropped
   (a false-positive box beside the person that then takes the person over, a re-spawned track), so
   the linker lets two tracks of one camera that overlap by at most the quality gate's minimum
   tracklet (1 s) merge when they look as alike as one person's own track at two moments
   (offline.py, step 2). The merged identity then has two boxes at once for those frames;
2. **linking window** ``max_gap``: the nearest sightings of the two groups are more than ``max_gap``
   seconds apart;
3. **the camera graph and transit windows**: when consecutive sightings of the merged group (by
   start time) go from camA to camB, the two cameras must be adjacent (``adjacent``, ``--adjacent``:
   the pairs a person goes between directly or is seen by at once, either order; a pair with a
   transit window is adjacent too; without it every pair is), and with a window
   ``{(camA, camB): (min_s, max_s)}`` the gap between the end of the first and the start of the
   second must lie in it (``transit_symmetric``: a window for (A, B) also serves B -> A unless (B, A)
   is declared). A person may still go from A to B through a camera adjacent to both;
4. **one per camera** (only when asked, for cross-camera links): both groups hold a sighting in the same
   camera. In-camera re-entry is decided before cross-camera association, so a cross-camera link is
   one-to-one per camera pair;
5. **pieces of one cut track** (tracklet splitting, split.py): they were cut because they show two
   people, so they never join again. A sighting's ``family`` is its track's number before any cut
   (:meth:`Constraints.family`); two sightings of one family are two pieces. The re-entry level a
   cut was judged by moves as tracks are added (online, and offline once the pieces replace their
   track), so without this rule a later decision could join what a ``track_split`` event said were
   two people;
6. **speed** ``max_speed`` (body heights per second): consecutive sightings of one camera (by start
   time) must be reachable on foot: from where the first was last seen to where the next was first
   seen (box centres, in box heights) is at most ``SLACK_HEIGHTS`` plus ``max_speed`` times the gap.
   Straight across the image is the shortest way between the two places, so this only refuses what
   no person could do (a track that leaves at the left edge and one that enters at the right edge a
   second later are two people). Sightings without a place (no boxes) never conflict by this rule.

Every rule is written once, vectorised over arrays of sighting pairs: :meth:`Constraints.pairs` answers
rules 1-3 for many pairs of single sightings at once, :meth:`Constraints.groups` all of them for two
groups of any size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from reidpipe.pipeline.config import LinkerConfig

if TYPE_CHECKING:
    from reidpipe.pipeline.types import Tracklet

# the starts, ends or camera codes of the sightings of the pairs compared, one per pair
Arr = np.ndarray

# rule 6: box heights a box's centre may move between two sightings of one person with no time between
# (a box at the end of a track is often partial: occluded, or cut by the frame's edge)
SLACK_HEIGHTS = 1.0
PLACE_BOXES = 5  # boxes at each end of a tracklet that say where it began and ended
NOWHERE = np.full(6, np.nan)  # the places of a sighting without boxes
FAMILY_TRACKS = 2**40  # track numbers packed with their camera into one family code (Constraints.family)


@dataclass
class Sightings:
    """Time intervals of a group: ``start``/``end`` in seconds and ``camera`` codes, one entry each, and
    where each began and ended (``where``: rows of box centre x, y and box height where it was first
    seen, then the same where it was last seen; pixels, NaN when unknown; :func:`places`)."""

    start: np.ndarray
    end: np.ndarray
    camera: np.ndarray
    family: np.ndarray  # rule 5: the track a sighting was cut from (Constraints.family)
    where: np.ndarray  # rule 6: (n, 6)

    @classmethod
    def one(
        cls,
        start: float,
        end: float,
        camera: int,
        family: int,
        where: np.ndarray = NOWHERE,
    ) -> Sightings:
        return cls(
            np.array([start], np.float64),
            np.array([end], np.float64),
            np.array([camera], np.int64),
            np.array([family], np.int64),
            np.asarray(where, np.float64).reshape(1, 6),
        )

    def __add__(self, other: Sightings) -> Sightings:
        return Sightings(
            np.concatenate([self.start, other.start]),
            np.concatenate([self.end, other.end]),
            np.concatenate([self.camera, other.camera]),
            np.concatenate([self.family, other.family]),
            np.concatenate([self.where, other.where]),
        )


def places(tracklets: Sequence[Tracklet]) -> np.ndarray:
    """Where each tracklet was first and last seen (rule 6): (n, 6) rows of box centre x, y and box
    height where it was first seen, then where it was last seen, each the median over its first /
    last ``PLACE_BOXES`` boxes (a track's ends are its least sure boxes: a lost track can be matched
    once more to someone else's box far away before it closes); NaN for a tracklet without points or
    whose boxes have no size."""
    n = len(tracklets)
    first, last = np.full((n, PLACE_BOXES, 4), np.nan), np.full((n, PLACE_BOXES, 4), np.nan)
    for k, t in enumerate(tracklets):
        if t.points:
            head, tail = t.points[:PLACE_BOXES], t.points[-PLACE_BOXES:]
            first[k, : len(head)] = [p.bbox for p in head]
            last[k, : len(tail)] = [p.bbox for p in tail]
    return np.concatenate([_place(first), _place(last)], axis=1)


def _place(boxes: np.ndarray) -> np.ndarray:
    """(n, m, 4) boxes (NaN rows: none) -> (n, 3) medians of centre x, y and height."""
    xyh = np.stack(
        [(boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2, boxes[..., 3] - boxes[..., 1]],
        axis=-1,
    )
    out = np.full((boxes.shape[0], 3), np.nan)
    seen = ~np.isnan(xyh[:, 0, 0])  # the first box of a tracklet with points is always there
    if seen.any():
        out[seen] = np.nanmedian(xyh[seen], axis=1)
    out[~(out[:, 2] > 0)] = np.nan  # boxes without a size (a gallery's stored tracklets): no place
    return out


class Constraints:
    """The user's constraints (``LinkerConfig``) over camera codes (indices into ``cameras``)."""

    def __init__(self, config: LinkerConfig, cameras: list[str]):
        self.non_overlapping = bool(config.non_overlapping)
        self.max_gap = None if config.max_gap is None else float(config.max_gap)
        self.max_speed = None if config.max_speed is None else float(config.max_speed)
        self.cameras = list(cameras)
        self._lo = np.full((0, 0), np.nan)
        self._hi = np.full((0, 0), np.nan)
        self._windows: dict[tuple[str, str], tuple[float, float]] = {}
        self._graph = None if config.adjacent is None else {tuple(map(str, pair)) for pair in config.adjacent}
        self._near: np.ndarray | None = None  # rule 3: (m, m) adjacency by camera code; None = every pair
        self._families: dict[tuple[str, int], int] = {}
        self._cut = False  # whether any piece of a cut track has been seen (rule 5 can apply)
        for (a, b), (lo, hi) in dict(config.transit or {}).items():
            self._windows[(str(a), str(b))] = (float(lo), float(hi))
        if config.transit_symmetric:
            for (a, b), w in list(self._windows.items()):
                self._windows.setdefault((b, a), w)
        self._build_windows()

    def family(self, t: Tracklet) -> int:
        """Rule 5's code of tracklet ``t``: one per (camera, track number before any cut), so the
        pieces of a cut track share it and every other tracklet has its own. The code is the camera's
        position and the track number packed into one integer (nothing is kept per track: a long
        run's memory plateaus); a track number outside 0..2^40 gets a negative code of its own."""
        self._cut = self._cut or t.split_from is not None
        parent = t.track if t.split_from is None else t.split_from
        if t.camera in self.cameras and 0 <= parent < FAMILY_TRACKS:
            return self.cameras.index(t.camera) * FAMILY_TRACKS + int(parent)
        return -1 - self._families.setdefault((t.camera, parent), len(self._families))

    def add_camera(self, camera: str) -> None:
        if camera not in self.cameras:
            self.cameras.append(camera)
            self._build_windows()

    def _build_windows(self) -> None:
        m = len(self.cameras)
        pos = {c: i for i, c in enumerate(self.cameras)}
        self._lo = np.full((m, m), np.nan)
        self._hi = np.full((m, m), np.nan)
        for (a, b), (lo, hi) in self._windows.items():
            if a in pos and b in pos:
                self._lo[pos[a], pos[b]], self._hi[pos[a], pos[b]] = lo, hi
        if self._graph is not None:
            self._near = np.eye(m, dtype=bool)
            for a, b in self._graph | set(self._windows):
                if a in pos and b in pos:
                    self._near[pos[a], pos[b]] = self._near[pos[b], pos[a]] = True

    def declared(self, a: int, b: int) -> bool:
        """Whether the user named cameras ``a`` and ``b`` (codes) a pair a person goes between: an
        ``--adjacent`` pair or one with a ``--transit`` window (the linker then never judges it)."""
        names = (self.cameras[a], self.cameras[b])
        pairs = (self._graph or set()) | set(self._windows)
        return names in pairs or names[::-1] in pairs

    def adjacent(self, a: int, b: int) -> bool:
        """Whether a person can go straight between cameras ``a`` and ``b`` (codes; rule 3)."""
        return self._near is None or bool(self._near[a, b])

    @property
    def _steps(self) -> bool:
        """Whether rule 3 can refuse anything."""
        return bool(self._windows) or self._near is not None

    # ------------------------------------------------------------------ the rules, vectorised
    def coexist(
        self, s1: Arr, e1: Arr, c1: Arr, s2: Arr, e2: Arr, c2: Arr, brief: float | np.ndarray = 0.0
    ) -> np.ndarray:
        """Rule 1 for arrays of sighting pairs (with ``brief``, overlaps up to that long in one camera
        are allowed)."""
        overlap = (s1 <= e2) & (s2 <= e1)
        if brief > 0:
            overlap &= ~((c1 == c2) & (np.minimum(e1, e2) - np.maximum(s1, s2) <= brief))
        return overlap if self.non_overlapping else overlap & (c1 == c2)

    def too_far(self, s1: Arr, e1: Arr, s2: Arr, e2: Arr) -> np.ndarray:
        """Rule 2 for arrays of sighting pairs: gaps beyond the linking window."""
        if self.max_gap is None:
            return np.zeros(np.broadcast(s1, s2).shape, bool)
        return gap(s1, e1, s2, e2) > self.max_gap

    def bad_transit(self, first_end: Arr, first_cam: Arr, next_start: Arr, next_cam: Arr) -> np.ndarray:
        """Rule 3 for arrays of consecutive sightings (first ends, the next starts)."""
        bad = np.zeros(np.shape(first_end), bool)
        if self._windows:
            lo, hi = self._lo[first_cam, next_cam], self._hi[first_cam, next_cam]
            dt = next_start - first_end
            bad |= (first_cam != next_cam) & ~np.isnan(lo) & ~((lo <= dt) & (dt <= hi))
        if self._near is not None:
            bad |= ~self._near[first_cam, next_cam]
        return bad

    def too_fast(self, leave: np.ndarray, enter: np.ndarray, dt: np.ndarray) -> np.ndarray:
        """Rule 6 for arrays of consecutive sightings of one camera: where the first was last seen and
        the next first seen ((n, 3) rows: x, y, height) and the seconds between."""
        if self.max_speed is None:
            return np.zeros(np.shape(dt), bool)
        height = (leave[:, 2] + enter[:, 2]) / 2
        moved = np.hypot(enter[:, 0] - leave[:, 0], enter[:, 1] - leave[:, 1]) / height
        return moved > SLACK_HEIGHTS + self.max_speed * np.maximum(dt, 0.0)  # NaN (no place): False

    def _too_fast_together(self, m: Sightings) -> bool:
        """Rule 6 over the sightings ``m`` of a merged group."""
        order = np.lexsort((m.start, m.camera))
        cam = m.camera[order]
        step = np.flatnonzero(cam[1:] == cam[:-1])
        if not step.size:
            return False
        first, nxt = order[step], order[step + 1]
        return bool(self.too_fast(m.where[first, 3:], m.where[nxt, :3], m.start[nxt] - m.end[first]).any())

    # ------------------------------------------------------------------ pairs and groups
    def pairs(self, s1: Arr, e1: Arr, c1: Arr, s2: Arr, e2: Arr, c2: Arr) -> np.ndarray:
        """Conflict of each pair of single sightings (arrays): rules 1-3."""
        bad = self.coexist(s1, e1, c1, s2, e2, c2) | self.too_far(s1, e1, s2, e2)
        if self._steps:
            first_is_1 = (s1 < s2) | ((s1 == s2) & (e1 <= e2))
            bad |= self.bad_transit(
                np.where(first_is_1, e1, e2),
                np.where(first_is_1, c1, c2),
                np.where(first_is_1, s2, s1),
                np.where(first_is_1, c2, c1),
            )
        return bad

    def groups(self, a: Sightings, b: Sightings, one_per_camera: bool = False, brief: float = 0.0) -> bool:
        """True when groups ``a`` and ``b`` cannot be one person (rules 1-3, 5 and 6, and 4 when asked;
        ``brief``: rule 1's exception)."""
        same_camera = (a.camera[:, None] == b.camera[None, :]).any()  # tiny arrays: no set ops
        if one_per_camera and same_camera:
            return True
        # rule 5 only once a track was cut: comparing families cost ~0.3 s of 60,000 merges for
        # 100,000 tracklets in `reidpipe bench --linker-only` (synthetic tracklets are never cut)
        if self._cut and (a.family[:, None] == b.family[None, :]).any():
            return True
        S1, S2 = a.start[:, None], b.start[None, :]
        E1, E2 = a.end[:, None], b.end[None, :]
        if self.coexist(S1, E1, a.camera[:, None], S2, E2, b.camera[None, :], brief).any():
            return True
        if self.max_gap is not None and gap(S1, E1, S2, E2).min() > self.max_gap:
            return True
        if self._steps:
            m = a + b
            order = np.lexsort((m.end, m.start))
            s, e, c = m.start[order], m.end[order], m.camera[order]
            if self.bad_transit(e[:-1], c[:-1], s[1:], c[1:]).any():
                return True
        return bool(same_camera and self.max_speed is not None and self._too_fast_together(a + b))


def gap(s1: Arr, e1: Arr, s2: Arr, e2: Arr) -> np.ndarray:
    """Signed time gap between two intervals: seconds from the end of the earlier to the start of the
    later, negative when they overlap (minus the overlap's length)."""
    return np.maximum(s1, s2) - np.minimum(e1, e2)


__all__ = ["SLACK_HEIGHTS", "Constraints", "Sightings", "gap", "places"]
