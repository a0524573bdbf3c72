"""Linker calibration (pipeline/link/calibration.py, evidence.py): decisions follow the run's own
similarity distributions, whatever their scale, and fall back (and say so) when there is too little."""

from __future__ import annotations

import numpy as np
import pytest

from reidpipe.pipeline.config import LinkerConfig
from reidpipe.pipeline.link import Linker
from reidpipe.pipeline.link.calibration import NegativeModel, PositiveModel, bonferroni_z
from reidpipe.pipeline.link.evidence import TransitModel
from reidpipe.pipeline.types import Tracklet, TrackPoint


def test_negative_model_is_robust_to_the_few_true_pairs_in_its_sample():
    rng = np.random.default_rng(0)
    neg = rng.normal(0.3, 0.05, 950)
    sample = np.concatenate([neg, rng.normal(0.8, 0.02, 50)])  # 5 % true pairs mixed in
    m = NegativeModel.fit(sample)
    assert m.median == pytest.approx(0.3, abs=0.01)
    assert 0.045 <= m.scale <= 0.07
    assert NegativeModel.fit(sample[:5]) is None  # too few pairs: no model


def test_bonferroni_level_grows_with_the_number_of_comparisons():
    assert bonferroni_z(1) == pytest.approx(1.645, abs=1e-3)
    assert bonferroni_z(400) > bonferroni_z(20) > bonferroni_z(1)


def test_positive_model_likelihood_ratio_increases_with_z():
    pos = PositiveModel.fit(np.array([3.5, 4.0, 4.5, 5.0]), default_mu=4.0)
    z = np.linspace(0, 10, 50)
    assert (np.diff(pos.llr(z)) > 0).all()
    assert pos.llr(0.0) < 0 < pos.llr(4.0)


@pytest.mark.parametrize("dof", [None, 500])
def test_a_pair_far_less_alike_than_chance_is_no_evidence_of_one_person(dof):
    """A spread wider than the negatives' (sigma 1.9) makes the ratio of the two normals U-shaped;
    below its lowest point (z -0.8) it is held there: never higher for a less alike pair."""
    pos = PositiveModel(mu=2.2, sigma=1.9)
    z = np.linspace(-10, 10, 401)
    llr = pos.llr(z, dof)
    assert (np.diff(llr) >= -1e-12).all()
    assert pos.llr(-8.0, dof) == pytest.approx(pos.llr(-2.2 / (1.9**2 - 1), dof))


def test_positive_model_fitted_on_confident_links_knows_they_are_the_upper_part():
    rng = np.random.default_rng(2)
    true_links = rng.normal(2.5, 1.0, 4000)
    confident = true_links[true_links >= 2.8]  # what the linker can fit on: those above its level
    naive = PositiveModel.fit(confident, default_mu=4.0)
    censored = PositiveModel.fit(confident, default_mu=4.0, lower=2.8)
    assert naive.mu > 3.2  # the plain mean puts the true links too high
    assert censored.mu == pytest.approx(2.5, abs=0.2) and censored.sigma == pytest.approx(1.0, abs=0.15)
    # a true link just under the level now looks like one
    assert censored.llr(2.0) > naive.llr(2.0) + 0.9
    # per-link levels and tiny samples
    per_link = PositiveModel.fit(confident[:40], default_mu=4.0, lower=np.full(40, 2.8))
    assert 1.5 < per_link.mu < 3.5
    assert PositiveModel.fit(confident[:2], default_mu=4.0, lower=2.8).mu == 4.0


def test_positive_model_keeps_its_strongest_confident_link_a_link():
    """Four confident links just above their level (a short clip: twin_2cam's second half). Fitted
    freely, the normal sits far below the level and no z-score reaches odds of 1 against 14
    alternatives: not one link would be made. Bounded, the strongest confident link is a link on
    appearance alone; a fit that already makes it one is left as it was."""
    level, confident = 2.735, np.array([2.80, 2.86, 2.95, 3.30])
    prior = np.full(4, -np.log(14))
    free = PositiveModel.fit(confident, default_mu=4.0, lower=level)
    bounded = PositiveModel.fit(confident, default_mu=4.0, lower=level, prior=prior, dof=np.full(4, 125.0))
    z = np.linspace(0, 8, 801)
    assert free.mu < 0.5 and (prior[0] + free.llr(z) < 0).all()
    assert prior[0] + bounded.llr(3.30, 125) == pytest.approx(0.0, abs=0.02)
    assert prior[0] + bounded.llr(4.0, 125) > 0
    assert bounded.bounded and not free.bounded and bounded.to_json()["bounded"] is True
    rng = np.random.default_rng(2)
    many = rng.normal(2.5, 1.0, 4000)
    many = many[many >= 2.8]
    unbounded = PositiveModel.fit(many, default_mu=4.0, lower=2.8)
    same = PositiveModel.fit(many, default_mu=4.0, lower=2.8, prior=np.full(many.size, -np.log(14)), dof=None)
    assert (same.mu, same.sigma) == (unbounded.mu, unbounded.sigma) and not same.bounded


