"""Tracklet quality: which tracklets may drive a link (docs/design.md §4.1).

A tracklet is *linkable* when it has a feature and at least ``min_points`` points and, with the
quality gate on (``LinkerConfig.quality_gate``, the default), it lasts at least ``min_duration``
seconds and its feature pools at least ``min_crops`` embedded crops. False-positive bursts of a
detector and short fragments fail it: they are exported as their own identities but never link (one
blurry crop of a passer-by would otherwise decide who is who).
"""

from __future__ import annotations

from reidpipe.pipeline.config import LinkerConfig
from reidpipe.pipeline.types import Tracklet


def linkable(t: Tracklet, config: LinkerConfig) -> bool:
    if t.feature is None or len(t.points) < config.min_points:
        return False
    if not config.quality_gate:
        return True
    return t.end_t - t.start_t >= config.min_duration and t.crops >= config.min_crops


__all__ = ["linkable"]
