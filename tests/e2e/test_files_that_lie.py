"""Inputs whose content contradicts itself, refused with one line before they can mislead: an image
folder whose frames differ in size (public detections and the annotated video are in each frame's own
pixels), and a run folder whose trajectories.json or events.jsonl names a camera that is not a safe
file name (the report would read thumbnails outside the run folder)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from test_run_bad_input import one_line_error, render_walker, run_cli

from reidpipe.cli import main


@pytest.fixture(scope="module")
def walker(tmp_path_factory):
    return render_walker(tmp_path_factory.mktemp("walker"), "lobby", n=12)


def test_an_image_folder_of_two_frame_sizes_is_refused_naming_the_first_odd_frame(tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(8):
        h, w = (240, 320) if i in (5, 6) else (120, 160)
        cv2.imwrite(str(folder / f"{i:04d}.png"), np.full((h, w, 3), 90, np.uint8))
    code, err = run_cli(capsys, "--sources", folder, "--reid", "hist", "--output", tmp_path / "out")
    assert code == 5
    line = one_line_error(err)
    assert "0005.png is 320x240" in line and "160x120" in line, line
    assert not (tmp_path / "out" / "trajectories.json").exists()


@pytest.mark.parametrize("source", ["trajectories.json", "events.jsonl"])
def test_the_report_never_reads_outside_the_run_folder(tmp_path, capsys, walker, source):
    video, det = walker
    out = tmp_path / "run"
    code, err = run_cli(capsys, "--sources", video, "--detections", det, "--reid", "hist", "--output", out)
    assert code == 0, err
    (tmp_path / "x_1_0.jpg").write_bytes(b"\xff\xd8 not the run's")  # what run/thumbs/../../x_1_0.jpg names
    if source == "trajectories.json":
        data = json.loads((out / "trajectories.json").read_text())
        for s in data["sources"]:
            s["camera"] = "../../x"
        for ident in data["identities"]:
            ident["cameras"] = ["../../x"]
            for tr in ident["tracks"]:
                tr["camera"], tr["track"] = "../../x", 1
        (out / "trajectories.json").write_text(json.dumps(data))
    else:
        (out / "trajectories.json").unlink()
        text = (out / "events.jsonl").read_text().replace('"camera":"lobby"', '"camera":"../../x"')
        assert "../../x" in text
        (out / "events.jsonl").write_text(text)
    assert main(["report", str(out)]) == 5
    line = one_line_error(capsys.readouterr().err)
    assert source in line and "'../../x' is not a safe file name" in line, line
    assert not (out / "report.html").exists()
