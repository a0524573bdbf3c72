"""CPAA — Channel Point Affinity Attention (MFA paper, Sec. "Method", Fig. 2).

The paper: "The part before feature map B employs channel-wise self-attention mechanism, while the part
after it utilizes spatial pixel-wise self-attention"; "the feature map B is passed through three 1x1
convolutions ...". Its formulas were lost in extraction; this module implements the standard form the
text describes (the DANet position/channel attention pair, applied sequentially, channel first):

1. Channel self-attention (no convolution). With the input A reshaped to (C, N), N = H*W:
   ``X = softmax(A A^T)`` (C x C channel affinity, row-wise softmax), ``B = beta * (X A) + A``.
2. Spatial point-wise self-attention on B: three 1x1 convolutions give ``Q = W_q B`` and ``K = W_k B``
   (C/reduction channels each) and ``V = W_v B`` (C channels);
   ``S = softmax(Q^T K)`` (N x N point affinity, softmax over the key positions),
   ``out = alpha * (V S^T) + B``.

``beta`` and ``alpha`` are learnable scalars initialised at 0, so that an ImageNet-pretrained trunk is
unchanged at the start of training (DANet's initialisation). Switches: ``reduction`` (Q/K width, default
8), ``channel`` / ``spatial`` (turn either half off for ablations), ``channel_softmax``:
``"affinity"`` (default, softmax of A A^T) or ``"danet"`` (softmax of rowmax(A A^T) - A A^T, DANet's
original channel attention).
"""

from __future__ import annotations

import torch
from torch import nn

from reidpipe.errors import ConfigError


class ChannelSelfAttention(nn.Module):
    """Channel affinity attention: (N, C, H, W) -> same shape, ``beta * softmax(A A^T) A + A``."""

    def __init__(self, softmax: str = "affinity"):
        super().__init__()
        if softmax not in ("affinity", "danet"):
            raise ConfigError(f"CPAA channel_softmax must be 'affinity' or 'danet', got {softmax!r}")
        self.softmax = softmax
        self.beta = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        a = x.reshape(n, c, h * w)
        energy = torch.bmm(a, a.transpose(1, 2))  # (n, c, c)
        if self.softmax == "danet":
            energy = energy.amax(dim=-1, keepdim=True) - energy
        attn = torch.softmax(energy, dim=-1)
        out = torch.bmm(attn, a).reshape(n, c, h, w)
        return self.beta * out + x


class SpatialSelfAttention(nn.Module):
    """Point-wise (pixel) affinity attention with three 1x1 convs: ``alpha * V softmax(Q^T K)^T + B``."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        if reduction < 1 or channels // reduction < 1:
            raise ConfigError(f"CPAA reduction {reduction!r} is invalid for {channels} channels")
        inner = channels // reduction
        self.query = nn.Conv2d(channels, inner, kernel_size=1)
        self.key = nn.Conv2d(channels, inner, kernel_size=1)
        self.value = nn.Conv2d(channels, channels, kernel_size=1)
        self.alpha = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q = self.query(x).reshape(n, -1, h * w).transpose(1, 2)  # (n, hw, c')
        k = self.key(x).reshape(n, -1, h * w)  # (n, c', hw)
        v = self.value(x).reshape(n, c, h * w)  # (n, c, hw)
        attn = torch.softmax(torch.bmm(q, k), dim=-1)  # (n, hw_query, hw_key)
        out = torch.bmm(v, attn.transpose(1, 2)).reshape(n, c, h, w)
        return self.alpha * out + x


class CPAA(nn.Module):
    """Channel self-attention, then spatial point-wise self-attention (see the module docstring)."""

    def __init__(
        self,
        channels: int,
        reduction: int = 8,
        channel: bool = True,
        spatial: bool = True,
        channel_softmax: str = "affinity",
    ):
        super().__init__()
        self.channels = int(channels)
        self.channel = ChannelSelfAttention(channel_softmax) if channel else nn.Identity()
        self.spatial = SpatialSelfAttention(channels, reduction) if spatial else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


__all__ = ["CPAA", "ChannelSelfAttention", "SpatialSelfAttention"]
