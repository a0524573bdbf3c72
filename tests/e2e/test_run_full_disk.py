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
from scene_args import hist_run_args
from test_run_bad_input import one_line_error, render_walker
from train_args import tiny_train_flags

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
    code = main(hist_run_args([video], [det], out, "--track-lost-frames", "1"))
    err = capfd.readouterr().err
    assert code == 6, err
    line = one_line_error(err)
    # the first write that found the disk full: the events, or the closed tracks' points (kept on the
    # output's disk, pipeline/engine/spill.py)
    assert str(out / "events.jsonl") in line or f"closed tracks' points to {out} (" in line, line
    assert len([s for s in err.splitlines() if s.strip()]) == 1, err
    text = (out / "events.jsonl").read_text()
    assert text and text.endswith("\n")
    events = [json.loads(s) for s in text.splitlines()]  # every line complete
    assert events[0]["event"] == "source_start" and len(events) > 100


@pytest.fixture
def real_small_disk(tmp_path):
    """A real 200 kB tmpfs: video files and checkpoints are written by OpenCV's and torch's own C++
    code, which no ``os.write`` wrapper sees."""
    folder = tmp_path / "disk"
    if not _mount_tmpfs(folder):
        pytest.skip("mounting a tmpfs needs root on Linux (videos and checkpoints bypass os.write)")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def _frames_of(video: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(video))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else -1
    finally:
        cap.release()


def test_save_video_on_a_full_disk_is_exit_6_and_leaves_only_playable_videos(tmp_path, real_small_disk, capfd):
    """Two cameras whose annotated videos do not both fit: the first is written whole, the second
    fails; exit 6 naming it, no partial or unplayable file left, the trajectories kept."""
    cams = [render_walker(tmp_path, name, n=300, size=(240, 320)) for name in ("cam_a", "cam_b")]
    out = real_small_disk / "o"
    argv = ["run", "--no-progress", "--reid", "hist", "--no-crops", "--save-video", "--output", str(out)]
    argv += ["--sources", *(str(v) for v, _ in cams), "--detections", *(str(d) for _, d in cams)]
    code = main(argv)
    err = capfd.readouterr().err
    assert code == 6, err
    line = one_line_error(err)
    assert "cannot write video" in line and str(out / "cam_b.mp4") in line, line
    videos = sorted(p.name for p in out.iterdir() if p.suffix == ".mp4")
    assert videos == ["cam_a.mp4"], videos  # the one that fitted; no .partial.mp4, no broken cam_b.mp4
    assert _frames_of(out / "cam_a.mp4") == 300
    assert (out / "trajectories.json").is_file()


def test_training_onto_a_full_disk_is_exit_6_naming_the_checkpoint(tmp_path, real_small_disk, capfd):
    from reidpipe.reid.datasets.synthetic import write_dataset

    data = write_dataset("market1501", tmp_path / "data", ids=4, test_ids=2, per_cam=2, cams=2, size=(64, 32)).parent
    tiny = tiny_train_flags("stages.*.eval=false", "stages.*.epochs=1", "stages.*.schedule.warmup_epochs=1")
    run = real_small_disk / "run"
    argv = ["train", "--variant", "mfa", "--dataset", "market1501", "--data-root", str(data), "--output", str(run)]
    code = main(argv + tiny)
    err = capfd.readouterr().err
    assert code == 6 and "Traceback" not in err, err
    errors = [s for s in err.splitlines() if s.startswith("reidpipe: error:")]
    assert len(errors) == 1 and f"cannot write checkpoint {run / 'last.pt'}" in errors[0], err
    assert not [p for p in run.iterdir() if p.suffix in (".pt", ".tmp")]  # no half checkpoint
