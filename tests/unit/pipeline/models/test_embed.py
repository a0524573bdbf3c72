"""Embedders: pre-processing, ONNX models (metadata, dynamic and fixed batch), embedder choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from shared_data import DATA  # noqa: E402  (tests/ is on sys.path)

from reidpipe.errors import InputNotFoundError, UsageError
from reidpipe.pipeline.config import PipelineConfig
from reidpipe.pipeline.models.embed import OnnxEmbedder, embedder_kind, load_embedder, preprocess


def linear_model(path: Path, batch, h=8, w=4, dim=6, meta=None, seed=0):
    """(N, 3, h, w) -> Flatten -> MatMul(W): a linear 'ReID model' whose output we can predict."""
    W = np.random.default_rng(seed).normal(size=(3 * h * w, dim)).astype(np.float32)
    inp = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [batch, 3, h, w])
    out = helper.make_tensor_value_info("feat", TensorProto.FLOAT, [batch, dim])
    nodes = [
        helper.make_node("Flatten", ["input.1"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["feat"]),
    ]
    graph = helper.make_graph(nodes, "lin", [inp], [out], [numpy_helper.from_array(W, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for k, v in (meta or {}).items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return W


def crops(n=5, seed=1):
    rng = np.random.default_rng(seed)
    return [
        rng.integers(0, 255, size=(rng.integers(20, 60), rng.integers(10, 30), 3), dtype=np.uint8) for _ in range(n)
    ]


def test_preprocess_resizes_orders_and_normalises():
    img = np.zeros((10, 6, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 10, 20, 30  # B, G, R
    x = preprocess([img], (8, 4), mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0), color="RGB")
    assert x.shape == (1, 3, 8, 4) and x.dtype == np.float32
    assert x[0, :, 0, 0] == pytest.approx([(30 / 255 - 0.5) / 0.5, (20 / 255 - 0.25) / 0.25, 10 / 255])
    xb = preprocess([img], (8, 4), mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0), color="BGR")
    assert xb[0, :, 0, 0] == pytest.approx(x[0, ::-1, 0, 0])


def test_onnx_metadata_sets_size_colour_and_normalisation(tmp_path):
    p = tmp_path / "m.onnx"
    W = linear_model(
        p,
        "N",
        meta={
            "reidpipe.input_size": "8,4",
            "reidpipe.color": "BGR",
            "reidpipe.mean": "0.1,0.2,0.3",
            "reidpipe.std": "0.5,0.5,0.5",
            "reidpipe.embed_dim": "6",
            "reidpipe.variant": "tiny",
        },
    )
    e = OnnxEmbedder(str(p), batch=2)
    assert e.input_size == (8, 4) and e.color == "BGR" and e.mean == (0.1, 0.2, 0.3) and e.dim == 6
    cs = crops(5)
    out = e.embed(cs)
    x = preprocess(cs, (8, 4), (0.1, 0.2, 0.3), (0.5, 0.5, 0.5), "BGR").reshape(5, -1)
    ref = x @ W
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert out.shape == (5, 6) and out.dtype == np.float32
    assert np.allclose(out, ref, atol=1e-4)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # flags win over metadata
    e2 = OnnxEmbedder(str(p), color="RGB", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    assert e2.color == "RGB" and e2.std == (0.229, 0.224, 0.225)


def test_fixed_batch_one_model_runs_in_batches_with_same_result(tmp_path):
    """A batch-1 model embeds in batches through its dynamic-batch copy (issue 11); with --embed-batch 1
    it runs crop by crop; both give what a dynamic-batch model gives."""
    p1, pn = tmp_path / "b1.onnx", tmp_path / "bn.onnx"
    linear_model(p1, 1)
    linear_model(pn, "N")
    e1, en, e1_crop_by_crop = OnnxEmbedder(str(p1)), OnnxEmbedder(str(pn), batch=4), OnnxEmbedder(str(p1), batch=1)
    assert e1.fixed_batch is None and e1.batch == 32 and e1.batch_copy is not None and e1.input_size == (8, 4)
    assert en.fixed_batch is None and e1_crop_by_crop.fixed_batch == 1
    cs = crops(7)
    assert np.allclose(e1.embed(cs), en.embed(cs), atol=1e-5)
    assert np.allclose(e1_crop_by_crop.embed(cs), en.embed(cs), atol=1e-5)
    assert e1.embed([]).shape == (0, 6)


def test_load_embedder_chooses_by_extension(tmp_path):
    p = tmp_path / "m.onnx"
    linear_model(p, "N")
    assert embedder_kind(PipelineConfig()) == "hist"
    assert isinstance(load_embedder(PipelineConfig(reid_weights=str(p))), OnnxEmbedder)
    assert embedder_kind(PipelineConfig(reid_weights="w.safetensors")) == "checkpoint"
    hist = load_embedder(PipelineConfig(reid="hist"))
    f = hist.embed(crops(3))
    assert f.shape == (3, hist.dim) and np.allclose(np.linalg.norm(f, axis=1), 1, atol=1e-5)
    with pytest.raises(InputNotFoundError, match="nothere.onnx"):
        load_embedder(PipelineConfig(reid_weights=str(tmp_path / "nothere.onnx")))
    with pytest.raises(UsageError, match="--reid-weights"):
        load_embedder(PipelineConfig(reid="onnx"))


@pytest.mark.real_data
@pytest.mark.skipif(not (DATA / "models" / "osnet_x0_25_msmt17.onnx").exists(), reason="../shared/data is absent")
def test_real_osnet_batch1_model_embeds_many_crops():
    e = OnnxEmbedder(str(DATA / "models" / "osnet_x0_25_msmt17.onnx"))
    assert e.input_size == (256, 128) and e.dim == 512 and e.fixed_batch is None  # runs its dynamic-batch copy
    cs = crops(3)
    f = e.embed(cs + [cs[0][:, ::-1].copy()])
    assert f.shape == (4, 512) and np.allclose(np.linalg.norm(f, axis=1), 1, atol=1e-4)
    assert f[0] @ f[3] > f[0] @ f[1]  # a mirrored crop is closer than another random crop


def test_reidpipe_checkpoint_embedder_matches_the_model(tmp_path):
    torch = pytest.importorskip("torch")
    from reidpipe.pipeline.models.embed import CheckpointEmbedder
    from reidpipe.reid.checkpoint import save_checkpoint
    from reidpipe.reid.registry import create_model

    torch.manual_seed(0)
    model = create_model("mfa", num_classes=3, pretrained=False, tiny=True).eval()
    path = save_checkpoint(tmp_path / "tiny.safetensors", model)
    cfg = PipelineConfig(reid_weights=str(path), device="cpu", embed_batch=2)
    emb = load_embedder(cfg)
    assert isinstance(emb, CheckpointEmbedder)
    assert emb.input_size == model.input_size and emb.dim == model.embed_dim
    cs = crops(3)
    out = emb.embed(cs)
    x = torch.from_numpy(preprocess(cs, model.input_size, model.pixel_mean, model.pixel_std, "RGB"))
    with torch.inference_mode():
        ref = torch.nn.functional.normalize(model.embed(x).float(), dim=1).numpy()
    assert out.shape == (3, model.embed_dim)
    assert np.allclose(out, ref, atol=1e-4)


@pytest.mark.parametrize(
    "meta,named",
    [
        ({"reidpipe.input_size": "100000,100000"}, "input size 100000x100000"),
        ({"batch": 100000}, "a fixed batch of 100000 crops"),
        ({"reidpipe.mean": "nan,0,0"}, "reidpipe.mean='nan,0,0'"),
        ({"reidpipe.link_threshold": "abc"}, "reidpipe.link_threshold='abc'"),
        ({"reidpipe.link_threshold": "7"}, "is not a cosine"),
    ],
)
def test_onnx_metadata_past_its_bounds_is_a_checkpoint_error(tmp_path, meta, named):
    from reidpipe.errors import CheckpointError

    p = tmp_path / "crafted.onnx"
    linear_model(p, meta.pop("batch", "N"), meta=meta)
    model = onnx.load(str(p))  # sizes left to the metadata: symbolic H, W and D
    for value, axis, name in (
        (model.graph.input[0], 2, "H"),
        (model.graph.input[0], 3, "W"),
        (model.graph.output[0], 1, "D"),
    ):
        value.type.tensor_type.shape.dim[axis].dim_param = name
    onnx.save(model, str(p))
    with pytest.raises(CheckpointError, match="crafted.onnx") as exc:
        OnnxEmbedder(str(p), batch=2, input_size=None if "reidpipe.input_size" in meta else (8, 4))
    assert named in str(exc.value)