def test_positive_model_can_be_made_to_keep_half_its_confident_links_links():
    """Five confident links, one far above the rest (the YOLOX detector on two cameras of twin_3cam):
    keeping the strongest a link still leaves the third, at z 2.95, far below odds of 1 (a normal
    of mu -1.5 and sigma 1.7); keeping three makes it one."""
    level, z = 2.794, np.array([2.82, 2.86, 2.95, 3.05, 4.6])
    prior, dof = np.full(5, -np.log(18)), np.full(5, 287.0)
    one = PositiveModel.fit(z, default_mu=4.0, lower=level, prior=prior, dof=dof, keep=1)
    three = PositiveModel.fit(z, default_mu=4.0, lower=level, prior=prior, dof=dof, keep=3)
    assert prior[0] + one.llr(2.95, 287) < -2 and prior[0] + one.llr(4.6, 287) > -1e-6
    assert prior[0] + three.llr(2.95, 287) == pytest.approx(0.0, abs=0.05)
    assert three.mu > one.mu + 2


def test_positive_model_mean_stays_above_the_search_level():
    """Eight confident links of two cameras alone (twin_3cam's cam1 and cam2, z 2.8-5.2 at level
    2.76): fitted freely, the true links' normal is centred below the negatives' median (mu -2.2),
    where the candidate search (z >= 1.5) never looks. With the search level as floor, a pair at
    z 3 weighs two nats more as a link."""
    z = np.array([5.22, 4.93, 4.29, 3.61, 3.09, 2.99, 2.92, 2.77])
    kw = dict(default_mu=4.0, lower=2.76, prior=np.full(8, -np.log(8)), dof=np.full(8, 60.0), keep=4)
    free, floored = PositiveModel.fit(z, **kw), PositiveModel.fit(z, **kw, floor=1.5)
    assert free.mu < 0 and floored.mu == pytest.approx(1.5)
    assert floored.llr(3.0, 60) > free.llr(3.0, 60) + 2.0
    # a fit already above the floor is left as it was
    many = np.random.default_rng(2).normal(4.0, 1.0, 400)
    many = many[many >= 2.8]
    a = PositiveModel.fit(many, default_mu=4.0, lower=2.8, floor=1.5)
    b = PositiveModel.fit(many, default_mu=4.0, lower=2.8)
    assert (a.mu, a.sigma) == pytest.approx((b.mu, b.sigma), abs=1e-4) and a.mu > 3


def test_a_camera_pair_gets_its_own_mean_of_true_links():
    """The run's model is fitted on every pair's confident links; a pair where one person looks less
    alike (another viewpoint, other light) has its true links lower. Its own mean (spread kept) is
    the maximum-likelihood mean of its links seen above its level: lower, so a true link at z 2.3 of
    that pair becomes more likely a link than the run's model says. An easy pair's mean is higher."""
    rng = np.random.default_rng(3)
    run = PositiveModel(mu=4.0, sigma=1.0, n=25)
    hard = rng.normal(2.3, 1.0, 4000)
    hard = hard[hard >= 2.8][:40]
    easy = rng.normal(5.0, 1.0, 60)
    mine, theirs = run.for_pair(hard, 2.8, floor=1.5), run.for_pair(easy[easy >= 2.8], 2.8, floor=1.5)
    assert mine.mu == pytest.approx(2.3, abs=0.5) and mine.sigma == run.sigma
    assert theirs.mu == pytest.approx(5.0, abs=0.4)
    assert mine.llr(2.3) > run.llr(2.3) + 1.0
    # two links are too few to tell a pair's own mean: the run's model; and never below the floor
    assert run.for_pair(hard[:2], 2.8, floor=1.5) is run
    assert run.for_pair(np.array([2.81, 2.82, 2.83]), 2.8, floor=1.5).mu == pytest.approx(1.5)


