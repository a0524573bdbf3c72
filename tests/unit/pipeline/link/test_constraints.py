"""Cross-camera linker: constraints, evidence, online vs refine (pipeline/link.py)."""

from __future__ import annotations

import numpy as np
import pytest

from reidpipe.errors import ConfigError
from reidpipe.pipeline.config import LinkerConfig
from reidpipe.pipeline.link import Linker
from reidpipe.pipeline.types import Tracklet, TrackPoint

DIM = 16


def feat(seed: int, noise: float = 0.0, base: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed if base is None else base)
    f = rng.standard_normal(DIM)
    if noise:
        f = f + noise * np.random.default_rng(seed + 1000).standard_normal(DIM)
    return (f / np.linalg.norm(f)).astype(np.float32)


def tl(camera: str, track: int, t0: float, t1: float, f: np.ndarray | None, npts: int = 5) -> Tracklet:
    ts = np.linspace(t0, t1, npts)
    pts = [TrackPoint(frame=int(t * 10), t=float(t), bbox=(0, 0, 10, 30), score=0.9) for t in ts]
    return Tracklet(camera=camera, track=track, points=pts, bank=[], qualities=[0.5, 0.5], feature=f, closed=True)


def ids_of(identities) -> dict[tuple[str, int], int]:
    return {t.key: ident.id for ident in identities for t in ident.tracklets}


@pytest.mark.parametrize("refine", [False, True])
def test_same_person_in_two_cameras_is_linked_with_evidence(refine):
    person = feat(1)
    lk = Linker(LinkerConfig(min_similarity=0.5, refine=refine), ["cam1", "cam2"])
    gid1, ev1 = lk.add(tl("cam1", 1, 0, 5, person))
    gid2, ev2 = lk.add(tl("cam2", 7, 9, 14, feat(1, noise=0.2, base=1)))
    gid3, _ = lk.add(tl("cam2", 8, 9, 14, feat(99)))  # someone else, same time
    assert gid1 == gid2 != gid3
    assert ev1.score == 1.0 and ev1.gap is None
    assert 0.5 <= ev2.score <= 1.0 and ev2.gap == pytest.approx(4.0)
    idents = lk.finalize()
    assert [i.id for i in idents] == [1, 2]
    assert ids_of(idents) == {("cam1", 1): 1, ("cam2", 7): 1, ("cam2", 8): 2}
    linked = idents[0].evidence[("cam2", 7)]
    assert linked.gap == pytest.approx(4.0) and linked.score > 0.5
    assert idents[0].cameras == ["cam1", "cam2"]


@pytest.mark.parametrize("refine", [False, True])
def test_coexisting_tracklets_in_one_camera_never_merge(refine):
    f = feat(3)
    lk = Linker(LinkerConfig(min_similarity=0.3, refine=refine), ["cam1"])
    # identical features, overlapping times in one camera: two people dressed alike
    lk.add(tl("cam1", 1, 0, 10, f))
    lk.add(tl("cam1", 2, 5, 15, f))
    lk.add(tl("cam1", 3, 20, 25, f))  # later: may be either of them again
    idents = lk.finalize()
    ids = ids_of(idents)
    assert ids[("cam1", 1)] != ids[("cam1", 2)]
    assert ids[("cam1", 3)] in (ids[("cam1", 1)], ids[("cam1", 2)])
    assert sorted(k for i in idents for k in i.evidence) == sorted(ids)


@pytest.mark.parametrize("refine", [False, True])
def test_non_overlapping_cameras(refine):
    f = feat(4)
    for non_overlapping, expect_same in [(False, True), (True, False)]:
        lk = Linker(LinkerConfig(min_similarity=0.5, refine=refine, non_overlapping=non_overlapping), ["cam1", "cam2"])
        lk.add(tl("cam1", 1, 0, 10, f))
        lk.add(tl("cam2", 1, 8, 20, f))  # seen in both cameras at t in [8, 10]
        ids = ids_of(lk.finalize())
        assert (ids[("cam1", 1)] == ids[("cam2", 1)]) is expect_same


@pytest.mark.parametrize("refine", [False, True])
def test_transit_windows(refine):
    f = feat(5)
    cfg = LinkerConfig(min_similarity=0.5, refine=refine, transit={("cam1", "cam2"): (5.0, 30.0)})
    for track, (t0, t1), linked in ((1, (12, 20), False), (2, (25, 30), True)):  # 2 s: too fast; 15 s: inside
        lk = Linker(cfg, ["cam1", "cam2"])
        lk.add(tl("cam1", 1, 0, 10, f))
        lk.add(tl("cam2", track, t0, t1, f))
        ids = ids_of(lk.finalize())
        assert (ids[("cam1", 1)] == ids[("cam2", track)]) is linked
    # symmetric by default: cam2 -> cam1 uses the same window
    lk = Linker(cfg, ["cam1", "cam2"])
    lk.add(tl("cam2", 1, 0, 10, f))
    lk.add(tl("cam1", 1, 100, 110, f))  # 90 s: too slow
    ids = ids_of(lk.finalize())
    assert ids[("cam2", 1)] != ids[("cam1", 1)]


