"""The floor map of two views of one room (pipeline/link/place.py): learned from the run's mutual
best matches with OpenCV's RANSAC, it says where a person seen by one camera stands in the other, links
the people appearance leaves unsure and never links two people standing apart."""

from __future__ import annotations

import numpy as np
import pytest

from reidpipe.pipeline.config import LinkerConfig
from reidpipe.pipeline.link import Linker
from reidpipe.pipeline.link.place import NOT_SAME_PLACE, FloorMap, feet
from reidpipe.pipeline.types import Tracklet, TrackPoint

# floor (metres) -> image (pixels) of two cameras on opposite sides of a 10 x 6 m room
TO_CAM = {
    "cam1": np.array([[80.0, 10.0, 100.0], [0.0, -40.0, 520.0], [0.0, 0.02, 1.0]]),
    "cam2": np.array([[-70.0, 5.0, 860.0], [2.0, 35.0, 180.0], [0.0, -0.015, 1.0]]),
}


def _box(cam: str, x: float, y: float) -> tuple[float, float, float, float]:
    """The box of a person standing at floor point (x, y) in ``cam`` (feet at the bottom centre)."""
    u, v, w = TO_CAM[cam] @ np.array([x, y, 1.0])
    u, v = u / w, v / w
    h = 2000.0 / w / 10.0 + 60.0  # taller when nearer
    return (u - h / 5, v - h, u + h / 5, v)


def _walk(rng, seconds: float) -> np.ndarray:
    """(n, 2) floor points every 0.5 s: a walk through three random places of the room."""
    stops = rng.uniform([0.5, 0.5], [9.5, 5.5], (3, 2))
    s = np.linspace(0.0, 2.0, int(seconds * 2) + 1)[:, None]
    return np.where(s <= 1.0, stops[0] + s * (stops[1] - stops[0]), stops[1] + (s - 1.0) * (stops[2] - stops[1]))


def _room(seed: int, n: int = 16, twins: bool = False, dim: int = 64, noise: float = 0.6) -> list[Tracklet]:
    """Two views of one room, n people each seen by both at once, walking across the floor. With
    ``twins`` the first half of them come in pairs dressed alike who are in the room at the same time."""
    rng = np.random.default_rng(seed)
    protos = rng.standard_normal((n, dim))
    if twins:
        protos[1 : n // 2 : 2] = protos[0 : n // 2 : 2] + 0.15 * rng.standard_normal((n // 4, dim))
    out = []
    for p in range(n):
        t0 = 4.0 * (p // 2 if twins and p < n // 2 else p)
        path = _walk(rng, 10.0)
        times = t0 + 0.5 * np.arange(len(path))
        for cam in ("cam1", "cam2"):
            f = protos[p] + noise * rng.standard_normal(dim)
            pts = [
                TrackPoint(frame=int(round(t * 10)), t=float(t), bbox=_box(cam, x, y), score=0.9)
                for t, (x, y) in zip(times, path)
            ]
            out.append(
                Tracklet(
                    camera=cam, track=p + 1, points=pts, qualities=[0.5] * 4, feature=f / np.linalg.norm(f), closed=True
                )
            )
    return out


def test_floor_map_from_links_puts_each_person_where_the_other_view_sees_them():
    ts = _room(0)
    by = {t.key: t for t in ts}
    links = [(feet([by[("cam1", p)]]), feet([by[("cam2", p)]])) for p in range(1, 7)]
    links[5] = (links[5][0], feet([by[("cam2", 7)]]))  # a wrong confident link: its points are outliers
    fm = FloorMap.fit(links)
    assert fm is not None and fm.links == 6 and fm.inliers < fm.points
    same = [fm.error(feet([by[("cam1", p)]]), feet([by[("cam2", p)]])) for p in range(7, 17)]
    assert max(same) < 0.05  # people the map was not fitted on stand where it puts them
    others = [fm.error(feet([by[("cam1", p)]]), feet([by[("cam2", p + 1)]])) for p in range(1, 16)]
    apart = [e for e in others if np.isfinite(e)]  # pairs seen at once
    assert apart and min(apart) > 0.2
    assert fm.to_json()["links"] == 6 and len(fm.to_json()["homography"]) == 3


def test_floor_map_needs_links_seen_at_once():
    ts = _room(0)
    by = {t.key: t for t in ts}
    three = [(feet([by[("cam1", p)]]), feet([by[("cam2", p)]])) for p in range(1, 4)]
    assert FloorMap.fit(three) is None  # too few people to fix a map
    never_at_once = [(feet([by[("cam1", p)]]), feet([by[("cam2", p + 8)]])) for p in range(1, 7)]
    assert FloorMap.fit(never_at_once) is None  # disjoint views: no common times


def test_place_evidence_is_a_hard_rule_beyond_a_body_height():
    ts = _room(0)
    by = {t.key: t for t in ts}
    fm = FloorMap.fit([(feet([by[("cam1", p)]]), feet([by[("cam2", p)]])) for p in range(1, 9)])
    assert fm is not None
    fm.learn(np.array([0.01, 0.02, 0.03, 0.5, 1.5, 2.0, 3.0, 4.0]))
    llr = fm.llr(np.array([0.02, NOT_SAME_PLACE + 0.1, np.nan]))
    assert llr[0] > 0 and llr[1] == -np.inf and llr[2] == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_people_dressed_alike_in_the_room_at_once_are_told_apart_by_where_they_stand(seed):
    """Pairs of people who look alike, in the room at the same time: appearance cannot tell which of
    one view's pair is which of the other's (without the floor map these rooms got 2-4 wrong
    links); where they stand can."""
    lk = Linker(LinkerConfig(refine=True), ["cam1", "cam2"])
    idents = lk.link(_room(seed, twins=True))
    people = [{t.track for t in i.tracklets} for i in idents]
    assert all(len(p) == 1 for p in people)  # no twin linked to the other
    assert sum(len(i.tracklets) == 2 for i in idents) >= 15
    fm = lk.operating_point.cross_camera["cam1~cam2"]["floor_map"]
    assert fm["links"] >= 4 and fm["link_error_median"] < 0.05


@pytest.mark.parametrize("seed", [0, 1])
def test_a_room_with_few_confident_links_maps_its_floor_from_its_mutual_best_matches(seed):
    """A weak embedder: 2 of 16 people are confident links, too few to fit a map on (no map, and 5
    and 3 people linked). Most mutual best matches are still one person, and RANSAC leaves out the
    rest: the map is fitted on them and where people stand links more of them, none wrongly."""
    lk = Linker(LinkerConfig(refine=True), ["cam1", "cam2"])
    idents = lk.link(_room(seed, noise=1.6))
    people = [{t.track for t in i.tracklets} for i in idents]
    assert all(len(p) == 1 for p in people)  # nobody linked to somebody else
    assert sum(len(i.tracklets) == 2 for i in idents) >= 6
    op = lk.operating_point
    assert op.positive is not None and op.positive.n < 4  # the confident links alone fix no map
    assert op.cross_camera["cam1~cam2"]["floor_map"]["links"] >= 8
