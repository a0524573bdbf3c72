"""Offline linking (``--refine``, ``Linker.link``): every linkable tracklet decided with everything seen.

The steps, in the order :func:`link_offline` runs them:

1. ``_prepare``: unit features centred per camera, weights, times, camera codes;
2. ``_merge_in_camera``: per camera, the fragments of one person (re-entry after an occlusion or a
   tracker loss) are merged into *camera clusters*: candidate pairs above the camera's calibrated
   cosine (:mod:`.calibration`: Bonferroni level over a sample of the camera's pairs), most similar
   first, never two coexisting tracklets;
3. ``_cross_candidates``: per camera pair, candidate cluster pairs with their z-score against the
   pair's negatives and their signed time gap;
4. ``_fit_evidence``: the confident links (mutual best matches above the pair's Bonferroni level) fit
   the positive model and each pair's transit model (:mod:`.evidence`);
5. ``_decide``: posterior log-odds = prior + appearance + time; clusters are merged most probable
   first while the odds exceed 1 and the merge keeps one cluster per camera (a cross-camera link is
   one-to-one per camera pair; but for two clusters of one camera never seen at once that look like
   one person and that step 2's evidence lets join, :class:`MergeEvidence`) and every user
   constraint; a merge of identities that hold other cameras counts the evidence of every cluster
   pair it joins (:class:`MergeEvidence`);
6. ``_evidence``: score, runner-up margin and gap of every tracklet.

With a fixed threshold (``--link-threshold``, or calibration switched off) steps 2 and 5 compare the
plain cosine with it instead. Only candidate pairs from the exact neighbour search
(:mod:`reidpipe.pipeline.link.neighbours`, time-blocked with a linking window) are looked at, so 100,000
tracklets link in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.stats import norm

from reidpipe.cpus import one_blas_thread
from reidpipe.pipeline.config import LinkerConfig
from reidpipe.pipeline.link import calibration as cal
from reidpipe.pipeline.link.constraints import Constraints, gap, places
from reidpipe.pipeline.link.evidence import MAX_LLR, TransitModel
from reidpipe.pipeline.link.features import camera_means, centred, group_features, group_sums, unit_rows
from reidpipe.pipeline.link.groups import Groups
from reidpipe.pipeline.link.neighbours import candidate_pairs
from reidpipe.pipeline.link.network import Exchange, between_sites, holm, judge
from reidpipe.pipeline.link.place import Places, feet, fit_places
from reidpipe.pipeline.link.split import one_person_level, one_person_model
from reidpipe.pipeline.types import LinkEvidence, Tracklet

Z_SEARCH = 1.5  # cross-camera candidates below this z practically never reach odds of 1 (prior <= 1, time <= e^3)


@dataclass
class Problem:
    """The linkable tracklets as arrays (row i = tracklet i)."""

    X: np.ndarray  # centred unit features
    w: np.ndarray  # pooling weights
    starts: np.ndarray
    ends: np.ndarray
    code: np.ndarray  # camera codes (indices into Constraints.cameras)
    family: np.ndarray  # the pieces of one cut track share one (Constraints.family)
    cameras: list[str]
    means: np.ndarray  # each camera's mean unit feature (what centring subtracted; zeros without it)
    tracklets: list[Tracklet]  # for where each was first and last seen (constraints.places), when needed


@dataclass(frozen=True)
class CameraPairModel:
    """What the cross-camera decisions of one camera pair are weighed with."""

    name: str  # "camA~camB"
    cameras: tuple[int, int]  # the two camera codes (indices into Constraints.cameras)
    # the pair's negatives (cosines of sampled cluster pairs that are not one person); None with a
    # fixed threshold or where too few pairs were there to calibrate
    negatives: cal.NegativeModel | None
    background_gaps: np.ndarray  # the signed time gaps of those sampled pairs (transit evidence's background)
    alternatives: float  # clusters a cluster of one camera could be linked to in the other (the prior's k)
    clusters: tuple[int, int]  # camera clusters in each of the two cameras
    exchange: Exchange | None = None  # whether the pair exchanges people (step 3b, network.py)
    # comparisons a confident link stands out of (its Bonferroni level): the alternatives, or every pair
    # of the pooled sample when the negatives are the run's pooled ones (_pooled_negatives)
    family: float | None = None

    @property
    def dof(self) -> int | None:
        """The negatives' degrees of freedom (their Student-t tail), None without negatives."""
        return self.negatives.dof if self.negatives is not None else None


@dataclass
class Candidates:
    """Cross-camera candidate cluster pairs."""

    i: np.ndarray
    j: np.ndarray
    sim: np.ndarray
    z: np.ndarray  # nan when the pair was not calibrated
    gap: np.ndarray
    pair: np.ndarray  # index into the list of camera pairs

    def subset(self, keep: np.ndarray) -> Candidates:
        return Candidates(
            i=self.i[keep], j=self.j[keep], sim=self.sim[keep], z=self.z[keep], gap=self.gap[keep], pair=self.pair[keep]
        )


def _prepare(tracklets: list[Tracklet], config: LinkerConfig, rules: Constraints) -> Problem:
    cams = rules.cameras
    pos = {c: k for k, c in enumerate(cams)}
    code = np.array([pos[t.camera] for t in tracklets], np.int64)
    X = unit_rows([t.feature for t in tracklets])
    means = np.zeros((len(cams), X.shape[1]), X.dtype)
    if config.camera_centering and len(tracklets):
        means = camera_means(X, code, len(cams))
        X = centred(X, code, means)
    return Problem(
        X=X,
        w=np.array([t.weight for t in tracklets], np.float32),
        starts=np.array([t.start_t for t in tracklets], np.float64),
        ends=np.array([t.end_t for t in tracklets], np.float64),
        code=code,
        family=np.array([rules.family(t) for t in tracklets], np.int64),
        cameras=cams,
        means=means,
        tracklets=tracklets,
    )


def alternatives(n: int, starts: np.ndarray, ends: np.ndarray, max_gap: float | None) -> float:
    """How many of ``n`` items one item is compared with: all of them, or with a linking window the
    share of the run's time span that the window covers."""
    if max_gap is None or n == 0:
        return float(max(n, 1))
    span = float(ends.max() - starts.min()) or 1.0
    share = (2 * max_gap + float(np.median(ends - starts))) / span
    return float(max(1.0, n * min(1.0, share)))


