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


def test_export_never_overwrites_its_own_checkpoint(checkpoint, tmp_path, capsys):
    path, _ = checkpoint
    before = path.read_bytes()
    link = tmp_path / "link.pt"
    link.symlink_to(path)
    for output in (path, link):
        assert main(["export", "--weights", str(path), "--output", str(output)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--output" in err[0] and "--weights" in err[0], err
    assert path.read_bytes() == before


@pytest.mark.parametrize("stop", ["signal", "differs"])
def test_an_unverified_model_never_sits_at_the_output(checkpoint, tmp_path, capsys, monkeypatch, stop):
    """A stop signal (SIGTERM arrives as a KeyboardInterrupt) or a failed check during the verification:
    the model being checked is removed and an older file at ``--output`` is left as it was."""
    from reidpipe.reid import export

    path, _ = checkpoint
    out = tmp_path / "model.onnx"
    out.write_bytes(b"yesterday's model")

    def verify(*args, **kwargs):
        if stop == "signal":
            raise KeyboardInterrupt
        return 1.0, (1, 3)

    monkeypatch.setattr(export, "_verify", verify)
    code = main(["export", "--weights", str(path), "--output", str(out)])
    assert code == (130 if stop == "signal" else 8)
    assert out.read_bytes() == b"yesterday's model" and sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