def test_offline_decisions_read_each_camera_pairs_own_positive_model():
    """Two camera pairs, eight confident links each: one pair's at z 4.5-6, the other's at 2.9-3.6.
    Offline each pair is judged by its own mean; an online solution (few links per pair early in a
    stream) keeps the run's model for every pair."""
    from reidpipe.pipeline.link import offline as O

    neg = NegativeModel(median=0.0, scale=0.15, n=300)
    bg = np.random.default_rng(4).uniform(-60, 60, 300)
    models = [O.CameraPairModel(n, cams, neg, bg, 10.0, (10, 10)) for n, cams in (("a~b", (0, 1)), ("a~c", (0, 2)))]
    z = np.concatenate([np.linspace(4.5, 6.0, 8), np.linspace(2.9, 3.6, 8)])
    i, j = np.arange(16), np.arange(16) + 100  # each cluster in one candidate: all mutual best
    cand = O.Candidates(i=i, j=j, sim=z * 0.15, z=z, gap=np.full(16, 5.0), pair=np.repeat([0, 1], 8))
    run, (easy, hard), *_ = O._fit_evidence(cand, models, LinkerConfig())
    assert easy.mu > run.mu > hard.mu and easy.sigma == run.sigma == hard.sigma
    assert easy.n == hard.n == 8 and run.n == 16
    online, pairs, *_ = O._fit_evidence(cand, models, LinkerConfig(), final=False)
    assert all(p is online for p in pairs)


def test_transit_model_prefers_the_learned_transit_time():
    rng = np.random.default_rng(1)
    links = rng.normal(20.0, 2.0, 12)
    background = rng.uniform(-80, 80, 2000)
    tm = TransitModel(links, background)
    assert tm.llr(20.0)[0] > 1.0 and tm.llr(-60.0)[0] < -1.0
    assert TransitModel(links[:2], background).llr(20.0)[0] == 0.0  # too few links: no evidence


def test_transit_times_that_are_all_one_value_give_evidence_not_a_crash():
    """Links all 6.1 s apart, to the last bit or two (sums of frame times): no spread to estimate, the
    transit time is still learned (scipy's KDE raised LinAlgError on a covariance of ~1e-30)."""
    links = np.array([6.1, np.nextafter(6.1, 7.0)] * 6)
    tm = TransitModel(links, np.random.default_rng(2).uniform(-80, 80, 2000))
    assert tm.llr(6.1)[0] > 1.0 and tm.llr(-60.0)[0] < -1.0


def test_a_confident_link_does_not_vouch_for_its_own_gap():
    """Leave-one-out: eight confident links 15-22 s apart and one 60 s apart (two people who happened
    to look alike): read with the others only, the odd one's gap speaks against it; the typical links
    keep their evidence, and a candidate that is not a confident link reads the density as it is."""
    rng = np.random.default_rng(2)
    links = np.concatenate([rng.normal(18.0, 2.0, 8), [60.0]])
    tm = TransitModel(links, rng.uniform(-80, 80, 2000))
    odd, typical = tm.llr([60.0, links[0]], own=[True, True])
    assert odd <= -2.5 < tm.llr(60.0)[0]  # with itself it was near even odds
    assert typical > 1.0 and typical == pytest.approx(tm.llr(links[0])[0], abs=0.3)


def _people(scale: float, shift: float, n: int = 12, dim: int = 64, seed: int = 0):
    """Two cameras, n people each visiting cam1 then cam2 (12 s transit), several at a time; features
    squeezed into an embedder's own cosine range (``scale``, ``shift``) so that fixed thresholds fail."""
    rng = np.random.default_rng(seed)
    protos = rng.standard_normal((n, dim))
    out = []
    for p in range(n):
        for cam, t0 in (("cam1", 4.0 * p), ("cam2", 4.0 * p + 20.0)):
            f = protos[p] + 0.7 * rng.standard_normal(dim)
            f = f / np.linalg.norm(f) * scale + shift * np.ones(dim) / np.sqrt(dim)
            pts = [
                TrackPoint(frame=int(t * 10), t=float(t), bbox=(0, 0, 10, 30), score=0.9)
                for t in np.linspace(t0, t0 + 8.0, 9)
            ]
            out.append(Tracklet(camera=cam, track=p + 1, points=pts, qualities=[0.5] * 4, feature=f, closed=True))
    return out


