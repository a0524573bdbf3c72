"""Tracklet splitting (pipeline/link/split.py): a track the tracker carried from one person to another
is cut where its appearance changes, and each piece links to its own person; a track of one person
whose look drifts (turning, partial views) is never cut."""

from __future__ import annotations

import numpy as np
import pytest

from reidpipe.pipeline.config import LinkerConfig
from reidpipe.pipeline.io.export import trajectories_dict
from reidpipe.pipeline.link import Linker
from reidpipe.pipeline.link.split import MAX_SEGMENTS, SPLIT_BASE, add_crop, candidate_segments
from reidpipe.pipeline.types import SourceInfo, Tracklet, TrackPoint

DIM = 64
FPS = 10.0


def _unit(v):
    return v / np.linalg.norm(v)


def _track(camera: str, number: int, t0: float, looks: list[np.ndarray], rng, noise: float = 0.12) -> Tracklet:
    """A closed tracklet from ``t0``: one crop every 5 frames, the k-th crop showing ``looks[k]``."""
    t = Tracklet(camera=camera, track=number, closed=True)
    frames = int(t0 * FPS) + 5 * np.arange(len(looks))
    for f in range(int(frames[0]), int(frames[-1]) + 1):
        t.points.append(TrackPoint(frame=f, t=f / FPS, bbox=(0.0, 0.0, 20.0, 60.0), score=0.9))
    for f, look in zip(frames.tolist(), looks):
        add_crop(t, f, _unit(look + noise * rng.standard_normal(DIM)), 0.8)
    t.feature = t.pooled_feature()
    t.segments = candidate_segments(t.segments)
    return t


def _scene(seed: int = 0, people: int = 12, swap: bool = True, drift: bool = False, a: int = 2):
    """``people`` people walk through cam1 (two at a time) then cam2 (30 s later). With ``swap`` cam1's
    track a + 1 follows person ``a`` for its first 16 crops, then person a + 1 (the tracker swapped them)
    and person a + 1 has no track of their own there. With ``drift`` person 5's cam1 track turns half-way: its second
    half looks only partly like its first (cosine 0.6 between the two looks)."""
    rng = np.random.default_rng(seed)
    proto = [_unit(rng.standard_normal(DIM)) for _ in range(people)]
    tracks = []
    for p in range(people):
        looks = [proto[p]] * 32
        if drift and p == 5:
            other = _unit(rng.standard_normal(DIM))
            turned = _unit(0.6 * proto[p] + 0.8 * _unit(other - (other @ proto[p]) * proto[p]))
            looks = [proto[p]] * 16 + [turned] * 16
        if swap and p == a:
            looks = [proto[a]] * 16 + [proto[a + 1]] * 16
        if not (swap and p == a + 1):
            tracks.append(_track("cam1", p + 1, 8.0 * p, looks, rng))
        tracks.append(_track("cam2", p + 1, 8.0 * p + 30.0, [proto[p]] * 20, rng))
    return tracks


def _person_of(t: Tracklet, a: int = 2) -> int:
    """The person a track (or piece) of ``_scene(a=a)`` shows: cam1 track a + 1 shows person a, then a + 1."""
    if t.split_from == a + 1:
        return a + 1
    return t.track - 1


def test_a_swapped_track_is_cut_at_the_swap_and_each_piece_joins_its_person():
    linker = Linker(LinkerConfig(refine=True), ["cam1", "cam2"])
    identities = linker.link(_scene())
    report = linker.split_report
    assert report is not None and len(report.splits) == 1
    cut = report.splits[0]
    assert (cut.camera, cut.track) == ("cam1", 3) and cut.parts == [3, SPLIT_BASE + 1]
    # person 2's last crop is at frame 160 + 75, person 3's first at 160 + 80: the frames between show
    # either of them and are left out
    assert cut.frames == [240] and cut.left_out == 4
    pieces = [t for t in linker.final_tracklets if t.camera == "cam1" and 3 in (t.track, t.split_from)]
    assert len(pieces) == 2 and pieces[1].split_from == 3 and pieces[1].track == SPLIT_BASE + 1
    assert (pieces[0].points[0].frame, pieces[0].points[-1].frame) == (160, 235)
    assert (pieces[1].points[0].frame, pieces[1].points[-1].frame) == (240, 315)
    for ident in identities:  # every identity is one person, seen in both cameras
        assert len({_person_of(t) for t in ident.tracklets}) == 1
        assert {t.camera for t in ident.tracklets} == {"cam1", "cam2"}
    assert len(identities) == 12


def test_online_a_swapped_track_is_cut_as_it_closes_and_its_pieces_are_linked():
    """A live run: tracks close one by one (cut() before add_many, as the runner does); the swapped
    track (cam1's 10th to close: enough of the camera's tracks to compare it with) is judged with the
    camera's tracks so far and its pieces join their people."""
    linker = Linker(LinkerConfig(refine=False), ["cam1", "cam2"])
    cut_at = []
    for t in sorted(_scene(a=9), key=lambda t: t.end_t):
        units = linker.cut([t])
        linker.add_many(units)
        cut_at += [(s.track, s.parts) for s in linker.pop_splits()]
    assert cut_at == [(10, [10, SPLIT_BASE + 1])]
    identities = linker.finalize()
    for ident in identities:
        assert len({_person_of(t, a=9) for t in ident.tracklets}) == 1
    person10 = next(i for i in identities if ("cam2", 11) in {t.key for t in i.tracklets})
    assert ("cam1", SPLIT_BASE + 1) in {t.key for t in person10.tracklets}
    assert linker.operating_point.splits is not None and len(linker.operating_point.splits.splits) == 1


