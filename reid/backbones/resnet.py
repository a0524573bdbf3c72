"""torchvision ResNet-50 trunk for ReID: ImageNet weights, last stride 1 (used by ``mfa``).

``build_resnet(depth=50, pretrained=..., last_stride=1, tiny=False)`` returns a :class:`ResNetTrunk`
holding torchvision's own modules (``conv1``/``bn1``/``relu``/``maxpool`` stem, ``layer1``..``layer4``
of ``torchvision.models.resnet.Bottleneck``), without the ImageNet ``avgpool``/``fc`` head.

Weights:

- ``pretrained=True``  -> torchvision's ``ResNet50_Weights.IMAGENET1K_V1`` through its normal download
  and cache mechanism (``torch.hub``); offline with no cached copy raises
  :class:`reidpipe.errors.WeightsUnavailableError` saying how to pass a local file or ``pretrained=False``.
- ``pretrained=PATH``  -> a local ``.pth``/``.pt`` (a plain state dict, or ``{"state_dict": ...}``) or
  ``.safetensors`` file of a torchvision ResNet-50; ``fc.*`` keys are ignored.
- ``pretrained=False`` -> random initialisation (tests, or when the whole model is loaded afterwards).

Last stride 1: the first block of ``layer4`` (its 3x3 conv and its downsample 1x1 conv) gets stride 1, so
a 256x128 input gives a 16x8 map of 2048 channels (stride 16) instead of 8x4.

``tiny=True`` builds the same module types (torchvision ``ResNet``/``Bottleneck``) with one block per
stage and 1/8 of the widths (stage outputs 32/64/128/256 channels), for CPU tests.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import resnet as tv_resnet

from reidpipe.errors import CheckpointError, ConfigError, InputNotFoundError, WeightsUnavailableError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_DEPTHS = {
    18: (tv_resnet.BasicBlock, (2, 2, 2, 2)),
    34: (tv_resnet.BasicBlock, (3, 4, 6, 3)),
    50: (tv_resnet.Bottleneck, (3, 4, 6, 3)),
    101: (tv_resnet.Bottleneck, (3, 4, 23, 3)),
}
_WEIGHTS = {18: "ResNet18_Weights", 34: "ResNet34_Weights", 50: "ResNet50_Weights", 101: "ResNet101_Weights"}


class _NarrowResNet(tv_resnet.ResNet):
    """torchvision ``ResNet`` whose stage widths are divided by ``width_div`` (tiny test configuration)."""

    def __init__(self, block, layers, width_div: int):
        self._width_div = int(width_div)
        super().__init__(block, list(layers))

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        return super()._make_layer(block, max(4, planes // self._width_div), blocks, stride, dilate)


class ResNetTrunk(nn.Module):
    """Stem + four residual stages of a torchvision ResNet; ``forward`` returns the last map.

    ``stage_channels`` are the output channels of ``layer1``..``layer4``; ``out_channels`` the last one.
    """

    def __init__(self, net: tv_resnet.ResNet):
        super().__init__()
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.stage_channels = tuple(_stage_out_channels(getattr(self, f"layer{i}")) for i in range(1, 5))
        self.out_channels = self.stage_channels[-1]

    @property
    def stages(self) -> list[nn.Module]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.stages:
            x = layer(x)
        return x


def _stage_out_channels(layer: nn.Sequential) -> int:
    last: Any = layer[-1]  # torchvision BasicBlock (bn2) or Bottleneck (bn3)
    return last.bn3.num_features if hasattr(last, "bn3") else last.bn2.num_features


def _set_last_stride(net: tv_resnet.ResNet, stride: int) -> None:
    block = net.layer4[0]
    conv = block.conv2 if hasattr(block, "conv3") else block.conv1
    conv.stride = (stride, stride)
    if block.downsample is not None:
        block.downsample[0].stride = (stride, stride)


def _load_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise InputNotFoundError(f"ResNet weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (corrupt / foreign file)
        raise CheckpointError(f"cannot read ResNet weights {path}: {exc.__class__.__name__}: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a ResNet state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _download(depth: int) -> dict[str, torch.Tensor]:
    weights = getattr(tv_resnet, _WEIGHTS[depth]).IMAGENET1K_V1
    try:
        return weights.get_state_dict(progress=False, check_hash=False)
    except Exception as exc:  # noqa: BLE001  (URLError, socket, HTTP errors: no network, no cache)
        raise WeightsUnavailableError(
            f"ImageNet ResNet-{depth} weights unavailable ({weights.url}: {exc.__class__.__name__}); "
            "pass a local torchvision .pth file with pretrained=PATH (CLI: --set model.pretrained=PATH) or "
            "build without weights with pretrained=False"
        ) from None


def build_resnet(
    depth: int = 50, pretrained: bool | str | os.PathLike = False, last_stride: int = 1, tiny: bool = False
) -> ResNetTrunk:
    """Build a torchvision ResNet trunk (see the module docstring)."""
    if depth not in _DEPTHS:
        raise ConfigError(f"unsupported ResNet depth {depth!r}; choose one of {sorted(_DEPTHS)}")
    if last_stride not in (1, 2):
        raise ConfigError(f"last_stride must be 1 or 2, got {last_stride!r}")
    block, layers = _DEPTHS[depth]
    net = _NarrowResNet(block, (1, 1, 1, 1), width_div=8) if tiny else tv_resnet.ResNet(block, list(layers))
    if pretrained is not False and pretrained is not None:
        if tiny:
            raise ConfigError(
                "tiny=True builds a test-size ResNet that has no pretrained weights; use pretrained=False"
            )
        state = _download(depth) if pretrained is True else _load_file(Path(pretrained))
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = net.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing or unexpected:
            raise CheckpointError(
                f"{pretrained if pretrained is not True else 'ImageNet weights'} is not a ResNet-{depth} "
                f"state dict (missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
    if last_stride != 2:
        _set_last_stride(net, last_stride)
    return ResNetTrunk(net)


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ResNetTrunk", "build_resnet"]
