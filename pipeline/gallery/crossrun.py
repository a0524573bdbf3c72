"""Linking a run to the gallery: which stored identity each of the run's identities continues.

1. **Within the linking window, under the linker's own rules.** The gallery's tracklets that end no
   earlier than ``window`` seconds before the run starts (and start no later than ``window`` after it
   ends) are given to the run's :class:`~reidpipe.pipeline.link.Linker` as ordinary tracklets, on the
   run's time axis (absolute time minus the run's origin), before the run's own: the linker's
   calibration, camera centring, constraints (coexistence, transit windows, ``--link-window``) and
   learned transit evidence treat them exactly as the run's. Their track numbers are negative
   (``-row id``) so that they never collide with the run's. ``window`` is ``--link-window`` when set,
   else :data:`DEFAULT_WINDOW`.
2. **Global ids** (:func:`assign_global_ids`): each identity the linker returns that holds gallery
   tracklets continues the stored identity most of them belong to; one stored identity is continued
   by one run identity at most (most gallery tracklets first). The gallery's tracklets are never
   re-assigned: what an earlier run exported stays as it was.
3. **Beyond the window, by appearance alone** (:func:`match_beyond_window`): a run identity that
   continues nothing is compared (FAISS, top ``K`` per identity) with the stored identities that were
   not in the linker (seen before the window: yesterday). Its camera-centred feature must pass a
   Bonferroni level of a negative model fitted, as the linker fits its own, on similarities of the
   run's identities to a random sample of stored identities (nearly all different people), over all
   ``queries x stored identities`` comparisons; matches are taken most similar first, one-to-one. No
   time or transit evidence is used there (there is none across days).
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

    if len(queries) == 0 or len(index) == 0:
        return {}
    sims, ids = index.search(queries, TOP_K + len(exclude))
    threshold = fallback
    if len(sample):
        neg = cal.NegativeModel.fit((queries @ sample.T).ravel())
        if neg is not None:
            threshold = neg.cosine(cal.bonferroni_z(len(queries) * len(index), neg.dof))
    cands = sorted(
        (-float(s), int(g), q)
        for q in range(len(queries))
        for s, g in zip(sims[q], ids[q])
        if g >= 0 and int(g) not in exclude and s >= threshold
    )
    out: dict[int, tuple[int, float]] = {}
    taken: set[int] = set()
    for s, g, q in cands:
        if q not in out and g not in taken:
            out[q] = (g, -s)
            taken.add(g)
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