def test_with_refine_tracks_are_cut_at_the_end_not_as_they_close():
    linker = Linker(LinkerConfig(refine=True), ["cam1", "cam2"])
    scene = _scene()
    assert linker.cut(scene) == scene and linker.pop_splits() == []


def test_without_splitting_the_swapped_track_costs_a_person_their_link():
    linker = Linker(LinkerConfig(refine=True, split=False), ["cam1", "cam2"])
    identities = linker.link(_scene())
    assert linker.split_report is None
    person3 = next(i for i in identities if ("cam2", 4) in {t.key for t in i.tracklets})
    assert [t.key for t in person3.tracklets] == [("cam2", 4)]  # person 3's cam1 half is in person 2's track


def test_a_track_whose_look_drifts_is_not_cut():
    linker = Linker(LinkerConfig(refine=True), ["cam1", "cam2"])
    linker.link(_scene(swap=False, drift=True))
    assert linker.split_report is not None and linker.split_report.splits == []
    assert "threshold" in linker.split_report.cameras["cam1"]


def test_too_few_tracks_to_compare_cut_nothing_and_say_so():
    linker = Linker(LinkerConfig(refine=True), ["cam1", "cam2"])
    linker.link(_scene(people=5))
    report = linker.split_report
    assert report is not None and report.splits == []
    assert "fewer than" in report.cameras["cam1"]["note"]


def test_open_track_keeps_at_most_max_segments_and_still_finds_the_swap():
    rng = np.random.default_rng(3)
    a, b = _unit(rng.standard_normal(DIM)), _unit(rng.standard_normal(DIM))
    t = Tracklet(camera="cam1", track=1)
    for k in range(200):
        add_crop(t, 5 * k, _unit((a if k < 120 else b) + 0.5 * rng.standard_normal(DIM)), 0.5)
    assert len(t.segments) == MAX_SEGMENTS
    assert sum(s.crops for s in t.segments) == 200  # merged, never dropped
    kept = candidate_segments(t.segments)
    assert 2 <= len(kept) <= 4
    assert any(s.last == 5 * 119 for s in kept) and any(s.first == 5 * 120 for s in kept)


def test_crops_embedded_out_of_order_are_put_in_time_order():
    t = Tracklet(camera="cam1", track=1)
    for f in (10, 30, 20, 5):
        add_crop(t, f, np.ones(4, np.float32), 1.0)
    assert [s.first for s in t.segments] == [5, 10, 20, 30]


def test_pieces_say_where_they_come_from_in_trajectories_json():
    linker = Linker(LinkerConfig(refine=True), ["cam1", "cam2"])
    identities = linker.link(_scene())
    sources = [SourceInfo(camera=c, uri=f"{c}.mp4", fps=FPS, width=640, height=480) for c in ("cam1", "cam2")]
    doc = trajectories_dict(sources, identities, linker.operating_point.to_json())
    tracks = [tr for ident in doc["identities"] for tr in ident["tracks"]]
    assert [(tr["track"], tr["split_from"]) for tr in tracks if "split_from" in tr] == [(SPLIT_BASE + 1, 3)]
    assert doc["linker"]["split"]["splits"] == [
        {
            "camera": "cam1",
            "track": 3,
            "parts": [3, SPLIT_BASE + 1],
            "frames": [240],
            "spans": [[16.0, 23.5], [24.0, 31.5]],
            "left_out": 4,
        }
    ]


def _second_track_scene(overlap_s: float, same_person: bool = True, seed: int = 0):
    """``_scene`` without swaps, where the tracker gave person 6 a second track in cam1 before dropping
    the first (track 99 starts ``overlap_s`` seconds before track 7 ends and goes on with the person;
    ``same_person=False``: a look-alike of nobody in the scene instead)."""
    rng = np.random.default_rng(seed + 100)
    tracks = _scene(seed=seed, swap=False)
    first = next(t for t in tracks if t.key == ("cam1", 7))
    keep = [p for p in first.points if p.t <= first.start_t + 8.0]
    look = first.feature if same_person else _unit(rng.standard_normal(DIM))
    first = _track("cam1", 7, first.start_t, [first.feature] * (len(keep) // 5 + 1), rng)
    second = _track("cam1", 99, first.end_t - overlap_s, [look] * 20, rng)
    return [t for t in tracks if t.key != ("cam1", 7)] + [first, second]


@pytest.mark.parametrize("refine", [True, False])
def test_a_second_track_the_tracker_started_before_dropping_the_first_joins_it(refine):
    """Rule 1's exception: two tracks of one camera that overlap by at most the quality gate's minimum
    tracklet (1 s) and look as alike as one person's own track at two moments are one person, whom
    the tracker gave a second track (a false-positive box that took the person over, a re-spawned
    track). Overlapping longer, or looking like someone else, they stay two. Online (tracks closing
    one by one) as offline."""

    def together(overlap_s, same_person=True):
        linker = Linker(LinkerConfig(refine=refine), ["cam1", "cam2"])
        for t in sorted(_second_track_scene(overlap_s, same_person), key=lambda t: t.end_t):
            linker.add_many(linker.cut([t]))
        ids = {t.key: i.id for i in linker.finalize() for t in i.tracklets}
        return ids[("cam1", 7)] == ids[("cam1", 99)]

    assert together(0.5) and together(1.0)
    assert not together(3.0)  # a person does not keep two tracks that long: two people
    assert not together(0.5, same_person=False)
