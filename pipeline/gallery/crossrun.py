"""Linking a run to the gallery: which stored identity each of the run's identities continues.

1. **Within the linking window, under the linker's own rules.** The gallery's tracklets that end no
   earlier than ``window`` seconds before the run starts (and start no later than ``window`` after it
   ends) are given to the run's :class:`~reidpipe.pipeline.link.Linker` as ordinary tracklets, on the
   run's time axis (absolute time minus the run's origin), before the run's own: the linker's
   calibration, camera centring, constraints (coexistence, the camera graph and transit windows,
   ``--link-window``) and learned transit evidence treat them exactly as the run's. Their track
   numbers are negative (``-row id``) so that they never collide with the run's. ``window`` is
   ``--link-window`` when set, else :data:`DEFAULT_WINDOW`.
2. **Global ids** (:func:`assign_global_ids`): each identity the linker returns that holds gallery
   tracklets continues the stored identity most of them belong to; one stored identity is continued
   by one run identity at most (most gallery tracklets first). The gallery's tracklets are never
   re-assigned: what an earlier run exported stays as it was.
3. **Beyond the window, by appearance alone** (:func:`match_beyond_window`): a run identity that
   continues nothing is compared (FAISS, top ``K`` per identity) with the ``k`` stored identities that
   were not in the linker (seen before the window: yesterday), by the linker's own decision rule
   without its time term: z-scores against a negative model fitted (``calibration.NegativeModel``) on
   the similarities of the run's identities to a seeded random sample of stored identities (nearly
   all different people); the *confident* matches (mutual best, z above the Bonferroni level over
   ``k``) fit the positive model; a match is made when prior (one of ``k``, or none) + appearance
   log-likelihood ratio >= 0, most probable first, one-to-one, in rounds (links made leave fewer
   alternatives). There is no time or transit evidence across days.
4. The rest get fresh ids from the gallery's counter.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from reidpipe.pipeline.gallery.store import StoredTracklet
from reidpipe.pipeline.types import Identity, Tracklet, TrackPoint

DEFAULT_WINDOW = 300.0  # seconds: gallery tracklets this close to the run are linked by the linker itself
TOP_K = 10  # stored identities looked at per run identity beyond the window
NEGATIVE_SAMPLE = 512  # stored identities sampled for the negative model beyond the window


def as_tracklet(s: StoredTracklet, origin: float) -> Tracklet:
    """A stored tracklet as the linker sees one: its span and point count on the run's axis, its pooled
    feature, its crops' total quality (``qualities`` sums to the stored weight)."""
    n = max(1, min(int(s.points), 3))
    ts = np.linspace(s.start - origin, s.end - origin, n) if n > 1 else [s.start - origin]
    points = [TrackPoint(frame=0, t=float(t), bbox=(0.0, 0.0, 0.0, 0.0), score=1.0) for t in ts]
    crops = max(int(s.crops), 0)
    return Tracklet(
        camera=s.camera,
        track=-int(s.id),
        points=points,
        qualities=[float(s.weight) / crops] * crops if crops else [],
        feature=s.feature,
        closed=True,
    )


def stored_votes(identities: list[Identity], stored_of: dict[tuple[str, int], int]) -> list[Counter]:
    return [Counter(stored_of[t.key] for t in ident.tracklets if t.key in stored_of) for ident in identities]


def assign_global_ids(identities: list[Identity], stored_of: dict[tuple[str, int], int]) -> dict[int, int]:
    """Index of a linker identity -> the stored global id it continues (see the module docstring, 2)."""
    votes = stored_votes(identities, stored_of)
    pairs = sorted(((-n, gid, k) for k, v in enumerate(votes) for gid, n in v.items()))
    out: dict[int, int] = {}
    taken: set[int] = set()
    for _, gid, k in pairs:
        if k not in out and gid not in taken:
            out[k], taken = gid, taken | {gid}
    return out


