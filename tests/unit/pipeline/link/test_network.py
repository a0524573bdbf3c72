"""Which camera pairs exchange people, learned from the run (pipeline/link/network.py): a pair whose
confident links' gaps cluster shows a walk; pairs that show walks join cameras into sites; a pair
between two sites is never linked; a declared camera graph (``--adjacent``) wins."""

from __future__ import annotations

import numpy as np
import pytest

from reidpipe.pipeline.config import LinkerConfig
from reidpipe.pipeline.link import Linker
from reidpipe.pipeline.link.network import Exchange, between_sites, holm, judge
from reidpipe.pipeline.types import Tracklet, TrackPoint

CAMS = ["cam1", "cam2", "cam3", "cam4"]
SITE_A, SITE_B = ("cam1", "cam2"), ("cam3", "cam4")
CROSS = ["cam1~cam3", "cam1~cam4", "cam2~cam3", "cam2~cam4"]


def _tracklet(cam: str, track: int, t0: float, feature: np.ndarray) -> Tracklet:
    pts = [
        TrackPoint(frame=int(t * 10), t=float(t), bbox=(0, 0, 10, 30), score=0.9) for t in np.linspace(t0, t0 + 8, 9)
    ]
    return Tracklet(camera=cam, track=track, points=pts, qualities=[0.5] * 4, feature=feature, closed=True)


def two_sites(seed: int = 0, n: int = 14, dim: int = 64) -> list[Tracklet]:
    """Site A (cam1 -> cam2) and site B (cam3 -> cam4), each a 12 s walk (+-1 s) between its two
    cameras, over the same 100 s. Nobody visits both, but person p of site B looks like person p of
    site A (one uniform), at an hour that has nothing to do with A's: look-alikes at chance times."""
    rng = np.random.default_rng(seed)
    protos = rng.standard_normal((n, dim))
    out = []
    for site, cams in enumerate((SITE_A, SITE_B)):
        starts = rng.uniform(0, 90, n)
        for p in range(n):
            walk = 8.0 + 12.0 + rng.uniform(-1, 1)
            for cam, t0 in zip(cams, (starts[p], starts[p] + walk)):
                g = protos[p] + 0.6 * rng.standard_normal(dim)
                out.append(_tracklet(cam, 100 * site + p + 1, t0, g))
    return out


