"""A persistent gallery over the real twin_2cam (real person crops, public detections, OSNet): cam1
in one run and cam2 in another, one gallery, overlapping in time as in the twin (and cam2 a day later),
score as one two-camera run; a crop of a known person finds that identity first; a second run on the gallery is refused while
one runs; a run killed with SIGKILL leaves a gallery that opens and passes its integrity check."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from shared_data import DATA, public_detection_run  # noqa: E402  (tests/ is on sys.path)

from reidpipe.cli import main
from reidpipe.errors import GalleryLockedError, GalleryMismatchError
from reidpipe.pipeline.io.export import read_trajectories
from reidpipe.pipeline.score import score

TWIN = DATA / "mtmc" / "twin_2cam"
OSNET = DATA / "models" / "osnet_x0_25_msmt17.onnx"
START = "2026-11-30T09:00:00+00:00"
NEXT_DAY = "2026-12-01T09:00:00+00:00"  # beyond any linking window: identities continued by appearance

pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(not (TWIN.is_dir() and OSNET.exists()), reason="../shared/data (twin_2cam, OSNet) is absent"),
]


def run_args(cams: list[str], out: Path, *flags: str) -> list[str]:
    return public_detection_run("twin_2cam", cams, out, "--no-crops", *flags)


GT = [str(TWIN / "cam1_gt.txt"), str(TWIN / "cam2_gt.txt")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The single two-camera run, and cam1 then cam2 into one gallery."""
    tmp = tmp_path_factory.mktemp("gallery")
    assert main(run_args(["cam1", "cam2"], tmp / "single")) == 0
    for k, cam in enumerate(["cam1", "cam2"], 1):
        assert main(run_args([cam], tmp / f"run{k}", "--gallery", str(tmp / "g"), "--start-time", START)) == 0
        if k == 1:  # the gallery after cam1 only, for cam2 a day later
            shutil.copytree(tmp / "g", tmp / "g_day")
    assert main(run_args(["cam2"], tmp / "run2_day", "--gallery", str(tmp / "g_day"), "--start-time", NEXT_DAY)) == 0
    return tmp


@pytest.mark.slow
def test_two_runs_on_one_gallery_score_as_the_single_run(runs, capsys):
    single = score(runs / "single" / "trajectories.json", GT)["multi_camera"]["IDF1"]
    preds = [str(runs / "run1" / "trajectories.json"), str(runs / "run2" / "trajectories.json")]
    capsys.readouterr()
    assert main(["score", "--pred", *preds, "--gt", *GT, "--json"]) == 0
    merged = json.loads(capsys.readouterr().out)
    assert merged["multi_camera"]["IDF1"] >= single - 0.03, (merged["multi_camera"], single)
    assert merged["links"]["tp"] > 0  # identities that cam2's run continued from cam1's
    # cam2 a day later, beyond the linking window: the linker's rule by appearance alone (no transit
    # evidence across days), as the linker's own ablation without it (0.812 on twin_2cam)
    day = score([preds[0], str(runs / "run2_day" / "trajectories.json")], GT)
    assert day["multi_camera"]["IDF1"] >= 0.81 and day["links"]["precision"] >= 0.9, (day["multi_camera"], day["links"])
    run2 = read_trajectories(preds[1])
    assert {s["camera"] for s in run2["sources"]} == {"cam2"}  # only this run's tracks are written
    assert all(t["camera"] == "cam2" for i in run2["identities"] for t in i["tracks"])


@pytest.mark.slow
def test_a_crop_of_a_known_person_finds_that_identity_first(runs, tmp_path, capsys):
    import cv2

    run2 = read_trajectories(runs / "run2" / "trajectories.json")
    ident = max(run2["identities"], key=lambda i: len(i["tracks"][0]["points"]))
    point = [p for p in ident["tracks"][0]["points"] if not p.get("interpolated")][
        len(ident["tracks"][0]["points"]) // 2
    ]
    cap = cv2.VideoCapture(str(TWIN / "cam2.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, point["frame"])
    ok, frame = cap.read()
    assert ok
    x1, y1, x2, y2 = (int(v) for v in point["bbox"])
    cv2.imwrite(str(tmp_path / "crop.jpg"), frame[y1:y2, x1:x2])
    capsys.readouterr()
    assert main(["search", "--gallery", str(runs / "g"), "--image", str(tmp_path / "crop.jpg"), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert results[0]["identity"] == ident["id"], results[:2]
    assert "cam2" in results[0]["cameras"]
    other = tmp_path / "other.onnx"  # not the gallery's model: refused before anything is embedded
    other.write_bytes(OSNET.read_bytes()[:-1] + b"\0")
    code = main(
        ["search", "--gallery", str(runs / "g"), "--image", str(tmp_path / "crop.jpg"), "--reid-weights", str(other)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == GalleryMismatchError.exit_code and len(err) == 1 and "holds embeddings of onnx c61799fb" in err[0], (
        err
    )


@pytest.mark.slow
def test_second_run_refused_then_a_killed_run_leaves_a_sound_gallery(runs, tmp_path, capsys):
    gallery = runs / "g"
    # read at the clip's own frame rate (--pace): the run lasts the clip's minute, so it is still
    # running, holding the lock, when the second run starts, however fast this machine tracks
    cmd = [sys.executable, "-m", "reidpipe", *run_args(["cam1"], tmp_path / "a", "--gallery", str(gallery), "--pace")]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        events = tmp_path / "a" / "events.jsonl"
        deadline = time.time() + 120
        while time.time() < deadline and not (events.exists() and "track_close" in events.read_text()):
            time.sleep(0.2)
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
        second = subprocess.run(
            [sys.executable, "-m", "reidpipe", *run_args(["cam2"], tmp_path / "b", "--gallery", str(gallery))],
            capture_output=True,
            text=True,
        )
        assert second.returncode == GalleryLockedError.exit_code
        err = second.stderr.strip().splitlines()
        assert len(err) == 1 and "in use by another process" in err[0], err
        os.kill(first.pid, signal.SIGKILL)  # mid-run: nothing written to the gallery but its run row
    finally:
        first.kill()
        first.wait()
    capsys.readouterr()
    assert main(["gallery", "check", "--gallery", str(gallery)]) == 0
    assert main(["gallery", "info", "--gallery", str(gallery), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.splitlines()[-1])
    written = sum(
        len(i["tracks"])
        for k in (1, 2)
        for i in read_trajectories(runs / f"run{k}" / "trajectories.json")["identities"]
    )
    assert info["runs"] == {"done": 2, "running": 1} and info["tracklets"] == written  # the killed run's: none
    assert main(["gallery", "prune", "--gallery", str(gallery), "--older-than", "3650d"]) == 0  # takes the lock
    assert main(["gallery", "info", "--gallery", str(gallery), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["runs"] == {"done": 2, "aborted": 1}
