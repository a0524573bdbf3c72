"""MFA (paper 003): ResNet-50 last stride 1, CPAA on layers 2-4, 4 stripes, 4 GeM/BN branches, GLA."""

from __future__ import annotations

import pytest
import torch

from reidpipe.errors import ConfigError, InputNotFoundError, WeightsUnavailableError
from reidpipe.reid.backbones.resnet import build_resnet
from reidpipe.reid.losses import build_loss_set
from reidpipe.reid.losses.gla import gla_distance
from reidpipe.reid.modules.cpaa import CPAA
from reidpipe.reid.modules.local_branches import GeM, HorizontalStripes
from reidpipe.reid.registry import create_model

torch.set_num_threads(1)


def _tiny(**kw):
    torch.manual_seed(0)
    return create_model("mfa", num_classes=4, pretrained=False, tiny=True, **kw)


def test_full_size_architecture_matches_paper_modules():
    """Full size (no weights): last stride 1, CPAA on layer2/3/4, 4 branches of 2048 -> 8192-d embedding."""
    model = create_model("mfa", num_classes=751, pretrained=False)
    assert model.input_size == (256, 128) and model.embed_dim == 4 * 2048
    assert sorted(model.cpaa) == ["layer2", "layer3", "layer4"]
    assert [model.cpaa[k].channels for k in sorted(model.cpaa)] == [512, 1024, 2048]
    assert len(model.branches) == 4
    assert model.trunk.layer4[0].conv2.stride == (1, 1)
    assert model.trunk.layer4[0].downsample[0].stride == (1, 1)
    n_params = sum(p.numel() for p in model.parameters())
    classifiers = sum(b.neck.classifier.weight.numel() for b in model.branches)
    # documented in reid/variants/mfa.py and the notes: 33.1 M without classifiers (paper: 28.3 M)
    assert 32.5e6 < n_params - classifiers < 33.7e6


def test_forward_losses_backward_and_embed():
    model = _tiny()
    model.train()
    images = torch.randn(8, 3, 64, 32)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    out = model(images, labels)
    assert out.features.shape == (8, 4 * 256) and out.logits.shape == (8, 4)
    assert out.extras["stripe_features"].shape == (8, 4, 256)
    assert out.extras["local_features"].shape == (8, 4, 256)
    assert len(out.extras["branch_logits"]) == 4
    losses = build_loss_set(model.default_losses("main"), model=model)
    assert set(losses.names) == {"id", "soft_triplet", "center", "gla"}
    result = losses(out, {"labels": labels})
    assert torch.isfinite(result.total) and all(torch.isfinite(v) for v in result.terms.values())
    # make the zero-initialised CPAA gates non-zero so gradients reach every CPAA weight
    model.zero_grad()
    with torch.no_grad():
        for cpaa in model.cpaa.values():
            cpaa.channel.beta.fill_(0.5)
            cpaa.spatial.alpha.fill_(0.5)
    result = losses(model(images, labels), {"labels": labels})
    result.total.backward()
    trainable = dict(model.trainable_parameters("main"))
    assert "branches.0.neck.bn.bias" not in trainable  # BNNeck bias is frozen
    missing = [n for n, p in trainable.items() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, missing
    model.eval()
    emb = model.embed(images)
    assert emb.shape == (8, model.embed_dim)
    assert torch.allclose(emb.norm(dim=1), torch.ones(8), atol=1e-5)


def test_stripes_are_top_to_bottom_and_gla_pulls_branch_to_its_stripe():
    fmap = torch.zeros(1, 2, 8, 4)
    for i in range(4):
        fmap[:, :, 2 * i : 2 * i + 2] = float(i + 1)
    stripes = HorizontalStripes(4)(fmap)
    assert stripes[0, :, 0].tolist() == [1.0, 2.0, 3.0, 4.0]
    branch = torch.zeros(1, 4, 2, requires_grad=True)
    loss = gla_distance(branch, stripes.clone().requires_grad_(True), "l2", detach_target=True)
    # distance of (0,0) to (k,k) is k*sqrt(2): mean over the four regions
    assert loss.item() == pytest.approx(sum(k * 2**0.5 for k in range(1, 5)) / 4, rel=1e-5)
    loss.backward()
    assert torch.all(branch.grad[0, :, 0] < 0)  # gradient descent moves each branch up to its own stripe
    for distance in ("sq_l2", "mse", "cosine"):
        assert torch.isfinite(gla_distance(branch, stripes, distance))
    with pytest.raises(ConfigError, match="gla distance"):
        build_loss_set({"gla": {"distance": "l3"}})


def test_cpaa_gates_start_closed_and_attend_when_open():
    cpaa = CPAA(16, reduction=4)
    x = torch.randn(2, 16, 6, 3)
    assert torch.equal(cpaa(x), x)  # zero-initialised gates keep a pretrained trunk unchanged
    with torch.no_grad():
        cpaa.channel.beta.fill_(1.0)
        cpaa.spatial.alpha.fill_(1.0)
    y = cpaa(x)
    assert y.shape == x.shape and not torch.allclose(y, x)
    assert cpaa.spatial.query.out_channels == 4 and cpaa.spatial.value.out_channels == 16


def test_gem_between_mean_and_max():
    x = torch.rand(2, 3, 4, 4) + 0.1
    g = GeM(p=3.0)(x)
    assert torch.all(g >= x.mean(dim=(2, 3)) - 1e-6) and torch.all(g <= x.amax(dim=(2, 3)) + 1e-6)


def test_ablation_switches():
    base = _tiny(local_branches=False, cpaa_stages=[])
    assert len(base.branches) == 1 and len(base.cpaa) == 0 and base.embed_dim == 256
    with pytest.raises(ConfigError, match="cpaa_stages"):
        _tiny(cpaa_stages=[5])
    with pytest.raises(ConfigError, match="no option"):
        _tiny(cpaa_kind="x")


def test_resnet_weights_errors(tmp_path, monkeypatch):
    with pytest.raises(InputNotFoundError, match="nope.pth"):
        build_resnet(50, pretrained=str(tmp_path / "nope.pth"))
    # a local file in torchvision's format loads (fc keys ignored)
    src = build_resnet(50, pretrained=False, tiny=True)
    with pytest.raises(ConfigError, match="tiny"):
        build_resnet(50, pretrained=str(tmp_path / "x.pth"), tiny=True)
    net = build_resnet(18, pretrained=False, last_stride=2)
    state = {f"{k}": v for k, v in net.state_dict().items()}
    state["fc.weight"] = torch.zeros(1000, 512)
    path = tmp_path / "r18.pth"
    torch.save(state, path)
    loaded = build_resnet(18, pretrained=str(path), last_stride=2)
    assert torch.equal(loaded.conv1.weight, net.conv1.weight)
    assert src.out_channels == 256

    # offline: torchvision's download fails -> one clear error saying how to avoid it
    import torchvision.models.resnet as tvr

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(tvr.ResNet18_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline)
    with pytest.raises(WeightsUnavailableError, match="pretrained=False"):
        build_resnet(18, pretrained=True)