def sites_of(identities) -> list[set[int]]:
    return [{t.track // 100 for t in i.tracklets} for i in identities]


def test_look_alikes_at_chance_times_are_not_linked_across_sites_but_each_site_is():
    lk = Linker(LinkerConfig(refine=True), CAMS)
    idents = lk.link(two_sites())
    assert all(len(s) == 1 for s in sites_of(idents)), "an identity joins people of the two sites"
    people = [{t.track for t in i.tracklets} for i in idents]
    linked = sum(len(p) == 1 and len(i.tracklets) == 2 for p, i in zip(people, idents))
    assert linked >= 24, f"only {linked} of 28 people linked between their site's cameras"
    op = lk.operating_point.to_json()
    assert op["no_exchange"] == CROSS
    for pair in CROSS:
        ex = op["cross_camera"][pair]["exchange"]
        assert ex["decision"] == "between sites" and ex["p_value"] >= 0.05, ex
    for pair in ("cam1~cam2", "cam3~cam4"):  # the real pairs: their walk is found
        ex = op["cross_camera"][pair]["exchange"]
        assert ex["decision"] == "walk" and ex["p_value"] < 0.05, ex
    assert "4 camera pair(s) between two sites" in lk.operating_point.summary()


def test_without_the_test_the_same_run_links_look_alikes_across_sites():
    """What the rule prevents: the same tracklets, every pair compared by the declared graph of all
    six pairs (a declared graph is never judged), join people of the two sites."""
    every = [(a, b) for k, a in enumerate(CAMS) for b in CAMS[k + 1 :]]
    lk = Linker(LinkerConfig(refine=True, adjacent=every), CAMS)
    idents = lk.link(two_sites())
    assert any(len(s) == 2 for s in sites_of(idents))
    assert "no_exchange" not in lk.operating_point.to_json()
    assert all("exchange" not in v for v in lk.operating_point.to_json()["cross_camera"].values())


def test_a_declared_camera_graph_wins():
    """`--adjacent cam1:cam3` declares a pair whose times look like chance: it is compared and linked
    (and its look-alikes with it), the pairs left out are never compared."""
    lk = Linker(LinkerConfig(refine=True, adjacent=[SITE_A, SITE_B, ("cam1", "cam3")]), CAMS)
    idents = lk.link(two_sites())
    assert any({t.camera for t in i.tracklets} >= {"cam1", "cam3"} for i in idents)
    op = lk.operating_point.to_json()
    assert op["not_adjacent"] == ["cam1~cam4", "cam2~cam3", "cam2~cam4"] and "no_exchange" not in op


def test_a_transit_window_declares_its_pair():
    lk = Linker(LinkerConfig(refine=True, transit={("cam1", "cam3"): (0.0, 100.0)}), CAMS)
    lk.link(two_sites())
    op = lk.operating_point.to_json()
    assert op["cross_camera"]["cam1~cam3"]["exchange"]["decision"] == "declared"
    assert "no_exchange" not in op  # the declared pair joins the two sites into one: nothing between them


def test_every_pair_of_a_corridor_exchanges_people():
    """entrance -> hall -> exit: every pair's links take one walk (entrance to exit through the hall
    too), so no pair is cut and everyone is linked through all three cameras."""
    rng = np.random.default_rng(3)
    protos = rng.standard_normal((16, 64))
    cams = ["entrance", "hall", "exit"]
    tracks = []
    for p, start in enumerate(rng.uniform(0, 120, 16)):
        for k, cam in enumerate(cams):
            t0 = start + k * (8.0 + 10.0 + rng.uniform(-1, 1))
            tracks.append(_tracklet(cam, p + 1, t0, protos[p] + 0.6 * rng.standard_normal(64)))
    lk = Linker(LinkerConfig(refine=True), cams)
    idents = lk.link(tracks)
    op = lk.operating_point.to_json()
    assert "no_exchange" not in op
    assert {v["exchange"]["decision"] for v in op["cross_camera"].values()} == {"walk"}
    whole = sum(len(i.tracklets) == 3 and len({t.track for t in i.tracklets}) == 1 for i in idents)
    assert whole >= 14, f"only {whole} of 16 people linked through the three cameras"


@pytest.mark.parametrize(
    "gaps, decision",
    [
        (np.linspace(5.0, 9.0, 10), "walk"),  # one walk: 5-9 s between the cameras
        (np.array([-8.0, -7.0, -6.5, -6.0, -5.0, -4.5, -4.0, -3.0, 40.0, 70.0]), "walk"),  # seen at once, 2 look-alikes
        (np.linspace(-40.0, 80.0, 10), "no walk shown"),  # spread like random tracks
        (np.array([5.0, 9.0]), "too few links"),
    ],
)
def test_the_test_on_its_own(gaps, decision):
    background = np.random.default_rng(0).uniform(-50.0, 90.0, 2000)  # random tracks of a 100 s clip
    assert judge(gaps, background).decision == decision


def test_chance_gaps_show_a_walk_at_the_stated_rate():
    """Under chance (links drawn like the background) a pair shows a walk with probability alpha."""
    rng = np.random.default_rng(1)
    background = rng.normal(10.0, 30.0, 1000)
    walks = [judge(rng.normal(10.0, 30.0, 12), background).decision == "walk" for _ in range(400)]
    assert 0.02 <= float(np.mean(walks)) <= 0.09


def _decisions(*names: str) -> list[Exchange]:
    return [Exchange(n) for n in names]


def test_only_pairs_between_two_sites_are_cut():
    # two sites (0-1, 2-3): the four pairs between them are cut, whatever their own test said
    pairs = [(0, 1), (2, 3), (0, 2), (0, 3), (1, 2), (1, 3)]
    d = _decisions("walk", "declared", "no walk shown", "too few links", "no walk shown", "too few links")
    assert between_sites(pairs, d) == [2, 3, 4, 5]
    # a pair that shows a walk across joins the sites into one: nothing is cut
    assert (
        between_sites(pairs, _decisions("walk", "walk", "walk", "no walk shown", "no walk shown", "too few links"))
        == []
    )
    # three cameras never make two sites of two: a corridor whose far pair shows no walk keeps it
    assert between_sites([(0, 1), (1, 2), (0, 2)], _decisions("walk", "walk", "no walk shown")) == []
    assert between_sites([(0, 1), (1, 2), (0, 2)], _decisions("walk", "no walk shown", "no walk shown")) == []
    # a camera that shows no walk with anyone is in no site: its pairs are kept
    assert between_sites([(0, 1), (0, 2), (1, 2)], _decisions("walk", "no walk shown", "no walk shown")) == []


def test_one_chance_walk_among_many_pairs_does_not_join_two_sites():
    """Six pairs of two 2-camera sites (a1, a2 | b1, b2): each site's pair shows a clear walk and one
    of the four pairs across shows p = 0.02, what one pair in twenty does by chance. Read one by one
    at 5 % it would join the sites and nothing would be cut; Holm's rule holds it to 0.05 / 4."""
    pairs = [(0, 1), (2, 3), (0, 2), (0, 3), (1, 2), (1, 3)]
    p = [0.0016, 0.0001, 0.879, 0.454, 0.0214, 0.163]
    decisions = holm([Exchange("walk" if v < 0.05 else "no walk shown", links=12, statistic=0.2, p_value=v) for v in p])
    assert [d.decision for d in decisions[:2]] == ["walk", "walk"]
    assert decisions[4].decision == "no walk shown"
    assert between_sites(pairs, decisions) == [2, 3, 4, 5]


def test_holm_keeps_every_walk_whose_p_value_passes_its_step():
    decisions = holm([Exchange("no walk shown", links=9, p_value=v) for v in (0.004, 0.012, 0.02, 0.3)])
    assert [d.decision for d in decisions] == ["walk", "walk", "walk", "no walk shown"]
    assert holm([Exchange("too few links", links=2), Exchange("declared")])[1].decision == "declared"