def match_beyond_window(
    queries: np.ndarray, index, exclude: set[int], sample: np.ndarray, fallback: float
) -> dict[int, tuple[int, float]]:
    """Row of ``queries`` -> (stored identity id, cosine) for the matches beyond the window (module
    docstring, 3). ``sample`` holds stored identity embeddings for the negative model; ``fallback`` is
    the cosine used when the sample is too small to fit one."""
    from reidpipe.pipeline.link import calibration as cal

    k = len(index) - len(exclude & index.ids()) if len(index) else 0
    if len(queries) == 0 or k <= 0:
        return {}
    sims, ids = index.search(queries, TOP_K + len(exclude))
    q, g, s = _candidates(sims, ids, exclude)
    neg = cal.NegativeModel.fit((queries @ sample.T).ravel()) if len(sample) else None
    if neg is None:  # too few stored identities to calibrate: the fixed fallback cosine, one-to-one
        return _one_to_one(q, g, s, np.where(s >= fallback, s, -np.inf))
    z = neg.z(s)
    z_conf = cal.bonferroni_z(k, neg.dof)
    confident = (z >= z_conf) & _mutual_best(q, g, s)
    positive = cal.PositiveModel.fit(z[confident], default_mu=z_conf + 1.0, lower=z_conf)
    appearance = positive.llr(z, neg.dof)
    out: dict[int, tuple[int, float]] = {}
    while True:  # in rounds, as the linker decides: links made leave fewer alternatives to the rest
        free = k * max((len(queries) - len(out) + 1) / (len(queries) + 1), (k - len(out) + 1) / (k + 1))
        odds = cal.prior_log_odds(free) + appearance
        taken = {gid for gid, _ in out.values()}
        open_ = np.array([qi not in out and gi not in taken for qi, gi in zip(q.tolist(), g.tolist())], bool)
        made = _one_to_one(q[open_], g[open_], s[open_], np.where(odds[open_] >= 0, odds[open_], -np.inf))
        if not made:
            return out
        out.update(made)


def _candidates(sims: np.ndarray, ids: np.ndarray, exclude: set[int]):
    """(query row, stored id, cosine) of each search result not excluded."""
    rows = [(qi, int(gi), float(si)) for qi in range(len(ids)) for si, gi in zip(sims[qi], ids[qi])]
    rows = [r for r in rows if r[1] >= 0 and r[1] not in exclude]
    q, g, s = (np.array(col) for col in zip(*rows)) if rows else (np.zeros(0, int), np.zeros(0, int), np.zeros(0))
    return q.astype(np.int64), g.astype(np.int64), s.astype(np.float64)


def _mutual_best(q: np.ndarray, g: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Candidates that are the best of both their query and their stored identity."""
    best_q: dict[int, float] = {}
    best_g: dict[int, float] = {}
    for qi, gi, si in zip(q.tolist(), g.tolist(), s.tolist()):
        best_q[qi] = max(best_q.get(qi, -np.inf), si)
        best_g[gi] = max(best_g.get(gi, -np.inf), si)
    return np.array([best_q[qi] == si == best_g[gi] for qi, gi, si in zip(q.tolist(), g.tolist(), s.tolist())], bool)


def _one_to_one(q: np.ndarray, g: np.ndarray, s: np.ndarray, score: np.ndarray) -> dict[int, tuple[int, float]]:
    """Greedy one-to-one matching, highest ``score`` first (``-inf``: never)."""
    out: dict[int, tuple[int, float]] = {}
    taken: set[int] = set()
    for n in np.argsort(-score, kind="stable").tolist():
        if not np.isfinite(score[n]):
            break
        qi, gi = int(q[n]), int(g[n])
        if qi not in out and gi not in taken:
            out[qi] = (gi, float(s[n]))
            taken.add(gi)
    return out


def only_run_tracklets(ident: Identity, gid: int, gallery_keys) -> Identity:
    """``ident`` under global id ``gid`` with only the run's own tracklets (not the gallery's)."""
    own = [t for t in ident.tracklets if t.key not in gallery_keys]
    return Identity(
        id=gid, tracklets=own, evidence={t.key: ident.evidence[t.key] for t in own if t.key in ident.evidence}
    )


__all__ = [
    "DEFAULT_WINDOW",
    "as_tracklet",
    "assign_global_ids",
    "match_beyond_window",
    "only_run_tracklets",
]
