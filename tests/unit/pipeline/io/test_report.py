"""Pieces of ``reidpipe report`` that need no run: the colours and the operating point's thresholds."""

from __future__ import annotations

import numpy as np
import supervision as sv

from reidpipe.pipeline.io.export import _id_annotators, identity_color
from reidpipe.pipeline.io.report import _threshold


def test_report_colours_are_the_colours_the_videos_draw():
    box_ann, _ = _id_annotators()  # what write_videos annotates with
    for gid in (1, 2, 7, 23, 40):
        img = np.zeros((60, 60, 3), np.uint8)
        d = sv.Detections(
            xyxy=np.array([[10, 10, 50, 50]], np.float32), class_id=np.array([gid]), tracker_id=np.array([gid])
        )
        drawn = box_ann.annotate(img, d)[10, 30]  # a pixel of the box's top edge (BGR)
        assert tuple(int(v) for v in drawn) == identity_color(gid).as_bgr(), gid
    assert identity_color(1).as_hex() != identity_color(2).as_hex()


def test_threshold_of_a_camera_pair_either_way_round_else_the_fixed_one():
    op = {
        "mode": "calibrated",
        "in_camera": {"cam1": {"threshold": 0.9}},
        "cross_camera": {"cam1~cam2": {"threshold": 0.45}},
    }
    assert _threshold(op, "cam2", "cam1") == 0.45 and _threshold(op, "cam1", "cam2") == 0.45
    assert _threshold(op, "cam1", "cam1") == 0.9
    assert (
        _threshold({"mode": "fixed", "fixed_similarity": 0.5, "in_camera": {}, "cross_camera": {}}, "cam1", "cam2")
        == 0.5
    )
    assert _threshold(None, "cam1", "cam2") is None


def test_pieces_of_a_cut_track_keep_their_own_times_in_a_report_from_events():
    from reidpipe.pipeline.io.report import _tracks_from_events

    events = [
        {"event": "track_close", "camera": "cam1", "track": 3, "start_t": 16.0, "end_t": 31.5},
        {
            "event": "track_split",
            "camera": "cam1",
            "track": 3,
            "parts": [3, 1000001],
            "frames": [240],
            "spans": [[16.0, 23.5], [24.0, 31.5]],
            "left_out": 4,
        },
        {"event": "link", "camera": "cam1", "track": 3, "identity": 3, "score": 1.0},
        {"event": "link", "camera": "cam1", "track": 1000001, "identity": 4, "score": 1.0},
    ]
    views = {(v.camera, v.track): v for v in _tracks_from_events(events)}
    assert (views[("cam1", 3)].start_t, views[("cam1", 3)].end_t) == (16.0, 23.5)
    assert (views[("cam1", 1000001)].start_t, views[("cam1", 1000001)].end_t) == (24.0, 31.5)
    assert views[("cam1", 1000001)].identity == 4