@pytest.mark.parametrize("scale,shift", [(1.0, 0.0), (0.3, 1.0)])  # a spread embedder and a squeezed one
def test_calibrated_linking_recovers_people_for_any_cosine_scale(scale, shift):
    ts = _people(scale, shift)
    lk = Linker(LinkerConfig(refine=True), ["cam1", "cam2"])
    idents = lk.link(ts)
    pairs = [{t.track for t in i.tracklets} for i in idents]
    assert sum(len(p) == 1 and len(i.tracklets) == 2 for p, i in zip(pairs, idents)) >= 10  # most linked right
    assert all(len(p) == 1 for p in pairs)  # nobody linked to somebody else
    op = lk.operating_point.to_json()
    assert op["mode"] == "calibrated" and "cam1~cam2" in op["cross_camera"]
    # the fixed default cosine cannot serve the squeezed embedder: everyone collapses or nobody links
    fixed = Linker(LinkerConfig(refine=True, min_similarity=0.5), ["cam1", "cam2"]).link(_people(scale, shift))
    assert fixed and lk.operating_point.cross_camera["cam1~cam2"]["threshold"] != 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_short_clip_whose_true_pairs_are_many_of_its_pairs_still_links(seed):
    """12 people seen by both cameras, 144 camera pairs: the 12 true ones are 8% of the negative
    sample and sat above its 90th percentile, so the tail's width was theirs and almost nobody was
    linked (1, 12 and 1 of 12 before). Read below the share the true pairs can have, all are."""
    rng = np.random.default_rng(seed)
    protos = rng.standard_normal((12, 64))
    ts = []
    for p in range(12):
        for cam, t0 in (("cam1", 4.0 * p), ("cam2", 4.0 * p + 20.0)):
            f = protos[p] + 1.2 * rng.standard_normal(64)  # a weak embedder: true pairs at cosine ~0.4
            pts = [TrackPoint(frame=int((t0 + t) * 10), t=t0 + t, bbox=(0, 0, 10, 30), score=0.9) for t in range(9)]
            ts.append(Tracklet(camera=cam, track=p + 1, points=pts, qualities=[0.5] * 4, feature=f, closed=True))
    idents = Linker(LinkerConfig(refine=True), ["cam1", "cam2"]).link(ts)
    tracks = [{t.track for t in i.tracklets} for i in idents]
    assert all(len(t) == 1 for t in tracks)  # nobody linked to somebody else
    assert sum(len(i.tracklets) == 2 for i in idents) == 12


def test_tail_quantile_is_where_the_negatives_90th_percentile_lies():
    from reidpipe.pipeline.link.calibration import tail_quantile

    assert tail_quantile(0.0) == 0.9  # no true pairs: the 90th percentile
    assert tail_quantile(0.04) == pytest.approx(0.864)  # 4 % true pairs above it: 0.9 x 0.96
    assert tail_quantile(0.5) == pytest.approx(0.75)  # at most a sixth of a sample counted as true pairs
    sample = np.random.default_rng(0).normal(0.0, 0.1, 200)
    assert NegativeModel.fit(sample).to_json()["tail_quantile"] == 0.9
    assert NegativeModel.fit(sample, matches=16).to_json()["tail_quantile"] == 0.828


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_negative_width_is_the_negatives_own_when_true_pairs_fill_the_top_of_the_sample(seed):
    """Two views of one room: two dozen people, each in both views, so 4 % of the camera pair's
    sample are true pairs, all above nearly every negative. Different people's cosines with a heavy
    upper tail (a fine-tuned embedder's). Read at the sample's own 90th percentile, the width was
    the negatives' at their 94th, 18-28 % too wide on these samples, and such an embedder kept one
    confident link on a real scene; read where the negatives' 90th lies, it is theirs."""
    rng = np.random.default_rng(seed)
    negatives = 0.15 * rng.standard_t(5, 700)
    sample = np.concatenate([negatives, rng.normal(0.7, 0.08, 32)])
    alone = NegativeModel.fit(negatives)
    assert NegativeModel.fit(sample, matches=32).scale == pytest.approx(alone.scale, rel=0.08)


