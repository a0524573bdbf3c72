"""The CLIP-ReID baseline: stages, trainable parameters, outputs, text-feature cache, embed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import reidpipe

torch.set_num_threads(1)
LABELS = torch.tensor([0, 0, 1, 1, 2, 2])


@pytest.fixture(scope="module", params=["RN50", "ViT-B-16"])
def model(request):
    torch.manual_seed(0)
    return reidpipe.create_model("clipreid", num_classes=3, pretrained=False, tiny=True, backbone=request.param)


def _images(model, n=6, seed=0):
    return torch.randn(n, 3, *model.input_size, generator=torch.Generator().manual_seed(seed))


def test_prompt_stage_trains_only_the_prompts_and_freezes_the_encoders(model):
    model.set_stage("prompt")
    model.train()
    names = [n for n, _ in model.trainable_parameters("prompt")]
    assert names == ["prompt_learner.cls_ctx"]
    assert not model.backbone.training  # frozen encoder: BatchNorm statistics do not move
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    out = model(_images(model), LABELS)
    assert out.logits is None
    assert out.extras["text_features"].shape == (6, model.backbone.proj_dim)
    assert torch.equal(out.extras["text_labels"], LABELS)
    assert not out.extras["image_features_proj"].requires_grad
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert set(model.default_losses("prompt")) == {"i2t_contrastive", "t2i_contrastive"}


def test_image_stage_outputs_and_trainable_set(model):
    model.set_stage("image")
    model.train()
    names = {n for n, _ in model.trainable_parameters("image")}
    assert not any(n.startswith("prompt_learner") for n in names)
    assert not any(n.startswith(("backbone.clip.transformer", "backbone.clip.token_embedding")) for n in names)
    assert "bottleneck.weight" in names and "bottleneck.bias" not in names
    assert "classifier.weight" in names and "classifier_proj.weight" in names
    assert any(n.startswith("backbone.clip.visual.") for n in names)
    out = model(_images(model), LABELS)
    ex = out.extras
    assert out.logits.shape == (6, 3) and ex["logits_proj"].shape == (6, 3)
    assert ex["class_text_features"].shape == (3, model.backbone.proj_dim)
    assert torch.allclose(ex["i2t_logits"], ex["image_features_proj"] @ ex["class_text_features"].t())
    assert len(ex["id_logits"]) == 2 and len(ex["triplet_features"]) == 3
    assert torch.equal(out.features, ex["image_features"])


def test_class_text_features_are_cached_and_refreshed(model):
    model.set_stage("image")
    first = model.class_text_features()
    assert model.class_text_features() is first
    with torch.no_grad():
        model.prompt_learner.cls_ctx.add_(1.0)
    assert model.class_text_features() is first  # cached: frozen during stage "image"
    model.set_stage("image")
    refreshed = model.class_text_features()
    assert not torch.allclose(refreshed, first)
    assert torch.allclose(refreshed, model.prompt_learner.encode(torch.arange(3)).detach(), atol=1e-5)


def test_embed_is_the_normalised_concatenation(model):
    model.eval()
    x = _images(model, 2, seed=3)
    with torch.no_grad():
        enc = model.backbone.encode_image(x)
        expected = F.normalize(torch.cat([enc["global"], enc["proj"]], dim=1), dim=1)
        assert torch.allclose(model.embed(x), expected, atol=1e-6)
    assert model.embed_dim == model.backbone.feature_dim + model.backbone.proj_dim


def test_clipreid_loss_weights_per_backbone(model):
    cfg = model.default_losses("image")
    assert cfg["id"]["weight"] == (1.0 if model.arch == "RN50" else 0.25)
    assert cfg["triplet"]["margin"] == 0.3 and cfg["id"]["epsilon"] == 0.1 and cfg["i2t_ce"]["epsilon"] == 0.1


def test_normalisation_and_bad_options(model):
    if model.arch == "RN50":
        assert model.pixel_mean == pytest.approx((0.485, 0.456, 0.406))
    else:
        assert model.pixel_mean == (0.5, 0.5, 0.5)
    with pytest.raises(reidpipe.errors.ConfigError, match="neck_feat"):
        reidpipe.create_model("clipreid", num_classes=3, pretrained=False, tiny=True, neck_feat="middle")
    with pytest.raises(reidpipe.errors.ConfigError, match="unknown stage"):
        model.set_stage("warmup")


def test_prompt_stage_accepts_a_precomputed_image_encoding(model):
    model.set_stage("prompt")
    model.train()
    images = _images(model, seed=5)
    with torch.no_grad():
        direct = model(images, LABELS)
        enc = {k: v for k, v in model.encode_image_stages(images).items() if k in ("last", "global", "proj")}
        cached = model(None, LABELS, image_encoding=enc)
    for key in ("image_features_proj", "text_features"):
        assert torch.allclose(direct.extras[key], cached.extras[key], atol=1e-6)
    with pytest.raises(reidpipe.errors.ConfigError, match="image_encoding"):
        model(None, LABELS)
