"""`reidpipe run --reid-weights model.xml`: an OpenVINO IR ReID model end to end (the real Intel
person-reidentification-retail-0277 on a clip of twin_2cam), and the one-line errors of a broken IR."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from reidpipe.cli import main
from reidpipe.pipeline.io.export import read_trajectories
from reidpipe.pipeline.score import score

ov = pytest.importorskip("openvino", reason="the optional package openvino (reidpipe[openvino]) is not installed")

from shared_data import DATA  # noqa: E402  (tests/ is on sys.path)

OMZ = DATA / "models" / "person-reidentification-retail-0277.xml"
TWIN = DATA / "mtmc" / "twin_2cam"


@pytest.mark.real_data
@pytest.mark.skipif(not (OMZ.exists() and TWIN.is_dir()), reason="../shared/data (OMZ model, twin_2cam) is absent")
def test_run_with_the_omz_openvino_model_on_a_real_clip(tmp_path, capsys):
    out = tmp_path / "out"
    cams = ("cam1", "cam2")
    code = main(
        [
            "run",
            "--sources",
            *(str(TWIN / f"{c}.mp4") for c in cams),
            "--detections",
            *(str(TWIN / f"{c}_det.txt") for c in cams),
            "--max-frames",
            "150",
            "--reid-weights",
            str(OMZ),
            "--output",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0, capsys.readouterr().err
    data = read_trajectories(out / "trajectories.json")
    assert data["identities"]
    events = [json.loads(s) for s in (out / "events.jsonl").read_text().splitlines()]
    closes = [e for e in events if e["event"] == "track_close"]
    assert closes and sum(e["embedded"] for e in closes) >= 10  # the IR embedded the tracks' crops
    (model,) = [e for e in events if e["event"] == "model"]  # the precision OpenVINO runs is logged
    assert (model["role"], model["runtime"], model["precision"]) == ("embedder", "openvino", "f32")
    res = score(out / "trajectories.json", {c: TWIN / f"{c}_gt.txt" for c in cams})
    assert res["per_camera"]["cam1"]["pred_tracks"] >= 3


def tiny_video(path: Path, n: int = 12):
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for _ in range(n):
        vw.write(np.full((48, 64, 3), 128, np.uint8))
    vw.release()
    det = path.with_name("det.txt")
    det.write_text("".join(f"{i + 1},-1,10,5,20,40,0.9,-1,-1,-1\n" for i in range(n)))
    return path, det


def tiny_ir(path: Path) -> Path:
    import openvino.opset13 as ops

    data = ops.parameter([1, 3, 8, 4], np.float32, name="data")
    model = ov.Model([ops.reduce_mean(data, ops.constant(np.array([2, 3], np.int64)), keep_dims=False)], [data])
    ov.save_model(model, str(path))
    return path


def run_error(capsys, *args) -> tuple[int, str]:
    code = main(["run", "--no-progress", *map(str, args)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [s for s in err.splitlines() if s.startswith("reidpipe: error:")]
    return code, line


def test_an_ir_without_its_bin_is_named_with_exit_3(tmp_path, capsys):
    video, det = tiny_video(tmp_path / "v.mp4")
    xml = tiny_ir(tmp_path / "reid.xml")
    xml.with_suffix(".bin").unlink()
    code, line = run_error(
        capsys, "--sources", video, "--detections", det, "--reid-weights", xml, "--output", tmp_path / "out"
    )
    assert code == 3 and "reid.bin" in line


def test_a_corrupt_ir_is_a_model_error_with_exit_8(tmp_path, capsys):
    video, det = tiny_video(tmp_path / "v.mp4")
    xml = tmp_path / "reid.xml"
    xml.write_text("<net><layers>not an IR")
    xml.with_suffix(".bin").write_bytes(b"\0" * 16)
    code, line = run_error(
        capsys, "--sources", video, "--detections", det, "--reid-weights", xml, "--output", tmp_path / "out"
    )
    assert code == 8 and "reid.xml" in line
