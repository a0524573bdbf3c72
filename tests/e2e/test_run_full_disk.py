"""A disk that fills up during `reidpipe run`: exit 6 with one line naming the file, no traceback, and
every line of events.jsonl a complete JSON object.

The output folder is a real 200 kB tmpfs when the test may mount one (root on Linux); elsewhere it is
an ordinary folder whose writes fail with ENOSPC past 200 kB (``os.write`` wrapped)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_run_bad_input import one_line_error, render_walker

from reidpipe.cli import main

LIMIT = 200 * 1024


def _mount_tmpfs(folder: Path) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    folder.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={LIMIT}", "tmpfs", str(folder)], capture_output=True)
    return res.returncode == 0


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    folder = tmp_path / "disk"
    if _mount_tmpfs(folder):
        yield folder
        subprocess.run(["umount", "-l", str(folder)], check=False)
        return
    folder.mkdir(exist_ok=True)  # no tmpfs here: ENOSPC past LIMIT bytes written under the folder
    real_write, written = os.write, [0]

    def write(fd, data):
        try:
            inside = os.readlink(f"/proc/self/fd/{fd}").startswith(str(folder))
        except OSError:
            inside = False
        if inside:
            if written[0] + len(data) > LIMIT:
                n = LIMIT - written[0]
                if n <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                data = bytes(data)[:n]
            written[0] += len(data)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    yield folder


def many_short_tracks(folder: Path, frames: int) -> Path:
    """A det.txt where a new person appears every 12 frames for 11 frames (1.1 s at 10 fps: past the
    tracker's 1 s minimum) at a new place: ~3 events (track_open, track_close, link) per 12 frames, far
    more than 200 kB of events over the video."""
    lines = []
    for f in range(frames):
        k, phase = divmod(f, 12)
        if phase < 11:
            x = 5 + (k % 3) * 40
            lines.append(f"{f + 1},-1,{x},{14},{25},{87},0.95,-1,-1,-1")
    det = folder / "many_det.txt"
    det.write_text("\n".join(lines) + "\n")
    return det


def test_full_disk_during_run_is_exit_6_with_complete_event_lines(tmp_path, small_disk, capfd):
    video, _ = render_walker(tmp_path, "long", n=8000)
    det = many_short_tracks(tmp_path, 8000)
    out = small_disk / "o"
    code = main(
        [
            "run",
            "--no-progress",
            "--sources",
            str(video),
            "--detections",
            str(det),
            "--reid",
            "hist",
            "--track-lost-frames",
            "1",
            "--output",
            str(out),
        ]
    )
    err = capfd.readouterr().err
    assert code == 6, err
    line = one_line_error(err)
    assert str(out / "events.jsonl") in line
    assert len([s for s in err.splitlines() if s.strip()]) == 1, err
    text = (out / "events.jsonl").read_text()
    assert text and text.endswith("\n")
    events = [json.loads(s) for s in text.splitlines()]  # every line complete
    assert events[0]["event"] == "source_start" and len(events) > 100
