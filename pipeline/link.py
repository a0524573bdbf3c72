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
every tracklet with cosine >= ``min_similarity``, found exactly by a FAISS flat index when faiss is
installed, else by blocked float32 matrix products; pairs are visited from the most to the least
similar, and two clusters merge when the cosine of their weighted mean features still reaches
``min_similarity`` and the union violates no constraint. Nothing loops over all pairs in Python.
All pairs cost n^2 d (about a minute for 100,000 512-d tracklets on 2 cores); with a linking window
``max_gap`` (seconds) only tracklets that close in time are compared, by time blocks, and 100,000
tracklets link in a few seconds (``time_linking``).

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

import time
from dataclasses import dataclass, field, replace
from itertools import pairwise

import numpy as np
from reidpipe.pipeline.config import LinkerConfig
from reidpipe.pipeline.types import Identity, LinkEvidence, Tracklet, TrackPoint

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
    d = int(np.asarray(features[0]).size)
    X = np.empty((len(features), d), dtype=np.float32)
    try:
        for i, f in enumerate(features):  # row copies: ~10x cheaper than np.stack on 100k small arrays
            X[i] = f
    except ValueError:
        dims = sorted({int(np.asarray(f).size) for f in features})
        raise ValueError(f"tracklet features have different dimensions {dims}") from None
    X /= np.maximum(np.sqrt(np.einsum("ij,ij->i", X, X)), 1e-12)[:, None]
    return X


def _center_by_camera(X: np.ndarray, cameras: list[str]) -> np.ndarray:
    """Subtract each camera's mean feature (what all its crops share: background, lighting, viewpoint),
    then re-normalise. A camera with a single tracklet is left as it is."""
    cams, code = np.unique(np.asarray(cameras), return_inverse=True)
    X = X.copy()
    for c in range(len(cams)):
        rows = code == c
        if rows.sum() >= _MIN_CENTER:
            X[rows] -= X[rows].mean(0)
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    X /= np.maximum(norms, 1e-12)[:, None]
    return X


def _tracklet_weight(t: Tracklet) -> float:
    w = float(sum(t.qualities)) if t.qualities else 1.0
    return w if w > 0 else 1.0


def _unit(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float32).ravel()
    n = float(np.linalg.norm(f))
    return f / n if n > 0 else f


