"""π-VL (paper 002): part-informed prompts from parsing maps + hierarchical fusion alignment on CLIP-ReID."""

from __future__ import annotations

import pytest
import torch

from reidpipe.errors import ConfigError
from reidpipe.reid.losses import build_loss_set
from reidpipe.reid.losses.dense import dense_contrastive
from reidpipe.reid.modules.fusion import HierarchicalFusionHead
from reidpipe.reid.modules.parsing import IGNORE_LABEL, downsample_parsing, pixel_pairs
from reidpipe.reid.registry import create_model

torch.set_num_threads(1)

LABELS = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
HAIR, PANTS = 2, 9


def _parsing(n=8, h=64, w=32):
    """Top half hair, bottom half pants (LIP ids), as a parser would label a crude person."""
    p = torch.full((n, h, w), PANTS, dtype=torch.long)
    p[:, : h // 2] = HAIR
    return p


@pytest.fixture(scope="module")
def rn50():
    torch.manual_seed(0)
    model = create_model("pivl", num_classes=4, pretrained=False, tiny=True)
    with torch.no_grad():  # open_clip zero-initialises each block's last BN; open them so grads flow
        for name, p in model.backbone.clip.visual.named_parameters():
            if name.endswith("bn3.weight"):
                p.fill_(1.0)
    return model


def _grads(model, stage):
    return {n: p.grad for n, p in model.trainable_parameters(stage)}


def test_stages_and_trainable_parameters(rn50):
    assert rn50.STAGES == ("prompt", "part_prompt", "image")
    for stage in ("prompt", "part_prompt"):
        assert [n for n, _ in rn50.trainable_parameters(stage)] == ["prompt_learner.cls_ctx"]
    image = [n for n, _ in rn50.trainable_parameters("image")]
    assert any(n.startswith("fusion.align.") for n in image)
    assert not any(n.startswith("prompt_learner.") or ".transformer." in n and "visual" not in n for n in image)
    assert set(rn50.default_losses("part_prompt")) == {"pixel_contrastive"}
    assert set(rn50.default_losses("image")) == {"id", "triplet", "i2t_ce", "pixel_mse"}


def test_part_prompt_stage_tunes_identity_tokens_with_dense_contrast(rn50):
    rn50.set_stage("part_prompt")
    rn50.train()
    rn50.zero_grad()
    images, parsing = torch.randn(8, 3, 64, 32), _parsing()
    parsing[0, :4] = IGNORE_LABEL  # unlabelled pixels are ignored
    out = rn50(images, LABELS, parsing=parsing)
    # one text row per (identity, part) pair of the batch: 4 identities x {hair, pants}
    assert out.extras["part_text_features"].shape[0] == 8
    pairs = set(zip(out.extras["part_text_labels"].tolist(), out.extras["part_text_parts"].tolist()))
    assert pairs == {(i, k) for i in range(4) for k in (HAIR, PANTS)}
    index = out.extras["pixel_text_index"]
    assert index.shape == (8, *out.extras["pixel_features"].shape[-2:])
    row = index[2, 0, 0]  # image 2 (identity 1), top-left pixel: hair
    assert (out.extras["part_text_labels"][row], out.extras["part_text_parts"][row]) == (1, HAIR)
    loss = build_loss_set(rn50.default_losses(), model=rn50)(out, {"labels": LABELS, "parsing": parsing})
    loss.total.backward()
    grad = _grads(rn50, "part_prompt")["prompt_learner.cls_ctx"]
    assert torch.all(grad.abs().sum(dim=(1, 2)) > 0)  # every identity of the batch gets a gradient
    # the image encoder runs frozen (no graph); the text encoder only carries the gradient to the tokens
    assert all(p.grad is None for p in rn50.backbone.clip.visual.parameters())
    with pytest.raises(ConfigError, match="parsing"):
        rn50(images, LABELS)


def test_image_stage_fusion_head_aligns_and_is_dropped_at_inference(rn50):
    rn50.set_stage("image")
    rn50.train()
    rn50.zero_grad()
    images, parsing = torch.randn(8, 3, 64, 32), _parsing()
    out = rn50(images, LABELS, parsing=parsing)
    fused = out.extras["fused_features"]
    assert fused.shape == (8, rn50.backbone.proj_dim, 64 // 8, 32 // 8)  # stride 8
    assert out.extras["fused_text_index"].shape == (8, 8, 4)
    assert not out.extras["part_text_features"].requires_grad  # stage-1 text features are fixed
    result = build_loss_set(rn50.default_losses(), model=rn50)(out, {"labels": LABELS, "parsing": parsing})
    assert set(result.terms) == {"id", "triplet", "i2t_ce", "pixel_mse"}
    result.total.backward()
    grads = _grads(rn50, "image")
    for name in (
        "fusion.align.0.weight",
        "fusion.align.1.weight",
        "fusion.align.2.weight",
        "backbone.clip.visual.layer1.0.conv1.weight",
    ):
        assert grads[name] is not None and torch.any(grads[name] != 0), name
    assert rn50.prompt_learner.cls_ctx.grad is None
    assert [c.in_channels for c in rn50.fusion.align] == rn50.backbone.stage_dims[:3]  # conv2/3/4
    # the head does not take part in embed: changing it leaves the embedding unchanged
    rn50.eval()
    before = rn50.embed(images)
    with torch.no_grad():
        for p in rn50.fusion.parameters():
            p.add_(1.0)
    assert torch.equal(before, rn50.embed(images))
    assert torch.allclose(before.norm(dim=1), torch.ones(8), atol=1e-5)
    rn50.train()
    with pytest.raises(ConfigError, match="parsing"):
        rn50(images, LABELS)


def test_vit_backbone_uses_simple_feature_pyramid():
    torch.manual_seed(0)
    model = create_model("pivl", num_classes=4, pretrained=False, tiny=True, backbone="ViT-B-16")
    model.set_stage("image")
    model.train()
    parsing = _parsing()
    out = model(torch.randn(8, 3, 64, 32), LABELS, parsing=parsing)
    assert out.extras["fused_features"].shape == (8, model.backbone.proj_dim, 8, 4)
    build_loss_set(model.default_losses(), model=model)(out, {"labels": LABELS}).total.backward()
    grads = _grads(model, "image")
    pyramid = [n for n in grads if n.startswith("pyramid.")]
    assert pyramid and all(grads[n] is not None and torch.any(grads[n] != 0) for n in pyramid)


def test_dense_contrastive_prefers_matching_part_texts():
    torch.manual_seed(0)
    texts = torch.randn(6, 16)
    index = torch.randint(0, 6, (200,))
    aligned = texts[index] + 0.01 * torch.randn(200, 16)
    shuffled = texts[(index + 1) % 6]
    assert dense_contrastive(aligned, texts, index) < 0.5 * dense_contrastive(shuffled, texts, index)
    for d in ("p2t", "t2p"):
        assert torch.isfinite(dense_contrastive(aligned, texts, index, directions=d))


def test_parsing_downsampling_and_pairs():
    parsing = torch.zeros(1, 8, 4, dtype=torch.long)
    parsing[0, :4] = HAIR
    parsing[0, 4:] = IGNORE_LABEL
    parsing[0, 0, 0] = 13  # a one-pixel outlier is voted out
    grid = downsample_parsing(parsing, (2, 1))
    assert grid.tolist() == [[[HAIR], [-1]]]
    ids, parts, index = pixel_pairs(torch.tensor([[[HAIR], [PANTS]]]), torch.tensor([3]))
    assert ids.tolist() == [3, 3] and parts.tolist() == [HAIR, PANTS] and index.flatten().tolist() == [0, 1]
    model_bad = torch.full((8, 64, 32), 25)
    with pytest.raises(ConfigError, match="label 25"):
        from reidpipe.reid.modules.parsing import check_parsing

        check_parsing(model_bad, 8)


def test_fusion_head_full_size_is_depthwise_and_tiny():
    head = HierarchicalFusionHead((256, 512, 1024), (4, 8, 16), 1024)
    assert [c.groups for c in head.align] == [256, 512, 1024]
    assert sum(p.numel() for p in head.parameters()) == 3 * 1024 * 2  # one weight + one bias per channel
    maps = [torch.randn(2, 256, 64, 32), torch.randn(2, 512, 32, 16), torch.randn(2, 1024, 16, 8)]
    assert head(maps, (32, 16)).shape == (2, 1024, 32, 16)
