"""The bridge a researcher uses: `reidpipe train` -> checkpoint -> `reidpipe export` -> `reidpipe run
--reid-weights` on a multi-camera scene, with the checkpoint and its ONNX export giving the same result."""

from __future__ import annotations

import pytest
import torch
from train_args import tiny_train_flags  # (tests/ is on sys.path)

from reidpipe.cli import main as cli
from reidpipe.pipeline.io.export import read_trajectories
from reidpipe.reid.datasets.synthetic import write_dataset
from reidpipe.samples.scene import make_scene


def _links(data):
    return sorted(sorted((t["camera"], t["track"]) for t in i["tracks"]) for i in data["identities"])


def test_trained_checkpoint_and_its_export_run_the_pipeline_alike(tmp_path, capsys):
    torch.manual_seed(0)
    write_dataset("market1501", tmp_path / "reid", ids=4, test_ids=3, per_cam=2, cams=2, size=(64, 32))
    run = tmp_path / "run"
    assert (
        cli(
            [
                "train",
                "--variant",
                "mfa",
                "--dataset",
                "market1501",
                "--data-root",
                str(tmp_path / "reid"),
                "--output",
                str(run),
                *tiny_train_flags("stages.*.epochs=1"),
            ]
        )
        == 0
    )
    onnx = tmp_path / "mfa.onnx"
    assert cli(["export", "--weights", str(run / "best.pt"), "--output", str(onnx)]) == 0

    scene = make_scene(tmp_path / "scene")
    cams = scene["cameras"]
    common = [
        "run",
        "--sources",
        *[str(scene["videos"][c]) for c in cams],
        "--detections",
        *[str(scene["det"][c]) for c in cams],
        "--no-progress",
    ]
    results = {}
    for name, weights in (("checkpoint", run / "best.pt"), ("onnx", onnx)):
        out = tmp_path / f"out_{name}"
        assert cli(common + ["--reid-weights", str(weights), "--output", str(out)]) == 0, capsys.readouterr().err
        results[name] = read_trajectories(out / "trajectories.json")
    tracks = [t for i in results["checkpoint"]["identities"] for t in i["tracks"]]
    assert len(tracks) >= 8  # the scene's 10 per-camera tracks (5 people per camera), give or take a fragment
    assert _links(results["checkpoint"]) == _links(results["onnx"])
    scores = {name: [t["link"]["score"] for i in d["identities"] for t in i["tracks"]] for name, d in results.items()}
    assert scores["checkpoint"] == pytest.approx(scores["onnx"], abs=1e-3)
