"""`reidpipe export`: checkpoint -> ONNX with the metadata the pipeline reads."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

import reidpipe
from reidpipe.cli import main
from reidpipe.reid.export import read_onnx_metadata

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = reidpipe.create_model("clipreid", num_classes=3, pretrained=False, tiny=True, backbone="ViT-B-16")
    model.set_stage("image")
    return reidpipe.save_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt", model), model.eval()


def test_cli_export_writes_a_model_that_matches_embed(checkpoint, tmp_path, capsys):
    path, model = checkpoint
    out = tmp_path / "onnx" / "model.onnx"
    assert main(["export", "--weights", str(path), "--output", str(out), "--batch-size", "2"]) == 0
    printed = capsys.readouterr().out
    assert "max abs diff" in printed and str(out) in printed
    meta = read_onnx_metadata(out)
    assert meta["reidpipe.input_size"] == "64,32" and meta["reidpipe.color"] == "RGB"
    assert meta["reidpipe.mean"] == "0.5,0.5,0.5" and meta["reidpipe.std"] == "0.5,0.5,0.5"
    assert meta["reidpipe.embed_dim"] == str(model.embed_dim) and meta["reidpipe.variant"] == "clipreid"
    # the pipeline's convention: pixels / 255, then (x - mean) / std, then the model
    pixels = np.random.default_rng(0).integers(0, 256, size=(5, 64, 32, 3)).astype(np.float32)
    mean = np.array([float(v) for v in meta["reidpipe.mean"].split(",")], dtype=np.float32)
    std = np.array([float(v) for v in meta["reidpipe.std"].split(",")], dtype=np.float32)
    images = ((pixels / 255.0 - mean) / std).transpose(0, 3, 1, 2).copy()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    assert [o.name for o in session.get_outputs()] == ["features"]
    got = session.run(["features"], {"images": images})[0]
    with torch.no_grad():
        ref = model.embed(torch.from_numpy(images)).numpy()
    assert got.shape == (5, model.embed_dim) and np.abs(got - ref).max() < 1e-4


def test_cli_errors_name_the_input(checkpoint, tmp_path, capsys):
    assert main(["export", "--weights", str(tmp_path / "missing.pt"), "--output", str(tmp_path / "m.onnx")]) == 3
    assert "missing.pt" in capsys.readouterr().err
    path, _ = checkpoint
    assert main(["export", "--weights", str(path), "--output", str(tmp_path / "m.onnx"), "--opset", "3"]) == 10
    assert "opset" in capsys.readouterr().err