@pytest.mark.parametrize("refine", [False, True])
def test_the_camera_graph_lets_a_person_go_only_between_adjacent_cameras(refine):
    """entrance - hall - exit: nobody goes from the entrance to the exit without the hall seeing them."""
    f = feat(5)
    cams = ["entrance", "hall", "exit"]
    graph = [("entrance", "hall"), ("exit", "hall")]  # either order
    for adjacent, linked in ((None, True), (graph, False)):
        lk = Linker(LinkerConfig(min_similarity=0.5, refine=refine, adjacent=adjacent), cams)
        lk.add(tl("entrance", 1, 0, 5, f))
        lk.add(tl("exit", 1, 10, 15, f))  # a look-alike at the exit, never in the hall
        ids = ids_of(lk.finalize())
        assert (ids[("entrance", 1)] == ids[("exit", 1)]) is linked
    lk = Linker(LinkerConfig(min_similarity=0.5, refine=refine, adjacent=graph), cams)
    for cam, t0 in (("entrance", 0), ("hall", 8), ("exit", 16)):  # through the hall: one person
        lk.add(tl(cam, 1, t0, t0 + 5, f))
    assert len(set(ids_of(lk.finalize()).values())) == 1


def test_a_pair_with_a_transit_window_is_adjacent():
    f = feat(5)
    cfg = LinkerConfig(
        min_similarity=0.5, refine=True, adjacent=[("cam2", "cam3")], transit={("cam1", "cam2"): (0, 20)}
    )
    lk = Linker(cfg, ["cam1", "cam2", "cam3"])
    lk.add(tl("cam1", 1, 0, 5, f))
    lk.add(tl("cam2", 1, 10, 15, f))
    ids = ids_of(lk.finalize())
    assert ids[("cam1", 1)] == ids[("cam2", 1)]


def _two_sites(seed: int = 0, n: int = 12, dim: int = 64):
    """Site A (cam1 -> cam2, 12 s transit) and site B (cam3 -> cam4, at the same hours): nobody visits
    both, but site B's people wear site A's uniforms (person p of B looks like person p of A)."""
    rng = np.random.default_rng(seed)
    protos = rng.standard_normal((n, dim))
    out = []
    for site, cams in enumerate((("cam1", "cam2"), ("cam3", "cam4"))):
        for p in range(n):
            for cam, t0 in zip(cams, (4.0 * p, 4.0 * p + 20.0)):
                g = protos[p] + 0.7 * rng.standard_normal(dim)
                pts = [
                    TrackPoint(frame=int(t * 10), t=float(t), bbox=(0, 0, 10, 30), score=0.9)
                    for t in np.linspace(t0, t0 + 8.0, 9)
                ]
                track = 100 * site + p + 1
                out.append(Tracklet(camera=cam, track=track, points=pts, qualities=[0.5] * 4, feature=g, closed=True))
    return out


