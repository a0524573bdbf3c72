"""Which camera pairs exchange people, learned from the run (docs/design.md §4.9).

A network of four or more cameras usually holds pairs that share nobody: an entrance and a far exit,
two sites. The linker's prior assumes that a cluster has one match among the other camera's, so such a
pair still gets *confident* links (mutual best matches above the pair's Bonferroni level): its
look-alikes, or the same person seen at two sites at other hours. Those links are false, and they
would also calibrate the positive model. Appearance cannot tell them from true links; time can.

**A walk** (:func:`judge`). Between two cameras that exchange people, a person's gap
(:func:`.constraints.gap`: seconds from leaving one view to entering the other, negative while seen by
both) follows the walk between them, so the confident links' gaps cluster. Between two cameras that
share nobody, a confident link pairs two people whose times have nothing to do with each other: its
gap is distributed like the gap of two random tracklets of the two cameras (the pair's *background*,
:mod:`.evidence`: the time difference of random tracks, the pair's times shuffled across its people).
Per camera pair, a Monte Carlo test of "the confident links' gaps are drawn like the background":

- each gap becomes the share of background gaps below it (:func:`probability_scale`): uniform on
  [0, 1] under the null, whatever the background looks like (a short clip's, a long one's, two views
  of one room with their negative gaps);
- the statistic is the background share of the shortest range that holds a majority of the links
  (:func:`_shorth`): small when the links' gaps cluster, and not widened by a few look-alikes among a
  real pair's links (a Kolmogorov-Smirnov test reads the largest distance between two distribution
  functions, which a walk in the middle of the background's range barely moves);
- its null distribution is that of as many uniform draws (``DRAWS``, one table per number of links);
- p < ``ALPHA`` (the linker's error rate): the pair **shows a walk**. With fewer than ``MIN_TESTED``
  links there is no test.

**Many pairs, one error rate** (:func:`holm`). A network of n cameras tests up to n(n-1)/2 pairs, and
one pair across two sites that shows a walk by chance joins the sites (below): tested one by one at
``ALPHA``, four pairs across two sites would join them about one run in five. So the pairs' p-values
are read together with Holm's step-down rule, which keeps the chance that *any* pair shows a walk it
does not have at ``ALPHA``: the smallest p-value is held to ``ALPHA``/m, the next to ``ALPHA``/(m-1),
..., and the first that fails ends the walks.

**Sites** (:func:`between_sites`). Not showing a walk is not evidence of sharing nobody: a pair with
few confident links, or one whose people take several routes (from A to C directly or through B: the
gaps spread), may exchange people and not show it. So no pair is cut on its own test. The pairs that
show a walk join cameras into *sites* (a declared pair joins them too); a pair whose two cameras lie
in two different sites, each of two cameras or more, is **cut**: each of its cameras exchanges people
with its own site, as its walks show, and the pair shows no walk between the two. Its candidates are
dropped and its confident links calibrate nothing, as for a pair the camera graph (``--adjacent``)
leaves out. Two or three cameras never form two such sites, so no pair of theirs is ever cut; a
pair that shows a walk by chance (at rate ``ALPHA``) joins two sites into one, and nothing between
them is cut (the linker then does what it did without the rule).

A declared camera graph wins: with ``--adjacent`` nothing is judged, and a pair with a ``--transit``
window is declared (and joins its cameras' sites).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from reidpipe.pipeline.link.calibration import ALPHA
from reidpipe.pipeline.link.evidence import MIN_LINKS

MIN_TESTED = MIN_LINKS  # confident links a pair needs for a test (and for a transit model: evidence.py)
DRAWS = 9999  # Monte Carlo draws of the null per number of links (p-values to 1e-4)
MAX_LINKS = 256  # links a test reads at most (a random subset beyond: far more than it needs)


def _shorth(u: np.ndarray) -> np.ndarray:
    """The length of the shortest interval holding a majority (n // 2 + 1) of each row's n values."""
    u = np.sort(u, axis=-1)
    n = u.shape[-1]
    h = n // 2 + 1
    return (u[..., h - 1 :] - u[..., : n - h + 1]).min(axis=-1)


@lru_cache(maxsize=64)
def _null(n: int) -> np.ndarray:
    """The statistic of ``n`` gaps drawn from the background (sorted, ``DRAWS`` of them): on the
    background's own probability scale every background is uniform, so one table serves every pair."""
    return np.sort(_shorth(np.random.default_rng(n).random((DRAWS, n))))


def p_value(u: np.ndarray) -> tuple[float, float]:
    """The statistic of the links' gaps ``u`` (on the background's probability scale) and its
    Monte Carlo p-value under chance: the share of the null's draws as concentrated or more."""
    stat = float(_shorth(np.asarray(u, np.float64)))
    null = _null(int(np.size(u)))
    return stat, (1.0 + float(np.searchsorted(null, stat, side="right"))) / (DRAWS + 1.0)


def probability_scale(gaps: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Each gap as the share of the background's gaps below it (ties count half): uniform on [0, 1]
    when the gaps are drawn like the background."""
    bg = np.sort(np.asarray(background, np.float64))
    g = np.asarray(gaps, np.float64)
    below = np.searchsorted(bg, g, side="left") + np.searchsorted(bg, g, side="right")
    return below / (2.0 * bg.size)


@dataclass
class Exchange:
    """What was decided for one camera pair, and why (the operating point's ``exchange``)."""

    decision: str  # "walk" | "no walk shown" | "too few links" | "between sites" | "declared"
    links: int = 0
    statistic: float | None = None  # background share of the shortest range holding most links' gaps
    p_value: float | None = None

    @property
    def cut(self) -> bool:
        return self.decision == "between sites"

    @property
    def joins(self) -> bool:
        """Whether the pair joins its cameras into one site."""
        return self.decision in ("walk", "declared")

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"decision": self.decision, "confident_links": self.links}
        if self.statistic is not None and self.p_value is not None:
            d["densest_half"] = round(self.statistic, 3)
            d["p_value"] = float(f"{self.p_value:.3g}")
        d["why"] = _WHY[self.decision]
        return d


_WHY = {
    "walk": "most confident links' gaps lie closer together than random tracks' (p < alpha): people walk between",
    "no walk shown": "the confident links' gaps are not closer together than random tracks' (p >= alpha); "
    "not between two sites: linked",
    "too few links": "too few confident links to test; not between two sites: linked",
    "between sites": "no walk shown, between two sites (groups of cameras joined by walks): shares nobody, "
    "never linked",
    "declared": "declared by the camera graph (--adjacent / --transit): not tested",
}


def judge(link_gaps: np.ndarray, background_gaps: np.ndarray, alpha: float = ALPHA) -> Exchange:
    """Whether one camera pair shows a walk (see the module docstring): ``link_gaps`` of its
    confident links against ``background_gaps`` of random pairs of its tracklets."""
    links = np.asarray(link_gaps, np.float64)
    background = np.asarray(background_gaps, np.float64)
    if links.size < MIN_TESTED or background.size < MIN_TESTED:
        return Exchange("too few links", links=int(links.size))
    u = probability_scale(links, background)
    if u.size > MAX_LINKS:
        u = np.random.default_rng(0).choice(u, MAX_LINKS, replace=False)
    stat, p = p_value(u)
    return Exchange("walk" if p < alpha else "no walk shown", links=int(links.size), statistic=stat, p_value=p)


def holm(decisions: list[Exchange], alpha: float = ALPHA) -> list[Exchange]:
    """``decisions`` with "walk" kept only where Holm's step-down rule over every tested pair allows
    it (see the module docstring): the k-th smallest of m p-values must be below ``alpha / (m - k)``
    (k from 0), and the first that is not ends the walks."""
    tested = sorted((d.p_value, k) for k, d in enumerate(decisions) if d.p_value is not None)
    out = list(decisions)
    walks = True
    for rank, (p, k) in enumerate(tested):
        walks = walks and p < alpha / (len(tested) - rank)
        out[k] = replace(decisions[k], decision="walk" if walks else "no walk shown")
    return out


def between_sites(pairs: list[tuple[int, int]], decisions: list[Exchange]) -> list[int]:
    """The indices of ``pairs`` (camera codes) to cut: those whose two cameras lie in two different
    sites (groups of cameras joined by pairs that show a walk or are declared), each of two cameras
    or more (see the module docstring)."""
    parent: dict[int, int] = {}

    def site(a: int) -> int:
        while parent.get(a, a) != a:
            a = parent[a]
        return a

    for (a, b), d in zip(pairs, decisions):
        if d.joins:
            parent[site(a)] = site(b)
    in_site = {c for pair, d in zip(pairs, decisions) if d.joins for c in pair}
    return [
        k
        for k, ((a, b), d) in enumerate(zip(pairs, decisions))
        if not d.joins and a in in_site and b in in_site and site(a) != site(b)
    ]


__all__ = ["Exchange", "between_sites", "holm", "judge"]
