"""Exporters: trajectories.json schema, atomic writes, validation, events.jsonl, MOT txt, videos."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from reidpipe.errors import MalformedInputError, OutputError
from reidpipe.pipeline.io.export import (
    EventWriter,
    check_output_dir,
    read_trajectories,
    write_mot,
    write_trajectories,
    write_videos,
)
from reidpipe.pipeline.types import Identity, LinkEvidence, SourceInfo, Tracklet, TrackPoint


def tracklet(cam, track, frames, fps=10.0, x=10.0):
    t = Tracklet(cam, track)
    for f in frames:
        t.points.append(TrackPoint(frame=f, t=f / fps, bbox=(x + f, 20.0, x + f + 30.0, 100.0), score=0.9))
    return t


def scene():
    sources = [SourceInfo("cam1", "cam1.mp4", 10.0, 160, 120, 30), SourceInfo("cam2", "cam2.mp4", 10.0, 160, 120, 30)]
    late = Identity(id=1, tracklets=[tracklet("cam1", 2, range(10, 20))])
    early = Identity(
        id=2,
        tracklets=[tracklet("cam1", 1, range(8)), tracklet("cam2", 5, range(12, 25))],
        evidence={("cam2", 5): LinkEvidence(0.83, 0.21, 0.5), ("cam1", 1): LinkEvidence(1.0)},
    )
    return sources, [late, early]


def test_schema_ids_by_first_sighting_and_roundtrip(tmp_path):
    sources, idents = scene()
    p = write_trajectories(tmp_path / "trajectories.json", sources, idents)
    assert sorted(os.listdir(tmp_path)) == ["trajectories.json"]  # no temp file left behind
    data = json.loads(p.read_text())
    assert data["schema"] == "reidpipe.trajectories/1"
    assert data["sources"][0] == {
        "camera": "cam1",
        "uri": "cam1.mp4",
        "fps": 10.0,
        "width": 160,
        "height": 120,
        "frames": 30,
    }
    first, second = data["identities"]
    assert first["id"] == 1 and first["cameras"] == ["cam1", "cam2"]  # the early person is #1
    assert first["first_seen"] == 0.0 and first["last_seen"] == 2.4
    assert [t["track"] for t in first["tracks"]] == [1, 5]
    tr = first["tracks"][1]
    assert set(tr) == {"camera", "track", "link", "points"}
    assert tr["link"] == {"score": 0.83, "margin": 0.21, "gap": 0.5, "runner_up": None}
    assert tr["points"][0] == {"frame": 12, "t": 1.2, "bbox": [22.0, 20.0, 52.0, 100.0], "score": 0.9}
    assert second["id"] == 2 and second["cameras"] == ["cam1"]
    assert read_trajectories(p)["identities"][0]["id"] == 1


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        '{"schema": "other/1", "sources": [], "identities": []}',
        '{"schema": "reidpipe.trajectories/1", "sources": [], "identities": [{"id": 1}]}',
    ],
)
def test_read_trajectories_rejects_bad_files_naming_them(tmp_path, bad):
    p = tmp_path / "broken.json"
    p.write_text(bad)
    with pytest.raises(MalformedInputError, match="broken.json"):
        read_trajectories(p)


def test_unwritable_output_folder_is_an_output_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="file"):
        check_output_dir(blocker / "out")
    assert check_output_dir(tmp_path / "a" / "b").is_dir()


def test_events_are_appended_as_lines(tmp_path):
    w = EventWriter(tmp_path / "events.jsonl")
    w.emit("track_open", camera="c", track=np.int64(3), t=0.5)
    w.emit("link", camera="c", track=3, identity=1, score=0.9, margin=None)
    w.close()
    lines = [json.loads(s) for s in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [r["event"] for r in lines] == ["track_open", "link"] and lines[0]["track"] == 3


def test_mot_txt_and_annotated_video_use_global_ids(tmp_path):
    sources, idents = scene()
    for s in sources:  # render the two source videos
        s.uri = str(tmp_path / f"{s.camera}.src.mp4")
        vw = cv2.VideoWriter(s.uri, cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120))
        for _ in range(30):
            vw.write(np.full((120, 160, 3), 90, np.uint8))
        vw.release()
    out = tmp_path / "out"
    out.mkdir()
    write_mot(out, sources, idents)
    rows = (out / "cam2.txt").read_text().splitlines()
    assert rows[0] == "13,1,22.00,20.00,30.00,80.00,0.9000,-1,-1,-1"  # frame 1-based, global id 1
    assert len((out / "cam1.txt").read_text().splitlines()) == 8 + 10
    paths = write_videos(out, sources, idents)
    assert sorted(p.name for p in paths) == ["cam1.mp4", "cam2.mp4"]
    cap = cv2.VideoCapture(str(out / "cam2.mp4"))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    assert len(frames) == 30
    # frame 15 has the box of identity 1 drawn over the flat background, frame 5 has nothing
    assert np.abs(frames[15].astype(int) - 90).max() > 60
    assert np.abs(frames[5].astype(int) - 90).max() < 30


@pytest.mark.parametrize(
    "source_frames,point_frame,named",
    [(10**12, 1, "sources[0].frames"), (10, 10**12, "points[0] needs frame (an integer from 0 to")],
)
def test_read_trajectories_bounds_frame_numbers(tmp_path, source_frames, point_frame, named):
    doc = {
        "schema": "reidpipe.trajectories/1",
        "sources": [{"camera": "c", "uri": "c.mp4", "fps": 10, "width": 9, "height": 9, "frames": source_frames}],
        "identities": [
            {
                "id": 1,
                "cameras": ["c"],
                "first_seen": 0.0,
                "last_seen": 1.0,
                "tracks": [
                    {
                        "camera": "c",
                        "track": 1,
                        "link": {"score": 1.0, "margin": 0.0},
                        "points": [{"frame": point_frame, "t": 0.1, "bbox": [0, 0, 5, 5], "score": 1.0}],
                    }
                ],
            }
        ],
    }
    p = tmp_path / "far.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(MalformedInputError, match="far.json") as exc:
        read_trajectories(p)
    assert named in str(exc.value)
