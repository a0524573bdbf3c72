"""OSNet (Zhou et al., "Omni-Scale Feature Learning for Person Re-Identification", ICCV 2019) as a
ReID trunk whose parameter names follow torchreid's model zoo, so its published state dicts
(``osnet_x0_25_msmt17.pth`` ...) load as they are.

Architecture (paper Table 1 / Fig. 4), widths ``(64, 256, 384, 512)`` times the width multiplier
(x1.0, x0.75, x0.5, x0.25):

- ``conv1``: 7x7 conv stride 2 + BN + ReLU, then ``maxpool`` 3x3 stride 2;
- ``conv2``, ``conv3``: two omni-scale blocks each, then a transition (1x1 conv + BN + ReLU, 2x2
  average pooling); ``conv4``: two blocks, no transition; ``conv5``: 1x1 conv + BN + ReLU;
- global average pooling, then ``fc`` = Linear(→512) + BatchNorm1d + ReLU: the 512-d ReID feature.

An omni-scale block (``OSBlock``, bottleneck 4): 1x1 reduction, four streams of 1, 2, 3 and 4
stacked "lite 3x3" layers (1x1 pointwise + 3x3 depthwise conv, BN, ReLU: receptive fields 3, 5, 7,
9), each stream re-weighted by one shared channel gate (a squeeze-excitation MLP with reduction 16)
and summed, a 1x1 linear expansion, and a residual connection (a 1x1 linear projection where the
widths differ).

:func:`build_osnet` returns the trunk (``forward`` gives the (N, 512) feature of the eval-mode
torchreid model, before any L2 normalisation); :func:`osnet_from_state_dict` recognises a torchreid
OSNet state dict, picks the width from its tensors and loads it (the classifier, sized to another
training set, is left out).
"""

from __future__ import annotations

import torch
from torch import nn

from reidpipe.errors import CheckpointError, ConfigError

#: width multiplier -> channels of conv1, conv2, conv3, conv4 (torchreid's osnet_x*)
WIDTHS = {1.0: (64, 256, 384, 512), 0.75: (48, 192, 288, 384), 0.5: (32, 128, 192, 256), 0.25: (16, 64, 96, 128)}
FEATURE_DIM = 512


class ConvLayer(nn.Module):
    """k x k convolution + BN + ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Conv1x1(ConvLayer):
    """1x1 convolution + BN + ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, 1)


class Conv1x1Linear(nn.Module):
    """1x1 convolution + BN, no activation (block expansion and residual projection)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class LightConv3x3(nn.Module):
    """The "lite 3x3" layer: 1x1 pointwise conv, 3x3 depthwise conv, BN, ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False, groups=cout)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv2(self.conv1(x))))


class ChannelGate(nn.Module):
    """The unified aggregation gate: per-channel weights in (0, 1) from the pooled stream."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=True)
        self.gate_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.gate_activation(self.fc2(self.relu(self.fc1(self.global_avgpool(x)))))
        return x * w


def _lite_stack(channels: int, depth: int) -> nn.Sequential:
    return nn.Sequential(*[LightConv3x3(channels, channels) for _ in range(depth)])


class OSBlock(nn.Module):
    """Omni-scale residual block: four streams of 1-4 lite 3x3 layers, one shared gate."""

    def __init__(self, cin: int, cout: int, bottleneck_reduction: int = 4):
        super().__init__()
        mid = cout // bottleneck_reduction
        self.conv1 = Conv1x1(cin, mid)
        self.conv2a = LightConv3x3(mid, mid)
        self.conv2b = _lite_stack(mid, 2)
        self.conv2c = _lite_stack(mid, 3)
        self.conv2d = _lite_stack(mid, 4)
        self.gate = ChannelGate(mid)
        self.conv3 = Conv1x1Linear(mid, cout)
        self.downsample = Conv1x1Linear(cin, cout) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        streams = (self.conv2a(x1), self.conv2b(x1), self.conv2c(x1), self.conv2d(x1))
        x2 = sum((self.gate(s) for s in streams[1:]), self.gate(streams[0]))
        x3 = self.conv3(x2)
        identity = x if self.downsample is None else self.downsample(x)
        return torch.relu(x3 + identity)


def _stage(cin: int, cout: int, blocks: int, reduce: bool) -> nn.Sequential:
    layers: list[nn.Module] = [OSBlock(cin, cout)]
    layers += [OSBlock(cout, cout) for _ in range(blocks - 1)]
    if reduce:
        layers.append(nn.Sequential(Conv1x1(cout, cout), nn.AvgPool2d(2, stride=2)))
    return nn.Sequential(*layers)


class OSNet(nn.Module):
    """The OSNet trunk: image (N, 3, H, W) normalised RGB -> (N, 512) feature."""

    def __init__(self, width: float = 0.25, feature_dim: int = FEATURE_DIM, blocks: tuple[int, ...] = (2, 2, 2)):
        super().__init__()
        if width not in WIDTHS:
            raise ConfigError(f"OSNet width {width!r} is not one of {sorted(WIDTHS)}")
        c = WIDTHS[width]
        self.width = width
        self.conv1 = ConvLayer(3, c[0], 7, stride=2, padding=3)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = _stage(c[0], c[1], blocks[0], reduce=True)
        self.conv3 = _stage(c[1], c[2], blocks[1], reduce=True)
        self.conv4 = _stage(c[2], c[3], blocks[2], reduce=False)
        self.conv5 = Conv1x1(c[3], c[3])
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(c[3], feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU(inplace=True))
        self.out_channels = feature_dim
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        return self.conv5(self.conv4(self.conv3(self.conv2(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.global_avgpool(self.feature_map(x)).flatten(1))


def build_osnet(width: float = 0.25) -> OSNet:
    """A randomly initialised OSNet trunk of the given width multiplier."""
    return OSNet(width=float(width))


def is_osnet_state_dict(state: dict) -> bool:
    """True for a torchreid OSNet state dict (its stem and first block under their torchreid names)."""
    keys = ("conv1.conv.weight", "conv2.0.conv2a.conv2.weight", "conv5.conv.weight", "fc.0.weight")
    return all(k in state and torch.is_tensor(state[k]) for k in keys)


def osnet_width(state: dict) -> float:
    """The width multiplier of a torchreid OSNet state dict, read from its stem's channels."""
    stem = int(state["conv1.conv.weight"].shape[0])
    for width, channels in WIDTHS.items():
        if channels[0] == stem:
            return width
    raise CheckpointError(f"an OSNet state dict with a {stem}-channel stem matches no known width {sorted(WIDTHS)}")


def osnet_from_state_dict(state: dict, source: str) -> OSNet:
    """The trunk of a torchreid OSNet state dict (``classifier.*`` ignored), weights loaded."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if not is_osnet_state_dict(state):
        raise CheckpointError(f"{source} is not a torchreid OSNet state dict (no conv1.conv / conv2.0 / fc.0 keys)")
    net = OSNet(width=osnet_width(state), feature_dim=int(state["fc.0.weight"].shape[0]))
    trunk = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    try:
        net.load_state_dict(trunk, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0][:200]
        raise CheckpointError(f"{source}: weights do not fit torchreid's OSNet layout ({first})") from None
    return net


__all__ = ["OSNet", "build_osnet", "is_osnet_state_dict", "osnet_from_state_dict", "osnet_width", "WIDTHS"]
