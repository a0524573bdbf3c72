"""Stop signals on a real `reidpipe run` subprocess: Ctrl-C, SIGTERM and SIGHUP finalise (exit 130 /
143 / 129 after writing trajectories.json and run_end); a second Ctrl-C while the outputs are being
written loses nothing; an older run's trajectories.json never stays beside a new run's events."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_run_bad_input import one_line_error, render_walker

from reidpipe.pipeline.io.export import read_trajectories


@pytest.fixture(scope="module")
def long_walker(tmp_path_factory):
    return render_walker(tmp_path_factory.mktemp("long"), "long", n=8000)  # ~8 s of work


def start_run(video: Path, det: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reidpipe",
            "run",
            "--sources",
            str(video),
            "--detections",
            str(det),
            "--reid",
            "hist",
            "--output",
            str(out),
            "--no-progress",
            "--track-lost-frames",
            "3000",
            *extra,
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_until_tracking(proc: subprocess.Popen, out: Path) -> None:
    events = out / "events.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if events.exists() and '"track_open"' in events.read_text():
            break
        time.sleep(0.01)
    time.sleep(1.0)  # let the track gather points
    assert proc.poll() is None, "the run ended before it could be stopped"


def assert_finalised(out: Path) -> None:
    data = read_trajectories(out / "trajectories.json")
    (ident,) = data["identities"]
    assert 2 <= len(ident["tracks"][0]["points"]) < 8000
    kinds = [json.loads(s)["event"] for s in (out / "events.jsonl").read_text().splitlines()]
    assert kinds[0] == "source_start" and "track_close" in kinds and kinds[-1] == "run_end"


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_ctrl_c_sigterm_and_sighup_write_valid_outputs_with_everything_seen(tmp_path, long_walker, sig, code):
    video, det = long_walker
    out = tmp_path / "o"
    proc = start_run(video, det, out)
    wait_until_tracking(proc, out)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "interrupted" in one_line_error(err)
    assert_finalised(out)


def test_second_ctrl_c_while_writing_videos_loses_nothing(tmp_path, long_walker):
    video, det = long_walker
    out = tmp_path / "o"
    proc = start_run(video, det, out, "--save-video")
    wait_until_tracking(proc, out)
    proc.send_signal(signal.SIGINT)
    partial = out / ".long.partial.mp4"
    deadline = time.time() + 60
    while not partial.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None and partial.exists(), "the annotated video was not being written"
    proc.send_signal(signal.SIGINT)  # a second Ctrl-C, while finalising
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert_finalised(out)
    assert (out / "long.mp4").is_file() and not partial.exists()


def test_old_trajectories_never_stay_beside_a_new_runs_events(tmp_path, long_walker):
    video, det = long_walker
    out = tmp_path / "o"
    out.mkdir()
    (out / "trajectories.json").write_text('{"schema": "an older run"}\n')
    proc = start_run(video, det, out)
    wait_until_tracking(proc, out)
    proc.kill()  # kill -9: no finalising at all
    proc.communicate(timeout=30)
    assert (out / "events.jsonl").read_text().startswith('{"event":"source_start"')
    assert not (out / "trajectories.json").exists()


def test_sigterm_during_a_gallery_run_finalises_outputs_and_gallery(tmp_path, long_walker):
    """SIGTERM on ``run --gallery``: exit 143, the outputs finalised, the run written to the gallery
    (under the gallery's ids), which then passes ``gallery check``."""
    pytest.importorskip("faiss", reason="faiss-cpu (the [faiss] / [dev] extra) is not installed")
    import sqlite3

    from reidpipe.cli import main

    video, det = long_walker
    out, gallery = tmp_path / "o", tmp_path / "g"
    proc = start_run(video, det, out, "--gallery", str(gallery))
    wait_until_tracking(proc, out)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "interrupted" in one_line_error(err)
    assert_finalised(out)
    (ident,) = read_trajectories(out / "trajectories.json")["identities"]
    with sqlite3.connect(gallery / "gallery.db") as db:
        assert db.execute("SELECT status FROM runs").fetchall() == [("done",)]
        assert db.execute("SELECT identity FROM tracklets").fetchall() == [(ident["id"],)]
    assert main(["gallery", "check", "--gallery", str(gallery)]) == 0
