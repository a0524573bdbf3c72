"""`reidpipe run` -> `reidpipe adapt` -> `reidpipe run`: the pseudo-identities mined from a run are
one person each by the scene's ground truth, two tracks a camera saw at once are never one of them,
the mined set reads as a Market-1501 data set, training stops and resumes through the training
engine, and the adapted model runs in the pipeline."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import pytest
import torch
from scene_args import scene_run_args  # (tests/ is on sys.path)
from torch import nn

from reidpipe.cli import main as cli
from reidpipe.pipeline.io.export import read_trajectories
from reidpipe.reid.backbones.osnet import build_osnet
from reidpipe.reid.datasets.readers import build_dataset
from reidpipe.reid.datasets.synthetic import write_dataset
from reidpipe.samples.scene import make_scene

TINY_TRAINING = [
    "--set",
    "stages.*.p=3",
    "--set",
    "stages.*.k=2",
    "--set",
    "stages.*.epochs=2",
    "--set",
    "data.workers=0",
    "--set",
    "log.progress=false",
    "--set",
    "log.tensorboard=false",
    "--set",
    "threads=1",
    "--device",
    "cpu",
]


class _Embedder(nn.Module):
    """An OSNet-x0.25 trunk at 64 x 32 (a small stand-in for a real ReID ONNX model)."""

    def __init__(self):
        super().__init__()
        self.net = build_osnet(0.25).eval()
        with torch.no_grad():  # trained-looking weights: the exporter merges equal (all-zero) tensors
            for t in self.net.state_dict().values():
                if t.is_floating_point():
                    t.add_(torch.rand_like(t) * 0.02)

    def forward(self, x):
        v = self.net.global_avgpool(self.net.feature_map(x))
        return v.flatten(1)


@pytest.fixture(scope="module")
def scene_run(tmp_path_factory):
    """The two-camera sample scene run with public detections and the colour/texture descriptor (it
    links this scene's people right), and a small ONNX embedder to adapt."""
    root = tmp_path_factory.mktemp("adapt")
    scene = make_scene(root / "scene")
    run = root / "run"
    assert cli(scene_run_args(scene, run)) == 0
    return scene, run, tiny_onnx(root / "tiny_reid.onnx")


def tiny_onnx(path: Path) -> Path:
    """A small ONNX ReID embedder (OSNet-x0.25 trunk, 64 x 32 input) for ``--init``."""
    torch.manual_seed(0)
    torch.onnx.export(
        _Embedder().eval(), (torch.randn(2, 3, 64, 32),), str(path), input_names=["images"],
        dynamic_axes={"images": {0: "n"}}, opset_version=13, dynamo=False,
    )  # fmt: skip
    return path


def _gt(scene) -> dict[str, dict[int, list[tuple[int, list[float]]]]]:
    out: dict[str, dict[int, list[tuple[int, list[float]]]]] = {}
    for cam in scene["cameras"]:
        rows: dict[int, list[tuple[int, list[float]]]] = defaultdict(list)
        for line in Path(scene["gt"][cam]).read_text().splitlines():
            f, i, x, y, w, h = (float(v) for v in line.split(",")[:6])
            rows[int(f) - 1].append((int(i), [x, y, x + w, y + h]))
        out[cam] = rows
    return out


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union if union > 0 else 0.0


def _person(gt, cam: str, frame: int, box: list[float]) -> int | None:
    best = max(gt[cam].get(frame, []), key=lambda r: _iou(r[1], box), default=None)
    return best[0] if best is not None and _iou(best[1], box) >= 0.5 else None


@pytest.mark.slow
def test_run_adapt_run(scene_run, tmp_path, capsys):
    scene, run, onnx = scene_run
    out = tmp_path / "adapted"
    labelled = write_dataset("market1501", tmp_path / "labelled", ids=6, test_ids=2, per_cam=2, cams=2, size=(64, 32))
    args = ["adapt", str(run), "--output", str(out), "--init", str(onnx), "--holdout", "0.5", *TINY_TRAINING]
    args += ["--source-dataset", "market1501", "--source-root", str(labelled), "--source-ids", "4"]
    # mine only; then train on the set as it is (a time-boxed invocation stops after one epoch), and
    # --resume finishes from last.pt through the same engine
    assert cli([*args, "--mine-only"]) == 0, capsys.readouterr().err
    assert (out / "dataset" / "crops.csv").is_file() and not (out / "config.yaml").exists()
    assert cli([*args, "--resume", "--set", "stop_after_epochs=1"]) == 0, capsys.readouterr().err
    assert (out / "last.pt").is_file() and not (out / "model.onnx").exists()
    assert cli([*args, "--resume"]) == 0, capsys.readouterr().err
    report = json.loads((out / "adapt.json").read_text())
    mined = report["mined"]

    # every pseudo-identity is one person of the ground truth; crops.csv says where each crop was cut
    gt = _gt(scene)
    people: dict[str, set] = defaultdict(set)
    tracks: dict[str, set] = defaultdict(set)
    with open(out / "dataset" / "crops.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == mined["crops"] > 0
    for r in rows:
        pid = Path(r["file"]).name.split("_")[0]
        box = [float(r[k]) for k in ("x1", "y1", "x2", "y2")]
        people[pid].add(_person(gt, r["camera"], int(r["frame"]), box))
        tracks[pid].add((r["camera"], int(r["track"])))
        assert (out / "dataset" / r["file"]).is_file()
    assert all(len(p) == 1 and None not in p for p in people.values()), people
    assert len(people) == mined["identities"] >= 5
    assert sum(len({c for c, _ in t}) > 1 for t in tracks.values()) >= 2  # people joined across cameras

    # two tracks of one camera that coexist are never one pseudo-identity
    span = {
        (t["camera"], t["track"]): (t["points"][0]["frame"], t["points"][-1]["frame"])
        for i in read_trajectories(run / "trajectories.json")["identities"]
        for t in i["tracks"]
    }
    for members in tracks.values():
        for a in members:
            for b in members:
                if a < b and a[0] == b[0]:
                    assert span[a][1] < span[b][0] or span[b][1] < span[a][0], (a, b)

    # the mined set is a Market-1501 data set as the training engine reads it
    ds = build_dataset("market1501", out / "dataset")
    assert ds.num_train_pids == mined["train_identities"] and ds.query and ds.gallery
    # 4 labelled people (4 images each) trained on beside the mined ones, kept through --resume
    assert report["source"] == {"dataset": "market1501", "root": str(labelled.resolve()), "ids": 4, "crops": 16}
    assert f"  {'train':<8} | {mined['train_identities'] + 4:5d} |" in (out / "train.log").read_text()
    training = report["training"]
    assert training["epochs"] == [2] and 0.0 <= training["after"]["mAP"] <= 1.0 and training["before"]

    # the adapted model runs in the pipeline
    again = tmp_path / "again"
    flags = ["--reid", "onnx", "--reid-weights", str(out / "model.onnx")]
    argv = scene_run_args(scene, again)
    argv = argv[: argv.index("--reid")] + flags + argv[argv.index("--reid") + 2 :]
    assert cli(argv) == 0, capsys.readouterr().err
    data = read_trajectories(again / "trajectories.json")
    assert data["identities"] and data["embedder"]["settings"]["reid_weights"] == str((out / "model.onnx").resolve())
