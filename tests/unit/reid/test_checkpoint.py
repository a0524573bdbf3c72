"""Checkpoints: atomic writes, safe loading, clear errors (reid/checkpoint.py)."""

from __future__ import annotations

import os

import pytest
import torch

import reidpipe
from reidpipe.errors import CheckpointError, ConfigError, InputNotFoundError
from reidpipe.reid.checkpoint import FORMAT, read_checkpoint

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = reidpipe.create_model("clipreid", num_classes=3, pretrained=False, tiny=True)
    m.set_stage("image")
    return m.eval()


def test_contents_and_training_state(model, tmp_path):
    path = reidpipe.save_checkpoint(
        tmp_path / "run" / "last.pt",
        model,
        epoch=4,
        optimizer={"lr": 3.5e-4, "moments": [torch.ones(2)]},
        note="ok",
    )
    ckpt = read_checkpoint(path)
    assert ckpt["format"] == FORMAT and ckpt["variant"] == "clipreid" and ckpt["stage"] == "image"
    assert ckpt["input_size"] == [64, 32] and ckpt["embed_dim"] == model.embed_dim and ckpt["num_classes"] == 3
    assert ckpt["pixel_mean"] == pytest.approx(list(model.pixel_mean))
    assert ckpt["build_kwargs"] == {"tiny": True}
    assert ckpt["epoch"] == 4 and ckpt["note"] == "ok" and torch.equal(ckpt["optimizer"]["moments"][0], torch.ones(2))
    assert sorted(os.listdir(path.parent)) == ["last.pt"]  # no temporary file left behind


def test_safetensors_round_trip(model, tmp_path):
    path = reidpipe.save_checkpoint(tmp_path / "m.safetensors", model, epoch=2)
    loaded = reidpipe.load_checkpoint(path)
    assert read_checkpoint(path)["epoch"] == 2
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(model.embed(x), loaded.embed(x))


def test_overwrite_is_atomic_replace(model, tmp_path):
    path = tmp_path / "best.pt"
    reidpipe.save_checkpoint(path, model, epoch=1)
    reidpipe.save_checkpoint(path, model, epoch=2)
    assert read_checkpoint(path)["epoch"] == 2 and sorted(os.listdir(tmp_path)) == ["best.pt"]


def test_reserved_and_unsafe_state(model, tmp_path):
    with pytest.raises(ConfigError, match="reserved"):
        reidpipe.save_checkpoint(tmp_path / "x.pt", model, variant="other")
    with pytest.raises(ConfigError, match="cannot be stored"):
        reidpipe.save_checkpoint(tmp_path / "x.pt", model, hook=object())


def test_missing_corrupt_foreign_and_pickled_files(tmp_path):
    with pytest.raises(InputNotFoundError, match="nope.pt"):
        reidpipe.load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(InputNotFoundError, match="folder"):
        reidpipe.load_checkpoint(tmp_path)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="corrupt.pt"):
        reidpipe.load_checkpoint(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": torch.zeros(1)}, foreign)
    with pytest.raises(CheckpointError, match="not a reidpipe checkpoint"):
        reidpipe.load_checkpoint(foreign)
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": FORMAT, "obj": ValueError("x")}, pickled)
    with pytest.raises(CheckpointError, match="pickled"):
        reidpipe.load_checkpoint(pickled)
    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="ONNX"):
        reidpipe.load_checkpoint(onnx_path)


def test_incompatible_contents(model, tmp_path):
    path = reidpipe.save_checkpoint(tmp_path / "m.pt", model)
    ckpt = torch.load(path, weights_only=True)
    ckpt["variant"] = "nonexistent"
    torch.save(ckpt, tmp_path / "unknown.pt")
    with pytest.raises(CheckpointError, match="nonexistent"):
        reidpipe.load_checkpoint(tmp_path / "unknown.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["state_dict"]["classifier.weight"] = torch.zeros(5, 5)
    torch.save(ckpt, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match="do not match"):
        reidpipe.load_checkpoint(tmp_path / "shape.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["format"] = "reidpipe.checkpoint/9"
    torch.save(ckpt, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="checkpoint/9"):
        reidpipe.load_checkpoint(tmp_path / "future.pt")
