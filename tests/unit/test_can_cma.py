"""can_cma (paper 001): the Context Adjustment Network, the Cross-Modal Attention and the variant."""

from __future__ import annotations

import pytest
import torch

from reidpipe.reid.modules.can import ContextAdjustmentNet
from reidpipe.reid.modules.cma import CrossModalAttention


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
