"""Live cameras keep real time by themselves: paced sources (``--pace``: files read at their frame rate,
as cameras deliver them) that the machine cannot detect frame by frame get a larger detector interval
chosen by the run (``detect_every: auto``), the tracker carries the boxes in between, and every frame is
accounted for: processed (detected or only tracked) or dropped and counted. The intervals and counts
are in events.jsonl, the run stats and trajectories.json; a recording read without ``--pace`` keeps
every frame detected."""

from __future__ import annotations

import json

import cv2
import pytest
from shared_data import DATA  # (tests/ is on sys.path)

from reidpipe.cli import main
from reidpipe.pipeline.engine import cadence
from reidpipe.pipeline.runner import Pipeline

YOLOX = DATA / "models" / "yolox_nano.onnx"
TWIN = DATA / "mtmc" / "twin_2cam"
CAMERAS = 4
FPS = 100  # frames per second of each paced camera: 400 a second in all, past what a CPU detects

pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(not (YOLOX.exists() and TWIN.is_dir()), reason="../shared/data (YOLOX, twin_2cam) is absent"),
]


@pytest.fixture(scope="module")
def fast_camera(tmp_path_factory):
    """Three seconds of the twin's cam1 (people walking) as a 100-fps, 480x270 video."""
    path = tmp_path_factory.mktemp("live") / "fast.mp4"
    cap = cv2.VideoCapture(str(TWIN / "cam1.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 100)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (480, 270))
    for _ in range(3 * FPS):
        ok, img = cap.read()
        assert ok
        out.write(cv2.resize(img, (480, 270)))
    out.release()
    cap.release()
    return path


def test_paced_cameras_the_machine_cannot_follow_get_a_larger_interval_and_every_frame_is_counted(
    fast_camera, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(cadence, "WINDOW_SECONDS", 0.5)  # decide often: the clip lasts 3 s
    out = tmp_path / "out"
    names = [f"cam{i}" for i in range(CAMERAS)]
    args = ["run", "--sources", *[str(fast_camera)] * CAMERAS, "--names", *names, "--detector", str(YOLOX)]
    assert main([*args, "--pace", "--output", str(out), "--no-progress", "--no-crops"]) == 0
    err = capsys.readouterr().err
    assert "reidpipe: detector interval chosen for the live cameras" in err
    assert "reidpipe: detector runs on onnxruntime f32" in err  # the tests' only candidate (conftest.py)

    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    (choice,) = [e for e in events if e["event"] == "runtime_choice"]
    assert (choice["role"], choice["backend"], choice["precision"]) == ("detector", "onnxruntime", "f32")
    rises = [e for e in events if e["event"] == "detect_interval" and e["every"] > e["was"]]
    assert {e["camera"] for e in rises} == set(names)  # every camera's interval rose
    traj = json.loads((out / "trajectories.json").read_text())
    ends = {e["camera"]: e for e in events if e["event"] == "source_end"}
    for source in traj["sources"]:
        det, end = source["detection"], ends[source["camera"]]
        assert det["adaptive"] and max(k for _, k in det["changes"]) >= 2
        assert det["tracked_only_frames"] > 0 and det["detected_frames"] > 0
        # nothing falls behind silently: each frame read was processed or dropped (and counted)
        processed = det["detected_frames"] + det["tracked_only_frames"]
        assert processed == end["frames"] and processed + det["late_frames"] == end["frames_read"] == 3 * FPS
        if det["late_frames"]:
            assert f"{source['camera']}: {det['late_frames']} of {3 * FPS} frames dropped" in err


def test_a_recording_keeps_every_frame_detected(tmp_path, capsys):
    pipe = Pipeline(detections=[str(TWIN / "cam1_det.txt")], output=str(tmp_path / "o"), progress=False, max_frames=30)
    pipe.run([str(TWIN / "cam1.mp4")])
    capsys.readouterr()
    (det,) = pipe.stats["detection"].values()
    assert det == {
        "every": 1,
        "adaptive": False,
        "reason": "",  # public detections: nothing to choose
        "detected_frames": 30,
        "tracked_only_frames": 0,
        "changes": [],
    }
    assert pipe.stats["late_frames"] == {"cam1": 0}


def test_recordings_the_machine_cannot_detect_every_frame_of_are_detected_every_2nd_frame(
    tmp_path, capsys, monkeypatch, fast_camera
):
    """Four 100-fps recordings play 400 frames/s: more than one core's YOLOX takes with the rest of the
    pipeline (``usable_cpus`` is 1 here, so the count holds on any CPU), so ``detect_every: auto``
    detects every 2nd frame of each, says so, and records why; one 10-fps recording keeps every frame."""
    from reidpipe.pipeline.engine import worker

    monkeypatch.setattr(worker, "usable_cpus", lambda: 1)
    names = [f"c{i}" for i in range(CAMERAS)]
    common = {"detector": str(YOLOX), "device": "cpu", "reid": "hist", "progress": False, "max_frames": 12}
    many = Pipeline(names=names, output=str(tmp_path / "many"), **common)
    many.run([str(fast_camera)] * CAMERAS)
    err = capsys.readouterr().err
    assert "detect_every auto: the detector runs on every 2nd frame of the recordings" in err
    assert "400 frames/s" in err
    data = json.loads((tmp_path / "many" / "trajectories.json").read_text())
    for source in data["sources"]:
        det = source["detection"]
        assert det["every"] == 2 and not det["adaptive"] and "more than" in det["reason"]
        assert (det["detected_frames"], det["tracked_only_frames"]) == (6, 6)

    one = Pipeline(output=str(tmp_path / "one"), **common)
    one.run([str(TWIN / "cam1.mp4")])
    assert "every frame of the recordings" in capsys.readouterr().err
    (det,) = one.stats["detection"].values()
    assert det["every"] == 1 and "10 frames/s in all, within" in det["reason"] and det["detected_frames"] == 12