def _one_room(seed: int, n: int = 24, dim: int = 64) -> list[Tracklet]:
    """Two cameras that see one room: n people, each seen by both at once; people come in four
    look-alike groups (shared colours), so different people's cosines spread wide."""
    rng = np.random.default_rng(seed)
    looks = rng.standard_normal((4, dim))
    protos = looks[rng.integers(0, 4, n)] + rng.standard_normal((n, dim))
    out = []
    for p in range(n):
        times = np.linspace(3.0 * p, 3.0 * p + 10.0, 11)
        for cam in ("cam1", "cam2"):
            out.append(_seen(cam, p + 1, times, protos[p] + rng.standard_normal(dim)))
    return out


def _seen(cam: str, track: int, times, feature: np.ndarray) -> Tracklet:
    """A closed tracklet of ``cam`` at ``times`` (one box a time) with the unit ``feature``."""
    pts = [TrackPoint(frame=int(round(t * 10)), t=float(t), bbox=(0, 0, 10, 30), score=0.9) for t in times]
    unit = feature / np.linalg.norm(feature)
    return Tracklet(camera=cam, track=track, points=pts, qualities=[0.5] * 4, feature=unit, closed=True)


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_two_views_of_one_room_link_when_different_people_look_alike(seed):
    """With the tail read at the sample's 90th percentile these rooms kept 0-2 confident links: too
    few to fit the positive model or the time evidence from, and 0-3 of 24 people were linked."""
    lk = Linker(LinkerConfig(refine=True), ["cam1", "cam2"])
    idents = lk.link(_one_room(seed))
    people = [{t.track for t in i.tracklets} for i in idents]
    assert all(len(p) == 1 for p in people)  # nobody linked to somebody else
    assert sum(len(i.tracklets) == 2 for i in idents) >= 20
    assert lk.operating_point.positive is not None and lk.operating_point.positive.n >= 3


def test_too_little_to_calibrate_falls_back_and_says_so():
    ts = _people(1.0, 0.0, n=4)
    lk = Linker(LinkerConfig(refine=True, fallback_similarity=0.3), ["cam1", "cam2"])
    lk.link(ts)
    op = lk.operating_point
    assert op.mode == "partly_fallback" and any("fallback cosine 0.30" in n for n in op.notes)


def test_online_merges_the_identities_it_could_not_link_before_it_could_calibrate():
    ts = sorted(_people(1.0, 0.0), key=lambda t: t.end_t)
    lk = Linker(LinkerConfig(refine=False, fallback_similarity=0.99), ["cam1", "cam2"])  # no early link
    given, merges = {}, []
    for t in ts:
        given[(t.camera, t.track)] = lk.add(t)[0]
        merges += lk.pop_merges()
    assert given[("cam1", 1)] != given[("cam2", 1)]  # the first person's second sighting came too early
    assert merges and all(into < merged for merged, into in merges)  # later identities join earlier ones
    idents = lk.finalize()
    people = [{t.track for t in i.tracklets} for i in idents]
    assert all(len(p) == 1 for p in people)  # merges never join two people
    assert {1} in [p for p, i in zip(people, idents) if len(i.tracklets) == 2]  # the first person is whole
    assert sum(len(i.tracklets) == 2 for i in idents) >= 10
    assert lk.pop_merges() == []  # each merge is reported once
    _check_runner_ups(idents)


def _check_runner_ups(idents):
    """Each tracklet's runner-up is another identity of the result (or none)."""
    ids = {i.id for i in idents}
    runner = [(i.id, ev.runner_up, ev.margin) for i in idents for ev in i.evidence.values()]
    assert all(r is None or (r in ids and r != own) for own, r, _ in runner)
    assert all(m is None for _, r, m in runner if r is None)  # a margin is always over a runner-up