def test_cameras_that_share_nobody_are_never_compared_once_the_graph_says_so():
    cams = ["cam1", "cam2", "cam3", "cam4"]

    def sites_of(idents):
        return [{t.track // 100 for t in i.tracklets} for i in idents]

    # every pair compared: site B's look-alikes are linked to site A's people
    assert any(len(s) == 2 for s in sites_of(Linker(LinkerConfig(refine=True), cams).link(_two_sites())))
    lk = Linker(LinkerConfig(refine=True, adjacent=[("cam1", "cam2"), ("cam3", "cam4")]), cams)
    idents = lk.link(_two_sites())
    assert all(len(s) == 1 for s in sites_of(idents))
    people = [{t.track for t in i.tracklets} for i in idents]
    assert sum(len(p) == 1 and len(i.tracklets) == 2 for p, i in zip(people, idents)) >= 20  # most linked right
    assert all(len(p) == 1 for p in people)
    assert set(lk.operating_point.cross_camera) == {"cam1~cam2", "cam3~cam4"}
    assert lk.operating_point.to_json()["not_adjacent"] == ["cam1~cam3", "cam1~cam4", "cam2~cam3", "cam2~cam4"]
    assert "4 camera pair(s) not adjacent (--adjacent)" in lk.operating_point.summary()


def test_threshold_short_and_featureless_tracklets():
    lk = Linker(LinkerConfig(min_similarity=0.9, min_points=3), ["cam1", "cam2"])
    g1, _ = lk.add(tl("cam1", 1, 0, 5, feat(6)))
    g2, ev = lk.add(tl("cam2", 1, 10, 15, feat(6, noise=2.0, base=6)))  # far below 0.9
    g3, ev3 = lk.add(tl("cam2", 2, 10, 15, feat(6), npts=2))  # too short to link
    g4, ev4 = lk.add(tl("cam2", 3, 10, 15, None))  # no crop passed the gate
    assert len({g1, g2, g3, g4}) == 4
    # founded, clearly new: no candidate near the threshold (the margin is over candidates found)
    assert ev.score == 1.0 and (ev.margin is None or ev.margin > 0.1)
    assert ev3.score == 0.0 and ev4.score == 0.0 and ev4.margin is None
    idents = lk.finalize()
    assert len(idents) == 4 and sorted(len(i.tracklets) for i in idents) == [1, 1, 1, 1]


def test_margin_over_runner_up_and_sorted_ids():
    a, b = feat(7), feat(8)
    lk = Linker(LinkerConfig(min_similarity=0.3), ["cam1", "cam2"])
    lk.add(tl("cam1", 5, 10, 20, a))
    lk.add(tl("cam1", 6, 0, 8, b))
    mix = a * 0.9 + b * 0.3
    _, ev = lk.add(tl("cam2", 1, 30, 40, mix / np.linalg.norm(mix)))
    sa, sb = float(mix @ a) / np.linalg.norm(mix), float(mix @ b) / np.linalg.norm(mix)
    assert ev.score == pytest.approx(sa, abs=1e-5)
    assert ev.margin == pytest.approx(sa - sb, abs=1e-5)
    idents = lk.finalize()
    # sorted by first sighting: cam1/6 (t=0) is identity 1 although it was added second
    assert ids_of(idents)[("cam1", 6)] == 1 and ids_of(idents)[("cam1", 5)] == 2
    assert ids_of(idents)[("cam2", 1)] == 2


def test_add_many_assignment_is_one_to_one_and_feasible():
    a, b = feat(10), feat(11)
    lk = Linker(LinkerConfig(min_similarity=0.4), ["cam1", "cam2"])
    lk.add(tl("cam1", 1, 0, 10, a))
    lk.add(tl("cam1", 2, 0, 10, b))
    # both close together in cam2; the one closer to a overall must not steal b's match
    out = lk.add_many(
        [
            tl("cam2", 1, 20, 30, feat(11, noise=0.3, base=11)),
            tl("cam2", 2, 20, 30, feat(10, noise=0.3, base=10)),
            tl("cam2", 3, 20, 30, feat(50)),
        ]
    )
    g = [o[0] for o in out]
    ids = {k: v for k, v in ids_of(lk.finalize()).items()}
    assert ids[("cam2", 1)] == ids[("cam1", 2)] and ids[("cam2", 2)] == ids[("cam1", 1)]
    assert len(set(g)) == 3
    assert all(o[1].gap == pytest.approx(10.0) for o in out[:2])


def test_bad_config_and_duplicate_tracklet():
    with pytest.raises(ConfigError, match="camX"):
        Linker(LinkerConfig(transit={("cam1", "camX"): (0, 5)}), ["cam1", "cam2"])
    with pytest.raises(ConfigError, match="--adjacent names unknown camera.*camX"):
        Linker(LinkerConfig(adjacent=[("cam1", "camX")]), ["cam1", "cam2"])
    lk = Linker(LinkerConfig(), ["cam1"])
    lk.add(tl("cam1", 1, 0, 1, feat(1)))
    with pytest.raises(ValueError, match="cam1/1"):
        lk.add(tl("cam1", 1, 0, 1, feat(1)))


@pytest.mark.parametrize("refine", [False, True])
def test_camera_centering_removes_what_a_camera_shares(refine):
    from reidpipe.pipeline.link.features import MIN_CENTER as _MIN_CENTER

    n = _MIN_CENTER + 3
    rng = np.random.default_rng(3)
    people = rng.standard_normal((n, DIM))
    people /= np.linalg.norm(people, axis=1, keepdims=True)
    bias = {c: 2.0 * v / np.linalg.norm(v) for c, v in zip(("cam1", "cam2"), rng.standard_normal((2, DIM)))}

    def run(centering):
        lk = Linker(LinkerConfig(min_similarity=0.5, refine=refine, camera_centering=centering), ["cam1", "cam2"])
        for cam, t0 in (("cam1", 0.0), ("cam2", 100.0)):
            for p in range(n):  # one after the other: nothing forbids same-camera merges
                f = people[p] + bias[cam] + 0.05 * rng.standard_normal(DIM)
                lk.add(tl(cam, p + 1, t0 + 10 * p, t0 + 10 * p + 8, (f / np.linalg.norm(f)).astype(np.float32)))
        return ids_of(lk.finalize())

    plain = run(False)  # the shared lighting/background dominates: cam1's people collapse together
    assert len({plain[("cam1", p)] for p in range(1, n + 1)}) < n
    ids = run(True)
    # online, a camera's mean is only used once it has _MIN_CENTER tracklets, so its first ones are
    # matched raw (and may collapse) until the offline refinement re-clusters everything
    first = _MIN_CENTER if not refine else 1
    owner = {}
    for (_cam, p), gid in ids.items():
        if p >= first:  # nobody is merged with somebody else
            assert owner.setdefault(gid, p) == p
    # every person is linked across the cameras
    assert all(ids[("cam1", p)] == ids[("cam2", p)] for p in range(first, n + 1))


def walker(track: int, t0: float, t1: float, x0: float, x1: float, f: np.ndarray, camera: str = "cam1") -> Tracklet:
    """A person 150 px tall walking from x0 to x1 (box centres) between t0 and t1."""
    pts = [
        TrackPoint(frame=int(t * 10), t=float(t), bbox=(x - 20, 300, x + 20, 450), score=0.9)
        for t, x in zip(np.linspace(t0, t1, 20), np.linspace(x0, x1, 20))
    ]
    return Tracklet(camera=camera, track=track, points=pts, bank=[], qualities=[0.5], feature=f, closed=True)


@pytest.mark.parametrize("refine", [False, True])
def test_a_person_does_not_cross_the_image_faster_than_a_run(refine):
    """Rule 6: one track leaves at the left edge, a look-alike enters at the right edge one second
    later (900 px = 6 body heights): two people. Twenty seconds later it may be the same person, and
    without the limit (``--max-speed 0``) the look-alike is merged at once."""
    f = feat(6)
    for later, max_speed, same in [(1.0, 3.0, False), (20.0, 3.0, True), (1.0, None, True)]:
        lk = Linker(LinkerConfig(min_similarity=0.5, refine=refine, max_speed=max_speed), ["cam1"])
        lk.add(walker(1, 0, 10, 500, 20, f))
        lk.add(walker(2, 10 + later, 20 + later, 940, 500, f))
        ids = ids_of(lk.finalize())
        assert (ids[("cam1", 1)] == ids[("cam1", 2)]) is same, (later, max_speed)
    # re-entry where the person left (an occlusion): merged after any gap
    lk = Linker(LinkerConfig(min_similarity=0.5, refine=refine), ["cam1"])
    lk.add(walker(1, 0, 10, 500, 300, f))
    lk.add(walker(2, 10.5, 20, 280, 20, f))
    ids = ids_of(lk.finalize())
    assert ids[("cam1", 1)] == ids[("cam1", 2)]


def test_speed_rule_reads_where_a_track_ended_from_its_last_boxes_and_spans_only_one_camera():
    from reidpipe.pipeline.link.constraints import Constraints, Sightings, places

    f = feat(7)
    a, b = walker(1, 0, 10, 500, 20, f), walker(2, 11, 20, 20, 500, f)
    a.points[-1] = TrackPoint(frame=100, t=10.0, bbox=(900, 300, 940, 450), score=0.5)  # one stray last box
    where = places([a, b])  # where first seen (x, y, height), then where last seen
    assert where[0, 3] < 100 and where[0, 5] == 150  # the median of the last boxes: still the left edge
    rules = Constraints(LinkerConfig(), ["cam1", "cam2"])

    def seen(t, cam, k):
        return Sightings.one(t.start_t, t.end_t, cam, k, where[k])

    assert not rules.groups(seen(a, 0, 0), seen(b, 0, 1))  # re-entry at the left edge, 1 s later
    far = walker(3, 11, 20, 940, 500, f)
    w3 = places([far])[0]
    assert rules.groups(seen(a, 0, 0), Sightings.one(11, 20, 0, 2, w3))  # the right edge: too fast
    assert not rules.groups(seen(a, 0, 0), Sightings.one(11, 20, 1, 2, w3))  # another camera
    assert not rules.groups(seen(a, 0, 0), Sightings.one(11, 20, 0, 2))  # no boxes: no place, no conflict
    stored = walker(4, 11, 20, 940, 500, f)  # a gallery's tracklet: times, no boxes of a size
    stored.points = [TrackPoint(frame=0, t=p.t, bbox=(0.0, 0.0, 0.0, 0.0), score=1.0) for p in stored.points]
    assert np.isnan(places([stored])).all()
    assert not rules.groups(seen(a, 0, 0), Sightings.one(11, 20, 0, 3, places([stored])[0]))
