"""Loss set construction from config (reid/losses/base.py)."""

from __future__ import annotations

import pytest
import torch

from reidpipe.errors import ConfigError
from reidpipe.reid.losses import build_loss_set, list_losses
from reidpipe.reid.output import ReIDOutput

LABELS = torch.tensor([0, 0, 1, 1])


def _output():
    torch.manual_seed(0)
    feats = torch.randn(4, 6, requires_grad=True)
    logits = torch.randn(4, 3, requires_grad=True)
    return ReIDOutput(
        features=feats, logits=logits, extras={"bn_features": feats * 2, "id_logits": [logits, logits * 0.5]}
    )


def test_registered_names():
    assert {"id", "i2t_ce", "triplet", "soft_triplet", "center", "i2t_contrastive", "t2i_contrastive"} <= set(
        list_losses()
    )


def test_weighted_total_and_unweighted_terms():
    out = _output()
    losses = build_loss_set({"id": {"weight": 0.5}, "triplet": 2.0})
    result = losses(out, {"labels": LABELS})
    assert set(result.terms) == {"id", "triplet"}
    assert result.weights == {"id": 0.5, "triplet": 2.0}
    expected = 0.5 * result.terms["id"] + 2.0 * result.terms["triplet"]
    assert torch.allclose(result.total, expected)
    result.total.backward()
    assert out.features.grad is not None and out.logits.grad is not None


def test_type_key_allows_two_terms_of_one_class_on_different_inputs():
    out = _output()
    losses = build_loss_set(
        {
            "tri": {"type": "triplet", "input": "features"},
            "tri_bn": {"type": "triplet", "input": "bn_features", "margin": 0.0},
        }
    )
    result = losses(out, {"labels": LABELS})
    assert set(result.terms) == {"tri", "tri_bn"}


def test_zero_weight_drops_the_term():
    losses = build_loss_set({"id": 1.0, "triplet": {"weight": 0}})
    assert losses.names == ["id"]


def test_list_inputs_mean_and_sum():
    out = _output()
    mean = build_loss_set({"id": {"input": "id_logits"}})(out, {"labels": LABELS}).terms["id"]
    total = build_loss_set({"id": {"input": "id_logits", "reduce": "sum"}})(out, {"labels": LABELS}).terms["id"]
    assert torch.allclose(total, 2 * mean)


@pytest.mark.parametrize(
    "cfg, needle",
    [
        ({"nope": {"weight": 1}}, "loss must be one of .*, got 'nope'"),
        ({"triplet": {"marign": 0.3}}, "'marign'"),
        ({"id": {"weight": "heavy"}}, "weight"),
        ({"id": [1, 2]}, "'id'"),
        ({"id": {"reduce": "max"}}, "reduce"),
    ],
)
def test_bad_config_names_the_bad_key(cfg, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        build_loss_set(cfg)


def test_missing_output_key_is_named():
    losses = build_loss_set({"i2t_ce": 1.0})
    with pytest.raises(ConfigError, match="i2t_logits"):
        losses(_output(), {"labels": LABELS})


def test_missing_labels_is_named():
    with pytest.raises(ConfigError, match="labels"):
        build_loss_set({"id": 1.0})(_output(), {})