# --------------------------------------------------------------------------- neighbour search
def _topk_rows(S: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest entries of every row (unordered)."""
    if S.shape[1] <= k:
        return np.broadcast_to(np.arange(S.shape[1]), S.shape).copy()
    return np.argpartition(-S, k - 1, axis=1)[:, :k]


def _pairs_from(rows: np.ndarray, cols: np.ndarray, sims: np.ndarray, threshold: float):
    keep = (sims >= threshold) & (rows != cols) & (cols >= 0)
    r, c, s = rows[keep], cols[keep], sims[keep]
    lo, hi = np.minimum(r, c), np.maximum(r, c)
    return lo.astype(np.int64), hi.astype(np.int64), s.astype(np.float32)


def _block_pairs(S: np.ndarray, rows: np.ndarray, cols: np.ndarray, k: int, threshold: float):
    """(row id, col id, sim) of the entries of ``S`` that reach ``threshold`` and are among their
    row's k largest; ``rows``/``cols`` give the ids of S's rows and columns. Rows with at most k
    entries above the threshold (the usual case) skip the partial sort."""
    mask = S >= threshold
    over = mask.sum(1) > k
    if over.any():
        mask[over] = False
        sub = S[over]
        top = _topk_rows(sub, k)
        keep = np.zeros(sub.shape, dtype=bool)
        np.put_along_axis(keep, top, True, axis=1)
        mask[over] = keep & (sub >= threshold)
    r, c = np.nonzero(mask)
    return _pairs_from(rows[r], cols[c], S[r, c], threshold)


def _exact_numpy(X: np.ndarray, k: int, threshold: float):
    n = X.shape[0]
    block = int(max(64, min(4096, (1 << 24) // max(n, 1))))
    out = []
    for s in range(0, n, block):
        S = X[s:s + block] @ X.T
        idx = np.arange(S.shape[0])
        S[idx, s + idx] = -np.inf
        out.append(_block_pairs(S, s + idx, np.arange(n), k, threshold))
    return out


def _faiss_search(X: np.ndarray, k: int, threshold: float):
    import faiss  # optional dependency: exact inner-product search, multi-threaded

    index = faiss.IndexFlatIP(X.shape[1])
    index.add(X)
    out = []
    block = 16384
    for s in range(0, X.shape[0], block):
        D, I = index.search(X[s:s + block], k + 1)
        rows = np.broadcast_to(np.arange(s, s + D.shape[0])[:, None], I.shape)
        out.append(_pairs_from(rows.ravel(), I.ravel(), D.ravel(), threshold))
    return out


def _time_blocked(X: np.ndarray, k: int, threshold: float, starts: np.ndarray, ends: np.ndarray,
                  max_gap: float):
    """Exact search restricted to pairs at most ``max_gap`` seconds apart: rows sorted by start time,
    each block of rows compared (one matrix product) with the columns of its time window only. The
    block is about as long as the window, so the products hold ~2x the pairs that must be compared."""
    order = np.argsort(starts, kind="stable")
    Xs, st, en = X[order], starts[order], ends[order]
    longest = float(np.max(en - st))
    out = []
    n = X.shape[0]
    span = max(float(st[-1] - st[0]), 1e-9)
    block = int(np.clip(n * 2 * (max_gap + longest) / span, 256, 4096))
    for r0 in range(0, n, block):
        r1 = min(n, r0 + block)
        c0 = int(np.searchsorted(st, st[r0] - max_gap - longest, side="left"))
        c1 = int(np.searchsorted(st, float(en[r0:r1].max()) + max_gap, side="right"))
        S = Xs[r0:r1] @ Xs[c0:c1].T
        far = (st[None, c0:c1] - en[r0:r1, None] > max_gap) | (st[r0:r1, None] - en[None, c0:c1] > max_gap)
        S[far] = -np.inf
        rows = np.arange(r0, r1)
        S[rows - r0, rows - c0] = -np.inf
        out.append(_block_pairs(S, order[r0:r1], order[c0:c1], k, threshold))
    return out


def candidate_pairs(X: np.ndarray, k: int, threshold: float, backend: str = "auto",
                    starts: np.ndarray | None = None, ends: np.ndarray | None = None,
                    max_gap: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i < j, cosine) among the k nearest neighbours of every row of ``X`` (unit rows) whose
    cosine reaches ``threshold``, each pair once. Returns (i, j, sim) sorted by decreasing sim.

    Always exact. With ``max_gap`` (and the rows' ``starts``/``ends`` in seconds) only pairs at most
    ``max_gap`` apart are compared, by time blocks (cost ~ n x tracklets per window). Otherwise all
    pairs: a FAISS flat inner-product index when faiss is installed (``backend`` auto/faiss), else
    blocked float32 matrix products (``numpy``); cost ~ n^2 d."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    n = X.shape[0]
    if n < 2:
        e = np.zeros(0, dtype=np.int64)
        return e, e, np.zeros(0, dtype=np.float32)
    k = int(max(1, min(k, n - 1)))
    use_faiss = False
    if max_gap is not None and starts is not None and ends is not None:
        backend = "time"
    if backend in ("auto", "faiss"):
        try:
            import faiss  # noqa: F401

            use_faiss = True
        except ImportError:
            if backend == "faiss":
                from reidpipe.errors import ConfigError

                raise ConfigError("linker backend 'faiss' requested but faiss is not installed "
                                  "(pip install faiss-cpu, or use backend 'numpy')") from None
    elif backend not in ("numpy", "time"):
        from reidpipe.errors import ConfigError

        raise ConfigError(f"unknown linker backend {backend!r}; use auto, faiss or numpy")
    if backend == "time":
        parts = _time_blocked(X, k, threshold, np.asarray(starts, np.float64), np.asarray(ends, np.float64),
                              float(max_gap))
    elif use_faiss:
        parts = _faiss_search(X, k, threshold)
    else:
        parts = _exact_numpy(X, k, threshold)
    i = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    j = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    s = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.float32)
    key = i * n + j
    key, first = np.unique(key, return_index=True)
    i, j, s = i[first], j[first], s[first]
    order = np.argsort(-s, kind="stable")
    return i[order], j[order], s[order]


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
    def _cluster(self, idxs: list[int]) -> tuple[np.ndarray, list[LinkEvidence]]:
        """Constrained agglomerative clustering of the linkable tracklets ``idxs``; returns a label per
        entry (0..K-1) and its evidence."""
        cfg = self.config
        n = len(idxs)
        ts = [self.tracklets[i] for i in idxs]
        X = _unit_rows([t.feature for t in ts])
        if cfg.camera_centering and n:
            X = _center_by_camera(X, [t.camera for t in ts])
        w = np.array([_tracklet_weight(t) for t in ts], dtype=np.float32)
        sight: list[list[Sighting]] = [[(t.points[0].t, t.points[-1].t, t.camera)] for t in ts]
        starts = np.array([s[0][0] for s in sight], dtype=np.float64)
        ends = np.array([s[0][1] for s in sight], dtype=np.float64)
        ii, jj, ss = candidate_pairs(X, cfg.knn, cfg.min_similarity, cfg.backend, starts, ends, cfg.max_gap)
        parent = list(range(n))
        sums = X * w[:, None]
        size = [1] * n
        thr = cfg.min_similarity
        conflict = self._rules.conflict

        def find(a: int) -> int:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for a, b in zip(ii.tolist(), jj.tolist()):
            ra, rb = find(a), find(b)
            if ra == rb:
                continue
            if size[ra] > 1 or size[rb] > 1:
                va, vb = sums[ra], sums[rb]
                if float(va @ vb) < thr * float(np.sqrt((va @ va) * (vb @ vb))):
                    continue
            if conflict(sight[ra], sight[rb]):
                continue
            if size[ra] < size[rb]:
                ra, rb = rb, ra
            parent[rb] = ra
            size[ra] += size[rb]
            sight[ra].extend(sight[rb])
            sight[rb] = []
            sums[ra] += sums[rb]

        roots = np.array([find(a) for a in range(n)], dtype=np.int64)
        _, labels = np.unique(roots, return_inverse=True)
        labels = labels.reshape(-1)
        # evidence: leave-one-out cosine to the cluster mean, margin over the best foreign candidate
        K = int(labels.max()) + 1 if n else 0
        counts = np.bincount(labels, minlength=K)
        # sums[root] is the weighted feature sum of the cluster; leave-one-out without copying it:
        # (c - w x).x = c.x - w and |c - w x|^2 = |c|^2 - 2 w c.x + w^2 for unit x
        cx = np.einsum("ij,ij->i", sums[roots], X)
        cc = np.einsum("ij,ij->i", sums, sums)[roots]
        loo_norm = np.sqrt(np.maximum(cc - 2 * w * cx + w * w, 0.0))
        score = np.where(loo_norm > 1e-6, (cx - w) / np.maximum(loo_norm, 1e-12), 1.0)
        runner = np.full(n, -np.inf, dtype=np.float32)
        if ii.size:
            foreign = labels[ii] != labels[jj]
            np.maximum.at(runner, ii[foreign], ss[foreign])
            np.maximum.at(runner, jj[foreign], ss[foreign])
        evidence = []
        solo = (counts[labels] == 1).tolist()
        runner_l, score_l, roots_l = runner.tolist(), score.tolist(), roots.tolist()
        inf = float("-inf")
        for a in range(n):
            r = runner_l[a]
            if solo[a]:
                evidence.append(LinkEvidence(score=1.0, margin=None if r == inf else 1.0 - r))
                continue
            t = ts[a]
            others = [s for s in sight[roots_l[a]] if not (s[2] == t.camera and s[0] == t.start_t
                                                           and s[1] == t.end_t)]
            sc = score_l[a]
            evidence.append(LinkEvidence(score=sc, margin=None if r == inf else sc - r,
                                         gap=_gap_before(others, t.start_t)))
        return labels, evidence

    def _identities_from_groups(self, groups: list[list[int]]) -> list[Identity]:
        order = {i: (t.points[0].t, t.camera, t.track) for i, t in enumerate(self.tracklets)}
        groups = [sorted(g, key=order.__getitem__) for g in groups if g]
        groups.sort(key=lambda g: order[g[0]])
        out = []
        for gid, g in enumerate(groups, start=1):
            out.append(Identity(id=gid, tracklets=[self.tracklets[i] for i in g],
                                evidence={self.tracklets[i].key: self.evidence[i] for i in g}))
        return out

    def _offline(self) -> list[Identity]:
        link_idx = [i for i, t in enumerate(self.tracklets) if self.linkable(t)]
        groups: list[list[int]] = []
        if link_idx:
            labels, evidence = self._cluster(link_idx)
            by_label: dict[int, list[int]] = {}
            for i, lab, ev in zip(link_idx, labels.tolist(), evidence):
                by_label.setdefault(lab, []).append(i)
                self.evidence[i] = ev
            groups.extend(by_label.values())
        for i, t in enumerate(self.tracklets):
            if not self.linkable(t):
                self.evidence[i] = LinkEvidence(score=0.0)
                groups.append([i])
        return self._identities_from_groups(groups)

    def finalize(self) -> list[Identity]:
        """The identities (sorted by first sighting, ids 1..N); re-clustered offline when
        ``config.refine``."""
        if self.config.refine:
            return self._offline()
        return self._identities_from_groups([list(ident.members) for ident in self._idents])

    def link(self, tracklets: list[Tracklet]) -> list[Identity]:
        """Batch linking: register ``tracklets`` (no online pass) and cluster everything offline."""
        for t in tracklets:
            self._register(t)
        return self._offline()


# --------------------------------------------------------------------------- scaling helpers
def synthetic_tracklets(n: int, dim: int = 512, cameras: int = 4, seed: int = 0, noise: float = 0.6,
                        return_labels: bool = False):
    """``n`` synthetic tracklets of ``dim``-d features for benchmarks and tests.

    People walk through ``cameras`` cameras in order (cam0 -> cam1 -> ...), each visiting 1 to
    ``cameras`` consecutive cameras, 5-40 s per visit, 5-30 s transit between cameras; arrivals are
    spread so that about 2.5 people are in view per camera per 10 s of timeline. A person's features
    are a random unit prototype plus Gaussian noise of relative norm ``noise`` (same-person cosine
    ~ 1 / (1 + noise**2) ~ 0.73 at the default; different people ~ 0 +- 1/sqrt(dim)), plus a small
    per-camera bias (lighting). With ``return_labels``, also returns the true person of each."""
    rng = np.random.default_rng(seed)
    cams = [f"cam{c}" for c in range(cameras)]
    bias = rng.standard_normal((cameras, dim)).astype(np.float32)
    bias *= 0.25 / np.linalg.norm(bias, axis=1, keepdims=True)
    tracklets: list[Tracklet] = []
    labels: list[int] = []
    pid = 0
    horizon = max(60.0, n * 1.5)
    counters = [0] * cameras
    while len(tracklets) < n:
        proto = rng.standard_normal(dim).astype(np.float32)
        proto /= np.linalg.norm(proto)
        visits = int(rng.integers(1, cameras + 1))
        first = int(rng.integers(0, cameras - visits + 1))
        t0 = float(rng.uniform(0, horizon))
        for v in range(visits):
            if len(tracklets) >= n:
                break
            c = first + v
            dur = float(rng.uniform(5, 40))
            g = rng.standard_normal(dim).astype(np.float32)
            f = proto + noise * g / np.linalg.norm(g) + bias[c]
            f /= np.linalg.norm(f)
            counters[c] += 1
            pts = [TrackPoint(frame=int(t * 10), t=t, bbox=(0.0, 0.0, 40.0, 100.0), score=0.9)
                   for t in (t0, t0 + dur / 2, t0 + dur)]
            tracklets.append(Tracklet(camera=cams[c], track=counters[c], points=pts, bank=[], qualities=[1.0],
                                      feature=f, closed=True))
            labels.append(pid)
            t0 += dur + float(rng.uniform(5, 30))
        pid += 1
    if return_labels:
        return tracklets, np.asarray(labels)
    return tracklets


def time_linking(n: int, dim: int = 512, cameras: int = 4, seed: int = 0,
                 config: LinkerConfig | None = None) -> float:
    """Seconds to link ``n`` synthetic tracklets offline (``Linker.link``); generation not timed.
    Default config: refine, linking window ``max_gap`` = 300 s (exact time-blocked search)."""
    ts = synthetic_tracklets(n, dim=dim, cameras=cameras, seed=seed)
    linker = Linker(config or LinkerConfig(refine=True, max_gap=300.0), [f"cam{c}" for c in range(cameras)])
    t0 = time.perf_counter()
    linker.link(ts)
    return time.perf_counter() - t0


def pairwise_scores(labels_true: np.ndarray, labels_pred: np.ndarray) -> dict[str, float]:
    """Pair-counting precision/recall/F1 of a clustering (pairs of items put together)."""
    from collections import Counter

    def pairs(counter) -> int:
        return sum(c * (c - 1) // 2 for c in counter.values())

    both = pairs(Counter(zip(labels_true.tolist(), labels_pred.tolist())))
    pred = pairs(Counter(labels_pred.tolist()))
    true = pairs(Counter(labels_true.tolist()))
    p = both / pred if pred else 1.0
    r = both / true if true else 1.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


__all__ = ["Linker", "candidate_pairs", "pairwise_scores", "synthetic_tracklets", "time_linking"]
