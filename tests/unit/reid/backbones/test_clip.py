"""open_clip CLIP adapted to ReID inputs (reid/backbones/clip.py)."""

from __future__ import annotations

import pytest
import torch
from open_clip.model import CLIP
from torch import nn

from reidpipe.errors import CheckpointError, InputNotFoundError, WeightsUnavailableError
from reidpipe.reid.backbones import clip as clip_mod
from reidpipe.reid.backbones.clip import _resize_grid, build_clip, clip_config

torch.set_num_threads(1)


@pytest.mark.parametrize("size", [(64, 32), (128, 64)])
def test_rn50_last_stride_one_and_attnpool_grid(size):
    b = build_clip("RN50", input_size=size, pretrained=False, tiny=True)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        fmap, maps = b.forward_features(x)
        enc = b.encode_image(x)
    h, w = size[0] // 16, size[1] // 16
    assert b.grid_size == (h, w)
    assert maps[2].shape[-2:] == maps[3].shape[-2:] == (h, w)  # layer4 keeps layer3's resolution
    assert [m.shape[1] for m in maps] == b.stage_dims
    assert not any(isinstance(m, nn.AvgPool2d) for m in b.stages[3][0].modules())
    assert b.stages[3][0].stride == 1
    assert b.clip.visual.attnpool.positional_embedding.shape[0] == 1 + h * w
    assert enc["proj"].shape == (2, b.proj_dim) and enc["global"].shape == (2, b.feature_dim)
    assert enc["last"].shape == (2, b.last_dim)


def test_full_size_shapes_without_weights():
    b = build_clip("RN50", input_size=(256, 128), pretrained=False)
    assert (b.grid_size, b.feature_dim, b.proj_dim, b.last_dim) == ((16, 8), 2048, 1024, 1024)
    assert b.stage_dims == [256, 512, 1024, 2048] and b.text_width == 512
    v = build_clip("ViT-B-16", input_size=(384, 192), pretrained=False)
    assert (v.grid_size, v.feature_dim, v.proj_dim) == ((24, 12), 768, 512)
    assert v.clip.visual.positional_embedding.shape == (1 + 24 * 12, 768)


def test_vit_grid_and_overlapping_stride():
    b = build_clip("ViT-B-16", input_size=(64, 32), pretrained=False, tiny=True)
    assert b.grid_size == (4, 2) and b.clip.visual.positional_embedding.shape[0] == 9
    o = build_clip("ViT-B-16", input_size=(64, 32), pretrained=False, tiny=True, stride_size=12)
    assert o.grid_size == (5, 2)
    with torch.no_grad():
        enc = o.encode_image(torch.randn(1, 3, 64, 32), return_stages=True)
    assert enc["map"].shape[-2:] == (5, 2) and len(enc["stages"]) == 2


def test_resize_keeps_first_token_and_constant_grid():
    pos = torch.cat([torch.full((1, 3), 7.0), torch.ones(49, 3) * 2.0])
    out = _resize_grid(pos, (7, 7), (16, 8))
    assert out.shape == (1 + 128, 3)
    assert torch.equal(out[0], pos[0])
    assert torch.allclose(out[1:], torch.full((128, 3), 2.0), atol=1e-5)


@pytest.mark.parametrize("arch", ["RN50", "ViT-B-16"])
def test_matches_open_clip_forward(arch):
    torch.manual_seed(0)
    b = build_clip(arch, input_size=(224, 224) if arch == "ViT-B-16" else (64, 32), pretrained=False, tiny=True)
    b.eval()
    tokens = b.tokenize(["a photo of a person.", "a photo of a x x x x person."])
    with torch.no_grad():
        ours = b.encode_text_embeddings(b.token_embedding(tokens), tokens.argmax(dim=-1))
        ref = b.clip.encode_text(tokens)
        assert torch.allclose(ours, ref, atol=1e-5)
        if arch == "ViT-B-16":  # at 224x224 nothing was resized: the library's image forward applies
            x = torch.randn(2, 3, 224, 224)
            assert torch.allclose(b.encode_image(x)["proj"], b.clip.encode_image(x), atol=1e-5)


def test_local_weights_file_loads(tmp_path):
    torch.manual_seed(1)
    source = CLIP(**clip_config("RN50", tiny=True), quick_gelu=True)
    path = tmp_path / "tiny_rn50.pt"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, path)
    b = build_clip("RN50", input_size=(64, 32), pretrained=str(path), tiny=True)
    assert torch.equal(b.token_embedding.weight, source.token_embedding.weight)
    assert torch.equal(b.stages[3][0].conv3.weight, source.visual.layer4[0].conv3.weight)
    pos = b.clip.visual.attnpool.positional_embedding
    assert torch.equal(pos[0], source.visual.attnpool.positional_embedding[0])


def test_bad_weights_files(tmp_path):
    with pytest.raises(InputNotFoundError, match="missing.pt"):
        build_clip("RN50", pretrained=str(tmp_path / "missing.pt"), tiny=True)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        build_clip("RN50", pretrained=str(junk), tiny=True)
    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not a CLIP RN50"):
        build_clip("RN50", pretrained=str(other), tiny=True)


def test_offline_without_weights_gives_one_actionable_line(monkeypatch):
    monkeypatch.setattr(clip_mod, "_cached_openai_file", lambda arch: None)
    monkeypatch.setattr(clip_mod, "_hub_reachable", lambda *a, **k: False)
    with pytest.raises(WeightsUnavailableError) as info:
        build_clip("ViT-B-16", pretrained=True)
    message = str(info.value)
    assert "\n" not in message
    assert "pretrained=PATH" in message and "model.pretrained=PATH" in message and "pretrained=False" in message


def test_backbone_of_a_reidpipe_checkpoint_loads(tmp_path):
    import reidpipe

    torch.manual_seed(2)
    trained = reidpipe.create_model("clipreid", num_classes=3, pretrained=False, tiny=True)
    path = reidpipe.save_checkpoint(tmp_path / "stage1.pt", trained)
    b = build_clip("RN50", input_size=(64, 32), pretrained=str(path), tiny=True)
    ref = trained.backbone.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in b.state_dict().items())
