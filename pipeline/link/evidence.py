"""Spatio-temporal evidence learned from the run (docs/design.md §4.6), no calibration input needed.

The time evidence of a cross-camera candidate is its signed gap (:func:`.constraints.gap`): seconds
from the end of the earlier tracklet to the start of the later one, negative while both are visible at
once. For each camera pair a :class:`TransitModel` compares two densities of that gap:

- **links**: the gaps of the pair's confident links (found on appearance alone): the transit-time
  distribution between two cameras that do not overlap, or the co-occurrence (negative gaps) of two
  cameras that see the same place;
- **background**: the gaps of all candidate pairs of the two cameras (mostly different people).

Both are Gaussian kernel densities (scipy, Scott's bandwidth, at least ``MIN_BANDWIDTH`` seconds); the
log-ratio of the two at a candidate's gap is its time evidence, clipped to +-``MAX_LLR`` so that time
alone never decides a link. With fewer than ``MIN_LINKS`` confident links the pair has no time
evidence (ratio 0). A confident link's own gap is left out of the links' density when its own
evidence is read (leave-one-out): else a confident link with a gap unlike every other link's vouches
for itself (with a handful of links, its own kernel lifts the density at its gap by nats, enough to
make a wrong link).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

MIN_LINKS = 3
MIN_BANDWIDTH = 1.0  # seconds: tracklet ends are known to about a second (track confirmation, loss)
MAX_LLR = 3.0  # nats
GRID = 512
MAX_SAMPLES = 4096  # gaps per density (a random subset beyond)


def _subset(values: np.ndarray) -> np.ndarray:
    if values.size <= MAX_SAMPLES:
        return values
    return np.random.default_rng(0).choice(values, MAX_SAMPLES, replace=False)


def _kde(values: np.ndarray) -> Any:
    from scipy.stats import gaussian_kde

    v = np.asarray(values, np.float64)
    spread = float(np.std(v))
    if v.size < 2 or spread < 1e-9:  # one value (to rounding: 6.1 s and 6.1 s + 1 ulp): no covariance
        v = np.concatenate([v, v + MIN_BANDWIDTH]) if v.size else np.array([0.0, MIN_BANDWIDTH])
        spread = float(np.std(v))
    factor = max(float(v.size) ** -0.2, MIN_BANDWIDTH / max(spread, 1e-9))
    return gaussian_kde(v, bw_method=factor)


@dataclass
class TransitModel:
    """Time evidence of one camera pair (see the module docstring)."""

    link_gaps: np.ndarray
    background_gaps: np.ndarray

    def __post_init__(self) -> None:
        # the log-ratio is tabulated once on a grid and interpolated: evaluating the two densities at
        # every candidate cost O(samples x candidates) (3.5 of 4.8 s for 5,000 tracklets in
        # `reidpipe bench --linker-only`); the grid step is far below the bandwidth
        self._grid: np.ndarray | None = None
        self._table: np.ndarray | None = None
        if self.usable:
            links = _subset(self.link_gaps)
            pos, bg = _kde(links), _kde(_subset(self.background_gaps))
            both = np.concatenate([self.link_gaps, self.background_gaps])
            pad = 3 * max(float(np.std(both)), MIN_BANDWIDTH)
            self._grid = np.linspace(both.min() - pad, both.max() + pad, GRID)
            self._links, self._background = pos(self._grid), bg(self._grid)
            self._floor = 1e-6 * float(max(self._links.max(), self._background.max(), 1e-12))
            self._table = self._log_ratio(self._links, self._background)
            # one link's share of the links' density at its own gap (leave-one-out); none when the
            # density is of a subset (a link beyond it adds nothing, and with MAX_SAMPLES links little)
            n = links.size
            own = 1.0 / (n * np.sqrt(2 * np.pi * float(pos.covariance[0, 0])))
            self._own = own if n == self.link_gaps.size and n > 1 else 0.0

    @property
    def usable(self) -> bool:
        return self.link_gaps.size >= MIN_LINKS and self.background_gaps.size >= MIN_LINKS

    def _log_ratio(self, links: np.ndarray, background: np.ndarray) -> np.ndarray:
        return np.clip(np.log(links + self._floor) - np.log(background + self._floor), -MAX_LLR, MAX_LLR)

    def llr(self, gaps: ArrayLike, own: ArrayLike | None = None) -> np.ndarray:
        """Time evidence at ``gaps``; ``own`` (a mask): the gaps that are confident links, each read
        without itself."""
        g = np.atleast_1d(np.asarray(gaps, np.float64))
        grid, table = self._grid, self._table
        if grid is None or table is None:
            return np.zeros(g.shape)
        out = np.interp(g, grid, table)
        own = None if own is None or not self._own else np.asarray(own, bool)
        if own is not None and own.any():
            n = self.link_gaps.size
            density = np.interp(g[own], grid, self._links)
            without = np.maximum(density - self._own, 0.0) * n / (n - 1)
            out[own] = self._log_ratio(without, np.asarray(np.interp(g[own], grid, self._background)))
        return out

    def to_json(self) -> dict[str, Any]:
        if not self.usable:
            return {"links": int(self.link_gaps.size)}
        q = np.percentile(self.link_gaps, [10, 50, 90])
        return {
            "links": int(self.link_gaps.size),
            "gap_p10": round(float(q[0]), 2),
            "gap_median": round(float(q[1]), 2),
            "gap_p90": round(float(q[2]), 2),
        }


__all__ = ["MAX_LLR", "TransitModel"]
