"""Contract of every registered ReID variant (tiny configuration, CPU, no weights downloaded).

Parametrised over the registry: a variant registered in ``reid/variants/`` is covered automatically.
Per variant: forward in every stage, backward with the variant's default loss set of that stage (every
parameter that trains in the stage gets a non-zero gradient), ``embed`` gives unit vectors of ``embed_dim``,
a checkpoint round-trip gives identical embeddings, and the ONNX export matches ``embed``.

Per-stage default losses come from ``model.default_losses(stage)`` (``DEFAULT_LOSSES`` class
attribute convention, reid/base.py).
"""

from __future__ import annotations

import math

import pytest
import torch

import reidpipe
from reidpipe.reid.base import ReIDModel
from reidpipe.reid.losses import build_loss_set
from reidpipe.reid.output import ReIDOutput
from reidpipe.reid.registry import list_variants

NUM_CLASSES = 4
LABELS = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
CAMS = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
EXPECTED = {"clipreid", "mscsa_tgi", "can_cma", "pivl", "mfa"}

torch.set_num_threads(1)


def _batch(model: ReIDModel, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    h, w = model.input_size
    images = torch.randn(len(LABELS), 3, h, w, generator=gen)
    parsing = torch.randint(0, 20, (len(LABELS), h, w), generator=gen)  # LIP-style part labels (π-VL)
    return {"images": images, "labels": LABELS.clone(), "cams": CAMS.clone(), "parsing": parsing}


_MODELS: dict[str, ReIDModel] = {}


def _model(variant: str) -> ReIDModel:
    if variant not in _MODELS:
        torch.manual_seed(0)
        model = reidpipe.create_model(variant, num_classes=NUM_CLASSES, pretrained=False, tiny=True)
        # Untrained models zero-initialise some gains (open_clip's residual BN, attention scales such as
        # CPAA's alpha/beta), which blocks gradient flow to the layers behind them. Give every all-zero
        # parameter small random values so the gradient check below sees every path of the graph.
        with torch.no_grad():
            for p in model.parameters():
                if not p.any():
                    p.normal_(0.0, 0.02)
        _MODELS[variant] = model
    return _MODELS[variant]


def test_all_five_variants_are_registered():
    assert EXPECTED <= set(reidpipe.list_variants()), f"missing: {sorted(EXPECTED - set(reidpipe.list_variants()))}"


@pytest.mark.parametrize("variant", list_variants())
def test_builds_with_declared_attributes(variant):
    model = _model(variant)
    assert isinstance(model, ReIDModel)
    assert model.variant == variant
    assert model.num_classes == NUM_CLASSES
    assert len(model.input_size) == 2 and min(model.input_size) >= 16
    assert len(model.pixel_mean) == 3 and len(model.pixel_std) == 3 and min(model.pixel_std) > 0
    assert model.embed_dim > 0
    assert model.STAGES and model.stage in model.STAGES
    assert model.build_kwargs.get("tiny") is True


@pytest.mark.parametrize("variant", list_variants())
def test_forward_and_backward_in_every_stage(variant):
    model = _model(variant)
    batch = _batch(model)
    for stage in model.STAGES:
        model.set_stage(stage)
        model.train()
        loss_cfg = model.default_losses(stage)
        assert loss_cfg, f"{variant}: no default losses for stage {stage!r}"
        losses = build_loss_set(loss_cfg, model=model)
        trainable = model.trainable_parameters(stage)
        assert trainable, f"{variant}: nothing trains in stage {stage!r}"
        model.zero_grad(set_to_none=True)
        losses.zero_grad(set_to_none=True)
        out = model(batch["images"], batch["labels"], batch["cams"], parsing=batch["parsing"])
        assert isinstance(out, ReIDOutput)
        assert out.features.shape[0] == len(LABELS)
        result = losses(out, batch)
        assert result.total.dim() == 0 and math.isfinite(float(result.total.detach())), (
            f"{variant}/{stage}: {result.terms}"
        )
        assert set(result.terms) == set(losses.names)
        result.total.backward()
        missing = [name for name, p in trainable if p.grad is None or not p.grad.any()]
        assert not missing, (
            f"{variant}/{stage}: no (or all-zero) gradient for {missing[:8]} ({len(missing)} of {len(trainable)})"
        )
        for name, p in losses.trainable_parameters():
            assert p.grad is not None, f"{variant}/{stage}: loss parameter {name} got no gradient"
    model.set_stage(model.STAGES[-1])


@pytest.mark.parametrize("variant", list_variants())
def test_embed_gives_unit_vectors_independent_of_batch(variant):
    model = _model(variant)
    model.eval()
    images = _batch(model, seed=1)["images"][:5]
    with torch.no_grad():
        emb = model.embed(images)
        single = model.embed(images[2:3])
    assert emb.shape == (5, model.embed_dim)
    assert torch.allclose(emb.norm(dim=1), torch.ones(5), atol=1e-5)
    assert torch.allclose(single[0], emb[2], atol=1e-5), "embedding depends on the rest of the batch in eval mode"


@pytest.mark.parametrize("variant", list_variants())
def test_checkpoint_round_trip_gives_identical_embeddings(variant, tmp_path):
    model = _model(variant)
    model.eval()
    images = _batch(model, seed=2)["images"][:3]
    with torch.no_grad():
        before = model.embed(images)
    path = reidpipe.save_checkpoint(tmp_path / f"{variant}.pt", model, epoch=7, metrics={"mAP": 0.5})
    loaded = reidpipe.load_checkpoint(path)
    assert loaded.variant == variant and loaded.stage == model.stage
    assert loaded.embed_dim == model.embed_dim and tuple(loaded.input_size) == tuple(model.input_size)
    assert not loaded.training
    with torch.no_grad():
        after = loaded.embed(images)
    assert torch.equal(before, after) or (before - after).abs().max().item() < 1e-6


@pytest.mark.parametrize("variant", list_variants())
def test_onnx_export_matches_embed(variant, tmp_path):
    import onnxruntime as ort

    from reidpipe.reid.export import export_onnx, read_onnx_metadata

    model = _model(variant)
    model.eval()
    report = export_onnx(model, tmp_path / f"{variant}.onnx", batch_size=2)
    assert report.max_abs_diff is not None and report.max_abs_diff < 1e-4
    meta = read_onnx_metadata(report.path)
    assert meta["reidpipe.variant"] == variant
    assert meta["reidpipe.input_size"] == ",".join(str(v) for v in model.input_size)
    assert meta["reidpipe.embed_dim"] == str(model.embed_dim)
    assert [float(v) for v in meta["reidpipe.mean"].split(",")] == pytest.approx(list(model.pixel_mean))
    # an independent batch of another size through onnxruntime
    images = _batch(model, seed=3)["images"][:4]
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    got = session.run(["features"], {"images": images.numpy()})[0]
    with torch.no_grad():
        ref = model.embed(images).numpy()
    assert got.shape == (4, model.embed_dim)
    assert abs(got - ref).max() < 1e-4
