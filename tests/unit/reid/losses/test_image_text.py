"""CLIP-ReID's image-to-text / text-to-image contrastive losses."""

from __future__ import annotations

import math

import pytest
import torch

from reidpipe.reid.losses import build_loss_set
from reidpipe.reid.output import ReIDOutput

# two identities; images and texts in 2-D
IMAGES = torch.tensor([[1.0, 0.0], [0.8, 0.2], [0.0, 1.0]])
LABELS = torch.tensor([0, 0, 1])
TEXTS = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # one text per image (stage 1: text of its label)


def _terms(cfg, images=IMAGES, texts=TEXTS):
    out = ReIDOutput(torch.zeros(3, 2), None, {"image_features_proj": images, "text_features": texts})
    return build_loss_set(cfg)(out, {"labels": LABELS}).terms


def _reference(queries, keys, q_labels, k_labels, scale=1.0):
    total = 0.0
    for i in range(len(queries)):
        logits = [scale * float(queries[i] @ keys[j]) for j in range(len(keys))]
        log_z = math.log(sum(math.exp(v) for v in logits))
        pos = [j for j in range(len(keys)) if k_labels[j] == q_labels[i]]
        total += -sum(logits[j] - log_z for j in pos) / len(pos)
    return total / len(queries)


def test_i2t_and_t2i_match_the_definition():
    terms = _terms({"i2t_contrastive": {}, "t2i_contrastive": {}})
    assert float(terms["i2t_contrastive"]) == pytest.approx(_reference(IMAGES, TEXTS, LABELS, LABELS), rel=1e-5)
    assert float(terms["t2i_contrastive"]) == pytest.approx(_reference(TEXTS, IMAGES, LABELS, LABELS), rel=1e-5)


def test_t2i_averages_over_all_positive_images():
    # text of identity 0 against images 0 and 1 (both identity 0): the term is the mean over both
    texts = TEXTS[:1]
    out = ReIDOutput(
        torch.zeros(3, 2),
        None,
        {"image_features_proj": IMAGES, "text_features": texts, "text_labels": torch.tensor([0])},
    )
    got = float(build_loss_set({"t2i_contrastive": {}})(out, {"labels": LABELS}).terms["t2i_contrastive"])
    logits = [float(texts[0] @ IMAGES[j]) for j in range(3)]
    log_z = math.log(sum(math.exp(v) for v in logits))
    assert got == pytest.approx(-((logits[0] - log_z) + (logits[1] - log_z)) / 2, rel=1e-5)


def test_normalised_scaled_form():
    terms = _terms({"i2t_contrastive": {"normalize": True, "logit_scale": 10.0}})
    v = torch.nn.functional.normalize(IMAGES, dim=1)
    t = torch.nn.functional.normalize(TEXTS, dim=1)
    assert float(terms["i2t_contrastive"]) == pytest.approx(_reference(v, t, LABELS, LABELS, 10.0), rel=1e-5)


def test_learnable_scale_is_a_trainable_parameter():
    losses = build_loss_set({"i2t_contrastive": {"learnable_scale": True, "logit_scale": 2.0}})
    ((name, param),) = losses.trainable_parameters()
    assert "log_scale" in name and float(param.detach().exp()) == pytest.approx(2.0)
    out = ReIDOutput(torch.zeros(3, 2), None, {"image_features_proj": IMAGES, "text_features": TEXTS})
    losses(out, {"labels": LABELS}).total.backward()
    assert param.grad is not None


def test_gradient_reaches_text_features():
    texts = TEXTS.clone().requires_grad_(True)
    out = ReIDOutput(torch.zeros(3, 2), None, {"image_features_proj": IMAGES, "text_features": texts})
    build_loss_set({"i2t_contrastive": 1, "t2i_contrastive": 1})(out, {"labels": LABELS}).total.backward()
    assert texts.grad is not None and texts.grad.abs().sum() > 0
