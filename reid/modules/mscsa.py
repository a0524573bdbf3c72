"""Multistage Channel-Spatial Aggregation (MSCSA), paper 000 §3.3 (variant ``mscsa_tgi``).

One :class:`MSCSABlock` sits after a ResNet stage. It reads two maps:

- ``low``  (N, C_l, H_l, W_l): the feature map *before* the stage (its input);
- ``high`` (N, C_h, H_h, W_h): the feature map *after* the stage (its output);

and returns an aggregated map with the shape of ``high`` that replaces the stage output (the next stage
reads it). The 1×1 convolutions that read ``low`` carry the block's stride, so the low-level map is
brought to the high-level resolution: in CLIP RN50 the stride is 1 after stage 1 and 2 after stages 2
and 3, exactly the paper's setting (§4.2). The stride is derived from the two resolutions, so a block
after stage 4 (last stride 1, the paper's Table 4 ablation) gets stride 1.

Channel aggregation (the paper's text, its formula intact in the extraction)::

    Q = θ(high), K = φ(low), V = g(low)                 three 1×1 convs -> C' = C_h / reduction channels
    A_c = softmax(Q · Kᵀ)                               (N, C', C') channel similarity, rows over K's channels
    high' = high + W(A_c · V)                           W: 1×1 conv C' -> C_h ("re-projection")

Spatial aggregation (the paper's formula was lost in extraction; the text says it is "analogous to the
channel level" and names *two* 1×1 convolutions and a spatial similarity matrix). We use the standard
cross-level position-attention form that those words describe::

    Q_s = θ_s(high'), K_s = φ_s(low)                    two 1×1 convs -> C_s = C_h / spatial_reduction
    A_s = softmax(Q_sᵀ · K_s)                           (N, HW, HW) spatial similarity, rows over positions
    out = high' + V_s · A_sᵀ                            V_s = high' (spatial_value="high", the default:
                                                         exactly two convs, as the paper says)

Alternatives, one switch away: ``spatial_value="low"`` takes the aggregated values from the low-level
map through a third 1×1 conv (C_l -> C_h, strided; the non-local form); ``scaled=True`` divides both
similarity logits by sqrt(dim) (the paper's softmaxes are unscaled); ``res_scale_init=x`` multiplies
both aggregated branches by learnable scalars initialised to ``x`` (DANet's γ; e.g. 1e-4 keeps the
pretrained CLIP features almost intact when the block is switched on). Defaults follow the paper's text:
plain residual additions, unscaled softmaxes.

The "compact embeddings" of the text set the reductions: C' = C_h / 2 (as in non-local blocks) and
C_s = C_h / 8 (as in DANet's position attention); both are constructor arguments.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from reidpipe.errors import ConfigError

SPATIAL_VALUES = ("high", "low")


class MSCSABlock(nn.Module):
    """Channel then spatial aggregation of a low-level map into a high-level map (see module docstring).

    Args:
        low_channels: channels of the map before the stage (C_l).
        high_channels: channels of the map after the stage (C_h).
        stride: stride of the 1×1 convs that read the low-level map (1 or 2 in CLIP RN50).
        reduction: C_h / C' for the channel step's compact embeddings.
        spatial_reduction: C_h / C_s for the spatial step's query/key embeddings.
        spatial_value: ``"high"`` (values = channel-aggregated high map) or ``"low"`` (values = a 1×1
            conv of the low map).
        scaled: divide similarity logits by sqrt(embedding size) before the softmax.
        res_scale_init: ``None`` for plain residual additions (paper), or the initial value of the
            learnable scalars that weight the two aggregated branches.
    """

    def __init__(
        self,
        low_channels: int,
        high_channels: int,
        stride: int = 1,
        *,
        reduction: int = 2,
        spatial_reduction: int = 8,
        spatial_value: str = "high",
        scaled: bool = False,
        res_scale_init: float | None = None,
    ):
        super().__init__()
        if spatial_value not in SPATIAL_VALUES:
            raise ConfigError(f"mscsa_spatial_value={spatial_value!r}: expected one of {list(SPATIAL_VALUES)}")
        if stride < 1:
            raise ConfigError(f"MSCSA stride={stride}: must be >= 1")
        if reduction < 1 or spatial_reduction < 1:
            raise ConfigError(f"MSCSA reduction={reduction}, spatial_reduction={spatial_reduction}: must be >= 1")
        c_mid = max(1, high_channels // reduction)
        c_sp = max(1, high_channels // spatial_reduction)
        self.low_channels, self.high_channels = int(low_channels), int(high_channels)
        self.stride = int(stride)
        self.spatial_value = spatial_value
        self.scaled = bool(scaled)
        # channel aggregation: θ, φ, g and the re-projection W
        self.theta = nn.Conv2d(high_channels, c_mid, 1)
        self.phi = nn.Conv2d(low_channels, c_mid, 1, stride=stride)
        self.g = nn.Conv2d(low_channels, c_mid, 1, stride=stride)
        self.reproject = nn.Conv2d(c_mid, high_channels, 1)
        # spatial aggregation: θ_s, φ_s (and the value conv of the "low" alternative)
        self.theta_s = nn.Conv2d(high_channels, c_sp, 1)
        self.phi_s = nn.Conv2d(low_channels, c_sp, 1, stride=stride)
        self.g_s = nn.Conv2d(low_channels, high_channels, 1, stride=stride) if spatial_value == "low" else None
        if res_scale_init is None:
            self.scale_c = None
            self.scale_s = None
        else:
            self.scale_c = nn.Parameter(torch.tensor(float(res_scale_init)))
            self.scale_s = nn.Parameter(torch.tensor(float(res_scale_init)))

    def _low(self, conv: nn.Conv2d, low: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        y = conv(low)
        # a 1×1 conv with stride 2 rounds odd sizes up, the stage's anti-aliased pool rounds down
        return y[:, :, : size[0], : size[1]]

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        if low.shape[1] != self.low_channels or high.shape[1] != self.high_channels:
            raise ValueError(
                f"MSCSABlock expects {self.low_channels}/{self.high_channels} channels, "
                f"got low {tuple(low.shape)} and high {tuple(high.shape)}"
            )
        size = (high.shape[2], high.shape[3])
        # --- channel aggregation ---
        q = self.theta(high).flatten(2)  # (N, C', HW)
        k = self._low(self.phi, low, size).flatten(2)  # (N, C', HW)
        v = self._low(self.g, low, size).flatten(2)  # (N, C', HW)
        logits = torch.bmm(q, k.transpose(1, 2))  # (N, C', C')
        if self.scaled:
            logits = logits / math.sqrt(q.shape[2])
        a_c = logits.softmax(dim=-1)
        y = torch.bmm(a_c, v).reshape(v.shape[0], v.shape[1], size[0], size[1])
        y = self.reproject(y)
        high = high + (y if self.scale_c is None else self.scale_c * y)
        # --- spatial aggregation ---
        qs = self.theta_s(high).flatten(2)  # (N, C_s, HW)
        ks = self._low(self.phi_s, low, size).flatten(2)  # (N, C_s, HW)
        logits_s = torch.bmm(qs.transpose(1, 2), ks)  # (N, HW, HW)
        if self.scaled:
            logits_s = logits_s / math.sqrt(qs.shape[1])
        a_s = logits_s.softmax(dim=-1)
        vs = high if self.g_s is None else self._low(self.g_s, low, size)
        z = torch.bmm(vs.flatten(2), a_s.transpose(1, 2)).reshape_as(high)
        return high + (z if self.scale_s is None else self.scale_s * z)


def resnet_stage_geometry(width: int = 64, last_stride: int = 1) -> dict[int, tuple[int, int, int]]:
    """(low_channels, high_channels, stride) of an MSCSA block after each stage of a CLIP/torchvision
    ResNet-50 whose stem outputs ``width`` channels at 1/4 resolution.

    Stage 1: width -> 4·width, stride 1; stage 2: 4w -> 8w, stride 2; stage 3: 8w -> 16w, stride 2;
    stage 4: 16w -> 32w, stride ``last_stride`` (1 in ReID backbones).
    """
    return {
        1: (width, 4 * width, 1),
        2: (4 * width, 8 * width, 2),
        3: (8 * width, 16 * width, 2),
        4: (16 * width, 32 * width, int(last_stride)),
    }


class MSCSA(nn.Module):
    """The set of MSCSA blocks of one backbone, keyed by stage number (1..4).

    ``blocks[str(s)]`` aggregates (input of stage s, output of stage s). The paper uses stages (1, 2, 3)
    (Table 4: a fourth block after stage 4 lowers accuracy); ``stages`` selects any subset for that
    ablation. ``geometry`` maps a stage number to (low_channels, high_channels, stride); by default
    that of a ResNet-50 with a ``width``-channel stem and last stride 1 (:func:`resnet_stage_geometry`).
    """

    def __init__(
        self,
        stages=(1, 2, 3),
        *,
        geometry: dict[int, tuple[int, int, int]] | None = None,
        width: int = 64,
        last_stride: int = 1,
        reduction: int = 2,
        spatial_reduction: int = 8,
        spatial_value: str = "high",
        scaled: bool = False,
        res_scale_init: float | None = None,
    ):
        super().__init__()
        geometry = geometry or resnet_stage_geometry(width, last_stride=last_stride)
        try:
            stages = tuple(int(s) for s in stages)
        except (TypeError, ValueError):
            raise ConfigError(f"mscsa_stages={stages!r}: expected a list of stage numbers among (1, 2, 3, 4)") from None
        bad = [s for s in stages if s not in geometry]
        if bad or len(set(stages)) != len(stages):
            raise ConfigError(f"mscsa_stages={stages}: expected distinct stage numbers among (1, 2, 3, 4)")
        self.stages = tuple(sorted(stages))
        self.blocks = nn.ModuleDict(
            {
                str(s): MSCSABlock(
                    *geometry[s],
                    reduction=reduction,
                    spatial_reduction=spatial_reduction,
                    spatial_value=spatial_value,
                    scaled=scaled,
                    res_scale_init=res_scale_init,
                )
                for s in self.stages
            }
        )

    def has(self, stage: int) -> bool:
        return str(stage) in self.blocks

    def forward(self, stage: int, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        key = str(stage)
        if key not in self.blocks:
            return high
        return self.blocks[key](low, high)
