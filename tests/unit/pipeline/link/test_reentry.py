"""In-camera merges (pipeline/link/offline.py, step 2): two tracklets of one camera are one person only
if they also look like one person (the camera's one-person level), or their gap is like those of the
camera's clear fragments. A look-alike who passes the re-entry level stays apart; one person whose look
changed across a tracker's break is still joined."""

from __future__ import annotations

import numpy as np

from reidpipe.pipeline.config import LinkerConfig
from reidpipe.pipeline.link import Linker
from reidpipe.pipeline.link.split import add_crop, candidate_segments
from reidpipe.pipeline.types import Tracklet, TrackPoint

DIM = 64
FPS = 10.0
TURNED = 0.8  # person 4 across the break


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _track(number: int, t0: float, look: np.ndarray, rng: np.random.Generator, crops: int = 24) -> Tracklet:
    """A closed cam1 tracklet from ``t0``: one crop of ``look`` (plus noise) every 5 frames."""
    t = Tracklet(camera="cam1", track=number, closed=True)
    frames = int(round(t0 * FPS)) + 5 * np.arange(crops)
    for f in range(int(frames[0]), int(frames[-1]) + 1):
        t.points.append(TrackPoint(frame=f, t=f / FPS, bbox=(100.0, 100.0, 140.0, 220.0), score=0.9))
    for f in frames.tolist():
        add_crop(t, f, _unit(look + 0.12 * rng.standard_normal(DIM)), 0.8)
    t.feature = t.pooled_feature()
    t.segments = candidate_segments(t.segments)
    return t


def _like(look: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at ``cosine`` to ``look``."""
    other = rng.standard_normal(DIM)
    other = _unit(other - (other @ look) * look)
    return _unit(cosine * look + np.sqrt(1.0 - cosine**2) * other)


def _camera(seed: int = 0) -> tuple[list[Tracklet], dict[str, tuple[int, int]]]:
    """One camera, 16 people one after another (a new one every 6 s, each in view for ~12 s). People
    0-4 are each broken by the tracker into two tracks half a second apart; person 4 turned round
    across the break: the second track looks like the first only at cosine ``TURNED``. Person 5 has a
    look-alike, person 15, seen 60 s later (cosine 0.65 between their looks: unlike two people at
    large)."""
    rng = np.random.default_rng(seed)
    looks = [_unit(rng.standard_normal(DIM)) for _ in range(16)]
    looks[15] = _like(looks[5], 0.65, rng)
    tracks, number, pairs = [], 1, {}
    for p, look in enumerate(looks):
        t0 = 6.0 * p
        if p <= 4:
            first = _track(number, t0, look, rng, crops=12)
            second_look = _like(look, TURNED, rng) if p == 4 else look
            second = _track(number + 1, first.end_t + 0.5, second_look, rng, crops=12)
            tracks += [first, second]
            pairs[f"fragment{p}"] = (number, number + 1)
            number += 2
        else:
            tracks.append(_track(number, t0, look, rng))
            if p in (5, 15):
                pairs.setdefault("lookalike", (number, number))
                pairs["lookalike"] = (pairs["lookalike"][0], number)
            number += 1
    return tracks, pairs


def _together(seed: int) -> dict[str, bool]:
    tracks, pairs = _camera(seed)
    linker = Linker(LinkerConfig(), ["cam1"])
    ids = {t.track: ident.id for ident in linker.link(tracks) for t in ident.tracklets}
    return {name: ids[a] == ids[b] for name, (a, b) in pairs.items()}


def test_a_lookalike_above_the_reentry_level_is_not_merged_but_a_turned_fragment_is():
    for seed in (0, 3):  # seeds where person 4's two tracks lie below the one-person level
        together = _together(seed)
        assert not together["lookalike"], seed  # above the re-entry level, far below one person's own
        assert together["fragment4"], seed  # below it too, but broken where the clear fragments broke
        assert all(together[f"fragment{p}"] for p in range(4)), seed


def test_the_operating_point_records_the_levels_and_the_reentry_time():
    tracks, _ = _camera(0)
    linker = Linker(LinkerConfig(), ["cam1"])
    linker.link(tracks)
    point = linker.operating_point.to_json()
    cam = point["in_camera"]["cam1"]
    assert cam["one_person_level"] > cam["threshold"]  # one person's own level lies above the re-entry level
    assert point["reentry_time"]["links"] >= 4  # the clear fragments' gaps
