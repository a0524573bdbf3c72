"""``mfa`` — Multi-local Feature and Attention fused network (paper 003, "MFA").

Architecture (paper Fig. 1; module -> where it lives):

- ImageNet ResNet-50, last stride 1 -> :func:`reidpipe.reid.backbones.resnet.build_resnet`
  (torchvision modules; 256x128 input -> 16x8x2048 map).
- CPAA "embedded in the last three layers" of ResNet-50, i.e. on the outputs of ``layer2``, ``layer3`` and
  ``layer4`` (the paper's Table 2 places it at "Layer2, Layer3, Layer4"; Sec. 4 reads the Layer3 position
  as "the feature map outputted after Layer3") -> :class:`reidpipe.reid.modules.cpaa.CPAA` (channel
  self-attention, then spatial point-wise self-attention; formulas lost in extraction, see that module).
- Four horizontal stripes of the output map, GAP each -> :class:`~reidpipe.reid.modules.local_branches.HorizontalStripes`.
- Four local branches on the (whole) backbone map, each conv -> GeM -> BN -> ID classifier
  -> :class:`~reidpipe.reid.modules.local_branches.LocalBranch`.
- GLA loss pulling branch i's GeM vector toward stripe i's GAP vector -> ``reidpipe.reid.losses.gla``.
- Per branch ("each global embedding"): ID loss = cross-entropy with label smoothing on the BN feature's
  logits, soft-margin triplet and center loss on the GeM feature (before BN).

Inference embedding (``embed``): the concatenation of the four branches' BN features ("the pedestrian
feature vector containing multi-local features"), L2-normalised: 4 x 2048 = 8192 dimensions.

``forward`` fills ``ReIDOutput``:

- ``features``: (N, P*C) concatenated GeM features (before BN);
- ``logits``: (N, num_classes) mean of the branch logits (for accuracy read-outs; the ID loss uses
  ``extras["branch_logits"]``, one cross-entropy per branch);
- ``extras``: ``bn_features`` (N, P*C); ``branch_features`` / ``branch_bn_features`` / ``branch_logits``:
  lists of P tensors (N, C) / (N, C) / (N, num_classes) (the loss set scores list inputs per branch);
  ``local_features`` (N, P, C) the branch GeM vectors stacked; ``stripe_features`` (N, P, C) the stripe
  GAP vectors; ``feature_map`` (N, C, h, w) the backbone output.

Training recipe (paper Sec. 4.2): Adam, batch 64 = 16 identities x 4 images, 256x128 inputs, one stage
(``STAGES = ("main",)``). The learning rate, schedule and epoch count were lost in extraction (the
sentence is cut after "batch size of 64 (16"); the configs use the BagTricks [5] recipe the paper builds
on (lr 3.5e-4, 10 warm-up epochs, x0.1 at 40 and 70, 120 epochs).

Options (``create_model("mfa", ..., **options)``): ``parts`` (stripes / branches, 4), ``cpaa_stages``
((2, 3, 4); ``()`` disables CPAA), ``cpaa_reduction`` (8), ``cpaa_channel`` / ``cpaa_spatial``,
``channel_softmax`` ("affinity" | "danet"), ``local_branches`` (False = one global GeM+BN branch, the
paper's baseline), ``branch_reduction`` (16: inner width 2048/16 = 128), ``gem_p`` (3), ``depth`` (50),
``last_stride`` (1), ``tiny``, ``input_size``.

Parameters at full size (pretrained=False, 751 Market-1501 classes excluded, see
``/work/notes/variants_pivl_mfa.md``): trunk 23.51 M + CPAA 6.88 M + branches 2.71 M + BN necks
= 33.12 M, vs. the paper's 28.3 M (+17 %); the layer-4 CPAA's value convolution alone (2048x2048) is
4.2 M, so the paper's count leaves room for slimmer modules than the standard forms the text describes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from reidpipe.errors import ConfigError
from reidpipe.reid.backbones.resnet import IMAGENET_MEAN, IMAGENET_STD, ResNetTrunk, build_resnet
from reidpipe.reid.base import ReIDModel
from reidpipe.reid.modules.cpaa import CPAA
from reidpipe.reid.modules.local_branches import HorizontalStripes, LocalBranch
from reidpipe.reid.output import ReIDOutput
from reidpipe.reid.registry import register_variant


class MFA(ReIDModel):
    """ResNet-50 + CPAA + P horizontal stripes + P local branches (see the module docstring)."""

    variant = "mfa"
    STAGES: ClassVar[tuple[str, ...]] = ("main",)
    #: default loss set of each stage (weights from the paper: all terms summed with weight 1)
    #: Each branch ("each global embedding") gets its own ID loss (label smoothing 0.1 on its BN
    #: feature's logits) and soft-margin triplet loss on its GeM feature, summed over the branches.
    #: The center loss on the concatenated GeM features equals the sum of one center loss per branch
    #: with per-branch centers (squared distances add over concatenated blocks). Center-loss weight
    #: 0.0005 as in BagTricks [5]; the paper's weights were lost with its overall-loss formula.
    DEFAULT_LOSSES: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {
        "main": {
            "id": {"weight": 1.0, "input": "branch_logits", "epsilon": 0.1, "reduce": "sum"},
            "soft_triplet": {"weight": 1.0, "input": "branch_features", "reduce": "sum"},
            "center": {"weight": 0.0005, "input": "features"},
            "gla": {"weight": 1.0, "distance": "l2", "detach_target": True},
        }
    }

    def __init__(
        self,
        *,
        num_classes: int,
        trunk: ResNetTrunk,
        input_size: tuple[int, int],
        parts: int = 4,
        cpaa_stages: Sequence[int] = (2, 3, 4),
        cpaa_reduction: int = 8,
        cpaa_channel: bool = True,
        cpaa_spatial: bool = True,
        channel_softmax: str = "affinity",
        local_branches: bool = True,
        branch_reduction: int = 16,
        gem_p: float = 3.0,
        build_kwargs: dict | None = None,
    ):
        channels = trunk.out_channels
        n_branches = int(parts) if local_branches else 1
        super().__init__(
            num_classes=num_classes,
            input_size=input_size,
            pixel_mean=IMAGENET_MEAN,
            pixel_std=IMAGENET_STD,
            embed_dim=channels * n_branches,
            build_kwargs=build_kwargs,
        )
        stages = tuple(int(s) for s in cpaa_stages)
        if any(s not in (1, 2, 3, 4) for s in stages):
            raise ConfigError(f"mfa cpaa_stages must be ResNet stages among 1..4, got {list(cpaa_stages)!r}")
        self.trunk = trunk
        self.cpaa_stages = stages
        self.cpaa = nn.ModuleDict(
            {
                f"layer{s}": CPAA(
                    trunk.stage_channels[s - 1], cpaa_reduction, cpaa_channel, cpaa_spatial, channel_softmax
                )
                for s in stages
            }
        )
        self.stripes = HorizontalStripes(parts)
        self.branches = nn.ModuleList(
            LocalBranch(channels, num_classes, branch_reduction, gem_p) for _ in range(n_branches)
        )
        self.feature_dims = {
            "features": channels * n_branches,
            "bn_features": channels * n_branches,
            "branch_features": channels,
            "branch_bn_features": channels,
        }

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        x = self.trunk.stem(images)
        for i, layer in enumerate(self.trunk.stages, start=1):
            x = layer(x)
            if i in self.cpaa_stages:
                x = self.cpaa[f"layer{i}"](x)
        return x

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor | None = None, cams: torch.Tensor | None = None, **extra
    ) -> ReIDOutput:
        fmap = self.feature_map(images)
        feats, bns, logits = zip(*(branch(fmap) for branch in self.branches))
        return ReIDOutput(
            features=torch.cat(feats, dim=1),
            logits=torch.stack(logits, dim=0).mean(dim=0),
            extras={
                "bn_features": torch.cat(bns, dim=1),
                "branch_features": list(feats),
                "local_features": torch.stack(feats, dim=1),
                "branch_bn_features": list(bns),
                "branch_logits": list(logits),
                "stripe_features": self.stripes(fmap),
                "feature_map": fmap,
            },
        )

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        fmap = self.feature_map(images)
        bn = torch.cat(
            [
                branch.neck.bn(branch.pool(branch.conv(fmap)))
                for branch in cast("list[LocalBranch]", list(self.branches))
            ],
            dim=1,
        )
        return F.normalize(bn, dim=1)

    def trainable_parameters(self, name: str) -> list[tuple[str, nn.Parameter]]:
        if name not in self.STAGES:
            raise ConfigError(f"mfa: unknown stage {name!r}; this model has stages {list(self.STAGES)}")
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]


def build_mfa(
    *,
    num_classes: int,
    pretrained: bool | str = True,
    tiny: bool = False,
    input_size: tuple[int, int] | None = None,
    parts: int = 4,
    cpaa_stages: Sequence[int] = (2, 3, 4),
    cpaa_reduction: int = 8,
    cpaa_channel: bool = True,
    cpaa_spatial: bool = True,
    channel_softmax: str = "affinity",
    local_branches: bool = True,
    branch_reduction: int = 16,
    gem_p: float = 3.0,
    depth: int = 50,
    last_stride: int = 1,
) -> MFA:
    """Builder registered as ``mfa`` (options: see the module docstring)."""
    if input_size is None:
        input_size = (64, 32) if tiny else (256, 128)
    trunk = build_resnet(depth, pretrained=pretrained, last_stride=last_stride, tiny=tiny)
    kwargs = dict(
        tiny=bool(tiny),
        input_size=[int(v) for v in input_size],
        parts=int(parts),
        cpaa_stages=[int(s) for s in cpaa_stages],
        cpaa_reduction=int(cpaa_reduction),
        cpaa_channel=bool(cpaa_channel),
        cpaa_spatial=bool(cpaa_spatial),
        channel_softmax=str(channel_softmax),
        local_branches=bool(local_branches),
        branch_reduction=int(branch_reduction),
        gem_p=float(gem_p),
        depth=int(depth),
        last_stride=int(last_stride),
    )
    return MFA(
        num_classes=num_classes,
        trunk=trunk,
        input_size=cast("tuple[int, int]", tuple(input_size)),
        parts=parts,
        cpaa_stages=cpaa_stages,
        cpaa_reduction=cpaa_reduction,
        cpaa_channel=cpaa_channel,
        cpaa_spatial=cpaa_spatial,
        channel_softmax=channel_softmax,
        local_branches=local_branches,
        branch_reduction=branch_reduction,
        gem_p=gem_p,
        build_kwargs=kwargs,
    )


register_variant(
    "mfa",
    build_mfa,
    "MFA: ImageNet ResNet-50 (last stride 1) + CPAA on layers 2-4 + 4 stripes + 4 local "
    "GeM/BN branches + GLA loss (paper 003)",
)
