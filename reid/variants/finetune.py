"""``finetune`` — an existing ReID embedder's trunk + BNNeck + identity classifier, to fine-tune it.

This is the model ``reidpipe train --init MODEL`` trains: the user's embedder as it is (its trunk
gives one (N, D) feature per crop), a BatchNorm "neck" on that feature (bias frozen, as in Luo et
al.'s BoT) and a bias-free linear ID classifier sized to the training set's identities.

- ``forward``: ``features`` = the trunk's feature (triplet loss), ``logits`` = classifier(BN
  feature) (ID loss), ``extras["bn_features"]`` = the BN feature.
- ``embed``: the L2-normalised trunk feature (``embed_from="trunk"``, the default), so before any
  training ``embed`` is the init model's own embedding (a fine-tuning run's "before" figures are the
  given model's), and after it the embedding keeps the given model's geometry, which the pipeline's
  linker calibrates on. ``embed_from="bn"`` embeds the neck's feature instead (BoT's choice): on
  CUHK03 it scores about the same mAP, but the linker made far fewer cross-camera links with it.

Trunks (option ``backbone``):

- ``osnet_x0_25`` / ``osnet_x0_5`` / ``osnet_x0_75`` / ``osnet_x1_0``: OSNet
  (:mod:`reidpipe.reid.backbones.osnet`); ``pretrained=PATH`` loads a torchreid OSNet state dict;
- ``onnx``: the ONNX ReID model at option ``onnx`` converted to torch with ``onnx2torch`` (a batch
  fixed at 1 in the file is freed first, see :mod:`reidpipe.pipeline.models.onnx_batch`); its weights come
  from the file, so a checkpoint of this trunk needs that file to be rebuilt.

Options: ``backbone``, ``onnx``, ``input_size`` (default: OSNet 256x128, an ONNX model's own),
``pixel_mean`` / ``pixel_std`` (default ImageNet's, or an ONNX file's ``reidpipe.mean``/``std``
metadata), ``tiny`` (OSNet-x0.25 at 64x32, for tests), ``embed_from`` (``"trunk"``, default: the trunk's own
feature, as the given model embeds; ``"bn"``: the neck's feature, BoT's choice).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from reidpipe.errors import ConfigError
from reidpipe.reid.backbones.osnet import build_osnet
from reidpipe.reid.backbones.resnet import IMAGENET_MEAN, IMAGENET_STD
from reidpipe.reid.base import ReIDModel
from reidpipe.reid.output import ReIDOutput
from reidpipe.reid.registry import register_variant

OSNET_WIDTHS = {"osnet_x0_25": 0.25, "osnet_x0_5": 0.5, "osnet_x0_75": 0.75, "osnet_x1_0": 1.0}
BACKBONES = (*OSNET_WIDTHS, "onnx")


class FineTune(ReIDModel):
    """A trunk (images -> (N, D)) + BNNeck + ID classifier; see the module docstring."""

    variant = "finetune"
    STAGES: ClassVar[tuple[str, ...]] = ("main",)
    #: BoT's pair: label-smoothed ID loss on the BN feature's logits, batch-hard triplet on the feature
    DEFAULT_LOSSES: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {
        "main": {
            "id": {"weight": 1.0, "epsilon": 0.1},
            "triplet": {"weight": 1.0, "margin": 0.3},
        }
    }

    def __init__(self, trunk: nn.Module, feature_dim: int, *, num_classes: int, embed_from: str = "trunk", **kw: Any):
        super().__init__(num_classes=num_classes, embed_dim=feature_dim, **kw)
        if embed_from not in ("bn", "trunk"):
            raise ConfigError(f"finetune: embed_from must be 'bn' or 'trunk', got {embed_from!r}")
        self.embed_from = embed_from
        self.trunk = trunk
        self.bnneck = nn.BatchNorm1d(feature_dim)
        self.bnneck.bias.requires_grad_(False)
        self.classifier = nn.Linear(feature_dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)
        self.feature_dims = {"features": feature_dim, "bn_features": feature_dim}

    def trainable_parameters(self, name: str) -> list[tuple[str, nn.Parameter]]:
        """Everything but the neck's bias (BoT keeps it at 0)."""
        return [(n, p) for n, p in self.named_parameters() if n != "bnneck.bias"]

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor | None = None, cams: torch.Tensor | None = None, **extra
    ) -> ReIDOutput:
        feat = self.trunk(images).flatten(1)
        bn = self.bnneck(feat)
        return ReIDOutput(features=feat, logits=self.classifier(bn), extras={"bn_features": bn})

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        feat = self.trunk(images).flatten(1)
        return F.normalize(self.bnneck(feat) if self.embed_from == "bn" else feat, dim=1)


