"""Batch-1 ONNX ReID models get a checked, cached dynamic-batch copy (pipeline/models/onnx_batch.py) and the
pipeline's OnnxEmbedder embeds through it in real batches."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
from shared_data import DATA

OSNET = DATA / "models" / "osnet_x0_25_msmt17.onnx"
TWIN = DATA / "mtmc" / "twin_2cam"


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def batch_one_model(tmp_path):
    """A tiny ReID-like model exported by torch with its batch fixed at 1 (flatten hard-coded as
    reshape(1, -1), like torchreid's OSNet export): (1, 3, 32, 16) -> (1, 6)."""
    pytest.importorskip("torch")
    from batch_one_model import export_batch_one_model

    folder = tmp_path / "models"
    folder.mkdir()
    return export_batch_one_model(folder / "tiny.onnx", (32, 16))


def _crops(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        rng.integers(0, 255, (int(rng.integers(60, 200)), int(rng.integers(20, 80)), 3), np.uint8) for _ in range(n)
    ]


def test_batch_one_copy_is_cached_beside_the_file_and_reused(batch_one_model):
    from reidpipe.pipeline.models.onnx_batch import dynamic_batch_copy, onnx_batch_dim

    before = _sha(batch_one_model)
    first = dynamic_batch_copy(batch_one_model)
    copy = batch_one_model.parent / os.path.basename(first["path"])
    assert first["cached"] is False and copy.is_file() and copy.name.startswith("tiny.batch-dynamic.")
    assert first["max_abs_diff_vs_original"] <= 1e-5 and first["min_cosine_vs_original"] > 0.9999
    assert onnx_batch_dim(copy) == "batch" and onnx_batch_dim(batch_one_model) == 1
    assert _sha(batch_one_model) == before  # the user's file is never modified
    again = dynamic_batch_copy(batch_one_model)
    assert again["cached"] is True and again["path"] == first["path"]
    assert again["max_abs_diff_vs_original"] == first["max_abs_diff_vs_original"]  # the check's figures kept
    # a cached copy that no longer matches (here: truncated) is rebuilt
    copy.write_bytes(b"not an onnx model")
    rebuilt = dynamic_batch_copy(batch_one_model)
    assert rebuilt["cached"] is False and onnx_batch_dim(copy) == "batch"


def test_a_changed_source_gets_a_new_copy(batch_one_model):
    import onnx

    from reidpipe.pipeline.models.onnx_batch import SOURCE_HASH_KEY, dynamic_batch_copy

    first = dynamic_batch_copy(batch_one_model)
    model = onnx.load(str(batch_one_model))
    onnx.helper.set_model_props(model, {"note": "re-exported"})
    onnx.save(model, str(batch_one_model))
    second = dynamic_batch_copy(batch_one_model)
    assert second["cached"] is False and second["path"] != first["path"]
    props = {p.key: p.value for p in onnx.load(second["path"]).metadata_props}
    assert props[SOURCE_HASH_KEY] == _sha(batch_one_model)


def test_read_only_folder_puts_the_copy_in_the_cache_folder(batch_one_model, tmp_path, monkeypatch):
    from reidpipe.pipeline.models.onnx_batch import dynamic_batch_copy

    cache = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    folder = batch_one_model.parent
    folder.chmod(0o555)
    try:
        info = dynamic_batch_copy(batch_one_model)
        assert sorted(p.name for p in folder.iterdir()) == ["tiny.onnx"]
    finally:
        folder.chmod(0o755)
    assert os.path.dirname(info["path"]) == str(cache / "reidpipe" / "onnx") and os.path.isfile(info["path"])


def test_onnx_embedder_embeds_a_batch_one_model_in_batches(batch_one_model):
    from reidpipe.pipeline.models.embed import OnnxEmbedder

    batched = OnnxEmbedder(str(batch_one_model), batch=8, device="cpu")
    assert batched.fixed_batch is None and batched.batch == 8 and batched.batch_copy is not None
    one_by_one = OnnxEmbedder(str(batch_one_model), batch=1, device="cpu")
    assert one_by_one.fixed_batch == 1
    crops = _crops(11)
    got, ref = batched.embed(crops), one_by_one.embed(crops)
    assert got.shape == (11, 6) and np.abs(got - ref).max() < 1e-5
    assert batched.batch_copy["real_crops"]["min_cosine"] > 0.9999  # checked on the first real crops


def test_a_copy_that_disagrees_on_real_crops_falls_back_to_crop_by_crop(batch_one_model, monkeypatch, capsys):
    from reidpipe.pipeline.models import embed
    from reidpipe.pipeline.models.embed import OnnxEmbedder

    emb = OnnxEmbedder(str(batch_one_model), batch=8, device="cpu")
    monkeypatch.setattr(embed, "parity", lambda a, b, x: {"max_abs_diff": 0.5, "min_cosine": 0.2, "crops": 4})
    out = emb.embed(_crops(5))
    assert out.shape == (5, 6) and emb.fixed_batch == 1 and emb.batch == 1
    assert "disagrees on real crops" in capsys.readouterr().err


def _real_crops(n: int) -> list[np.ndarray]:
    """Person crops of twin_2cam cam1 from its public detections (first frames with people)."""
    import cv2

    rows = np.loadtxt(TWIN / "cam1_det.txt", delimiter=",")
    rows = rows[rows[:, 6] > 0.6]
    cap = cv2.VideoCapture(str(TWIN / "cam1.mp4"))
    crops, frame_no = [], 0
    for frame_1based in sorted({int(f) for f in rows[:, 0]})[::10]:
        while frame_no < frame_1based:
            ok, image = cap.read()
            frame_no += 1
            assert ok
        for _, _, x, y, w, h, *_ in rows[rows[:, 0] == frame_1based]:
            x1, y1 = max(0, int(x)), max(0, int(y))
            crops.append(image[y1 : int(y + h), x1 : int(x + w)].copy())
        if len(crops) >= n:
            break
    cap.release()
    return crops[:n]


def test_real_osnet_copy_matches_the_original_on_real_crops(tmp_path):
    if not OSNET.is_file() or not TWIN.is_dir():
        pytest.skip(f"real OSNet model or twin_2cam not found under {DATA}")
    from reidpipe.pipeline.models.embed import IMAGENET_MEAN, IMAGENET_STD, OnnxEmbedder, preprocess
    from reidpipe.pipeline.models.onnx_batch import make_dynamic_batch

    crops = _real_crops(12)
    assert len(crops) == 12
    x = preprocess(crops, (256, 128), IMAGENET_MEAN, IMAGENET_STD, "RGB")
    info = make_dynamic_batch(OSNET, tmp_path / "osnet_dyn.onnx", inputs=x)
    assert info["checked_crops"] == 12 and info["reshapes_rewritten"] >= 1
    assert info["max_abs_diff_vs_original"] < 1e-4 and info["min_cosine_vs_original"] > 0.9999
    batched = OnnxEmbedder(str(OSNET), batch=32, device="cpu")
    assert batched.fixed_batch is None and not batched.batch_copy["path"].startswith(str(OSNET.parent))
    got, ref = batched.embed(crops), OnnxEmbedder(str(OSNET), batch=1, device="cpu").embed(crops)
    assert got.shape == (12, 512) and float((got * ref).sum(1).min()) > 0.9999 and np.abs(got - ref).max() < 1e-4
