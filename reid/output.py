"""The one output type of every ReID model's ``forward``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class ReIDOutput:
    """What ``model(images, labels=None, cams=None)`` returns, for every variant and every stage.

    features: (N, D) global embedding before the BN neck (triplet / center losses read it).
    logits:   (N, C) identity logits, or None when the model has no classifier in this stage.
    extras:   named extra tensors, e.g. ``bn_features``, ``image_features`` / ``text_features`` for the
              CLIP image-text losses, ``local_features`` / ``stripe_features`` for MFA, part maps for
              π-VL. The keys each variant fills are listed in its docstring; losses name the keys they read.
    """

    features: torch.Tensor
    logits: torch.Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)
