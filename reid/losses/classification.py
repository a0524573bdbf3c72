"""Identity classification losses: cross-entropy with label smoothing.

``id`` — ID loss on identity logits (default input ``logits``; multi-branch models pass a list such
as CLIP-ReID's ``id_logits`` = [classifier(BN(feat)), classifier_proj(BN(feat_proj))]).

``i2t_ce`` — CLIP-ReID stage-2 image-to-text cross-entropy: the same label-smoothed cross-entropy on
``i2t_logits`` = image_features_proj @ text_features(all classes).T.

Label smoothing (Szegedy et al.; as in BoT / CLIP-ReID): the target is
``(1 - epsilon) * one_hot + epsilon / C``, so ``epsilon=0.1`` by default and ``epsilon=0`` is plain
cross-entropy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reidpipe.errors import ConfigError
from reidpipe.reid.losses.base import Loss, batch_labels, register_loss


@register_loss("id")
class CrossEntropyLabelSmooth(Loss):
    DEFAULT_INPUT = "logits"

    def __init__(self, epsilon: float = 0.1, input: str | None = None, reduce: str = "mean"):
        super().__init__(input=input, reduce=reduce)
        if not 0.0 <= float(epsilon) < 1.0:
            raise ConfigError(f"label-smoothing epsilon must be in [0, 1), got {epsilon!r}")
        self.epsilon = float(epsilon)

    def score(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        labels = batch_labels(batch, self.name).to(logits.device).long()
        if logits.dim() != 2 or logits.shape[0] != labels.shape[0]:
            raise ConfigError(
                f"loss {self.name!r}: expected (N, C) logits for {labels.shape[0]} labels, "
                f"got {tuple(logits.shape)} from {self.input!r}"
            )
        if labels.numel() and int(labels.max()) >= logits.shape[1]:
            raise ConfigError(
                f"loss {self.name!r}: label {int(labels.max())} is out of range for "
                f"{logits.shape[1]} classes (num_classes of the model)"
            )
        return F.cross_entropy(logits.float(), labels, label_smoothing=self.epsilon)

    def extra_repr(self) -> str:
        return f"input={self.input!r}, epsilon={self.epsilon}"


@register_loss("i2t_ce")
class ImageToTextCrossEntropy(CrossEntropyLabelSmooth):
    DEFAULT_INPUT = "i2t_logits"
