"""Metric losses over a PK batch: batch-hard triplet (Hermans et al. 2017) and its soft-margin form.

``triplet`` — for each anchor, the farthest positive and the closest negative in the batch (Euclidean
distance), ``mean(relu(d_ap - d_an + margin))`` with ``margin=0.3`` (BoT, CLIP-ReID).
``soft_triplet`` — the soft-margin version ``mean(log(1 + exp(d_ap - d_an)))`` (used by MFA).

Both read ``features`` by default (the pre-BN global feature); ``normalize=True`` L2-normalises the
features first. An anchor with no negative in the batch contributes 0; an anchor with no other
positive uses distance 0 for its positive.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reidpipe.errors import ConfigError
from reidpipe.reid.losses.base import Loss, batch_labels, register_loss


def euclidean_distances(x: torch.Tensor) -> torch.Tensor:
    """(N, D) -> (N, N) pairwise Euclidean distances, numerically safe at 0."""
    sq = (x * x).sum(dim=1, keepdim=True)
    d2 = sq + sq.t() - 2.0 * (x @ x.t())
    return d2.clamp(min=1e-12).sqrt()


def hardest_pairs(dist: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hardest positive (max distance, same label) and hardest negative (min distance, other label)."""
    same = labels.view(-1, 1) == labels.view(1, -1)
    d_ap = dist.masked_fill(~same, float("-inf")).max(dim=1).values
    d_ap = torch.where(torch.isfinite(d_ap), d_ap, torch.zeros_like(d_ap))
    d_an = dist.masked_fill(same, float("inf")).min(dim=1).values
    return d_ap, d_an


@register_loss("triplet")
class TripletLoss(Loss):
    DEFAULT_INPUT = "features"

    def __init__(
        self,
        margin: float | None = 0.3,
        normalize: bool = False,
        input: str | None = None,
        reduce: str = "mean",
    ):
        super().__init__(input=input, reduce=reduce)
        if margin is not None and float(margin) < 0:
            raise ConfigError(f"triplet margin must be >= 0, got {margin!r}")
        self.margin = None if margin is None else float(margin)
        self.normalize = bool(normalize)

    def score(self, feats: torch.Tensor, batch: dict) -> torch.Tensor:
        labels = batch_labels(batch, self.name).to(feats.device)
        if feats.dim() != 2 or feats.shape[0] != labels.shape[0]:
            raise ConfigError(
                f"loss {self.name!r}: expected (N, D) features for {labels.shape[0]} labels, "
                f"got {tuple(feats.shape)} from {self.input!r}"
            )
        x = feats.float()
        if self.normalize:
            x = F.normalize(x, dim=1)
        d_ap, d_an = hardest_pairs(euclidean_distances(x), labels)
        has_neg = torch.isfinite(d_an)
        if not bool(has_neg.any()):
            return x.sum() * 0.0
        diff = d_ap[has_neg] - d_an[has_neg]
        if self.margin is None:
            return F.softplus(diff).mean()
        return F.relu(diff + self.margin).mean()

    def extra_repr(self) -> str:
        return f"input={self.input!r}, margin={'soft' if self.margin is None else self.margin}"


@register_loss("soft_triplet")
class SoftMarginTripletLoss(TripletLoss):
    def __init__(self, normalize: bool = False, input: str | None = None, reduce: str = "mean"):
        super().__init__(margin=None, normalize=normalize, input=input, reduce=reduce)
