"""CLIP-ReID's prompt learner and its general form (shared context tokens, offsets, part templates)."""

from __future__ import annotations

import pytest
import torch

from reidpipe.errors import ConfigError
from reidpipe.reid.backbones.clip import build_clip
from reidpipe.reid.modules.prompt import PromptLearner

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return build_clip("RN50", input_size=(64, 32), pretrained=False, tiny=True)


def test_clipreid_template_has_four_class_specific_tokens(backbone):
    learner = PromptLearner(backbone, num_classes=200)
    assert learner.cls_ctx.shape == (200, 4, backbone.text_width) and learner.ctx is None
    assert 0.018 < float(learner.cls_ctx.detach().std()) < 0.022 and abs(float(learner.cls_ctx.detach().mean())) < 0.002
    labels = torch.tensor([3, 7])
    emb, eot = learner(labels)
    tokens = learner.tokens()[0]
    assert emb.shape == (2, backbone.context_length, backbone.text_width)
    assert int(eot[0]) == int(tokens.argmax())
    slots = (tokens == learner._class_id).nonzero().flatten()
    assert slots.tolist() == [5, 6, 7, 8]  # <sot> a photo of a X X X X person . <eot>
    assert torch.equal(emb[1, slots], learner.cls_ctx[7])
    fixed = torch.ones(backbone.context_length, dtype=torch.bool)
    fixed[slots] = False
    assert torch.equal(emb[0, fixed], backbone.token_embedding(tokens)[fixed])


def test_text_features_train_only_the_used_identities(backbone):
    learner = PromptLearner(backbone, num_classes=5)
    feats = learner.encode(torch.tensor([1, 1, 4]))
    assert feats.shape == (3, backbone.proj_dim)
    assert torch.allclose(feats[0], feats[1])
    feats.sum().backward()
    grad = learner.cls_ctx.grad
    assert grad[1].abs().sum() > 0 and grad[4].abs().sum() > 0 and grad[0].abs().sum() == 0


def test_shared_context_tokens_with_image_conditioned_offset(backbone):
    learner = PromptLearner(backbone, num_classes=3, template="Y Y Y Y Y Y Y Y person.")
    assert learner.ctx.shape == (8, backbone.text_width) and learner.cls_ctx is None
    offset = torch.randn(2, backbone.text_width)
    emb, _ = learner(ctx_offset=offset)
    slots = (learner.tokens()[0] == learner._context_id).nonzero().flatten()
    assert slots.tolist() == list(range(1, 9))
    assert torch.allclose(emb[1, slots], learner.ctx + offset[1])
    assert learner.encode(ctx_offset=offset).shape == (2, backbone.proj_dim)


def test_part_templates_share_the_identity_tokens(backbone):
    learner = PromptLearner(backbone, num_classes=3)
    learner.add_template("head", "A photo of a X X X X person's head.")
    emb, _ = learner(torch.tensor([2]), template="head")
    slots = (learner.tokens("head")[0] == learner._class_id).nonzero().flatten()
    assert torch.equal(emb[0, slots], learner.cls_ctx[2])
    with pytest.raises(ConfigError, match="identity"):
        learner.add_template("bad", "A photo of a X X person.")
    with pytest.raises(ConfigError, match="unknown prompt template"):
        learner(torch.tensor([0]), template="legs")


def test_labels_required_and_checked(backbone):
    learner = PromptLearner(backbone, num_classes=3)
    with pytest.raises(ConfigError, match="labels are required"):
        learner()
    with pytest.raises(ConfigError, match="out of range"):
        learner(torch.tensor([3]))
