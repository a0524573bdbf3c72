"""can_cma (paper 001): the Context Adjustment Network, the Cross-Modal Attention and the variant."""

from __future__ import annotations

import pytest
import torch

from reidpipe.errors import ConfigError
from reidpipe.reid.losses import build_loss_set
from reidpipe.reid.modules.can import ContextAdjustmentNet
from reidpipe.reid.modules.cma import CrossModalAttention
from reidpipe.reid.registry import create_model


def test_can_is_512_to_1024_to_512_and_adds_the_same_offset_to_every_context_token():
    can = ContextAdjustmentNet()
    assert (can.fc1.in_features, can.fc1.out_features, can.fc2.out_features) == (512, 1024, 512)
    assert isinstance(can.act, torch.nn.ReLU)
    img = torch.randn(3, 512)
    m = can(img)
    assert m.shape == (3, 512)
    ctx = torch.randn(3, 8, 512)
    adjusted = can.adjust(ctx, m)
    for n in range(8):
        torch.testing.assert_close(adjusted[:, n] - ctx[:, n], m)


def test_cma_implements_equation_1():
    torch.manual_seed(0)
    cma = CrossModalAttention(dim=16, hidden=8, heads=2).eval()
    image, text = torch.randn(3, 5, 16), torch.randn(4, 16)
    x = cma.img_in(image)
    a_i = cma.img_self_attn(x, x, x)[0][:, 0]
    y = cma.txt_in(text)[None]
    a_t = cma.txt_self_attn(y, y, y)[0][0]
    wi, wt = a_i @ cma.w_i.weight.t(), a_t @ cma.w_t.weight.t()
    expected = (torch.softmax(wi @ wt.t(), dim=-1) @ wt + wi) @ cma.w_o.weight.t() + cma.w_o.bias
    torch.testing.assert_close(cma(image, text), expected)
    assert cma.w_i.bias is None and cma.w_t.bias is None and cma.w_o.bias is not None
    # an image's output does not depend on the other images of the batch
    torch.testing.assert_close(cma(image[:1], text), expected[:1])
    # per-image text sets (N, K, dim) give the same result as a shared (K, dim) set
    torch.testing.assert_close(cma(image, text.expand(3, -1, -1)), expected)
    assert cma(image[:, 0], text).shape == (3, 16)


# ---------------------------------------------------------------------------- the variant


def _tiny(**kw):
    torch.manual_seed(0)
    return create_model("can_cma", num_classes=4, pretrained=False, tiny=True, **kw)


def test_full_size_model_is_vit_b16_at_384x192_with_the_papers_module_sizes():
    m = create_model("can_cma", num_classes=1041, pretrained=False)
    assert m.backbone.arch == "ViT-B-16" and m.input_size == (384, 192) and m.embed_dim == 1280
    assert m.pixel_mean == (0.485, 0.456, 0.406) and m.pixel_std == (0.229, 0.224, 0.225)
    assert m.prompt_learner.templates["default"] == "X X X X X X X X person."
    assert m.prompt_learner.cls_ctx.shape == (1041, 8, 512)
    assert (m.can.fc1.in_features, m.can.fc1.out_features, m.can.fc2.out_features) == (512, 1024, 512)
    assert m.cma.w_o.out_features == 512 and m.cma.img_self_attn.num_heads == 8
    assert m.default_losses("image")["id"]["weight"] == 1.0  # Eq. (8)


def test_prompt_positions_of_table_4():
    middle = _tiny(prompt_position="middle", n_ctx=4)
    assert middle.prompt_learner.templates["default"] == "A photo of X X X X person."
    assert _tiny(prompt_position="end", n_ctx=16).prompt_learner.n_x == 16
    with pytest.raises(ConfigError, match="prompt_position"):
        _tiny(prompt_position="top")


def test_stage_prompt_conditions_each_prompt_on_its_image_and_trains_only_context_and_can():
    m = _tiny()
    m.train()
    m.set_stage("prompt")
    assert {n for n, _ in m.trainable_parameters("prompt")} == {
        "prompt_learner.cls_ctx",
        "can.fc1.weight",
        "can.fc1.bias",
        "can.fc2.weight",
        "can.fc2.bias",
    }
    x, y = torch.randn(4, 3, *m.input_size), torch.tensor([0, 0, 1, 1])
    out = m(x, y)
    t = out.extras["text_features"]
    assert not torch.allclose(t[0], t[1])  # same identity, different images -> different texts
    torch.testing.assert_close(out.extras["context_offsets"], m.can(out.extras["image_features_proj"]))
    build_loss_set(m.default_losses("prompt"), m)(out, {"labels": y}).total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for _, p in m.trainable_parameters("prompt"))
    assert m.class_feature_count.tolist() == [2, 2, 0, 0]
    # stage 2's identity texts use each identity's mean stage-1 image feature; unseen ones get M = 0
    m.eval()
    bank = m.compute_class_text_features()
    mean0 = out.extras["image_features_proj"][:2].mean(0, keepdim=True)
    with torch.no_grad():
        expected0 = m.prompt_learner.encode(torch.tensor([0]), cls_offset=m.can(mean0))
        torch.testing.assert_close(bank[0:1], expected0, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(bank[3:4], m.prompt_learner.encode(torch.tensor([3])))


def test_stage_image_feeds_cma_output_to_the_i2t_loss_and_embed_ignores_it():
    m = _tiny()
    m.train()
    m.set_stage("image")
    names = {n for n, _ in m.trainable_parameters("image")}
    assert any(n.startswith("cma.") for n in names)
    assert not any(n.startswith(("can.", "prompt_learner.")) for n in names)
    x, y = torch.randn(4, 3, *m.input_size), torch.tensor([0, 1, 2, 3])
    out = m(x, y)
    text = out.extras["class_text_features"]
    torch.testing.assert_close(out.extras["i2t_logits"], out.extras["cma_features"] @ text.t())
    build_loss_set(m.default_losses("image"), m)(out, {"labels": y}).total.backward()
    cma_params = [p for n, p in m.named_parameters() if n.startswith("cma.")]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in cma_params)
    m.eval()
    e = m.embed(x)
    torch.testing.assert_close(e.norm(dim=1), torch.ones(4))
    with torch.no_grad():
        m.cma.w_o.weight.mul_(7.0)
    torch.testing.assert_close(m.embed(x), e)
    # the paper's ablation: CMA off -> CLIP-ReID's plain image-to-text logits
    plain = _tiny(use_cma=False, use_can=False)
    plain.set_stage("image")
    out = plain(x, y)
    torch.testing.assert_close(
        out.extras["i2t_logits"], out.extras["image_features_proj"] @ out.extras["class_text_features"].t()
    )
