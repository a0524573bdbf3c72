"""Two clusters of one camera in one identity (pipeline/link/offline.py, ``MergeEvidence``): two views
of one room, where camera 2 saw a person throughout and camera 1's tracker lost and found them again.
An embedder whose different people spread wide puts camera 1's re-entry level above the two
fragments' cosine, so step 2 leaves them apart; camera 2's track, seen at once with each, joins them.
Two fragments seen at once in one camera stay two people."""

from __future__ import annotations

import numpy as np

from reidpipe.pipeline.config import LinkerConfig
from reidpipe.pipeline.link import Linker
from reidpipe.pipeline.link.split import add_crop, candidate_segments
from reidpipe.pipeline.types import Tracklet, TrackPoint

DIM = 16  # different people spread wide: cosine sd ~0.25, as a fine-tuned embedder's
FPS = 10.0
PERSON = 10  # the person whom camera 1's tracker breaks
FIRST, SECOND, WHOLE = 100, 101, 200  # their track numbers: camera 1's two fragments, camera 2's track


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _track(cam: str, number: int, t0: float, t1: float, look: np.ndarray, x: float, rng) -> Tracklet:
    """A closed tracklet from ``t0`` to ``t1``: a box at ``x`` every frame, a crop of ``look`` (plus
    noise) every 5 frames."""
    t = Tracklet(camera=cam, track=number, closed=True)
    f0, f1 = int(round(t0 * FPS)), int(round(t1 * FPS))
    for f in range(f0, f1 + 1):
        t.points.append(TrackPoint(frame=f, t=f / FPS, bbox=(x, 100.0, x + 40.0, 220.0), score=0.9))
    for f in range(f0, f1 + 1, 5):
        add_crop(t, f, _unit(look + 0.12 * rng.standard_normal(DIM)), 0.8)
    t.feature = t.pooled_feature()
    t.segments = candidate_segments(t.segments)
    return t


def _room(seed: int, fragments_overlap: bool) -> list[Tracklet]:
    """24 people one after another (a new one every 5 s, 8-14 s in view), each seen by both cameras at
    once (camera 2's look a little different). Camera 1 sees person ``PERSON`` as two tracks, 1 s
    apart, or overlapping by 2 s (``fragments_overlap``: two people, as rule 1 reads it)."""
    rng = np.random.default_rng(seed)
    tracks, number = [], 1
    for p in range(24):
        look = _unit(rng.standard_normal(DIM))
        other_view = _unit(look + 0.25 * rng.standard_normal(DIM))
        t0 = 5.0 * p
        t1, x = t0 + rng.uniform(8, 14), rng.uniform(50, 800)
        if p == PERSON:
            mid = (t0 + t1) / 2
            end1, start2 = (mid + 1.0, mid - 1.0) if fragments_overlap else (mid - 0.5, mid + 0.5)
            tracks += [_track("cam1", FIRST, t0, end1, look, x, rng), _track("cam1", SECOND, start2, t1, look, x, rng)]
            tracks.append(_track("cam2", WHOLE, t0 + 0.3, t1 - 0.3, other_view, x * 0.8 + 30, rng))
        else:
            tracks.append(_track("cam1", number, t0, t1, look, x, rng))
            tracks.append(_track("cam2", number, t0 + 0.3, t1 - 0.3, other_view, x * 0.8 + 30, rng))
            number += 1
    return tracks


def _identities(tracks: list[Tracklet], cameras: list[str]) -> dict[tuple[str, int], int]:
    linker = Linker(LinkerConfig(), cameras)
    return {(t.camera, t.track): ident.id for ident in linker.link(tracks) for t in ident.tracklets}


def test_the_other_view_joins_one_persons_fragments_that_re_entry_left_apart():
    for seed in (1, 10):  # seeds where camera 1's re-entry level lies above the two fragments' cosine
        tracks = _room(seed, fragments_overlap=False)
        alone = _identities([t for t in tracks if t.camera == "cam1"], ["cam1"])
        assert alone[("cam1", FIRST)] != alone[("cam1", SECOND)], seed  # step 2 alone leaves them apart
        ids = _identities(tracks, ["cam1", "cam2"])
        assert ids[("cam1", FIRST)] == ids[("cam1", SECOND)] == ids[("cam2", WHOLE)], seed


def test_two_fragments_seen_at_once_in_one_camera_stay_two_identities():
    for seed in (2, 8, 11):  # seeds where camera 2's track is linked to one of the two
        ids = _identities(_room(seed, fragments_overlap=True), ["cam1", "cam2"])
        assert ids[("cam1", FIRST)] != ids[("cam1", SECOND)], seed
        assert ids[("cam2", WHOLE)] in (ids[("cam1", FIRST)], ids[("cam1", SECOND)]), seed