def _rowdot(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", A, B)


def _within_window(
    i: np.ndarray, j: np.ndarray, starts: np.ndarray, ends: np.ndarray, config: LinkerConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The pairs ``(i, j)`` at most the linking window apart: the population decisions are made on."""
    if config.max_gap is None:
        return i, j
    keep = gap(starts[i], ends[i], starts[j], ends[j]) <= config.max_gap
    return i[keep], j[keep]


def _fallback(config: LinkerConfig) -> float:
    """The fixed fallback cosine (``Linker`` fills it in before any linking)."""
    assert config.fallback_similarity is not None
    return float(config.fallback_similarity)


# ------------------------------------------------------------------------------ step 2: in camera
def _in_camera_threshold(
    p: Problem, idx: np.ndarray, config: LinkerConfig, rng: np.random.Generator, op: cal.OperatingPoint
) -> float:
    cam = p.cameras[int(p.code[idx[0]])]
    if config.min_similarity is not None:
        return float(config.min_similarity)
    if not config.calibrate:
        return _fallback(config)
    i, j = _within_window(*cal.sample_pairs(idx.size, idx.size, rng, same=True), p.starts[idx], p.ends[idx], config)
    neg = cal.NegativeModel.fit(_rowdot(p.X[idx[i]], p.X[idx[j]]))
    if neg is None:
        op.in_camera[cam] = {"pairs": int(i.size), "threshold": _fallback(config), "fallback": True}
        op.notes.append(
            f"{cam}: {idx.size} tracklets, too few to calibrate re-entry: "
            f"fallback cosine {config.fallback_similarity:.2f}"
        )
        return _fallback(config)
    n = len(idx)
    z = cal.bonferroni_z(int(n * alternatives(n, p.starts[idx], p.ends[idx], config.max_gap) / 2), neg.dof)
    thr = neg.cosine(z)
    op.in_camera[cam] = {**neg.to_json(), "z": round(z, 3), "threshold": round(thr, 4)}
    return thr


def reentry_levels(
    tracklets: list[Tracklet], config: LinkerConfig, rules: Constraints
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Per camera, the cosine at which step 2 merges two of its tracklets as one person's fragments,
    and the camera's mean feature (what centring subtracts): what tracklet splitting (split.py) judges
    a cut by."""
    scratch = cal.OperatingPoint(mode="calibrated")
    rng = np.random.default_rng(0)
    p = _prepare(tracklets, config, rules)
    levels, out_means = {}, {}
    for c in np.unique(p.code).tolist():
        idx = np.flatnonzero(p.code == c)
        if idx.size >= 2:
            levels[p.cameras[c]] = _in_camera_threshold(p, idx, config, rng, scratch)
            out_means[p.cameras[c]] = p.means[c]
    return levels, out_means


def _merge_in_camera(
    p: Problem, config: LinkerConfig, rules: Constraints, rng: np.random.Generator, op: cal.OperatingPoint
) -> tuple[Groups, list, ReentryEvidence]:
    """Step 2: per camera, the candidate pairs above its re-entry level (all of them are returned, for
    the runner-up evidence), merged most similar first where they are one person (:func:`_merges`),
    and the evidence they were weighed with (for the cross-camera merges that join two clusters of
    one camera, :class:`MergeEvidence`)."""
    pairs, levels, rows = [], [], []
    for c in np.unique(p.code):
        idx = np.flatnonzero(p.code == c)
        if idx.size < 2:
            continue
        thr = _in_camera_threshold(p, idx, config, rng, op)
        i, j, s = candidate_pairs(p.X[idx], config.knn, thr, config.backend, p.starts[idx], p.ends[idx], config.max_gap)
        pairs.append((idx[i], idx[j], s))
        levels.append(_one_person_level(p, idx, op))
        rows.append(idx)
    reentry = _reentry_evidence(p, pairs, levels, rows, config, op)
    merges = _merges(p, pairs, levels, rows, reentry, config)
    groups = Groups(p.starts, p.ends, p.code, p.family, where=_candidate_places(p, pairs))
    for (i, j, s), level, ok in zip(pairs, levels, merges):
        brief = _brief_overlaps(p, i, j, s, level, config)
        for a, b, allowed in zip(i[ok].tolist(), j[ok].tolist(), brief[ok].tolist()):
            groups.merge(a, b, rules, brief=allowed)
    return groups, pairs, reentry


def _one_person_level(p: Problem, idx: np.ndarray, op: cal.OperatingPoint) -> float | None:
    """The camera's "one person at two moments" level (:func:`.split.one_person_level`) for its
    tracklets ``idx``, recorded in the operating point; None when it has too few tracks."""
    cam = int(p.code[idx[0]])
    level = one_person_level([p.tracklets[r] for r in idx.tolist()], p.means[cam])
    if level is not None and p.cameras[cam] in op.in_camera:
        op.in_camera[p.cameras[cam]]["one_person_level"] = round(level, 4)
    return level


@dataclass(frozen=True)
class CameraReentry:
    """Step 2's models of one camera (:class:`ReentryEvidence`)."""

    one: tuple[float, float]  # the one-person sample's normal: median, scale (cosines)
    level: float  # its low outliers' level (the camera's one-person level, :func:`.split.one_person_level`)
    negatives: cal.NegativeModel
    prior: float  # log-odds of one match among the camera's alternatives


@dataclass
class ReentryEvidence:
    """What step 2 weighs a pair of one camera's tracklets (or clusters) with: per camera code, the
    "one person at two moments" sample's normal (:func:`.split.one_person_model`: median, scale)
    and the camera's negatives (as :func:`_in_camera_threshold` recorded them), and the time
    evidence of the camera's clear merges' gaps (pooled over the cameras). A camera with too few
    tracks for the one-person sample, or without negatives (the fallback cosine), has no model."""

    models: dict[int, CameraReentry]
    time: TransitModel | None

    def llr(self, cam: int, s: np.ndarray, gaps: np.ndarray) -> np.ndarray:
        """Appearance + time log-likelihood ratio of one person against two for pairs of camera
        ``cam`` with cosines ``s`` and signed gaps ``gaps``; -inf where the camera has no model."""
        if cam not in self.models:
            return np.full(s.shape, -np.inf)
        m = self.models[cam]
        (mu, sd), neg = m.one, m.negatives
        same = norm.logpdf((s - mu) / sd) - np.log(sd)
        other = cal.negative_logpdf(neg.z(s), neg.dof) - np.log(neg.scale)
        return same - other + (self.time.llr(gaps) if self.time is not None else 0.0)

    def log_odds(self, cam: int, s: np.ndarray, gaps: np.ndarray) -> np.ndarray:
        """:meth:`llr` plus the prior of one match among the camera's alternatives."""
        prior = self.models[cam].prior if cam in self.models else 0.0
        return prior + self.llr(cam, s, gaps)


def _reentry_evidence(
    p: Problem,
    pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    levels: list[float | None],
    rows: list[np.ndarray],
    config: LinkerConfig,
    op: cal.OperatingPoint,
) -> ReentryEvidence:
    """Each camera's re-entry models (:class:`ReentryEvidence`); the time evidence is fitted on the
    gaps of the pairs at or above their camera's one-person level (the clear merges, :func:`_merges`)
    and recorded in the operating point."""
    models = {}
    for idx, level in zip(rows, levels):
        cam = int(p.code[idx[0]])
        entry = op.in_camera.get(p.cameras[cam], {})
        one = one_person_model([p.tracklets[r] for r in idx.tolist()], p.means[cam])
        if one is not None and level is not None and "median" in entry:
            neg = cal.NegativeModel(median=entry["median"], scale=entry["scale"], n=entry["pairs"])
            prior = cal.prior_log_odds(alternatives(idx.size, p.starts[idx], p.ends[idx], config.max_gap))
            models[cam] = CameraReentry(one, level, neg, float(prior))
    if not models:
        return ReentryEvidence(models, None)
    clear = [np.ones(s.size, bool) if level is None else s >= level for (_, _, s), level in zip(pairs, levels)]
    link_gaps = [gap(p.starts[i], p.ends[i], p.starts[j], p.ends[j])[c] for (i, j, _), c in zip(pairs, clear)]
    time = _reentry_time(p, np.concatenate([np.zeros(0), *link_gaps]), rows, config)
    op.reentry_time = time.to_json()
    return ReentryEvidence(models, time)


def _merges(
    p: Problem,
    pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    levels: list[float | None],
    rows: list[np.ndarray],
    reentry: ReentryEvidence,
    config: LinkerConfig,
) -> list[np.ndarray]:
    """Which candidate pairs of each camera (all above its re-entry level) are merged.

    The re-entry level says a pair is unlike two different people *at large*, read on a normal
    tail. The run's different people have a heavier upper tail than that: look-alikes pass it (on
    generated two- and three-camera scenes about one pair in three cameras did, and every such
    merge took a wrong sighting into an identity). A pair at or above the camera's one-person level
    (:func:`.split.one_person_level`, the level under which a track is cut: a pair joined and a track
    cut apart are judged by one level) also looks like one person and is merged. A pair below it is
    unlike both and is decided as a cross-camera link is: by the odds of one person (the one-person
    sample) against two (the camera's negatives), with its gap as time evidence
    (:class:`ReentryEvidence`), and the prior of one match among the camera's alternatives. One
    person whose look changed across a tracker's break (they turned round, walked into shade)
    breaks where and when the camera's clear fragments broke; look-alikes come and go at any time.
    A camera with too few tracks for the one-person level, or without a negative model (the
    fallback cosine), merges on the re-entry level alone."""
    out = []
    for (i, j, s), level, idx in zip(pairs, levels, rows):
        cam = int(p.code[idx[0]])
        if cam not in reentry.models:  # the re-entry level alone
            out.append(np.ones(s.size, bool))
            continue
        clear = np.ones(s.size, bool) if level is None else s >= level
        g = gap(p.starts[i], p.ends[i], p.starts[j], p.ends[j])
        out.append(clear if clear.all() else clear | (reentry.log_odds(cam, s, g) >= 0))
    return out


def _reentry_time(p: Problem, link_gaps: np.ndarray, rows: list[np.ndarray], config: LinkerConfig) -> TransitModel:
    """Time evidence of in-camera merges: the gaps ``link_gaps`` of the clear ones against the gaps
    of a sample of each camera's pairs (its own random numbers: the linker's stream stays as it was)."""
    rng = np.random.default_rng(0)
    background = [np.zeros(0)]
    for idx in rows:
        i, j = _within_window(*cal.sample_pairs(idx.size, idx.size, rng, same=True), p.starts[idx], p.ends[idx], config)
        background.append(gap(p.starts[idx[i]], p.ends[idx[i]], p.starts[idx[j]], p.ends[idx[j]]))
    return TransitModel(link_gaps, np.concatenate(background))


def _brief_overlaps(
    p: Problem, i: np.ndarray, j: np.ndarray, s: np.ndarray, level: float | None, config: LinkerConfig
) -> np.ndarray:
    """Per candidate pair of one camera, how long the two may overlap (rule 1's exception of the
    constraints): ``min_duration`` where they overlap at most that long and look as alike as one
    person's own track at two moments (``level``: :func:`.split.one_person_level`), else 0. Such
    pairs are one person whom the tracker gave a second track before dropping the first: a
    false-positive box beside the person that took the person over, a re-spawned track. Such pairs
    look as alike as one track with itself; pairs of different people that overlap that briefly and
    pass the re-entry level look much less alike, below the camera's "one person at two moments"
    level."""
    out = np.zeros(i.size)
    if level is not None:
        overlap = np.minimum(p.ends[i], p.ends[j]) - np.maximum(p.starts[i], p.starts[j])
        out[(overlap >= 0) & (overlap <= config.min_duration) & (s >= level)] = config.min_duration
    return out


def _candidate_places(p: Problem, pairs: list) -> np.ndarray:
    """Where the tracklets of candidate pairs were first and last seen (rule 6 of the constraints;
    NaN for the others, which merge with nobody in their camera). Every tracklet's took 4.6 of 10.5 s
    for 30,000 in `reidpipe bench --linker-only`."""
    where = np.full((p.code.size, 6), np.nan)
    rows = np.unique(np.concatenate([np.zeros(0, np.int64)] + [np.concatenate([i, j]) for i, j, _ in pairs]))
    where[rows] = places([p.tracklets[r] for r in rows.tolist()])
    return where


# ------------------------------------------------------------------------------ step 3: cross camera
@dataclass
class Clusters:
    """Camera clusters (step 2's groups) as rows."""

    G: np.ndarray  # features
    code: np.ndarray
    family: np.ndarray  # of the cluster's tracklet (clusters of 2+ tracklets: their sightings say)
    start: np.ndarray  # span of each cluster
    end: np.ndarray
    of: np.ndarray  # cluster of each tracklet
    sightings: dict  # cluster -> Sightings, for clusters of 2+ tracklets


def _clusters(p: Problem, groups: Groups) -> Clusters:
    of = groups.labels()
    K = int(of.max()) + 1 if of.size else 0
    start = np.full(K, np.inf)
    end = np.full(K, -np.inf)
    np.minimum.at(start, of, p.starts)
    np.maximum.at(end, of, p.ends)
    code, family = np.zeros(K, np.int64), np.zeros(K, np.int64)
    code[of], family[of] = p.code, p.family
    sightings = {int(of[root]): s for root, s in groups.multi().items()}
    return Clusters(
        G=group_features(p.X, p.w, of, K), code=code, family=family, start=start, end=end, of=of, sightings=sightings
    )


def _pair_sample(
    cl: Clusters, ia: np.ndarray, ib: np.ndarray, config: LinkerConfig, rng: np.random.Generator, final: bool
) -> tuple[np.ndarray, float, np.ndarray]:
    """The camera pair's negative sample: the similarities of a sample of its cluster pairs, how many
    of them can be true matches, and their gaps. A cluster matches at most one of the other camera's,
    so at most the smaller camera's clusters of the pairs are true matches (scaled to the sample). An
    online solution fits as if there were none: what it leaves unlinked, a later solution with more
    tracklets decides, while a link it makes too soon stays (counted there, the lower tail quantile
    raises every z, and early solutions linked too soon)."""
    si, sj = cal.sample_pairs(ia.size, ib.size, rng)
    a, b = _within_window(ia[si], ib[sj], cl.start, cl.end, config)
    matches = min(ia.size, ib.size) * si.size / (ia.size * ib.size) if final else 0.0
    return _rowdot(cl.G[a], cl.G[b]), matches, gap(cl.start[a], cl.end[a], cl.start[b], cl.end[b])


def _cross_candidates(
    cl: Clusters,
    config: LinkerConfig,
    rules: Constraints,
    rng: np.random.Generator,
    op: cal.OperatingPoint,
    final: bool = True,
) -> tuple[Candidates, list[CameraPairModel]]:
    """Candidate pairs of every camera pair, and per camera pair (negatives, background gaps, k)."""
    fixed = (
        config.min_similarity
        if config.min_similarity is not None
        else (None if config.calibrate else config.fallback_similarity)
    )
    pairs = _camera_pairs(cl, rules, op)
    samples = [_pair_sample(cl, ia, ib, config, rng, final) for _, _, ia, ib in pairs] if fixed is None else []
    pooled = _pooled_negatives(samples) if fixed is None else None
    parts: list[tuple[np.ndarray, ...]] = []
    models: list[CameraPairModel] = []
    # one buffer for every pair's rows: a fresh (n, d) copy per pair cost ~0.1 s of page faults each
    # for 100,000 tracklets in `reidpipe bench --linker-only`
    rows = np.empty((max([ia.size + ib.size for _, _, ia, ib in pairs], default=0), cl.G.shape[1]), cl.G.dtype)
    for x, (name, (a, b), ia, ib) in enumerate(pairs):
        neg, bg = None, np.zeros(0)
        if fixed is None:
            sims, matches, bg = samples[x]
            neg = cal.NegativeModel.fit(sims, matches)
            if neg is None and pooled is not None:
                neg = pooled
                op.pooled.append(name)
            elif neg is None:
                op.notes.append(f"{name}: too few pairs to calibrate: fallback cosine {config.fallback_similarity:.2f}")
        thr = fixed if fixed is not None else (neg.cosine(Z_SEARCH) if neg is not None else _fallback(config))
        both = np.concatenate([ia, ib])
        # in time order: the time-blocked search then uses the rows as given (no second n x d copy)
        both = both[np.argsort(cl.start[both], kind="stable")]
        G = np.take(cl.G, both, axis=0, out=rows[: both.size], mode="clip")  # clip: unbuffered (indices valid)
        i, j, s = candidate_pairs(G, config.knn, thr, config.backend, cl.start[both], cl.end[both], config.max_gap)
        i, j = both[i], both[j]
        cross = cl.code[i] != cl.code[j]
        i, j, s = i[cross], j[cross], s[cross]
        k = max(
            alternatives(ia.size, cl.start[ia], cl.end[ia], config.max_gap),
            alternatives(ib.size, cl.start[ib], cl.end[ib], config.max_gap),
        )
        family = float(pooled.n) if neg is not None and neg is pooled else None
        models.append(CameraPairModel(name, (a, b), neg, bg, k, (ia.size, ib.size), family=family))
        z = neg.z(s) if neg is not None else np.full(s.shape, np.nan)
        parts.append((i, j, s, z, np.full(i.size, len(models) - 1)))
    if not parts:
        e = np.zeros(0, np.int64)
        return Candidates(e, e, np.zeros(0), np.zeros(0), np.zeros(0), e), models
    i, j, s, z, pair = (np.concatenate(v) for v in zip(*parts))
    g = gap(cl.start[i], cl.end[i], cl.start[j], cl.end[j])
    return Candidates(i=i, j=j, sim=s, z=z, gap=g, pair=pair), models


def _camera_pairs(
    cl: Clusters, rules: Constraints, op: cal.OperatingPoint
) -> list[tuple[str, tuple[int, int], np.ndarray, np.ndarray]]:
    """The camera pairs to compare: (name, codes, clusters of each); the pairs not adjacent
    (``--adjacent``) are noted and left out: their look-alikes calibrate nothing either."""
    cams = np.unique(cl.code).tolist()
    out = []
    for x, a in enumerate(cams):
        for b in cams[x + 1 :]:
            name = f"{rules.cameras[a]}~{rules.cameras[b]}"
            if not rules.adjacent(a, b):
                op.not_adjacent.append(name)
                continue
            out.append((name, (a, b), np.flatnonzero(cl.code == a), np.flatnonzero(cl.code == b)))
    return out


def _pooled_negatives(samples: list[tuple[np.ndarray, float, np.ndarray]]) -> cal.NegativeModel | None:
    """One negative model from every camera pair's sample together, for the pairs whose own sample is
    too small to fit (a short clip: a camera of three people and one of two give six pairs). Camera
    centring puts every pair's different people around a cosine of 0 with a spread that is the
    embedder's more than the pair's, so the run's pairs together are the best sample such a pair has;
    its true matches are counted as each pair's are. None when even the run holds too few pairs."""
    if not samples:
        return None
    sims = np.concatenate([sm for sm, _, _ in samples])
    return cal.NegativeModel.fit(sims, sum(m for _, m, _ in samples))


# ------------------------------------------------------------------------------ step 4: evidence
def _mutual_best(c: Candidates, sel: np.ndarray) -> np.ndarray:
    """Of the candidates ``sel``, those that are the best of both their clusters within their camera pair."""
    i, j, s, pair = c.i[sel], c.j[sel], c.sim[sel].astype(np.float64), c.pair[sel]
    if not i.size:
        return np.zeros(0, bool)
    width = int(c.pair.max()) + 1
    keys = np.concatenate([i * width + pair, j * width + pair]).astype(np.int64)  # (cluster, camera pair)
    uniq, inv = np.unique(keys, return_inverse=True)
    best = np.full(uniq.size, -np.inf)
    np.maximum.at(best, inv, np.concatenate([s, s]))
    return (best[inv[: i.size]] == s) & (best[inv[i.size :]] == s)


def _confident(c: Candidates, models: list[CameraPairModel]) -> tuple[np.ndarray, np.ndarray]:
    """Each camera pair's confident level (the Bonferroni z over its alternatives) and which
    candidates are confident links: above it and the mutual best matches of their camera pair."""
    z_conf = np.array([cal.bonferroni_z(int(round(m.family or m.alternatives)), m.dof) for m in models] or [0.0])
    confident = np.zeros(c.i.size, bool)
    high = np.flatnonzero(np.nan_to_num(c.z, nan=-np.inf) >= z_conf[c.pair] if c.i.size else confident)
    if high.size:
        confident[high[_mutual_best(c, high)]] = True
    return z_conf, confident


def _cut_pairs_sharing_nobody(
    c: Candidates, models: list[CameraPairModel], config: LinkerConfig, rules: Constraints, op: cal.OperatingPoint
) -> Candidates:
    """Step 3b: the candidates without those of the camera pairs that share nobody (:mod:`.network`):
    each pair is tested for a walk (its confident links' gaps against its background; the pairs'
    p-values read together by Holm's rule, :func:`.network.holm`), the pairs that show one join
    cameras into sites, and a pair between two sites is cut. Each pair's decision is kept in its model (``exchange``: the entry of ``models`` replaced) for the operating point. A
    declared camera graph (``--adjacent``) wins: nothing is judged; a pair with a ``--transit``
    window is declared."""
    if config.adjacent is not None or not c.i.size:
        return c
    _, confident = _confident(c, models)
    judged = [p for p, m in enumerate(models) if m.negatives is not None]
    decisions = holm(
        [
            Exchange("declared")
            if rules.declared(*models[p].cameras)
            else judge(c.gap[confident & (c.pair == p)], models[p].background_gaps)
            for p in judged
        ]
    )
    for k in between_sites([models[p].cameras for p in judged], decisions):
        decisions[k] = replace(decisions[k], decision="between sites")
    for p, d in zip(judged, decisions):  # the models are frozen: each is replaced by one with its decision
        models[p] = replace(models[p], exchange=d)
    cut = np.array([m.exchange is not None and m.exchange.cut for m in models], bool)
    op.no_exchange = [m.name for m, gone in zip(models, cut.tolist()) if gone]
    return c.subset(~cut[c.pair]) if cut.any() else c


def _fit_evidence(
    c: Candidates, models: list[CameraPairModel], config: LinkerConfig, final: bool = True
) -> tuple[cal.PositiveModel, list[cal.PositiveModel], list[TransitModel | None], np.ndarray, np.ndarray]:
    """Confident links -> the positive model, and per camera pair its own positive model (offline:
    the run's with the pair's mean, :meth:`.calibration.PositiveModel.for_pair`) and transit model.
    The positive model must leave half the confident links links on appearance alone (an online
    solution: the strongest one, by the caution of :func:`_pair_sample`: an early link on the
    knife's edge stays), and its mean stays at or above the search level ``Z_SEARCH`` (not online,
    by the same caution: a higher mean links sooner)."""
    z_conf, confident = _confident(c, models)
    pair = c.pair[confident]
    positive = cal.PositiveModel.fit(
        c.z[confident],
        default_mu=float(z_conf.max()) + 1.0,
        lower=z_conf[pair],
        prior=cal.prior_log_odds(np.array([m.alternatives for m in models])[pair]),
        dof=np.array([models[p].dof for p in pair.tolist()], np.float64),
        keep=(pair.size + 1) // 2 if final else 1,
        floor=Z_SEARCH if final else None,
    )
    by_pair = [
        positive.for_pair(c.z[confident & (c.pair == k)], z_conf[k], floor=Z_SEARCH) if final else positive
        for k in range(len(models))
    ]
    transits = [
        TransitModel(c.gap[confident & (c.pair == k)], m.background_gaps) if config.transit_evidence else None
        for k, m in enumerate(models)
    ]
    return positive, by_pair, transits, z_conf, confident


def _log_odds(c: Candidates, k: np.ndarray, llr: np.ndarray) -> np.ndarray:
    """Posterior log-odds of each candidate given ``k`` alternatives per camera pair and its evidence
    ``llr`` (:meth:`MergeEvidence.llr`: the same every round, only the prior moves)."""
    return cal.prior_log_odds(k[c.pair]) + llr


def _free_alternatives(groups: Groups, cl: Clusters, models: list[CameraPairModel]) -> np.ndarray:
    """Alternatives per camera pair once the links made so far are known: a cluster already linked to
    the other camera is no longer a candidate for anyone else there (one-to-one)."""
    roots = groups.roots()
    k = np.empty(len(models))
    for p, m in enumerate(models):
        a, b = m.cameras
        in_a, in_b = roots[cl.code == a], roots[cl.code == b]
        free_a = np.setdiff1d(in_a, in_b).size + 1
        free_b = np.setdiff1d(in_b, in_a).size + 1
        na, nb = m.clusters
        k[p] = m.alternatives * max(free_a / (na + 1), free_b / (nb + 1))
    return k


def _appearance_threshold(neg: cal.NegativeModel, positive: cal.PositiveModel, k: float) -> float:
    """The cosine at which appearance alone reaches odds of 1 (for the operating point)."""
    zs = np.linspace(0.0, 30.0, 3001)
    ok = np.flatnonzero(cal.prior_log_odds(k) + positive.llr(zs, neg.dof) >= 0)
    return neg.cosine(float(zs[ok[0]])) if ok.size else float("inf")


def _json_level(cosine: float) -> float | None:
    """A level as trajectories.json holds it: None where appearance alone never reaches odds of 1
    (JSON has no infinity)."""
    return round(cosine, 4) if math.isfinite(cosine) else None


def _decide(
    c: Candidates,
    cl: Clusters,
    models: list[CameraPairModel],
    config: LinkerConfig,
    rules: Constraints,
    op: cal.OperatingPoint,
    final: bool = True,
    tracklets: list[Tracklet] | None = None,
    reentry: ReentryEvidence | None = None,
) -> Groups:
    """Merge camera clusters into identities, most probable links first. With calibration, in rounds:
    the links of a round leave fewer alternatives to the rest (their prior odds rise), until a round
    adds no link. ``reentry``: step 2's evidence, which weighs a merge that joins two clusters of
    one camera (:class:`MergeEvidence`); without it such a merge is refused."""
    groups = Groups(cl.start, cl.end, cl.code, cl.family, cl.sightings)
    calibrated = ~np.isnan(c.z)
    fixed = config.min_similarity if config.min_similarity is not None else _fallback(config)
    plain = c.sim.astype(np.float64) - fixed  # fixed threshold or fallback: plain cosine
    if not calibrated.any():
        _merge_in_order(groups, c, plain, rules)
        return groups
    positive, positives, transits, z_conf, confident = _fit_evidence(c, models, config, final)
    k = np.array([m.alternatives for m in models])
    places = _fit_places(c, cl, models, tracklets) if tracklets is not None else None
    evidence = MergeEvidence(cl, models, positives, transits, (c.i[confident], c.j[confident]), places, reentry)
    llr = evidence.llr(c.pair, np.nan_to_num(c.z), c.gap, confident, c.i, c.j)
    while True:
        score = np.where(calibrated, _log_odds(c, k, llr), plain)
        if not _merge_in_order(groups, c, score, rules, evidence):
            break
        k = _free_alternatives(groups, cl, models)
    op.positive = positive
    for p, (m, transit) in enumerate(zip(models, transits)):
        if m.negatives is not None:
            op.cross_camera[m.name] = {
                **m.negatives.to_json(),
                "z_confident": round(float(z_conf[p]), 3),
                "alternatives": round(m.alternatives, 1),
                "positive_mu": round(positives[p].mu, 3),
                "threshold": _json_level(_appearance_threshold(m.negatives, positives[p], m.alternatives)),
                "time_evidence": transit.to_json() if transit is not None else None,
            }
            if places is not None and places.to_json(p) is not None:
                op.cross_camera[m.name]["floor_map"] = places.to_json(p)
            if m.exchange is not None:
                op.cross_camera[m.name]["exchange"] = m.exchange.to_json()
    return groups


def _fit_places(c: Candidates, cl: Clusters, models: list[CameraPairModel], tracklets: list[Tracklet]) -> Places:
    """The floor maps of the camera pairs (:mod:`.place`), fitted on every mutual best match seen at
    once, not only the confident links: RANSAC keeps the map to the matches that agree, and the
    wrong ones are its outliers. A pair of two views with a weak embedder (or a short clip) has a
    handful of confident links but dozens of true mutual best matches below their level; with fewer
    than four confident links there was no map, and the place evidence that would link those
    matches was never learned."""
    rows: dict[int, list[int]] = {}
    for r, k in enumerate(cl.of.tolist()):
        rows.setdefault(k, []).append(r)
    cache: dict[int, dict] = {}

    def feet_of(k: int) -> dict:
        if k not in cache:
            cache[k] = feet([tracklets[r] for r in rows.get(k, [])])
        return cache[k]

    calibrated = np.flatnonzero(~np.isnan(c.z))
    together = np.zeros(c.i.size, bool)
    together[calibrated[_mutual_best(c, calibrated)]] = True
    together &= c.gap < 0  # seen at once: only those give correspondences
    return fit_places(c.pair, c.i, c.j, together, [m.cameras[0] for m in models], feet_of, cl.code)


class MergeEvidence:
    """The evidence of a cluster pair (:meth:`llr`, what ``_log_odds`` adds to the prior), and the
    camera clusters of each identity being built, to weigh a merge by every pair it makes one
    person: joining two identities of several cameras links each cluster of one with each of the
    other, not only the candidate pair (with three or more cameras a weak candidate could otherwise
    join a person whose other sightings speak against it).

    **Two clusters of one camera in one identity.** Step 2 leaves one person's fragments in a
    camera apart when their re-entry level is out of reach: an embedder whose different people
    spread wide (a fine-tuned one) puts the Bonferroni level over a camera's many pairs near a
    cosine of 1, above fragments that look as alike as one track with itself. With one cluster per
    camera per identity, a cross-camera link could then join only one of them, and two views of
    one room, where the other camera saw the person through both fragments, left the person in
    several identities. So a merge may join two clusters of one camera that were never seen at
    once (two clusters seen at once in one camera are two people: rule 1 of :mod:`.constraints`)
    when they look as alike as one person's own track at two moments (at or above the camera's
    one-person level, :func:`.split.one_person_level`), and that pair is weighed like the others,
    by step 2's log-odds (:class:`ReentryEvidence`: prior, one-person sample against the camera's
    negatives, gap). Step 2 does not join such a pair on its own (a camera's many pairs hold a few
    look-alikes at that level); a cross-camera link whose own odds pass does. A pair below the
    level (on two-camera scenes: look-alikes who swap cameras at one time), a camera without step
    2's models, or a merge without ``reentry`` keeps one cluster per camera."""

    Z_GRID = np.linspace(-10.0, 30.0, 4001)

    def __init__(
        self,
        cl: Clusters,
        models: list[CameraPairModel],
        positives: list[cal.PositiveModel],
        transits: list[TransitModel | None],
        confident: tuple[np.ndarray, np.ndarray] | None = None,
        places: Places | None = None,
        reentry: ReentryEvidence | None = None,
    ) -> None:
        """``positives``: each camera pair's positive model; ``confident``: the confident links
        (cluster rows i, j), whose time evidence is read without their own gap
        (:class:`.evidence.TransitModel`); ``places``: the floor maps of camera pairs that see one
        place (:mod:`.place`); ``reentry``: step 2's evidence for two clusters of one camera."""
        self.cl, self.transits, self.places, self.reentry = cl, transits, places, reentry
        i, j = confident if confident is not None else (np.zeros(0, np.int64), np.zeros(0, np.int64))
        self.confident = np.unique(_pair_keys(i, j, cl.code.size))  # sorted, for membership by search
        n_cams = int(cl.code.max()) + 1 if cl.code.size else 0
        self.pair_of = np.full((n_cams, n_cams), -1, np.int64)
        for p, m in enumerate(models):
            if m.negatives is not None:
                self.pair_of[m.cameras] = self.pair_of[m.cameras[::-1]] = p
        # each camera pair's negative model as arrays, for the z-score of any cluster pair
        self.median = np.array([m.negatives.median if m.negatives is not None else 0.0 for m in models])
        self.scale = np.array([m.negatives.scale if m.negatives is not None else 1.0 for m in models])
        # the appearance log-likelihood ratio tabulated over z once per camera pair: scipy's densities
        # cost ~50 us a call, and a run of 10,000 tracklets weighs tens of thousands of pairs
        # (`reidpipe bench --linker-only`, 10k tracklets: 3.0 s with a scipy call per pair, 1.4 s with the tables)
        self.table = [
            positive.llr(self.Z_GRID, m.negatives.dof) if m.negatives is not None else None
            for positive, m in zip(positives, models)
        ]
        self.members: dict[int, list[int]] = {}  # root -> its clusters, for identities of 2+ clusters
        self._code: list[int] = cl.code.tolist()  # plain Python values for the per-merge sums
        self._pair_of: list[list[int]] = self.pair_of.tolist()
        self._known: dict[tuple[int, int], float] = {}  # (u, v), u < v -> pair_llr

    def clusters(self, root: int) -> list[int]:
        return self.members.get(root, [root])

    def llr(
        self,
        pair: np.ndarray,
        z: np.ndarray,
        gaps: np.ndarray,
        own: np.ndarray | None = None,
        i: np.ndarray | None = None,
        j: np.ndarray | None = None,
    ) -> np.ndarray:
        """Appearance + time (+ place, for cluster rows ``i``, ``j``) log-likelihood ratio of cluster
        pairs of camera pairs ``pair`` with z-scores ``z`` and signed gaps ``gaps`` (0 for a camera
        pair without a negative model); ``own``: which of them are confident links."""
        out = np.zeros(z.shape)
        for p in np.unique(pair).tolist():
            if self.table[p] is None:
                continue
            sel = pair == p
            out[sel] = np.interp(z[sel], self.Z_GRID, self.table[p])
            if self.transits[p] is not None:
                out[sel] += self.transits[p].llr(gaps[sel], None if own is None else own[sel])
        if self.places is not None and i is not None and j is not None:
            out += self.places.llr(pair, i, j)
        return out

    def other_pairs_llr(self, ri: int, rj: int, i: int, j: int) -> float:
        """:meth:`llr` of the cluster pairs that merging the identities of roots ``ri`` and ``rj`` makes
        one person, besides the candidate ``(i, j)`` itself: the pairs of one camera summed per camera
        (in camera order), then the cross-camera pairs summed, each pair's evidence as
        :meth:`pair_llr` gives it."""
        a, b = self.clusters(ri), self.clusters(rj)
        pairs = [(x, y) for x in a for y in b if (x, y) != (i, j)]
        if not pairs:
            return 0.0
        values = self._looked_up(pairs)
        code, pair_of = self._code, self._pair_of
        per_camera: dict[int, list[float]] = {}
        cross: list[float] = []
        for (x, y), value in zip(pairs, values):
            if code[x] == code[y]:
                per_camera.setdefault(code[x], []).append(value)
            elif pair_of[code[x]][code[y]] >= 0:
                cross.append(value)
        total = 0.0
        for cam in sorted(per_camera):
            total += _summed(per_camera[cam])
        return total + _summed(cross) if cross else total

    def pair_llr(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The evidence of each cluster pair ``(u[k], v[k])`` as a merge weighs it: two clusters of one
        camera by step 2's log-odds (:meth:`_same_camera_llr`), two clusters of a camera pair without a
        negative model 0, the others by :meth:`llr` (appearance, time, place). A pair's value depends on
        nothing but the pair, so it is computed once (:meth:`tabulate`, :meth:`_looked_up`)."""
        cl = self.cl
        out = np.zeros(u.size)
        same = cl.code[u] == cl.code[v]
        if same.any():
            out[same] = self._same_camera_llr(u[same], v[same])
        pair = self.pair_of[cl.code[u], cl.code[v]]
        cross = np.flatnonzero(pair >= 0)
        if cross.size:
            u, v, pair = u[cross], v[cross], pair[cross]
            z = (_row_dots(cl.G, u, v) - self.median[pair]) / self.scale[pair]
            gaps = gap(cl.start[u], cl.end[u], cl.start[v], cl.end[v])
            out[cross] = self.llr(pair, z, gaps, self._confident(u, v), u, v)
        return out

    def _same_camera_llr(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Step 2's evidence (:class:`ReentryEvidence`) that clusters ``u[k]`` and ``v[k]`` of one camera
        are one person; -inf where the camera has no step 2 models, below its one-person level, or
        without ``reentry``."""
        out = np.full(u.size, -np.inf)
        if self.reentry is None:
            return out
        cl = self.cl
        sim = _row_dots(cl.G, u, v)
        gaps = gap(cl.start[u], cl.end[u], cl.start[v], cl.end[v])
        for cam in np.unique(cl.code[u]).tolist():
            m = self.reentry.models.get(cam)
            if m is None:
                continue
            sel = np.flatnonzero(cl.code[u] == cam)
            odds = self.reentry.log_odds(cam, sim[sel], gaps[sel])
            out[sel] = np.where(sim[sel] < m.level, -np.inf, odds)
        return out

    def _confident(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Which cluster pairs ``(u[k], v[k])`` are confident links."""
        keys = _pair_keys(u, v, self.cl.code.size)
        at = np.minimum(np.searchsorted(self.confident, keys), max(self.confident.size - 1, 0))
        return self.confident[at] == keys if self.confident.size else np.zeros(keys.size, bool)

    def tabulate(self, roots: np.ndarray, i: np.ndarray, j: np.ndarray) -> None:
        """Compute at once the evidence of every cluster pair that a round of merges along the
        candidates ``(i, j)`` may weigh, given each cluster's identity (``roots``): the pairs of two
        identities that the candidates and the identities connect (every identity a round builds lies
        in one such set), in sets of at most ``TABULATE_MAX`` clusters; a larger set's pairs are
        computed when a merge asks (:meth:`_looked_up`)."""
        if not i.size:
            return
        u, v = _pairs_within_sets(roots, i, j, TABULATE_MAX)
        if self._known:
            fresh = np.array([key not in self._known for key in zip(u.tolist(), v.tolist())], bool)
            u, v = u[fresh], v[fresh]
        self._known.update(zip(zip(u.tolist(), v.tolist()), self.pair_llr(u, v).tolist()))

    def _looked_up(self, pairs: list[tuple[int, int]]) -> list[float]:
        """:meth:`pair_llr` of ``pairs``, those not yet known computed together."""
        keys = [(x, y) if x < y else (y, x) for x, y in pairs]
        missing = [key for key in keys if key not in self._known]
        if missing:
            u, v = np.array(missing, np.int64).T
            self._known.update(zip(missing, self.pair_llr(u, v).tolist()))
        return [self._known[key] for key in keys]

    def joined(self, root: int, ri: int, rj: int) -> None:
        together = self.clusters(ri) + self.clusters(rj)
        self.members.pop(ri, None)
        self.members.pop(rj, None)
        self.members[root] = together


TABULATE_MAX = 16  # clusters in a set whose pairs' evidence a round computes at once (MergeEvidence.tabulate)


def _pair_keys(u: np.ndarray, v: np.ndarray, n: int) -> np.ndarray:
    """One integer per unordered pair of ``n`` clusters."""
    return np.minimum(u, v).astype(np.int64) * n + np.maximum(u, v)


def _row_dots(G: np.ndarray, u: np.ndarray, v: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """``G[u[k]] . G[v[k]]`` for every k, by chunks of rows (no two (n, d) copies at once)."""
    out = np.empty(u.size, G.dtype)
    for s in range(0, u.size, chunk):
        out[s : s + chunk] = np.einsum("ij,ij->i", G[u[s : s + chunk]], G[v[s : s + chunk]])
    return out


def _summed(values: list[float]) -> float:
    """The sum of ``values`` as numpy sums an array of them (the order of additions kept)."""
    return values[0] if len(values) == 1 else float(np.sum(values))


def _pairs_within_sets(roots: np.ndarray, i: np.ndarray, j: np.ndarray, most: int) -> tuple[np.ndarray, np.ndarray]:
    """The cluster pairs ``(u, v)``, u < v, of two identities (``roots``: each cluster's) that lie in
    one set of identities connected by the edges ``(i, j)``, for the sets of at most ``most``
    clusters."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    identity = np.unique(roots, return_inverse=True)[1].reshape(-1)
    k = int(identity.max()) + 1 if identity.size else 0
    edges = coo_matrix((np.ones(i.size, np.int8), (identity[i], identity[j])), shape=(k, k))
    sets = connected_components(edges, directed=False)[1][identity]
    size = np.bincount(sets)
    order = np.flatnonzero((size[sets] >= 2) & (size[sets] <= most))
    order = order[np.argsort(sets[order], kind="stable")]
    us, vs = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for step in range(1, most):
        x, y = order[:-step], order[step:]
        keep = (sets[x] == sets[y]) & (identity[x] != identity[y])
        us.append(np.minimum(x[keep], y[keep]))
        vs.append(np.maximum(x[keep], y[keep]))
    return np.concatenate(us), np.concatenate(vs)


def _merge_in_order(
    groups: Groups, c: Candidates, score: np.ndarray, rules: Constraints, evidence: MergeEvidence | None = None
) -> int:
    """Merge the candidates with ``score >= 0``, best first (with ``evidence``, only while the
    evidence of every pair the merge makes one person keeps the odds above 1); returns how many
    merges were made."""
    passing = np.flatnonzero(score >= 0)
    if evidence is not None:
        evidence.tabulate(groups.roots(), c.i[passing], c.j[passing])
    merged = 0
    order = passing[np.argsort(-score[passing], kind="stable")]
    for i, j, odds in zip(c.i[order].tolist(), c.j[order].tolist(), score[order].tolist()):
        ri, rj = groups.find(i), groups.find(j)
        if ri == rj:
            continue
        if evidence is not None and odds + evidence.other_pairs_llr(ri, rj, i, j) < 0:
            continue
        if groups.merge(i, j, rules, one_per_camera=evidence is None or evidence.reentry is None):
            merged += 1
            if evidence is not None:
                evidence.joined(groups.find(i), ri, rj)
    return merged


# ------------------------------------------------------------------------------ step 6: evidence
def _evidence(p: Problem, labels: np.ndarray, runner: np.ndarray, runner_label: np.ndarray) -> list[LinkEvidence]:
    """Score (leave-one-out cosine to the rest of its identity), margin over the runner-up, gap
    (seconds since the identity's latest earlier sighting) and runner-up label of every tracklet."""
    n = labels.size
    K = int(labels.max()) + 1 if n else 0
    score = _leave_one_out(p, labels, K)
    solo = np.bincount(labels, minlength=K)[labels] == 1
    gaps = _gaps(p, labels)
    out = []
    # plain Python values: indexing numpy arrays element by element cost ~1 s for 100,000 tracklets
    for alone, sc, g, r, lab in zip(
        solo.tolist(), score.tolist(), gaps.tolist(), runner.tolist(), runner_label.tolist()
    ):
        margin = None if r == -np.inf else (1.0 if alone else sc) - r
        other = None if r == -np.inf else lab
        if alone:
            out.append(LinkEvidence(score=1.0, margin=margin, runner_up=other))
        else:
            out.append(LinkEvidence(score=sc, margin=margin, gap=None if math.isnan(g) else g, runner_up=other))
    return out


def _leave_one_out(p: Problem, labels: np.ndarray, K: int, chunk: int = 8192) -> np.ndarray:
    """Cosine of each (unit) row x to the weighted sum of the other rows of its group: with G the
    group's weighted sum and w the row's weight, (G.x - w) / |G - w x|, |G - w x|^2 = |G|^2 - 2w G.x
    + w^2, by row chunks. Building G - w x for every row took ~1 s of fresh (n, d) arrays for 100,000
    tracklets in `reidpipe bench --linker-only`."""
    G = group_sums(p.X, labels, K, p.w)
    w = p.w.astype(np.float64)
    dot = np.empty(labels.size)
    for s in range(0, labels.size, chunk):
        dot[s : s + chunk] = _rowdot(G[labels[s : s + chunk]], p.X[s : s + chunk])
    norm2 = np.einsum("ij,ij->i", G, G).astype(np.float64)[labels] - 2.0 * w * dot + w * w
    return (dot - w) / np.maximum(np.sqrt(np.maximum(norm2, 0.0)), 1e-12)


def _gaps(p: Problem, labels: np.ndarray) -> np.ndarray:
    """Seconds from the latest end (<= own start) among the other members of each tracklet's group
    (nan when none). One sort and one binary search over (group, time) keys: a loop over the
    tracklets took 2 of 10 s for 100,000 in `reidpipe bench --linker-only`."""
    n = labels.size
    if n == 0:
        return np.zeros(0)
    _, rank = np.unique(np.concatenate([p.ends, p.starts]), return_inverse=True)  # exact time order
    rank = rank.reshape(-1)
    big = np.int64(2 * n + 1)
    end_key = labels * big + rank[:n]
    by_end = np.argsort(end_key, kind="stable")
    pos = np.searchsorted(end_key[by_end], labels * big + rank[n:], side="right") - 1
    own = np.empty(n, dtype=np.int64)
    own[by_end] = np.arange(n)
    pos = np.where(pos == own, pos - 1, pos)  # never oneself (a tracklet whose end equals its start)
    prev = by_end[np.maximum(pos, 0)]
    valid = (pos >= 0) & (labels[prev] == labels)
    return np.where(valid, p.starts - p.ends[prev], np.nan)


def _best_per_row(n: int, rows: np.ndarray, sims: np.ndarray, labs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``n`` rows the highest of the ``sims`` offered to it and that offer's label
    (-inf / -1 for rows offered nothing); one sort, no loop."""
    best, label = np.full(n, -np.inf), np.full(n, -1, np.int64)
    if rows.size:
        order = np.lexsort((-sims, rows))
        r = rows[order]
        first = np.r_[True, r[1:] != r[:-1]]
        best[r[first]], label[r[first]] = sims[order][first], labs[order][first]
    return best, label


def _runner_up(
    n: int, labels: np.ndarray, in_pairs: list, c: Candidates, cl: Clusters
) -> tuple[np.ndarray, np.ndarray]:
    """Best cosine of each tracklet to a candidate of another identity (in-camera or cross-camera), and
    that identity's label (-1 where there is none)."""
    rows, sims, labs = [np.zeros(0, np.int64)], [np.zeros(0)], [np.zeros(0, np.int64)]
    for i, j, s in in_pairs:
        other = labels[i] != labels[j]
        rows += [i[other], j[other]]
        sims += [s[other], s[other]]
        labs += [labels[j[other]], labels[i[other]]]
    best, best_label = _best_per_row(n, np.concatenate(rows), np.concatenate(sims), np.concatenate(labs))
    if c.i.size:  # cross-camera candidates are cluster pairs: best per cluster, then per member
        cluster_label = np.zeros(cl.code.size, np.int64)
        cluster_label[cl.of] = labels
        other = cluster_label[c.i] != cluster_label[c.j]
        i, j, s = c.i[other], c.j[other], c.sim[other].astype(np.float64)
        cross, cross_label = _best_per_row(
            cl.code.size, np.concatenate([i, j]), np.concatenate([s, s]), cluster_label[np.concatenate([j, i])]
        )
        better = cross[cl.of] > best
        best = np.where(better, cross[cl.of], best)
        best_label = np.where(better, cross_label[cl.of], best_label)
    return best, best_label


def link_offline(
    tracklets: list[Tracklet], config: LinkerConfig, rules: Constraints, final: bool = True
) -> tuple[np.ndarray, list[LinkEvidence], cal.OperatingPoint]:
    """Labels 0..K-1 of the linkable ``tracklets``, their evidence and the operating point
    (``final``: False for an online solution, which a later one may revise)."""
    op = cal.OperatingPoint(
        mode="fixed" if config.min_similarity is not None else "calibrated", fixed_similarity=config.min_similarity
    )
    if not config.calibrate and config.min_similarity is None:
        op.mode, op.fixed_similarity = "fixed", config.fallback_similarity
        op.notes.append("calibration off: fixed fallback cosine")
    rng = np.random.default_rng(0)
    with one_blas_thread():  # many small products (reidpipe.cpus.one_blas_thread)
        p = _prepare(tracklets, config, rules)
        groups, in_pairs, reentry = _merge_in_camera(p, config, rules, rng, op)
        cl = _clusters(p, groups)
        cand, models = _cross_candidates(cl, config, rules, rng, op, final)
        cand = _cut_pairs_sharing_nobody(cand, models, config, rules, op)
    groups = _decide(cand, cl, models, config, rules, op, final, p.tracklets, reentry)
    labels = groups.labels()[cl.of] if cl.of.size else np.zeros(0, np.int64)
    if op.mode == "calibrated" and op.notes:
        op.mode = "partly_fallback"
    evidence = _evidence(p, labels, *_runner_up(len(tracklets), labels, in_pairs, cand, cl))
    return labels, evidence, op


__all__ = ["MAX_LLR", "link_offline", "reentry_levels"]
