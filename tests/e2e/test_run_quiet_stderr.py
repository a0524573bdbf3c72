"""stderr holds reidpipe's own lines only: FFmpeg's log lines (a truncated mp4's "partial file", an
unreachable RTSP camera's "Connection refused") are silenced unless --verbose, and what matters is
said in reidpipe's words ("25 corrupt frames skipped"). Real subprocesses: FFmpeg writes to fd 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import pytest
from test_run_bad_input import render_walker


def faststart_copy(src: Path, dst: Path) -> None:
    """Remux with the index (moov) first, as cameras and web videos have it: a truncated copy opens."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for pkt in inp.demux(inp.streams.video[0]):
            if pkt.dts is not None:
                pkt.stream = stream
                out.mux(pkt)


@pytest.fixture(scope="module")
def truncated(tmp_path_factory):
    d = tmp_path_factory.mktemp("trunc")
    video, det = render_walker(d, "walk", n=100)
    full = d / "full.mp4"
    faststart_copy(video, full)
    cut = d / "cut.mp4"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])
    return cut, det


def reidpipe(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCV_", "PYTHONWARNINGS"))}
    return subprocess.run(
        [sys.executable, "-m", "reidpipe", *args], capture_output=True, text=True, env=env, timeout=120
    )


def foreign_lines(err: str) -> list[str]:
    """stderr lines that are not reidpipe's (its messages and its final summary line)."""
    return [s for s in err.splitlines() if s.strip() and not s.startswith("reidpipe: ") and " identities (" not in s]


def test_truncated_video_says_corrupt_frames_in_one_line(tmp_path, truncated):
    cut, det = truncated
    res = reidpipe(
        "run",
        "--sources",
        str(cut),
        "--detections",
        str(det),
        "--reid",
        "hist",
        "--no-progress",
        "--output",
        str(tmp_path / "o"),
    )
    assert res.returncode == 0, res.stderr
    assert foreign_lines(res.stderr) == []
    assert any("corrupt frames skipped" in s and "cut.mp4" in s for s in res.stderr.splitlines())
    verbose = reidpipe(
        "run",
        "--sources",
        str(cut),
        "--detections",
        str(det),
        "--reid",
        "hist",
        "--no-progress",
        "--verbose",
        "--output",
        str(tmp_path / "v"),
    )
    assert any("partial file" in s for s in foreign_lines(verbose.stderr))  # FFmpeg's own, with --verbose


def test_unreachable_rtsp_camera_prints_only_reidpipe_lines(tmp_path):
    cfg = tmp_path / "fast.yaml"
    cfg.write_text("reconnect_attempts: 1\nreconnect_backoff: 0.01\n")
    no_dets = tmp_path / "none.txt"
    no_dets.write_text("")
    res = reidpipe(
        "run",
        "--sources",
        "rtsp://127.0.0.1:9/x",
        "--detections",
        str(no_dets),
        "--config",
        str(cfg),
        "--no-progress",
        "--output",
        str(tmp_path / "o"),
    )
    assert res.returncode == 4, res.stderr  # no frame at all: exit 4 (an empty run) wins over 11
    assert foreign_lines(res.stderr) == [], res.stderr
