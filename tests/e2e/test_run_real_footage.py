"""`reidpipe run` on real footage: YOLOX-Nano detector + OSNet ONNX embedder from ../shared/data."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import supervision as sv
from shared_data import DATA  # noqa: E402  (tests/ is on sys.path)

from reidpipe.cli import main
from reidpipe.pipeline.io.export import read_trajectories

VIDEO = DATA / "videos" / "one-by-one-person-detection.mp4"
YOLOX = DATA / "models" / "yolox_nano.onnx"
OSNET = DATA / "models" / "osnet_x0_25_msmt17.onnx"

pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(
        not (VIDEO.exists() and YOLOX.exists() and OSNET.exists()),
        reason="../shared/data (real video and models) is absent",
    ),
]


def test_real_video_yields_valid_trajectories_with_the_people_in_it(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "run",
            "--sources",
            str(VIDEO),
            "--names",
            "office",
            "--max-frames",
            "220",
            "--detector",
            str(YOLOX),
            "--reid-weights",
            str(OSNET),
            "--output",
            str(out),
            "--save-mot",
            "--no-progress",
        ]
    )
    assert code == 0, capsys.readouterr().err
    data = read_trajectories(out / "trajectories.json")
    (source,) = data["sources"]
    detection = source.pop("detection")
    assert source == {"camera": "office", "uri": str(VIDEO), "fps": 10.0, "width": 768, "height": 432, "frames": 1394}
    # one 10-fps recording: the machine detects every frame read (detect_every: auto says why)
    assert "10 frames/s in all, within" in detection.pop("reason")
    assert detection == {
        "every": 1,
        "adaptive": False,
        "detected_frames": 220,
        "tracked_only_frames": 0,
        "changes": [],
        "late_frames": 0,
    }
    tracks = [t for i in data["identities"] for t in i["tracks"]]
    # the first person walks in at about frame 64 (6.4 s) and stays in view until ~frame 190
    assert data["identities"] and data["identities"][0]["id"] == 1
    longest = max(tracks, key=lambda t: len(t["points"]))
    assert len(longest["points"]) >= 80
    assert 5.0 <= data["identities"][0]["first_seen"] <= 8.0
    for p in longest["points"]:
        x1, y1, x2, y2 = p["bbox"]
        assert 0 <= x1 < x2 <= 768 and 0 <= y1 < y2 <= 432 and 0.0 < p["score"] <= 1.0
        assert p["t"] == pytest.approx(p["frame"] / 10.0)
    heights = sorted(p["bbox"][3] - p["bbox"][1] for p in longest["points"])
    assert heights[len(heights) // 2] > 150  # a standing person near the camera, not a small false box
    events = [json.loads(s) for s in (out / "events.jsonl").read_text().splitlines()]
    kinds = {e["event"] for e in events}
    assert {"source_start", "track_open", "track_close", "link", "source_end", "run_end"} <= kinds
    assert any(e["event"] == "track_close" and e["embedded"] > 0 for e in events)  # OSNet embedded crops
    mot = (out / "office.txt").read_text().splitlines()
    assert len(mot) == sum(len(t["points"]) for t in tracks)


def test_real_video_keeps_the_six_people_apart(tmp_path, capsys):
    """The whole video (every 2nd frame): six different people walk in one at a time. Each must come out
    as one track and one identity, first seen when they walk in (times read off the footage)."""
    out = tmp_path / "out"
    code = main(
        [
            "run",
            "--sources",
            str(VIDEO),
            "--stride",
            "2",
            "--detector",
            str(YOLOX),
            "--reid-weights",
            str(OSNET),
            "--output",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0, capsys.readouterr().err
    data = read_trajectories(out / "trajectories.json")
    long = [i for i in data["identities"] if sum(len(t["points"]) for t in i["tracks"]) >= 20]
    assert len(long) == 6, [(i["id"], i["first_seen"], len(i["tracks"])) for i in data["identities"]]
    entries = [6.4, 23.0, 50.7, 74.6, 93.4, 123.8]  # seconds, when each person is first tracked
    for ident, t0 in zip(sorted(long, key=lambda i: i["first_seen"]), entries):
        assert abs(ident["first_seen"] - t0) < 2.0
        assert len(ident["tracks"]) == 1


def test_real_footage_from_an_rtsp_camera(tmp_path, capsys, rtsp_camera):
    """The office footage served live by an RTSP camera (Motion-JPEG over RTP): the first person walking
    in is detected and tracked from the stream; when the camera goes away the run finishes that camera
    with one warning naming the URL, writes valid outputs and exits 11 (a live stream that never came back)."""
    cap = cv2.VideoCapture(str(VIDEO))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 60)  # the first person walks in at about frame 64
    clip = [cap.read()[1] for _ in range(120)]
    cap.release()
    camera = rtsp_camera(lambda connection: clip if connection == 1 else None, fps=10)  # its real rate
    cfg = tmp_path / "fast_reconnect.yaml"
    cfg.write_text("reconnect_attempts: 1\nreconnect_backoff: 0.05\n")
    out = tmp_path / "out"
    code = main(
        [
            "run",
            "--sources",
            camera.url,
            "--names",
            "door",
            "--detector",
            str(YOLOX),
            "--reid-weights",
            str(OSNET),
            "--config",
            str(cfg),
            "--output",
            str(out),
            "--save-video",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 11, err
    assert f"{camera.url} (door) did not come back" in err
    warnings = [s for s in err.splitlines() if "warning" in s]
    lost = [w for w in warnings if "did not come back" in w]
    assert len(lost) == 1 and camera.url in lost[0] and "door" in lost[0]
    # frames the pipeline could not take in time (a loaded machine) are counted in one more line
    assert all("frames dropped, the pipeline was behind the live source" in w for w in warnings if w not in lost)
    data = read_trajectories(out / "trajectories.json")
    (source,) = data["sources"]
    assert (source["camera"], source["uri"], source["width"], source["height"]) == ("door", camera.url, 768, 432)
    assert 100 <= source["frames"] <= 120  # a live source never waits: a late frame may be dropped
    tracks = [t for i in data["identities"] for t in i["tracks"]]
    longest = max(tracks, key=lambda t: len(t["points"]))
    assert len(longest["points"]) >= 60
    heights = sorted(p["bbox"][3] - p["bbox"][1] for p in longest["points"])
    assert heights[len(heights) // 2] > 150  # the person near the camera, as in the file-based run
    # --save-video on a live camera: the raw frames were recorded during the run, then annotated
    video = cv2.VideoCapture(str(out / "door.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == source["frames"]
    p = longest["points"][len(longest["points"]) // 2]
    video.set(cv2.CAP_PROP_POS_FRAMES, p["frame"])
    ok, img = video.read()
    video.release()
    assert ok
    x1, y1, x2, y2 = (int(v) for v in p["bbox"])
    owner = next(i["id"] for i in data["identities"] if longest in i["tracks"])
    expected = np.asarray(sv.ColorPalette.DEFAULT.by_idx(owner).as_bgr())
    edge = np.median(img[y1 + 20 : y2 - 5, max(x1, 0)].astype(int), axis=0)  # the box's left side
    assert np.abs(edge - expected).max() <= 30, (edge, expected)
    assert not list(out.glob(".*raw*"))  # the raw recording is removed once annotated
