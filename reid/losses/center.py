"""Center loss (Wen et al. 2016), as used in BoT-style ReID and MFA.

``center`` keeps one learnable center per identity, ``centers`` of shape (num_classes, feat_dim), and
returns ``mean_i ||f_i - c_{y_i}||^2`` over the batch (read from ``features`` by default).

``num_classes`` defaults to the model's class count and ``feat_dim`` to the width the model declares
for the input key in ``model.feature_dims`` (``build_loss_set(cfg, model=model)``); both may be given
explicitly. The centers are parameters of the loss set: the engine must optimise them
(``LossSet.trainable_parameters()``). BoT trains them with SGD (lr 0.5) in their own optimiser and
rescales their gradient by ``1 / weight`` so the weight only affects the features; that is an engine
choice, not the loss's. With a list input (multi-branch), every element is pulled to the same centers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from reidpipe.errors import ConfigError
from reidpipe.reid.losses.base import Loss, batch_labels, register_loss


@register_loss("center")
class CenterLoss(Loss):
    DEFAULT_INPUT = "features"

    def __init__(self, num_classes: int, feat_dim: int, input: str | None = None, reduce: str = "mean"):
        super().__init__(input=input, reduce=reduce)
        if int(num_classes) < 1 or int(feat_dim) < 1:
            raise ConfigError(
                f"center loss needs num_classes >= 1 and feat_dim >= 1, got {num_classes!r} and {feat_dim!r}"
            )
        self.num_classes = int(num_classes)
        self.feat_dim = int(feat_dim)
        self.centers = nn.Parameter(torch.randn(self.num_classes, self.feat_dim))

    @classmethod
    def from_config(cls, params: dict[str, Any], context: dict[str, Any]) -> CenterLoss:
        params = dict(params)
        key = params.get("input") or cls.DEFAULT_INPUT
        if "num_classes" not in params:
            if "num_classes" not in context:
                raise ConfigError("loss 'center' needs num_classes (give it, or build the loss set with the model)")
            params["num_classes"] = context["num_classes"]
        if "feat_dim" not in params:
            dims = context.get("feature_dims") or {}
            if key not in dims:
                raise ConfigError(
                    f"loss 'center' needs feat_dim: the model declares no width for {key!r} "
                    f"(feature_dims has {sorted(dims)}); set feat_dim"
                )
            params["feat_dim"] = dims[key]
        return cls(**params)

    def score(self, feats: torch.Tensor, batch: dict) -> torch.Tensor:
        labels = batch_labels(batch, self.name).to(feats.device).long()
        if feats.dim() != 2 or feats.shape[1] != self.feat_dim or feats.shape[0] != labels.shape[0]:
            raise ConfigError(
                f"loss {self.name!r}: expected ({labels.shape[0]}, {self.feat_dim}) features "
                f"from {self.input!r}, got {tuple(feats.shape)}"
            )
        centers = self.centers[labels].to(feats.dtype)
        return ((feats - centers) ** 2).sum(dim=1).clamp(min=1e-12, max=1e12).mean()

    def extra_repr(self) -> str:
        return f"input={self.input!r}, num_classes={self.num_classes}, feat_dim={self.feat_dim}"