def _onnx_trunk(path: str) -> tuple[nn.Module, tuple[int, int], dict[str, str]]:
    """The ONNX model as a torch module (batch freed), its input size and its ``reidpipe.*`` metadata."""
    from reidpipe.pipeline.models.onnx_batch import dynamic_batch_copy, onnx_batch_dim, onnx_input_size
    from reidpipe.pipeline.models.onnx_torch import onnx_to_torch
    from reidpipe.reid.export import read_onnx_metadata

    size = onnx_input_size(path)
    meta = read_onnx_metadata(path)
    graph = path
    if onnx_batch_dim(path) == 1:
        graph = str(dynamic_batch_copy(path)["path"])
    return onnx_to_torch(graph), size, meta


def _triple(value: Any, name: str) -> tuple[float, float, float]:
    try:
        a, b, c = (float(v) for v in (value.split(",") if isinstance(value, str) else value))
    except (TypeError, ValueError):
        raise ConfigError(f"finetune: {name} must be three numbers (r, g, b), got {value!r}") from None
    return a, b, c


def build_finetune(
    *,
    num_classes: int,
    pretrained: bool | str = False,
    backbone: str = "osnet_x0_25",
    onnx: str | None = None,
    tiny: bool = False,
    input_size: Sequence[int] | None = None,
    pixel_mean: Sequence[float] | None = None,
    pixel_std: Sequence[float] | None = None,
    embed_from: str = "trunk",
) -> FineTune:
    """The ``finetune`` model (see the module docstring)."""
    if backbone not in BACKBONES:
        raise ConfigError(f"finetune: unknown backbone {backbone!r}; use one of {', '.join(BACKBONES)}")
    mean = _triple(pixel_mean, "pixel_mean") if pixel_mean is not None else IMAGENET_MEAN
    std = _triple(pixel_std, "pixel_std") if pixel_std is not None else IMAGENET_STD
    trunk: nn.Module
    if backbone == "onnx":
        if not onnx:
            raise ConfigError("finetune: backbone 'onnx' needs the option onnx=PATH (the ONNX model to fine-tune)")
        if not Path(onnx).is_file():
            from reidpipe.errors import InputNotFoundError

            raise InputNotFoundError(f"finetune: ONNX model {onnx} not found (the trunk of this model)")
        trunk, size, meta = _onnx_trunk(str(onnx))
        if pixel_mean is None and "reidpipe.mean" in meta:
            mean = _triple(meta["reidpipe.mean"], "reidpipe.mean")
        if pixel_std is None and "reidpipe.std" in meta:
            std = _triple(meta["reidpipe.std"], "reidpipe.std")
        with torch.no_grad():
            dim = int(trunk.eval()(torch.zeros(2, 3, *size)).flatten(1).shape[1])
    else:
        if pretrained is True:
            raise ConfigError(
                "finetune: OSNet has no download here; start from a file (--init MODEL, or "
                "--set model.pretrained=FILE with a torchreid OSNet state dict) or set model.pretrained=false"
            )
        if isinstance(pretrained, str):
            from reidpipe.reid.backbones.osnet import osnet_from_state_dict
            from reidpipe.reid.init_model import read_state_dict

            trunk = osnet_from_state_dict(read_state_dict(pretrained), pretrained)
            if trunk.width != OSNET_WIDTHS[backbone]:
                raise ConfigError(f"finetune: {pretrained} holds an OSNet of width {trunk.width}, not {backbone}")
        else:
            trunk = build_osnet(OSNET_WIDTHS[backbone])
        size = (64, 32) if tiny else (256, 128)
        dim = trunk.out_channels
    if input_size is not None:
        size = (int(input_size[0]), int(input_size[1]))
    return FineTune(
        trunk, dim, num_classes=num_classes, input_size=size, pixel_mean=mean, pixel_std=std, embed_from=embed_from
    )


register_variant(
    "finetune",
    build_finetune,
    "fine-tune an existing ReID embedder (OSNet / torchreid state dict / any ONNX ReID model): "
    "its trunk + BNNeck + ID classifier",
)