def test_offline_runner_up_is_the_look_alike():
    ts = _people(1.0, 0.0)
    feature = {(t.camera, t.track): t.feature for t in ts}
    for t in ts:  # person 3 looks much like person 2 (they walk together: never merged in a camera)
        if t.track == 3:
            f = 0.75 * feature[(t.camera, 2)] / np.linalg.norm(feature[(t.camera, 2)]) + 0.66 * t.feature
            t.feature = f / np.linalg.norm(f)
    idents = Linker(LinkerConfig(refine=True), ["cam1", "cam2"]).link(ts)
    _check_runner_ups(idents)
    of = {t.track: i.id for i in idents for t in i.tracklets if t.camera == "cam1"}
    runner = {t.track: e.runner_up for i in idents for t, e in zip(i.tracklets, i.evidence.values())}
    assert runner[3] == of[2] and runner[2] == of[3]


def _short_three_cameras(seed: int, counts: tuple[int, int, int] = (8, 3, 2)) -> list[Tracklet]:
    """A short clip of three cameras: ``counts`` people in each, those of cam2 and cam3 also seen in
    cam1 (5 true pairs); a weak embedder with a small camera tint. No camera pair has the 30 pairs a
    negative sample needs (24, 16 and 6), the run has 46."""
    rng = np.random.default_rng(seed)
    protos = rng.standard_normal((counts[0], 64))
    out = []
    for cam, k in zip(("cam1", "cam2", "cam3"), counts):
        tint = 0.3 * rng.standard_normal(64)
        people = np.arange(k) if cam == "cam1" else rng.choice(counts[0], k, replace=False)
        for r, p in enumerate(people.tolist()):
            t0 = 2.0 * r + (0.0 if cam == "cam1" else 3.0)
            out.append(_seen(cam, p + 1, t0 + np.arange(9.0), protos[p] + 0.7 * rng.standard_normal(64) + tint))
    return out


@pytest.mark.parametrize("seed", [0, 3, 6])
def test_a_short_clip_calibrates_its_sparse_camera_pairs_on_the_runs_pooled_pairs(seed):
    """Each camera pair too small to fit fell back to the learned models' fixed cosine (0.7), which this
    embedder's true pairs never reach: nobody was linked. Calibrated on the run's pairs together,
    the five people seen twice are linked and nobody is linked to somebody else."""
    lk = Linker(LinkerConfig(refine=True, fallback_similarity=0.7), ["cam1", "cam2", "cam3"])
    idents = lk.link(_short_three_cameras(seed))
    people = [{t.track for t in i.tracklets} for i in idents]
    assert all(len(p) == 1 for p in people)  # nobody linked to somebody else
    assert sum(len(i.tracklets) == 2 for i in idents) >= 3  # of 5 (none with the fixed cosine)
    op = lk.operating_point
    assert sorted(op.pooled) == ["cam1~cam2", "cam1~cam3", "cam2~cam3"]
    assert not [n for n in op.notes if "~" in n]  # no camera pair fell back (re-entry in a camera may)
    assert "3 camera pair(s) too small alone: calibrated on the run's pooled pairs" in op.summary()
    pooled = {k: v for k, v in op.cross_camera.items()}
    assert len({v["scale"] for v in pooled.values()}) == 1  # one pooled model for the three pairs
    # a pooled pair's confident links stand out of the whole pooled sample, not of its few alternatives
    assert all(v["z_confident"] > bonferroni_z(int(v["alternatives"]), v["pairs"] - 1) for v in pooled.values())


def test_a_camera_of_few_tracklets_is_centred_on_the_runs_mean():
    from reidpipe.pipeline.link.features import MIN_CENTER, camera_means

    rng = np.random.default_rng(0)
    X = rng.standard_normal((MIN_CENTER + 2, 8)).astype(np.float32)
    code = np.array([0] * MIN_CENTER + [1, 1])
    means = camera_means(X, code, 2)
    np.testing.assert_allclose(means[0], X[:MIN_CENTER].mean(0), rtol=1e-5)  # enough: its own mean
    np.testing.assert_allclose(means[1], X.mean(0), rtol=1e-5)  # two tracklets: the run's mean
    assert not camera_means(X[:2], code[:2], 2).any()  # a run of two tracklets: nothing to centre on


def test_a_pair_that_appearance_alone_never_links_says_so_in_json_and_log():
    from reidpipe.pipeline.link.calibration import OperatingPoint
    from reidpipe.pipeline.link.offline import _json_level

    assert _json_level(float("inf")) is None and _json_level(0.41234) == 0.4123
    op = OperatingPoint(mode="calibrated", cross_camera={"cam1~cam2": {"threshold": None}})
    assert "cam1~cam2: appearance alone never links" in op.summary()
