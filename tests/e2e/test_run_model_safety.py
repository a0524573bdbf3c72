"""Models are checked before they run: a detector .pt whose pickle would call anything outside an
Ultralytics model is refused unread (exit 8, naming the file, the global and the way out); a model of
the wrong kind (a detector as ReID model, a ReID model as detector, an empty file, a YOLOX model run
as ultralytics) and a checkpoint with ill-typed metadata are one-line errors with exit 8."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from test_run_bad_input import one_line_error, render_walker

from reidpipe.cli import main
from reidpipe.pipeline.models.safe_weights import unsafe_globals

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "models"
YOLOX, OSNET = DATA / "yolox_nano.onnx", DATA / "osnet_x0_25_msmt17.onnx"
needs_models = pytest.mark.skipif(not (YOLOX.exists() and OSNET.exists()), reason="../shared/data models absent")


class Evil:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def walker(tmp_path_factory):
    return render_walker(tmp_path_factory.mktemp("w"), "lobby", n=8)


@pytest.fixture(scope="module")
def yolo_checkpoint(tmp_path_factory):
    """A real Ultralytics checkpoint, built offline from yolo11n.yaml and saved by ultralytics itself."""
    from ultralytics import YOLO

    path = tmp_path_factory.mktemp("yolo") / "yolo11n_random.pt"
    YOLO("yolo11n.yaml").save(str(path))
    return path


def run_cli(capsys, *args):
    code = main(["run", "--no-progress", *map(str, args)])
    return code, capsys.readouterr().err


def test_a_real_ultralytics_checkpoint_passes_the_allow_list(yolo_checkpoint, tmp_path):
    assert unsafe_globals(yolo_checkpoint) == []
    # what a trainer saves beside the model: numpy scalars and arrays, paths, namespaces
    from ultralytics.utils import IterableSimpleNamespace

    extra = tmp_path / "trainer_like.pt"
    ckpt = torch.load(yolo_checkpoint, weights_only=False)
    ckpt.update(
        best_fitness=np.float64(0.5),
        train_args={"data": Path("/d"), "classes": {0}},
        args=IterableSimpleNamespace(imgsz=640),
        metrics=np.zeros(3),
    )
    torch.save(ckpt, extra)
    assert unsafe_globals(extra) == []


def test_detector_pickle_that_runs_code_is_refused_unrun(tmp_path, capsys, walker):
    video, _ = walker
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model": Evil(marker)}, evil)
    code, err = run_cli(capsys, "--sources", video, "--detector", evil, "--output", tmp_path / "o")
    line = one_line_error(err)
    assert code == 8 and "evil.pt" in line and "system" in line and "--trust-weights" in line and "ONNX" in line
    assert not marker.exists()


@pytest.mark.parametrize("fmt", ["legacy", "raw_pickle"])
def test_checkpoints_that_cannot_be_inspected_need_trust(tmp_path, capsys, walker, fmt):
    video, _ = walker
    marker = tmp_path / "pwned"
    path = tmp_path / f"{fmt}.pt"
    if fmt == "legacy":
        torch.save({"model": Evil(marker)}, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps({"model": Evil(marker)}))
    code, err = run_cli(capsys, "--sources", video, "--detector", path, "--output", tmp_path / "o")
    line = one_line_error(err)
    assert code == 8 and f"{fmt}.pt" in line and "--trust-weights" in line
    assert not marker.exists()


def test_trust_weights_loads_a_legacy_format_ultralytics_model(tmp_path, yolo_checkpoint):
    from reidpipe.errors import CheckpointError
    from reidpipe.pipeline.models.detect import UltralyticsDetector

    legacy = tmp_path / "legacy_yolo.pt"
    torch.save(torch.load(yolo_checkpoint, weights_only=False), legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError):
        UltralyticsDetector(str(legacy))
    det = UltralyticsDetector(str(legacy), trust_weights=True, device="cpu")
    assert len(det.detect(np.zeros((64, 64, 3), np.uint8))) == 0


@needs_models
@pytest.mark.parametrize(
    "flags,code,named",
    [
        (["--reid-weights", YOLOX], 8, "not one embedding per crop"),
        (["--reid-weights", OSNET, "--reid-input-size", "128", "64"], 2, "--reid-input-size 128 64"),
    ],
)
def test_wrong_reid_model_is_refused(tmp_path, capsys, walker, flags, code, named):
    video, det = walker
    got, err = run_cli(capsys, "--sources", video, "--detections", det, *flags, "--output", tmp_path / "o")
    line = one_line_error(err)
    assert got == code and named in line, line


@needs_models
@pytest.mark.parametrize(
    "flags,named",
    [
        (["--detector", OSNET], "not a detector head"),
        (["--detector", "EMPTY"], "no graph outputs"),
        (["--detector", YOLOX, "--detector-kind", "ultralytics"], "--detector-kind yolox"),
    ],
)
def test_wrong_detector_model_is_refused(tmp_path, capsys, walker, flags, named):
    video, _ = walker
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    flags = [empty if f == "EMPTY" else f for f in flags]
    code, err = run_cli(capsys, "--sources", video, *flags, "--output", tmp_path / "o")
    line = one_line_error(err)
    assert code == 8 and named in line, line


@pytest.mark.parametrize(
    "meta,named",
    [
        ({"num_classes": "ten"}, "num_classes='ten'"),
        # past the bounds of reidpipe/limits.py: the model would be built with terabytes of weights
        ({"num_classes": 10**9}, "num_classes=1000000000 (an integer from 1 to 1000000)"),
        ({"input_size": [100000, 100000]}, "input_size=[100000, 100000]"),
        ({"embed_dim": 10**9}, "embed_dim=1000000000"),
        ({"build_kwargs": {"input_size": [100000, 100000]}}, "build_kwargs.input_size=[100000, 100000]"),
    ],
)
def test_checkpoint_with_ill_typed_or_unbounded_metadata_is_exit_8_in_run_and_export(
    tmp_path, capsys, walker, meta, named
):
    from reidpipe.reid.checkpoint import FORMAT

    video, det = walker
    ckpt = tmp_path / "bad.pt"
    good = {"format": FORMAT, "variant": "clipreid", "num_classes": 10, "input_size": [256, 128], "embed_dim": 512}
    torch.save({**good, **meta, "state_dict": {}}, ckpt)
    code, err = run_cli(
        capsys, "--sources", video, "--detections", det, "--reid-weights", ckpt, "--output", tmp_path / "o"
    )
    assert code == 8 and named in one_line_error(err)
    code = main(["export", "--weights", str(ckpt), "--output", str(tmp_path / "m.onnx")])
    assert code == 8 and named in one_line_error(capsys.readouterr().err)
