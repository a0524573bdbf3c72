"""Per-camera tracking: ids, histories, closing after track_lost_frames, every tracker of the package."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from reidpipe.errors import ConfigError
from reidpipe.pipeline.track import TRACKERS, CameraTracker


def dets(boxes, conf=0.9):
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    return sv.Detections(xyxy=b, confidence=np.full(len(b), conf, np.float32), class_id=np.zeros(len(b), int))


@pytest.mark.parametrize("name", TRACKERS)
def test_two_walkers_get_two_tracks_that_close_after_lost_frames(name):
    trk = CameraTracker("cam1", name, lost_frames=5, min_hits=1)
    closed = []
    for i in range(20):
        a = [10 + 3 * i, 20, 50 + 3 * i, 120]
        b = [300 - 3 * i, 30, 340 - 3 * i, 130]
        out = trk.update(dets([a, b]), frame_index=2 * i, t=0.2 * i,
                         image=np.zeros((240, 400, 3), np.uint8))
        assert len(out) <= 2
        closed += trk.pop_closed()
    assert closed == [] and len(trk.open) == 2
    for i in range(20, 26):
        trk.update(dets([]), frame_index=2 * i, t=0.2 * i, image=np.zeros((240, 400, 3), np.uint8))
        closed += trk.pop_closed()
    assert len(closed) == 2 and not trk.open
    ids = sorted(t.track for t in closed)
    assert ids[0] >= 1 and ids[0] != ids[1]
    for t in closed:
        assert t.closed and t.camera == "cam1"
        assert len(t.points) >= 17  # every frame after confirmation
        frames = [p.frame for p in t.points]
        assert frames == sorted(frames) and all(f % 2 == 0 for f in frames)
        assert t.points[-1].t == pytest.approx(0.2 * (t.points[-1].frame // 2))
    left = min(closed, key=lambda t: t.points[0].bbox[0])
    assert left.points[-1].bbox[0] == pytest.approx(10 + 3 * 19, abs=1.0)


def test_close_all_and_unique_keys_when_an_id_returns():
    trk = CameraTracker("c", "bytetrack", lost_frames=2, min_hits=1)
    for i in range(5):
        trk.update(dets([[10, 10, 50, 110]]), i, i / 10)
    trk.update(dets([]), 5, 0.5)
    trk.update(dets([]), 6, 0.6)
    first = trk.pop_closed()
    assert len(first) == 1
    for i in range(7, 10):
        trk.update(dets([[10, 10, 50, 110]]), i, i / 10)
    rest = trk.close_all()
    assert len(rest) == 1 and rest[0].track != first[0].track


def test_unknown_tracker_is_a_config_error():
    with pytest.raises(ConfigError, match="deepsort"):
        CameraTracker("c", "deepsort")
