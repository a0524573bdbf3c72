"""Cross-camera linking: per-camera tracklets -> global identities (DESIGN §2, Linker).

Similarity is the cosine of L2-normalised features; an identity's feature is the quality-weighted
mean of its tracklets' features (a tracklet weighs the sum of its bank's crop qualities, 1 when it
has none). Hard constraints, checked on every candidate link, online and offline:

1. two tracklets that coexist in time in the same camera are different people;
2. with ``non_overlapping``, one identity cannot be in two cameras at overlapping times;
3. transit windows ``{(camA, camB): (min_s, max_s)}``: when consecutive sightings of an identity
   (sorted by start time) go from camA to camB, the gap between the end of the first and the start of
   the second must lie in the window. With ``transit_symmetric`` a window for (A, B) also applies to
   B -> A unless (B, A) is declared. Camera pairs without a window are unconstrained.

Online (``add``/``add_many``): a closing tracklet joins the most similar feasible identity when the
similarity reaches ``min_similarity``, else it starts a new identity. Several tracklets that close at
once (``add_many``) are matched to the existing identities as one assignment problem solved with
``lap.lapjv`` (cost 1 - cosine, ``cost_limit`` = 1 - ``min_similarity``, infeasible pairs excluded);
those left unassigned then go through ``add`` one by one (so they can found identities together).

Camera centring (``camera_centering``): features are compared after subtracting their camera's mean
tracklet feature (what every crop of a camera shares: background, lighting, viewpoint), online with
the running mean (an identity's centred feature follows the means as they move) and offline with the
final means; a camera is centred once it has 2 linkable tracklets (its first stays as it is). A colour descriptor needs it
across differently lit cameras (on the demo scene it lifts link F1 from 0.4-0.86 to 1.0).

Offline (``finalize`` with ``refine``, or ``link``): all linkable tracklets are re-clustered from
scratch by constrained agglomerative merging: candidate pairs are the ``knn`` nearest neighbours of
every tracklet with cosine >= ``min_similarity``, found exactly by ``pipeline/neighbours.py`` (a FAISS flat index when
faiss is installed, else blocked float32 matrix products); pairs are visited from the most to the least
similar, and two clusters merge when the cosine of their weighted mean features still reaches
``min_similarity`` and the union violates no constraint. Nothing loops over all pairs in Python.
All pairs cost n^2 d (about a minute for 100,000 512-d tracklets on 2 cores); with a linking window
``max_gap`` (seconds) only tracklets that close in time are compared, by time blocks, and 100,000
tracklets link in a few seconds (``link_synthetic.time_linking``).

Evidence (``LinkEvidence``) of each tracklet:

- joined an identity: ``score`` = cosine to the identity's feature (online: before it joined;
  refine: leave-one-out mean of the other members), ``margin`` = score minus the best score of a
  runner-up (online: the next feasible identity; refine: the most similar candidate tracklet in
  another identity), None when there was none; ``gap`` = seconds from the end of the identity's
  nearest earlier sighting to this tracklet's start (None when it has none).
- founded its identity: ``score`` = 1.0, ``margin`` = 1 - best similarity to any feasible other
  identity (None when none), ``gap`` None.
- not linkable (fewer than ``min_points`` points or no feature): ``score`` = 0.0, margin/gap None.

``finalize`` returns identities sorted by first sighting, numbered 1..N; every tracklet ever added is
in exactly one identity. Ids returned by ``add`` are the online ids, which ``finalize`` renumbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from itertools import pairwise

import numpy as np

from reidpipe.pipeline.config import LinkerConfig
from reidpipe.pipeline.neighbours import candidate_pairs, one_blas_thread
from reidpipe.pipeline.types import Identity, LinkEvidence, Tracklet

Sighting = tuple[float, float, str]  # start_t, end_t, camera
# camera centring needs this many linkable tracklets in the camera: with fewer, the camera mean is
# mostly the people themselves (two fragments of one person would be pushed apart)
_MIN_CENTER = 4

DEFAULT_MIN_SIMILARITY = 0.5


# --------------------------------------------------------------------------- constraints
class _Constraints:
    def __init__(self, config: LinkerConfig):
        self.non_overlapping = bool(config.non_overlapping)
        self.windows: dict[tuple[str, str], tuple[float, float]] = {}
        for (a, b), (lo, hi) in dict(config.transit or {}).items():
            self.windows[(str(a), str(b))] = (float(lo), float(hi))
        if config.transit_symmetric:
            for (a, b), w in list(self.windows.items()):
                self.windows.setdefault((b, a), w)
        self.max_gap = None if config.max_gap is None else float(config.max_gap)

    def conflict(self, a: list[Sighting], b: list[Sighting]) -> bool:
        """True when the sightings of two groups cannot belong to one person."""
        nearest = np.inf
        for s1, e1, c1 in a:
            for s2, e2, c2 in b:
                if s1 <= e2 and s2 <= e1:
                    if c1 == c2 or self.non_overlapping:
                        return True
                    nearest = 0.0
                else:
                    nearest = min(nearest, s2 - e1 if s2 > e1 else s1 - e2)
        if self.max_gap is not None and nearest > self.max_gap:
            return True
        if self.windows:
            merged = sorted(a + b)
            for (_s1, e1, c1), (s2, _e2, c2) in pairwise(merged):
                if c1 != c2:
                    w = self.windows.get((c1, c2))
                    if w is not None and not (w[0] <= s2 - e1 <= w[1]):
                        return True
        return False


def _gap_before(sightings: list[Sighting], start: float) -> float | None:
    ends = [e for s, e, _ in sightings if e <= start]
    return float(start - max(ends)) if ends else None


def _unit_rows(features: list) -> np.ndarray:
    if not features:
        return np.zeros((0, 1), dtype=np.float32)
    n = len(features)
    d = int(np.asarray(features[0]).size)
    X = None
    try:
        # one concatenation (~7x cheaper than np.stack on 100k small arrays); only when every feature
        # has the first one's shape, else the row-by-row copy below names the mismatch
        shape = np.shape(features[0])
        if all(np.shape(f) == shape for f in features):
            X = np.concatenate(features, axis=0, dtype=np.float32, casting="unsafe").reshape(n, d)
    except (ValueError, TypeError):
        X = None
    if X is None:
        X = np.empty((n, d), dtype=np.float32)
        try:
            for i, f in enumerate(features):
                X[i] = f
        except ValueError:
            dims = sorted({int(np.asarray(f).size) for f in features})
            raise ValueError(f"tracklet features have different dimensions {dims}") from None
    _normalize_rows(X)
    return X


def _normalize_rows(X: np.ndarray, chunk: int = 8192) -> None:
    """L2-normalise the rows of ``X`` in place (chunked: temporaries stay in cache)."""
    for s in range(0, X.shape[0], chunk):
        B = X[s:s + chunk]
        B /= np.maximum(np.sqrt(np.einsum("ij,ij->i", B, B)), 1e-12)[:, None]


def _center_by_camera(X: np.ndarray, cameras: list[str], inplace: bool = False) -> np.ndarray:
    """Subtract each camera's mean feature (what all its crops share: background, lighting, viewpoint),
    then re-normalise. A camera with fewer than ``_MIN_CENTER`` tracklets is left as it is.
    ``inplace`` overwrites ``X`` (no 4 bytes x n x d copy)."""
    cams, code = np.unique(np.asarray(cameras), return_inverse=True)
    code = code.reshape(-1)
    if not inplace:
        X = X.copy()
    counts = np.bincount(code, minlength=len(cams))
    onehot = np.zeros((len(cams), X.shape[0]), dtype=np.float32)
    onehot[code, np.arange(X.shape[0])] = 1.0
    means = (onehot @ X) / np.maximum(counts, 1)[:, None].astype(np.float32)
    means[counts < _MIN_CENTER] = 0.0
    chunk = 8192
    for s in range(0, X.shape[0], chunk):
        B = X[s:s + chunk]
        B -= means[code[s:s + chunk]]
    _normalize_rows(X)
    return X


def _tracklet_weight(t: Tracklet) -> float:
    w = float(sum(t.qualities)) if t.qualities else 1.0
    return w if w > 0 else 1.0


def _unit(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float32).ravel()
    n = float(np.linalg.norm(f))
    return f / n if n > 0 else f


# --------------------------------------------------------------------------- online state
@dataclass
class _Ident:
    gid: int
    members: list[int] = field(default_factory=list)
    sightings: list[Sighting] = field(default_factory=list)
    fsum: np.ndarray | None = None
    weight: float = 0.0
    row: int = -1  # row in the centroid matrix, -1 when the identity has no feature


class Linker:
    """Online + offline cross-camera linker. See the module docstring for the rules."""

    def __init__(self, config: LinkerConfig | None = None, cameras: list[str] | None = None):
        self.config = config or LinkerConfig()
        if self.config.min_similarity is None:
            self.config = replace(self.config, min_similarity=DEFAULT_MIN_SIMILARITY)
        self.cameras = list(cameras or [])
        unknown = {c for pair in (self.config.transit or {}) for c in pair} - set(self.cameras)
        if self.cameras and unknown:
            from reidpipe.errors import ConfigError

            raise ConfigError(f"transit window names unknown camera(s) {sorted(unknown)}; "
                              f"cameras are {self.cameras}")
        if not 0.0 <= self.config.min_similarity <= 1.0:
            from reidpipe.errors import ConfigError

            raise ConfigError(f"link min_similarity must be in [0, 1], got {self.config.min_similarity}")
        self._rules = _Constraints(self.config)
        self._camera_set = set(self.cameras)
        self.tracklets: list[Tracklet] = []
        self._keys: dict[tuple[str, int], int] = {}
        self._idents: list[_Ident] = []
        self._member_of: list[int] = []  # tracklet index -> online identity index
        self.evidence: list[LinkEvidence] = []
        self._C = np.zeros((0, 0), dtype=np.float32)  # unit centroids of identities with a feature
        self._R = np.zeros((0, 0), dtype=np.float32)  # their raw weighted feature sums
        self._W = np.zeros((0, 0), dtype=np.float32)  # their weight per camera (camera centring)
        self._row_ident: list[int] = []
        self._cam_sum: dict[str, np.ndarray] = {}  # online camera centring: running feature sum ...
        self._cam_n: dict[str, int] = {}  # ... and count of linkable tracklets per camera

    # ------------------------------------------------------------ helpers
    def linkable(self, t: Tracklet) -> bool:
        return t.feature is not None and len(t.points) >= self.config.min_points

    def _register(self, t: Tracklet) -> int:
        if not t.points:
            raise ValueError(f"tracklet {t.camera}/{t.track} has no points")
        key = (t.camera, t.track)
        if key in self._keys:
            raise ValueError(f"tracklet {t.camera}/{t.track} was already added to the linker")
        if t.camera not in self._camera_set:
            self.cameras.append(t.camera)
            self._camera_set.add(t.camera)
        idx = len(self.tracklets)
        self.tracklets.append(t)
        self._keys[key] = idx
        self._member_of.append(-1)
        self.evidence.append(LinkEvidence(score=0.0))
        return idx

    def _set_row(self, ident: _Ident, camera: str, weight: float) -> None:
        f = ident.fsum / max(float(np.linalg.norm(ident.fsum)), 1e-12)
        ncam = len(self.cameras)
        if ident.row < 0:
            n = len(self._row_ident)
            if n >= self._C.shape[0]:
                cap = max(64, 2 * self._C.shape[0])
                grown = [np.zeros((cap, f.shape[0]), np.float32), np.zeros((cap, f.shape[0]), np.float32),
                         np.zeros((cap, max(ncam, self._W.shape[1])), np.float32)]
                if n:
                    grown[0][:n], grown[1][:n] = self._C[:n], self._R[:n]
                    grown[2][:n, :self._W.shape[1]] = self._W[:n]
                self._C, self._R, self._W = grown
            ident.row = n
            self._row_ident.append(ident.gid - 1)
        if self._W.shape[1] < ncam:
            W = np.zeros((self._W.shape[0], ncam), np.float32)
            W[:, :self._W.shape[1]] = self._W
            self._W = W
        self._C[ident.row] = f
        self._R[ident.row] = ident.fsum
        self._W[ident.row, self.cameras.index(camera)] += weight

    # camera centring (config.camera_centering): every camera's running mean feature is subtracted
    # from its tracklets' features; an identity's centred sum is its raw sum minus, per camera, its
    # weight there times that camera's current mean, so it follows the means as they move.
    def _observe(self, t: Tracklet) -> None:
        if self.config.camera_centering:
            f = _unit(t.feature)
            self._cam_sum[t.camera] = self._cam_sum.get(t.camera, 0.0) + f
            self._cam_n[t.camera] = self._cam_n.get(t.camera, 0) + 1

    def _camera_mean(self, camera: str) -> np.ndarray | None:
        n = self._cam_n.get(camera, 0)
        return self._cam_sum[camera] / n if n >= _MIN_CENTER else None

    def _query(self, t: Tracklet) -> np.ndarray:
        f = _unit(t.feature)
        if self.config.camera_centering:
            mean = self._camera_mean(t.camera)
            if mean is not None:
                f = _unit(f - mean)
        return f

    def _centroids(self, m: int) -> np.ndarray:
        if not self.config.camera_centering:
            return self._C[:m]
        means = np.zeros((self._W.shape[1], self._R.shape[1]), np.float32)
        for c, cam in enumerate(self.cameras[:self._W.shape[1]]):
            mean = self._camera_mean(cam)
            if mean is not None:
                means[c] = mean
        C = self._R[:m] - self._W[:m] @ means
        C /= np.maximum(np.sqrt(np.einsum("ij,ij->i", C, C)), 1e-12)[:, None]
        return C

    def _join(self, idx: int, ident: _Ident, evidence: LinkEvidence) -> None:
        t = self.tracklets[idx]
        ident.members.append(idx)
        ident.sightings.append((t.start_t, t.end_t, t.camera))
        self._member_of[idx] = ident.gid - 1
        self.evidence[idx] = evidence
        if self.linkable(t):
            w = _tracklet_weight(t)
            f = _unit(t.feature) * w
            if self._row_ident and f.shape[0] != self._C.shape[1]:
                raise ValueError(f"tracklet {t.camera}/{t.track}: feature of dimension {f.shape[0]}, "
                                 f"the linker holds {self._C.shape[1]}-d features")
            ident.fsum = f if ident.fsum is None else ident.fsum + f
            ident.weight += w
            self._set_row(ident, t.camera, w)

    def _new_identity(self, idx: int, evidence: LinkEvidence) -> int:
        ident = _Ident(gid=len(self._idents) + 1)
        self._idents.append(ident)
        self._join(idx, ident, evidence)
        return ident.gid

    def _ranked(self, f: np.ndarray, t: Tracklet, want: int = 2) -> list[tuple[float, int]]:
        """The ``want`` most similar feasible identities as (cosine, identity index), best first."""
        m = len(self._row_ident)
        if m == 0:
            return []
        # einsum, not BLAS: a threaded gemv on a busy machine costs 5-20x more than one core's loop
        sims = np.einsum("ij,j->i", self._centroids(m), f)
        me = [(t.start_t, t.end_t, t.camera)]
        found: list[tuple[float, int]] = []
        k = min(m, 16)
        while True:
            cand = np.argpartition(-sims, k - 1)[:k] if k < m else np.arange(m)
            cand = cand[np.argsort(-sims[cand], kind="stable")]
            found = []
            for r in cand:
                ii = self._row_ident[int(r)]
                if not self._rules.conflict(me, self._idents[ii].sightings):
                    found.append((float(sims[r]), ii))
                    if len(found) == want:
                        return found
            if k >= m:
                return found
            k = min(m, 4 * k)

    # ------------------------------------------------------------ online API
    def add(self, tracklet: Tracklet) -> tuple[int, LinkEvidence]:
        """Link one closed tracklet; returns (online global id, evidence)."""
        idx = self._register(tracklet)
        return self._add_registered(idx)

    def _add_registered(self, idx: int, observed: bool = False) -> tuple[int, LinkEvidence]:
        t = self.tracklets[idx]
        if not self.linkable(t):
            gid = self._new_identity(idx, LinkEvidence(score=0.0))
            return gid, self.evidence[idx]
        if not observed:
            self._observe(t)
        f = self._query(t)
        ranked = self._ranked(f, t)
        if ranked and ranked[0][0] >= self.config.min_similarity:
            score, ii = ranked[0]
            ident = self._idents[ii]
            margin = score - ranked[1][0] if len(ranked) > 1 else None
            ev = LinkEvidence(score=score, margin=margin, gap=_gap_before(ident.sightings, t.start_t))
            self._join(idx, ident, ev)
            return ident.gid, ev
        margin = 1.0 - ranked[0][0] if ranked else None
        gid = self._new_identity(idx, LinkEvidence(score=1.0, margin=margin))
        return gid, self.evidence[idx]

    def add_many(self, tracklets: list[Tracklet]) -> list[tuple[int, LinkEvidence]]:
        """Link tracklets that closed together: one assignment (lap.lapjv) against the existing
        identities, then the unassigned ones one by one. Results follow the input order."""
        import lap

        idxs = [self._register(t) for t in tracklets]
        result: dict[int, tuple[int, LinkEvidence]] = {}
        cand = [i for i in idxs if self.linkable(self.tracklets[i])]
        m = len(self._row_ident)
        observed: set[int] = set()
        if len(cand) >= 2 and m > 0:
            for i in cand:
                self._observe(self.tracklets[i])
                observed.add(i)
            F = np.stack([self._query(self.tracklets[i]) for i in cand])
            S = F @ self._centroids(m).T
            big = 1e6
            cost = np.full(S.shape, big, dtype=np.float64)
            limit = 1.0 - self.config.min_similarity
            best_other: list[list[float]] = []
            for a, i in enumerate(cand):
                t = self.tracklets[i]
                me = [(t.start_t, t.end_t, t.camera)]
                feas = []
                # most similar first; stop once past the threshold with a runner-up in hand
                for r in np.argsort(-S[a], kind="stable"):
                    if S[a, r] < self.config.min_similarity and len(feas) >= 2:
                        break
                    ii = self._row_ident[int(r)]
                    if not self._rules.conflict(me, self._idents[ii].sightings):
                        cost[a, r] = 1.0 - float(S[a, r])
                        feas.append(float(S[a, r]))
                best_other.append(feas)
            _, x, _ = lap.lapjv(cost, extend_cost=True, cost_limit=limit)
            for a, i in enumerate(cand):
                r = int(x[a])
                if r < 0 or r >= m or cost[a, r] > limit:
                    continue
                t = self.tracklets[i]
                ident = self._idents[self._row_ident[r]]
                score = float(S[a, r])
                others = list(best_other[a])
                if score in others:
                    others.remove(score)
                runner = others[0] if others else None
                ev = LinkEvidence(score=score, margin=None if runner is None else score - runner,
                                  gap=_gap_before(ident.sightings, t.start_t))
                self._join(i, ident, ev)
                result[i] = (ident.gid, ev)
        rest = sorted((i for i in idxs if i not in result), key=lambda i: self.tracklets[i].start_t)
        for i in rest:
            result[i] = self._add_registered(i, observed=i in observed)
        return [result[i] for i in idxs]

    # ------------------------------------------------------------ offline
    def _pair_rules(self, ii: np.ndarray, jj: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                    code: np.ndarray, cams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised ``_Constraints.conflict`` of single-tracklet groups, for the pairs (ii, jj).

        Returns (never, single): ``never`` = the pair coexists in one camera (or, with
        ``non_overlapping``, anywhere); whatever else their groups hold, those two are in any union of
        them, so it always conflicts and is dropped before the merge loop. ``single`` = the pair
        conflicts as two lone tracklets (also ``max_gap`` and transit windows, which other members
        can lift), used while both are still alone. ``code`` indexes ``cams`` (sorted names)."""
        rules = self._rules
        s1, e1, c1 = starts[ii], ends[ii], code[ii]
        s2, e2, c2 = starts[jj], ends[jj], code[jj]
        overlap = (s1 <= e2) & (s2 <= e1)
        never = overlap if rules.non_overlapping else overlap & (c1 == c2)
        single = never.copy()
        if rules.max_gap is not None:
            nearest = np.where(overlap, 0.0, np.where(s2 > e1, s2 - e1, s1 - e2))
            single |= nearest > rules.max_gap
        if rules.windows:
            m = len(cams)
            lo = np.full((m, m), np.nan)
            hi = np.full((m, m), np.nan)
            pos = {str(c): i for i, c in enumerate(cams.tolist())}
            for (a, b), (wl, wh) in rules.windows.items():
                if a in pos and b in pos:
                    lo[pos[a], pos[b]], hi[pos[a], pos[b]] = wl, wh
            # sorted() of the two (start, end, camera) tuples: which one comes first
            a_first = (s1 < s2) | ((s1 == s2) & ((e1 < e2) | ((e1 == e2) & (c1 <= c2))))
            fe = np.where(a_first, e1, e2)
            fc = np.where(a_first, c1, c2)
            ss = np.where(a_first, s2, s1)
            sc = np.where(a_first, c2, c1)
            wl, wh = lo[fc, sc], hi[fc, sc]
            gap = ss - fe
            has = (fc != sc) & ~np.isnan(wl)
            single |= has & ~((wl <= gap) & (gap <= wh))
        return never, single

    def _cluster(self, idxs: list[int]) -> tuple[np.ndarray, list[LinkEvidence]]:
        """Constrained agglomerative clustering of the linkable tracklets ``idxs``; returns a label per
        entry (0..K-1) and its evidence.

        With a linking window it works on the tracklets in time order (so the time-blocked search needs
        no copy of the features), but visits the candidate pairs in exactly the order of the input
        indices: most similar first, ties by (smaller index, larger index)."""
        cfg = self.config
        n = len(idxs)
        T = self.tracklets
        starts0 = np.fromiter((T[i].points[0].t for i in idxs), dtype=np.float64, count=n)
        # position in time order -> entry of idxs (the time-blocked search then needs no copy of the
        # features); the all-pairs backends keep the input order
        tord = np.argsort(starts0, kind="stable") if cfg.max_gap is not None else np.arange(n)
        ts = [T[idxs[p]] for p in tord.tolist()]
        starts = starts0[tord]
        ends = np.fromiter((t.points[-1].t for t in ts), dtype=np.float64, count=n)
        X = _unit_rows([t.feature for t in ts])
        cam_l = [t.camera for t in ts]
        cams = sorted(set(cam_l))
        cpos = {c: i for i, c in enumerate(cams)}
        code = np.fromiter((cpos[c] for c in cam_l), dtype=np.int64, count=n)
        if cfg.camera_centering and n:
            X = _center_by_camera(X, cam_l, inplace=True)
        w = np.array([_tracklet_weight(t) for t in ts], dtype=np.float32)
        pi, pj, ps = candidate_pairs(X, cfg.knn, cfg.min_similarity, cfg.backend, starts, ends, cfg.max_gap)
        # visiting order of the input indices (what an unsorted run gives): -sim, then (i, j)
        oi, oj = tord[pi], tord[pj]
        key = np.minimum(oi, oj) * n + np.maximum(oi, oj)
        by = np.lexsort((key, -ps))
        ii, jj, ss = pi[by], pj[by], ps[by]
        # pairs that can never merge are dropped before the loop; ``single`` answers the constraint
        # check without a call while both tracklets are still alone (the usual case)
        never, single = self._pair_rules(ii, jj, starts, ends, code, np.asarray(cams))
        go = ~never
        starts_l, ends_l = starts.tolist(), ends.tolist()
        # the features are not needed unweighted any more: scale them in place (w x, the same float32
        # values as computing it per row), so a merge costs one vector addition
        for s0 in range(0, n, 8192):
            X[s0:s0 + 8192] *= w[s0:s0 + 8192, None]
        Xw = X
        sight: list[list[Sighting] | None] = [None] * n  # built when a tracklet first joins a group
        sums: dict[int, np.ndarray] = {}  # weighted feature sum of each group (by root), when needed
        norm2: dict[int, float] = {}  # |sum|^2 of a group, computed when first needed after a change
        parent = list(range(n))
        size = [1] * n
        thr = cfg.min_similarity
        conflict = self._rules.conflict
        sqrt = math.sqrt

        def find(a: int) -> int:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for a, b, lone_conflict in zip(ii[go].tolist(), jj[go].tolist(), single[go].tolist()):
            ra = parent[a]
            if parent[ra] != ra:
                ra = find(ra)
            rb = parent[b]
            if parent[rb] != rb:
                rb = find(rb)
            if ra == rb:
                continue
            if size[ra] > 1 or size[rb] > 1:  # a group of 2+: mean cosine, then constraints
                va = sums.get(ra)
                if va is None:  # a lone tracklet: its row (copied when it merges)
                    va = Xw[ra]
                na = norm2.get(ra)
                if na is None:
                    na = norm2[ra] = float(va @ va)
                vb = sums.get(rb)
                if vb is None:
                    vb = Xw[rb]
                nb = norm2.get(rb)
                if nb is None:
                    nb = norm2[rb] = float(vb @ vb)
                if float(va @ vb) < thr * sqrt(na * nb):
                    continue
                sa, sb = sight[ra], sight[rb]
                if sa is None:
                    sa = sight[ra] = [(starts_l[ra], ends_l[ra], cam_l[ra])]
                if sb is None:
                    sb = sight[rb] = [(starts_l[rb], ends_l[rb], cam_l[rb])]
                if conflict(sa, sb):
                    continue
                if size[ra] < size[rb]:
                    ra, rb, va, vb, sa, sb = rb, ra, vb, va, sb, sa
                if size[ra] > 1:
                    va += vb
                else:
                    sums[ra] = va + vb
                sa.extend(sb)
            else:  # two lone tracklets: the constraint check was answered in bulk
                if lone_conflict:
                    continue
                sums[ra] = Xw[ra] + Xw[rb]
                sight[ra] = [(starts_l[ra], ends_l[ra], cam_l[ra]), (starts_l[rb], ends_l[rb], cam_l[rb])]
            parent[rb] = ra
            size[ra] += size[rb]
            sight[rb] = []
            norm2.pop(ra, None)
            sums.pop(rb, None)

        # roots of all by pointer jumping (a few vectorised passes instead of n calls)
        roots = np.asarray(parent, dtype=np.int64)
        while True:
            up = roots[roots]
            if np.array_equal(up, roots):
                break
            roots = up
        _, labels = np.unique(roots, return_inverse=True)
        labels = labels.reshape(-1)
        # evidence: leave-one-out cosine to the cluster mean, margin over the best foreign candidate
        K = int(labels.max()) + 1 if n else 0
        counts = np.bincount(labels, minlength=K)
        solo = counts[labels] == 1
        # the group's weighted sum c; leave-one-out without copying it:
        # (c - w x).x = c.x - w and |c - w x|^2 = |c|^2 - 2 w c.x + w^2 for unit x
        # (rows hold w x: c.x = c.(w x) / w); by chunks of groups, no n x d temporary
        cx = np.zeros(n, dtype=np.float32)
        cc = np.zeros(n, dtype=np.float32)
        ns = np.flatnonzero(~solo)
        if ns.size:
            groups, inv = np.unique(roots[ns], return_inverse=True)
            inv = inv.reshape(-1)
            by_group = np.argsort(inv, kind="stable")
            groups_l = groups.tolist()
            for k0 in range(0, len(groups_l), 4096):
                k1 = min(len(groups_l), k0 + 4096)
                R = np.stack([sums[r] for r in groups_l[k0:k1]])
                m = by_group[np.searchsorted(inv[by_group], k0):np.searchsorted(inv[by_group], k1)]
                rows = ns[m]
                cx[rows] = np.einsum("ij,ij->i", R[inv[m] - k0], Xw[rows]) / w[rows]
                cc[rows] = np.einsum("ij,ij->i", R, R)[inv[m] - k0]
        loo_norm = np.sqrt(np.maximum(cc - 2 * w * cx + w * w, 0.0))
        score = np.where(loo_norm > 1e-6, (cx - w) / np.maximum(loo_norm, 1e-12), 1.0)
        runner = np.full(n, -np.inf, dtype=np.float32)
        if ii.size:
            foreign = labels[ii] != labels[jj]
            np.maximum.at(runner, ii[foreign], ss[foreign])
            np.maximum.at(runner, jj[foreign], ss[foreign])
        # gap: seconds from the latest end (<= own start) among the other members of the group.
        # Members sorted by (label, end); one searchsorted on exact integer keys (label, rank of time)
        _, tr = np.unique(np.concatenate([ends, starts]), return_inverse=True)
        tr = tr.reshape(-1)
        big = np.int64(2 * n + 1)
        end_key = labels * big + tr[:n]
        by_end = np.argsort(end_key, kind="stable")
        pos = np.searchsorted(end_key[by_end], labels * big + tr[n:], side="right") - 1
        pos_self = np.empty(n, dtype=np.int64)
        pos_self[by_end] = np.arange(n)
        pos = np.where(pos == pos_self, pos - 1, pos)  # never oneself (when its end == its start)
        prev = by_end[np.maximum(pos, 0)]
        valid = (pos >= 0) & (labels[prev] == labels)
        gap = np.where(valid, starts - ends[prev], np.nan)
        runner_l, score_l, gap_l, solo_l = runner.tolist(), score.tolist(), gap.tolist(), solo.tolist()
        inf = float("-inf")
        evidence: list[LinkEvidence] = [None] * n  # type: ignore[list-item]
        for p, a in enumerate(tord.tolist()):  # back to the order of idxs
            r = runner_l[p]
            if solo_l[p]:
                evidence[a] = LinkEvidence(score=1.0, margin=None if r == inf else 1.0 - r)
                continue
            sc = score_l[p]
            g = gap_l[p]
            evidence[a] = LinkEvidence(score=sc, margin=None if r == inf else sc - r,
                                       gap=None if g != g else g)
        out = np.empty(n, dtype=np.int64)
        out[tord] = labels
        return out, evidence

    def _identities_from_groups(self, groups: list[list[int]]) -> list[Identity]:
        order = {i: (t.points[0].t, t.camera, t.track) for i, t in enumerate(self.tracklets)}
        groups = [sorted(g, key=order.__getitem__) for g in groups if g]
        groups.sort(key=lambda g: order[g[0]])
        out = []
        for gid, g in enumerate(groups, start=1):
            out.append(Identity(id=gid, tracklets=[self.tracklets[i] for i in g],
                                evidence={self.tracklets[i].key: self.evidence[i] for i in g}))
        return out

    def _identities_from_labels(self, labels: np.ndarray) -> list[Identity]:
        """Identities from one label per tracklet: the same as ``_identities_from_groups`` (members by
        (first sighting, camera, track), identities by their first member, ids 1..N), sorted with numpy."""
        T = self.tracklets
        N = len(T)
        if N == 0:
            return []
        starts = np.fromiter((t.points[0].t for t in T), dtype=np.float64, count=N)
        cam_l = [t.camera for t in T]
        cpos = {c: i for i, c in enumerate(sorted(set(cam_l)))}  # codes in the order of the names
        cam_code = np.fromiter((cpos[c] for c in cam_l), dtype=np.int64, count=N)
        tracks = np.asarray([t.track for t in T])
        if tracks.dtype.kind not in "iub":  # not plain integers: Python's order
            groups: dict[int, list[int]] = {}
            for i, lab in enumerate(labels.tolist()):
                groups.setdefault(lab, []).append(i)
            return self._identities_from_groups(list(groups.values()))
        rank = np.empty(N, dtype=np.int64)
        rank[np.lexsort((tracks, cam_code, starts))] = np.arange(N)
        perm = np.lexsort((rank, labels))
        lab_sorted = labels[perm]
        bounds = np.flatnonzero(np.diff(lab_sorted)) + 1
        lo = np.concatenate([[0], bounds])
        hi = np.concatenate([bounds, [N]])
        by_first = np.argsort(rank[perm[lo]], kind="stable")
        perm_l, lo_l, hi_l = perm.tolist(), lo[by_first].tolist(), hi[by_first].tolist()
        E = self.evidence
        out = []
        for gid, (a, b) in enumerate(zip(lo_l, hi_l), start=1):
            members = perm_l[a:b]
            tl = [T[i] for i in members]
            out.append(Identity(id=gid, tracklets=tl,
                                evidence={(t.camera, t.track): E[i] for t, i in zip(tl, members)}))
        return out

    def _offline(self) -> list[Identity]:
        mp = self.config.min_points
        linkable = [t.feature is not None and len(t.points) >= mp for t in self.tracklets]  # linkable()
        link_idx = [i for i, ok in enumerate(linkable) if ok]
        labels = np.empty(len(self.tracklets), dtype=np.int64)
        K = 0
        if link_idx:
            with one_blas_thread():
                lab, evidence = self._cluster(link_idx)
            for i, ev in zip(link_idx, evidence):
                self.evidence[i] = ev
            labels[link_idx] = lab
            K = int(lab.max()) + 1
        alone = [i for i, ok in enumerate(linkable) if not ok]
        for i in alone:
            self.evidence[i] = LinkEvidence(score=0.0)
        labels[alone] = K + np.arange(len(alone), dtype=np.int64)
        return self._identities_from_labels(labels)

    def finalize(self) -> list[Identity]:
        """The identities (sorted by first sighting, ids 1..N); re-clustered offline when
        ``config.refine``."""
        if self.config.refine:
            return self._offline()
        return self._identities_from_groups([list(ident.members) for ident in self._idents])

    def link(self, tracklets: list[Tracklet]) -> list[Identity]:
        """Batch linking: register ``tracklets`` (no online pass) and cluster everything offline."""
        # ``_register`` inlined for the batch (same checks, same state)
        keys, T, cams = self._keys, self.tracklets, self._camera_set
        n0 = len(T)
        try:
            for t in tracklets:
                if not t.points:
                    raise ValueError(f"tracklet {t.camera}/{t.track} has no points")
                key = (t.camera, t.track)
                if key in keys:
                    raise ValueError(f"tracklet {t.camera}/{t.track} was already added to the linker")
                if t.camera not in cams:
                    self.cameras.append(t.camera)
                    cams.add(t.camera)
                keys[key] = len(T)
                T.append(t)
        finally:
            added = len(T) - n0
            self._member_of.extend([-1] * added)
            self.evidence.extend([LinkEvidence(score=0.0) for _ in range(added)])
        return self._offline()


__all__ = ["Linker"]
