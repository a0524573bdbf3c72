"""π-VL hierarchical fusion-based alignment head (paper 002, Sec. 3.4, Fig. 4).

Training-only auxiliary head: multi-stage visual features are aligned in channels, resampled to
stride 8, fused, and regressed (MSE, ``reidpipe.reid.losses.dense``) onto the pixel-level part-text
embeddings. ``embed`` never runs it: no inference cost.

CNN (Fig. 4(a), Eq. 9-10) -> :class:`HierarchicalFusionHead` on the outputs of conv2_x, conv3_x and
conv4_x (``layer1``, ``layer2``, ``layer3`` of CLIP's ModifiedResNet: 256 / 512 / 1024 channels at
strides 4 / 8 / 16):

- Eq. 9, "a 1x1 depth-wise convolution [MobileNetV2] to align the channel dimension": a 1x1 conv with
  ``groups = gcd(C_in, D)``, D the CLIP joint dimension (1024 for RN50). When C_in divides D (all three
  RN50 stages) this is exactly a depth-wise conv with channel multiplier D / C_in (each input channel
  feeds D / C_in output channels: x4 for conv2, x2 for conv3, x1 for conv4), i.e. channels grow by
  replication-with-weights, the cheapest channel alignment (256*4 + 512*2 + 1024 weights + biases).
  For other width pairs (ViT below) gcd grouping is the nearest grouped form.
- Eq. 10, "downsampling or upsampling operations to align the spatial dimensions to stride = 8":
  average pooling for finer maps (conv2, stride 4 -> 8), bilinear interpolation for coarser maps (conv4,
  stride 16 -> 8); the stride-8 map is used as is. (Switch: ``down="avg" | "max" | "bilinear"``.)
- Fusion: element-wise sum of the three aligned maps (FPN-style; the formula was lost; switch
  ``fuse="sum" | "mean"``).

ViT (Fig. 4(b): "we follow the design principle proposed by [30]", ViTDet's simple feature pyramid for a
plain backbone) -> :class:`SimpleFeaturePyramid`: from the last block's patch-token map (stride 16,
width 768) build the stride-4 / 8 / 16 maps that play conv2 / conv3 / conv4's role: two 2x2 stride-2
transposed convs (768 -> 384 -> 192, LayerNorm + GELU between) for stride 4, one (768 -> 384) for
stride 8, identity for stride 16. They then go through the same head (D = 512 for ViT-B/16; groups =
gcd(192, 512) = 64, gcd(384, 512) = 128, gcd(768, 512) = 256).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reidpipe.errors import ConfigError


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an (N, C, H, W) map."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SimpleFeaturePyramid(nn.Module):
    """ViTDet-style pyramid from one stride-16 map: returns maps at strides 4, 8, 16."""

    def __init__(self, channels: int = 768):
        super().__init__()
        half, quarter = channels // 2, channels // 4
        self.to_stride4 = nn.Sequential(
            nn.ConvTranspose2d(channels, half, kernel_size=2, stride=2),
            LayerNorm2d(half),
            nn.GELU(),
            nn.ConvTranspose2d(half, quarter, kernel_size=2, stride=2),
        )
        self.to_stride8 = nn.ConvTranspose2d(channels, half, kernel_size=2, stride=2)
        self.out_channels = (quarter, half, channels)
        self.strides = (4, 8, 16)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.to_stride4(x), self.to_stride8(x), x]


class HierarchicalFusionHead(nn.Module):
    """Channel-align (1x1 depth-wise), resample to ``out_stride``, fuse (see the module docstring)."""

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        out_channels: int,
        out_stride: int = 8,
        fuse: str = "sum",
        down: str = "avg",
    ):
        super().__init__()
        if len(in_channels) != len(in_strides) or not in_channels:
            raise ConfigError(
                f"fusion head: in_channels {list(in_channels)} and in_strides {list(in_strides)} "
                "must be non-empty and of the same length"
            )
        if fuse not in ("sum", "mean"):
            raise ConfigError(f"fusion head: fuse must be 'sum' or 'mean', got {fuse!r}")
        if down not in ("avg", "max", "bilinear"):
            raise ConfigError(f"fusion head: down must be 'avg', 'max' or 'bilinear', got {down!r}")
        self.in_strides = tuple(int(s) for s in in_strides)
        self.out_stride = int(out_stride)
        self.out_channels = int(out_channels)
        self.fuse, self.down = fuse, down
        self.align = nn.ModuleList(
            nn.Conv2d(int(c), self.out_channels, kernel_size=1, groups=math.gcd(int(c), self.out_channels))
            for c in in_channels
        )

    def forward(self, feats: Sequence[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """``feats``: one map per input stage; ``size``: the (h, w) of the stride-``out_stride`` grid."""
        out: torch.Tensor | None = None
        for conv, stride, x in zip(self.align, self.in_strides, feats):
            x = self.resample(conv(x), stride, size)
            out = x if out is None else out + x
        if out is None:
            raise ValueError("HierarchicalFusionHead: no feature maps given")
        return out / len(self.align) if self.fuse == "mean" else out

    def resample(self, x: torch.Tensor, stride: int, size: tuple[int, int]) -> torch.Tensor:
        if tuple(x.shape[-2:]) == tuple(size):
            return x
        if stride < self.out_stride and self.down != "bilinear":
            k = self.out_stride // stride
            pool = F.avg_pool2d if self.down == "avg" else F.max_pool2d
            x = pool(x, kernel_size=k, stride=k, ceil_mode=True)
            if tuple(x.shape[-2:]) == tuple(size):
                return x
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


__all__ = ["HierarchicalFusionHead", "LayerNorm2d", "SimpleFeaturePyramid"]
