"""Batch-hard triplet loss (margin 0.3) and its soft-margin form."""

from __future__ import annotations

import math

import torch

from reidpipe.reid.losses import build_loss_set
from reidpipe.reid.output import ReIDOutput

# identities 0 and 1 on a line: 0 at x = 0 and 1; 1 at x = 1.5 and 4
FEATS = torch.tensor([[0.0], [1.0], [1.5], [4.0]])
LABELS = torch.tensor([0, 0, 1, 1])
# anchor: hardest positive distance, hardest (closest) negative distance
D_AP = [1.0, 1.0, 2.5, 2.5]
D_AN = [1.5, 0.5, 0.5, 3.0]


def _term(cfg, feats=FEATS, labels=LABELS):
    name = next(iter(cfg))
    return build_loss_set(cfg)(ReIDOutput(feats), {"labels": labels}).terms[name]


def test_batch_hard_with_margin():
    expected = sum(max(0.0, ap - an + 0.3) for ap, an in zip(D_AP, D_AN, strict=True)) / 4
    assert math.isclose(float(_term({"triplet": {}})), expected, rel_tol=1e-5)


def test_soft_margin():
    expected = sum(math.log1p(math.exp(ap - an)) for ap, an in zip(D_AP, D_AN, strict=True)) / 4
    assert math.isclose(float(_term({"soft_triplet": {}})), expected, rel_tol=1e-5)


def test_well_separated_batch_has_zero_loss():
    feats = torch.tensor([[0.0], [0.1], [10.0], [10.1]])
    assert float(_term({"triplet": {}}, feats)) == 0.0


def test_single_identity_batch_is_zero_and_differentiable():
    feats = torch.randn(4, 3, requires_grad=True)
    loss = _term({"triplet": {}}, feats, torch.zeros(4, dtype=torch.long))
    loss.backward()
    assert float(loss.detach()) == 0.0 and feats.grad is not None


def test_gradient_pulls_positives_together():
    feats = FEATS.clone().requires_grad_(True)
    _term({"triplet": {}}, feats).backward()
    assert torch.isfinite(feats.grad).all() and feats.grad.abs().sum() > 0
