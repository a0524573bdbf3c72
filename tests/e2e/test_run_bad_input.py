"""`reidpipe run` on bad input: one-line error naming the input, a distinct exit code, no traceback;
a dropped stream next to a good camera (Ctrl-C and the other stop signals: test_run_signals.py)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from reidpipe.cli import main
from reidpipe.pipeline.io.export import read_trajectories


def render_walker(folder: Path, name: str, n: int = 60, size=(120, 160), colour=(30, 60, 200)):
    """A flat background and one 'person' (a coloured block with a head) walking right, plus its det.txt."""
    h, w = size
    video = folder / f"{name}.mp4"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (w, h))
    lines = []
    for i in range(n):
        img = np.full((h, w, 3), 200, np.uint8)
        x = 10 + (i * 100) // max(n - 1, 1)
        cv2.rectangle(img, (x, 30), (x + 24, 100), colour, -1)
        cv2.circle(img, (x + 12, 22), 8, (60, 80, 120), -1)
        vw.write(img)
        lines.append(f"{i + 1},-1,{x},{14},{25},{87},0.95,-1,-1,-1")
    vw.release()
    det = folder / f"{name}_det.txt"
    det.write_text("\n".join(lines) + "\n")
    return video, det


def run_cli(capsys, *args):
    code = main(["run", "--no-progress", *map(str, args)])
    err = capsys.readouterr().err
    return code, err


def one_line_error(err: str) -> str:
    lines = [s for s in err.splitlines() if s.strip()]
    assert "Traceback" not in err
    errors = [s for s in lines if s.startswith("reidpipe: error:")]
    assert len(errors) == 1, err
    return errors[0]


@pytest.fixture(scope="module")
def walker(tmp_path_factory):
    d = tmp_path_factory.mktemp("walker")
    return render_walker(d, "lobby")


def test_missing_source(tmp_path, capsys, walker):
    code, err = run_cli(capsys, "--sources", tmp_path / "nope.mp4", "--output", tmp_path / "o", "--reid", "hist")
    assert code == 3 and "nope.mp4" in one_line_error(err)


def test_video_without_frames(tmp_path, capsys):
    empty = tmp_path / "blank.mp4"
    cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48)).release()
    code, err = run_cli(
        capsys, "--sources", empty, "--output", tmp_path / "o", "--reid", "hist", "--detections", tmp_path / "x.txt"
    )
    assert code == 4 and "blank.mp4" in one_line_error(err)


def test_detections_count_must_match_sources(tmp_path, capsys, walker):
    video, det = walker
    code, err = run_cli(
        capsys, "--sources", video, video, "--names", "a", "b", "--detections", det, "--output", tmp_path / "o"
    )
    assert code == 2 and "--detections" in one_line_error(err)


def test_malformed_det_line(tmp_path, capsys, walker):
    video, det = walker
    bad = tmp_path / "bad_det.txt"
    lines = det.read_text().splitlines()
    lines[4] = "5,-1,12,x,25,87,0.9"
    bad.write_text("\n".join(lines) + "\n")
    code, err = run_cli(capsys, "--sources", video, "--detections", bad, "--output", tmp_path / "o")
    line = one_line_error(err)
    assert code == 5 and "bad_det.txt:5" in line


def test_unwritable_output_folder_fails_before_processing(tmp_path, capsys, walker):
    video, det = walker
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    code, err = run_cli(capsys, "--sources", video, "--detections", det, "--output", blocker / "out")
    assert code == 6 and "taken" in one_line_error(err)


def test_offline_detector_weights_name_the_way_out(tmp_path, capsys, walker, monkeypatch):
    video, _ = walker
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(
        capsys, "--sources", video, "--detector", "reidpipe_absent_weights.pt", "--output", tmp_path / "o"
    )
    line = one_line_error(err)
    assert code == 7 and "reidpipe_absent_weights.pt" in line and "--detections" in line


def test_dropped_stream_finishes_that_camera_and_keeps_the_others_then_exits_11(tmp_path, capsys, walker):
    video, det = walker
    out = tmp_path / "o"
    no_dets = tmp_path / "none_det.txt"
    no_dets.write_text("")
    cfg = tmp_path / "fast_reconnect.yaml"
    cfg.write_text("reconnect_attempts: 2\nreconnect_backoff: 0.01\n")
    code, err = run_cli(
        capsys,
        "--sources",
        video,
        "rtsp://127.0.0.1:9/x",
        "--detections",
        det,
        no_dets,
        "--config",
        cfg,
        "--output",
        out,
    )
    assert code == 11, err  # the lost camera is the exit code (issue 9 item 11), after every output is written
    assert "rtsp://127.0.0.1:9/x (cam1) did not come back" in one_line_error(err)
    warnings = [s for s in err.splitlines() if s.startswith("reidpipe: warning:")]
    assert len(warnings) == 1 and "rtsp://127.0.0.1:9/x" in warnings[0]
    data = read_trajectories(out / "trajectories.json")
    assert [s["camera"] for s in data["sources"]] == ["lobby", "cam1"]
    tracks = [t for i in data["identities"] for t in i["tracks"]]
    assert tracks and {t["camera"] for t in tracks} == {"lobby"}
    assert sum(len(t["points"]) for t in tracks) >= 50
    events = [json.loads(s) for s in (out / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "stream_drop" and e["camera"] == "cam1" for e in events)


def test_missing_webcam_is_named_at_once(tmp_path, capsys, walker):
    video, det = walker
    code, err = run_cli(capsys, "--sources", video, "63", "--detections", det, det, "--output", tmp_path / "o")
    line = one_line_error(err)
    assert code == 3 and "webcam 63" in line
    assert len([s for s in err.splitlines() if s.strip()]) == 1  # no OpenCV backend chatter around it
    assert not (tmp_path / "o" / "trajectories.json").exists()  # checked before any work


def test_run_where_no_source_ever_delivers_a_frame_fails_with_empty_outputs(tmp_path, capsys):
    no_dets = tmp_path / "none_det.txt"
    no_dets.write_text("")
    cfg = tmp_path / "fast_reconnect.yaml"
    cfg.write_text("reconnect_attempts: 1\nreconnect_backoff: 0.01\n")
    out = tmp_path / "o"
    code, err = run_cli(
        capsys, "--sources", "rtsp://127.0.0.1:9/x", "--detections", no_dets, "--config", cfg, "--output", out
    )
    line = one_line_error(err)
    assert code == 4 and "no frame" in line and "rtsp://127.0.0.1:9/x" in line
    assert len([s for s in err.splitlines() if "warning" in s]) == 1  # the stream's own warning
    data = read_trajectories(out / "trajectories.json")
    assert data["identities"] == [] and data["sources"][0]["frames"] == 0
