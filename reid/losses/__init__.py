"""Losses as separate objects, combined by a weighted loss set built from config.

    from reidpipe.reid.losses import build_loss_set
    losses = build_loss_set({"id": {"weight": 1.0}, "triplet": {"weight": 1.0, "margin": 0.3}}, model=model)
    result = losses(model(images, labels), {"labels": labels, "cams": cams})
    result.total.backward(); log(result.terms)

See ``reidpipe.reid.losses.base`` for the config format and how to add a loss. Registered names:
``id``, ``i2t_ce`` (classification.py), ``triplet``, ``soft_triplet`` (triplet.py), ``center``
(center.py), ``i2t_contrastive``, ``t2i_contrastive`` (image_text.py), plus those of the optional
modules below (other engineers' losses, imported when present).
"""

from __future__ import annotations

# importing the loss modules registers their losses (`register_loss`)
from reidpipe.reid.losses import center, classification, dense, gla, image_text, triplet  # noqa: E402,F401
from reidpipe.reid.losses.base import (
    Loss,
    LossResult,
    LossSet,
    build_loss_set,
    get_loss_class,
    list_losses,
    read_output,
    register_loss,
)

__all__ = [
    "Loss",
    "LossResult",
    "LossSet",
    "build_loss_set",
    "get_loss_class",
    "list_losses",
    "read_output",
    "register_loss",
]
