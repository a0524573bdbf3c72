"""ID cross-entropy with label smoothing and CLIP-ReID's image-to-text cross-entropy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reidpipe.errors import ConfigError
from reidpipe.reid.losses import build_loss_set
from reidpipe.reid.output import ReIDOutput


def test_label_smoothing_matches_the_formula():
    torch.manual_seed(0)
    logits = torch.randn(5, 7)
    labels = torch.tensor([0, 3, 6, 2, 2])
    eps = 0.1
    target = torch.full((5, 7), eps / 7)
    target[torch.arange(5), labels] += 1 - eps
    expected = (-target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    got = build_loss_set({"id": {}})(ReIDOutput(torch.zeros(5, 2), logits), {"labels": labels}).terms["id"]
    assert torch.allclose(got, expected, atol=1e-6)


def test_epsilon_zero_is_plain_cross_entropy():
    logits = torch.randn(4, 3)
    labels = torch.tensor([0, 1, 2, 1])
    got = build_loss_set({"id": {"epsilon": 0.0}})(ReIDOutput(torch.zeros(4, 2), logits), {"labels": labels})
    assert torch.allclose(got.terms["id"], F.cross_entropy(logits, labels))


def test_i2t_ce_reads_i2t_logits():
    logits = torch.randn(4, 3)
    labels = torch.tensor([0, 1, 2, 1])
    out = ReIDOutput(torch.zeros(4, 2), None, {"i2t_logits": logits})
    got = build_loss_set({"i2t_ce": {"epsilon": 0.0}})(out, {"labels": labels}).terms["i2t_ce"]
    assert torch.allclose(got, F.cross_entropy(logits, labels))


def test_label_out_of_range_is_reported():
    out = ReIDOutput(torch.zeros(2, 2), torch.randn(2, 3))
    with pytest.raises(ConfigError, match="out of range"):
        build_loss_set({"id": {}})(out, {"labels": torch.tensor([0, 5])})


def test_bad_epsilon():
    with pytest.raises(ConfigError, match="epsilon"):
        build_loss_set({"id": {"epsilon": 1.5}})
