"""Decisions calibrated from the run's own data (docs/design.md §4.5).

Cosine scales differ between embedders and cameras, so the linker never compares a raw cosine with a
fixed number. It turns each similarity into a *z-score* against what "different people" look like in
this run, for this model, on these cameras:

- **in-camera** (re-entry of a person in one camera): nearly every pair of a camera's tracklets is two
  different people (a person's fragments are few), so a sample of all its pairs within the linking
  window is the camera's negative sample. Pairs of tracklets that coexist looked like certain
  negatives, but trackers make duplicate tracks of one person (two boxes, a track re-spawned before
  the old one is dropped): a few such pairs among the few dozen coexisting ones inflated the fitted
  tail so much that re-entry levels rose above a cosine of 1 and no re-entry was merged at all;
- **cross-camera**, per camera pair: nearly every pair of tracklets of two cameras is two different
  people (a person matches at most one of the other camera's tracklets at a time), so a sample of all
  pairs is the pair's negative sample (robust statistics make the few true pairs in it harmless).

Each sample becomes a :class:`NegativeModel` (median, and the larger of 1.4826 x MAD and the upper
tail's width: a robust normal fit that does not understate the tail where decisions are made), so that
``z = (cosine - median) / scale``. Decisions then follow from counting, not from tuned constants:

- an in-camera re-entry needs ``z >= bonferroni_z(m)``: the level a negative reaches with probability
  ``ALPHA`` over all ``m`` candidate pairs of the camera (family-wise error ``ALPHA``);
- a cross-camera link is a Bayesian decision: prior odds of one match among ``k`` candidates
  (``1 / k``), times the appearance likelihood ratio ``N(z; mu, sigma) / t_dof(z)`` where the
  positive model ``(mu, sigma)`` is fitted on the run's *confident* links (``z`` above the Bonferroni
  level of the pair, mutual best matches; offline, each camera pair with enough of them gets its own
  ``mu``: :meth:`PositiveModel.for_pair`), times the time evidence of :mod:`.evidence`; a link is
  made when the posterior odds exceed 1.

A sample of n pairs gives z-scores that follow Student's t with n - 1 degrees of freedom, so small
samples (early in an online run, few cameras' worth of people) widen every level instead of being
trusted like large ones. When a sample is too small to fit at all (fewer than ``MIN_NEGATIVES``
pairs: one camera, one person, a few seconds), the decision falls back to the fixed cosine ``LinkerConfig.fallback_similarity`` (the
embedder's documented default) and the operating point says so. A user's ``--link-threshold``
(``LinkerConfig.min_similarity``) replaces all of this by that fixed cosine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm
from scipy.stats import t as student_t

if TYPE_CHECKING:  # split.py builds on this module
    from reidpipe.pipeline.link.split import SplitReport

ALPHA = 0.05  # family-wise false-link rate of the Bonferroni levels
MIN_NEGATIVES = 30  # a negative sample needs this many pairs to be fitted (fewer: the fallback cosine)
MIN_CONFIDENT = 3  # confident links needed to fit the positive model (else its default below)
SAMPLE_PAIRS = 4096  # at most this many pairs per negative sample (random, reproducible)
NEGATIVE_QUANTILE = 0.9  # the negatives' upper tail's width is read at their 90th percentile
MAX_MATCH_SHARE = 1.0 / 6.0  # true matches counted as at most this share of a sample (read >= the 75th)


@dataclass
class NegativeModel:
    """Robust normal fit of "different people" similarities: ``median`` and ``scale`` (1.4826 MAD, or
    the upper tail's width read at ``quantile``)."""

    median: float
    scale: float
    n: int
    quantile: float = 0.9

    @classmethod
    def fit(cls, sims: np.ndarray, matches: float = 0.0) -> NegativeModel | None:
        """Fit on a sample of pairs of which at most ``matches`` can be true matches (0: few enough
        not to matter, see :func:`tail_quantile`)."""
        sims = np.asarray(sims, np.float64).ravel()
        if sims.size < MIN_NEGATIVES:
            return None
        med = float(np.median(sims))
        mad = float(np.median(np.abs(sims - med))) * 1.4826
        # similarities of different people often have a heavier upper tail than a normal of the
        # bulk's width; the decisions live in that tail, so its own width counts too
        q = tail_quantile(matches / sims.size)
        upper = (float(np.quantile(sims, q)) - med) / float(norm.isf(1.0 - NEGATIVE_QUANTILE))
        return cls(median=med, scale=max(mad, upper, 1e-4), n=int(sims.size), quantile=q)

    @property
    def dof(self) -> int:
        """Degrees of freedom of the fit: a small sample's z-scores follow Student's t, not a normal."""
        return max(self.n - 1, 1)

    def z(self, sims: ArrayLike) -> np.ndarray:
        return (np.asarray(sims, np.float64) - self.median) / self.scale

    def cosine(self, z: float) -> float:
        """The cosine at ``z`` (for the operating point and the candidate search)."""
        return float(self.median + z * self.scale)

    def to_json(self) -> dict[str, Any]:
        return {
            "median": round(self.median, 4),
            "scale": round(self.scale, 4),
            "pairs": self.n,
            "tail_quantile": round(self.quantile, 3),
        }


def tail_quantile(share: float) -> float:
    """The quantile of a sample at which the negatives' own 90th percentile (``NEGATIVE_QUANTILE``)
    lies when up to ``share`` of the sample are true matches: ``0.9 x (1 - share)``, the true
    matches lying above it (``share`` taken as at most ``MAX_MATCH_SHARE``).

    True matches look more alike than nearly every pair of different people, so they fill the top
    of the sample: read at the sample's own 90th percentile, the width is the negatives' at a higher
    quantile but divided as the 90th's, and every z shrinks. On a recording of two overlapping
    views (two dozen people, each in both views) the true pairs are 4 % of the sample and the
    width came out a quarter too wide, for every embedder; an embedder whose different people
    spread wider then kept one or two confident links, too few to learn the positive model or the
    time evidence from, and linked almost nobody. A short clip holds a larger share (a dozen people
    per camera: about 8 %), read lower still."""
    return float(NEGATIVE_QUANTILE * (1.0 - min(max(share, 0.0), MAX_MATCH_SHARE)))


def bonferroni_z(m: int, dof: int | None = None, alpha: float = ALPHA) -> float:
    """The z a negative exceeds with probability ``alpha`` over ``m`` comparisons (Student's t with
    ``dof`` degrees of freedom for a model fitted on a small sample, else normal)."""
    q = alpha / max(int(m), 1)
    return float(norm.isf(q) if dof is None else student_t.isf(q, dof))


def negative_logpdf(z: ArrayLike, dof: int | np.ndarray | None = None) -> np.ndarray:
    """Log-density of a negative's z-score (``dof``: one, or one per z): Student's t for a small
    sample (heavier tails, so that a few pairs never make a link look certain), normal in the limit."""
    z = np.asarray(z, np.float64)
    return norm.logpdf(z) if dof is None else student_t.logpdf(z, dof)


@dataclass
class PositiveModel:
    """Normal model of the z-scores of true links, fitted on the confident links of the run
    (``sigma`` >= 1: no narrower than the negatives)."""

    mu: float
    sigma: float
    n: int = 0
    bounded: bool = False  # the fit was held so that its confident links stay links

    @classmethod
    def fit(
        cls,
        z_confident: np.ndarray,
        default_mu: float,
        lower: np.ndarray | float | None = None,
        prior: np.ndarray | None = None,
        dof: np.ndarray | None = None,
        keep: int = 1,
        floor: float | None = None,
    ) -> PositiveModel:
        """Fit on the confident links' z-scores. Confident links are those above a level (``lower``:
        each one's, or one for all), so they are the upper part of the true links, not a sample of
        them: a plain mean would put the true links higher than they are and miss the ones near the
        level. With ``lower`` the fit is the maximum-likelihood normal truncated at it (a censored
        sample).

        With ``prior`` (each confident link's prior log-odds) and ``dof`` (its negative model's), the
        fit must leave the ``keep`` strongest confident links links on appearance alone, and with
        ``floor`` its mean stays at or above that z (see :func:`_truncated_normal_fit`)."""
        z = np.asarray(z_confident, np.float64)
        if z.size < MIN_CONFIDENT:
            return cls(mu=float(default_mu), sigma=1.0, n=int(z.size))
        if lower is None:
            return cls(mu=float(np.mean(z)), sigma=max(1.0, float(np.std(z))), n=int(z.size))
        lower = np.broadcast_to(np.asarray(lower, np.float64), z.shape)

        def kept_odds(theta: np.ndarray) -> float:  # the keep-th best posterior log-odds among the confident links
            if prior is None:
                return 0.0
            odds = prior + norm.logpdf(z, theta[0], theta[1]) - negative_logpdf(z, dof)
            return float(np.sort(odds)[-min(max(keep, 1), odds.size)])

        mu, sigma, bounded = _truncated_normal_fit(z, lower, kept_odds, floor)
        return cls(mu=mu, sigma=sigma, n=int(z.size), bounded=bounded)

    def for_pair(self, z_confident: np.ndarray, lower: float, floor: float | None = None) -> PositiveModel:
        """This model with its mean refitted on one camera pair's confident links (above ``lower``),
        its spread kept: how alike one person looks in two cameras depends on the pair (viewpoint,
        light), and a few links cannot fit a spread of their own. With fewer than ``MIN_CONFIDENT``
        links, this model itself.

        One run-wide mean is too strict for a pair whose views differ most: its true links sit
        below that mean and stay apart. Not for online solutions: early ones hold a few links per
        pair, too few for a mean of their own."""
        z = np.asarray(z_confident, np.float64)
        if z.size < MIN_CONFIDENT:
            return self
        mu, _, _ = _truncated_normal_fit(z, np.full(z.shape, float(lower)), floor=floor, sigma=self.sigma)
        return PositiveModel(mu=mu, sigma=self.sigma, n=int(z.size), bounded=self.bounded)

    def llr(self, z: ArrayLike, dof: int | np.ndarray | None = None) -> np.ndarray:
        """log N(z; mu, sigma) - log p_negative(z) (see :func:`negative_logpdf`), held at its lowest
        point below it. With ``sigma`` > 1 the ratio of the two normals is U-shaped: it rises again
        below z = -mu / (sigma² - 1) (-0.8 for mu 2.2, sigma 1.9), so a pair far less alike than two
        different people would count as evidence of one person. Candidates never lie there, but a
        merge weighs every cluster pair it makes one person, whatever its z."""
        z = np.asarray(z, np.float64)
        if self.sigma > 1.0:
            z = np.maximum(z, -self.mu / (self.sigma**2 - 1.0))
        return norm.logpdf(z, self.mu, self.sigma) - negative_logpdf(z, dof)

    def to_json(self) -> dict[str, Any]:
        return {
            "mu": round(self.mu, 3),
            "sigma": round(self.sigma, 3),
            "confident_links": self.n,
            "bounded": self.bounded,
        }


def _truncated_normal_fit(
    z: np.ndarray,
    lower: np.ndarray,
    odds: Callable[[np.ndarray], float] | None = None,
    floor: float | None = None,
    sigma: float | None = None,
) -> tuple[float, float, bool]:
    """Maximum-likelihood (mu, sigma) of a normal seen only above ``lower`` (per value), sigma in
    [1, 5] (or the given ``sigma``: mu alone is fitted) and mu no further than 5 below the lowest
    level (a sample that hugs its level has no finite optimum: the bounds keep the answer where the
    data say anything), nor below ``floor``, and whether ``odds`` held it.

    ``floor`` is the linker's search level (``offline.Z_SEARCH``): its candidates are only the pairs
    above it, so a model whose true links mostly lie below it contradicts the search that feeds it.
    A few confident links that hug their level otherwise fit a normal of true links centred below
    the negatives' median.

    ``odds(theta)``, when given, must stay >= 0: the confident links are what the model is fitted on
    as true links, so a model under which they are not links contradicts its own sample. Without it,
    a few links just above their level fit best with most of the normal far below it, and then
    few or no cosines reach odds of 1 (a short clip of four or five confident links can make no
    link at all). A run with enough links never meets the bound."""
    from scipy.optimize import minimize

    def nll(theta: np.ndarray) -> float:
        mu, s = theta
        return -float(np.sum(norm.logpdf(z, mu, s) - norm.logsf(lower, mu, s)))

    start = [float(np.mean(z)), max(1.0, min(5.0, float(np.std(z))))]
    lowest = float(lower.min()) - 5.0 if floor is None else max(float(lower.min()) - 5.0, float(floor))
    bounds = [(min(lowest, float(z.max())), float(z.max())), (1.0, 5.0) if sigma is None else (sigma, sigma)]
    if sigma is not None:
        start[1] = float(sigma)
    res = minimize(nll, start, method="L-BFGS-B", bounds=bounds)
    bounded = odds is not None and odds(res.x) < 0
    if bounded:
        # from a normal centred on the strongest link, the best fit that keeps the odds >= 0
        res = minimize(
            nll,
            [float(z.max()), 1.0 if sigma is None else float(sigma)],
            method="SLSQP",
            bounds=bounds,
            constraints=[{"type": "ineq", "fun": odds}],
        )
    return float(res.x[0]), float(res.x[1]), bounded


def prior_log_odds(k: float | np.ndarray) -> np.ndarray:
    """log odds that a query matches one given candidate of ``k``: uniform over the ``k`` candidates
    and "none of them"."""
    return -np.log(np.maximum(np.asarray(k, np.float64), 1.0))


def sample_pairs(
    n_a: int, n_b: int, rng: np.random.Generator, same: bool = False, limit: int = SAMPLE_PAIRS
) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i < n_a, j < n_b): all of them when few, else ``limit`` random ones; with
    ``same`` (one set against itself) only i < j."""
    if same:
        total = n_a * (n_a - 1) // 2
        if total <= limit:
            i, j = np.triu_indices(n_a, 1)
            return i, j
        i = rng.integers(0, n_a, limit)
        j = rng.integers(0, n_a, limit)
        keep = i != j
        return np.minimum(i, j)[keep], np.maximum(i, j)[keep]
    if n_a * n_b <= limit:
        gi, gj = np.meshgrid(np.arange(n_a), np.arange(n_b), indexing="ij")
        return gi.ravel(), gj.ravel()
    return rng.integers(0, n_a, limit), rng.integers(0, n_b, limit)


@dataclass
class OperatingPoint:
    """What the linker decided with and how it found it; written to trajectories.json and the log."""

    # "calibrated" | "fixed" (a --link-threshold, or calibration off) | "partly_fallback" (some decisions
    # used the fallback cosine: too little data to calibrate them; ``notes`` says which)
    mode: str
    fixed_similarity: float | None = None
    in_camera: dict[str, dict[str, Any]] = field(default_factory=dict)
    cross_camera: dict[str, dict[str, Any]] = field(default_factory=dict)
    positive: PositiveModel | None = None
    notes: list[str] = field(default_factory=list)
    not_adjacent: list[str] = field(default_factory=list)  # camera pairs never compared (--adjacent)
    no_exchange: list[str] = field(default_factory=list)  # camera pairs cut: between two sites (network.py)
    pooled: list[str] = field(default_factory=list)  # camera pairs too small alone: calibrated on the run's pairs
    splits: SplitReport | None = None  # the tracks cut where their appearance changed, and how
    # the time evidence of in-camera merges below a camera's one-person level (offline._merges)
    reentry_time: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mode": self.mode}
        if self.fixed_similarity is not None:
            d["fixed_similarity"] = round(float(self.fixed_similarity), 4)
        d["in_camera"] = self.in_camera
        d["cross_camera"] = self.cross_camera
        if self.not_adjacent:
            d["not_adjacent"] = list(self.not_adjacent)
        if self.no_exchange:
            d["no_exchange"] = list(self.no_exchange)
        if self.pooled:
            d["pooled"] = list(self.pooled)
        if self.positive is not None:
            d["positive"] = self.positive.to_json()
        d["alpha"] = ALPHA
        if self.splits is not None:
            d["split"] = self.splits.to_json()
        if self.reentry_time is not None:
            d["reentry_time"] = self.reentry_time
        if self.notes:
            d["notes"] = list(self.notes)
        return d

    def summary(self) -> str:
        """One line for the log."""
        if self.mode == "fixed":
            return f"fixed cosine threshold {self.fixed_similarity:.3f} (--link-threshold)"
        parts = [f"{k}: cos >= {v['threshold']:.3f}" for k, v in self.in_camera.items() if "threshold" in v]
        parts += [
            f"{k}: cos >= {v['threshold']:.3f}" if v["threshold"] is not None else f"{k}: appearance alone never links"
            for k, v in self.cross_camera.items()
            if "threshold" in v
        ]
        head = "calibrated from the run" if self.mode == "calibrated" else "partly fallback"
        tail = f"; {'; '.join(self.notes)}" if self.notes else ""
        if self.not_adjacent:
            tail += f"; {len(self.not_adjacent)} camera pair(s) not adjacent (--adjacent): never compared"
        if self.no_exchange:
            tail += f"; {len(self.no_exchange)} camera pair(s) between two sites (no walk shown): never linked"
        if self.pooled:
            tail += f"; {len(self.pooled)} camera pair(s) too small alone: calibrated on the run's pooled pairs"
        if self.splits is not None and self.splits.splits:
            tail += f"; {len(self.splits.splits)} track(s) cut where the appearance changed to another person"
        return f"{head} ({', '.join(parts) or 'no pairs'}){tail}"


__all__ = [
    "ALPHA",
    "MIN_NEGATIVES",
    "NegativeModel",
    "OperatingPoint",
    "PositiveModel",
    "bonferroni_z",
    "prior_log_odds",
    "sample_pairs",
]
