"""Center loss: its centers are parameters the engine optimises."""

from __future__ import annotations

import pytest
import torch

from reidpipe.errors import ConfigError
from reidpipe.reid.losses import build_loss_set
from reidpipe.reid.output import ReIDOutput


def test_sizes_from_model_context_and_parameters_exposed():
    losses = build_loss_set({"center": {"weight": 0.0005}}, context={"num_classes": 3, "feature_dims": {"features": 5}})
    params = losses.trainable_parameters()
    assert [tuple(p.shape) for _, p in params] == [(3, 5)]


def test_zero_at_the_centers_and_value_otherwise():
    losses = build_loss_set({"center": {"num_classes": 2, "feat_dim": 3}})
    centers = losses.losses["center"].centers
    labels = torch.tensor([0, 1, 1])
    feats = centers.detach()[labels].clone()
    assert float(losses(ReIDOutput(feats), {"labels": labels}).terms["center"].detach()) < 1e-6
    feats[0] += torch.tensor([1.0, 2.0, 2.0])  # squared distance 9 on one of three samples
    assert float(losses(ReIDOutput(feats), {"labels": labels}).terms["center"].detach()) == pytest.approx(3.0, rel=1e-4)


def test_centers_get_gradients():
    losses = build_loss_set({"center": {"num_classes": 2, "feat_dim": 3}})
    out = losses(ReIDOutput(torch.randn(4, 3)), {"labels": torch.tensor([0, 0, 1, 1])})
    out.total.backward()
    assert losses.losses["center"].centers.grad is not None


def test_missing_width_is_explained():
    with pytest.raises(ConfigError, match="feat_dim"):
        build_loss_set({"center": {}}, context={"num_classes": 2, "feature_dims": {}})


def test_wrong_feature_width():
    losses = build_loss_set({"center": {"num_classes": 2, "feat_dim": 3}})
    with pytest.raises(ConfigError, match=r"\(2, 3\)"):
        losses(ReIDOutput(torch.randn(2, 4)), {"labels": torch.tensor([0, 1])})
