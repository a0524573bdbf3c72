"""``reidpipe bench --ablation``: does each source of the linker's evidence help on these cameras?

The pipeline runs once (detection, tracking and embedding are the expensive part); its tracklets are
then linked again with one source of evidence switched off at a time and every result is scored
against the ground truth with ``reidpipe score``. The variants:

- ``full``: the default linker;
- ``no calibration``: the fixed fallback cosine instead of decisions calibrated from the run;
- ``no transit``: no transit-time / co-occurrence evidence;
- ``no quality gate``: short and sparsely embedded tracklets may link too;
- ``no camera centring``: raw features;
- ``no tracklet splitting``: tracks the tracker carried from one person to another stay whole;
- ``appearance only``: all of the above off (a fixed cosine on raw features: ReID alone);
- ``no ReID``: no cross-camera link at all (per-camera tracks only): what ReID adds over tracking;
- ``perfect linking``: each tracklet given the identity of the ground-truth person it matches (the
  linker replaced by the answer): the most any linker could reach with these tracks, so the gap to
  ``full`` is what linking loses and the gap to 1.0 what detection and tracking lose.

Then the full linker on **less data** (``less_data`` in the result): the run's first and last half
(the tracklets wholly inside it, scored against the ground truth of its frames) and, with three or
more cameras, each camera pair alone. Decisions calibrated from a shorter clip or fewer cameras
rest on smaller samples; these rows tell a user whether the linker holds up on theirs.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from reidpipe.pipeline.io.export import order_identities, read_trajectories, write_trajectories
from reidpipe.pipeline.score import assign_gt, match_tracks, score
from reidpipe.pipeline.types import Identity

VARIANTS: dict[str, dict[str, Any]] = {
    "full": {},
    "no calibration": {"calibrate": False},
    "no transit": {"transit_evidence": False},
    "no quality gate": {"quality_gate": False},
    "no camera centring": {"camera_centering": False},
    "no tracklet splitting": {"split": False},
    "appearance only": {
        "calibrate": False,
        "transit_evidence": False,
        "quality_gate": False,
        "camera_centering": False,
    },
    "no ReID": {"min_similarity": 1.0, "camera_centering": False},
}


def ablation(config, sources: list[str], gt: list[str]) -> dict[str, Any]:
    """Run the pipeline once on ``sources`` and score every variant against ``gt`` (``--gt`` values)."""
    from reidpipe.pipeline.link import Linker
    from reidpipe.pipeline.runner import Pipeline

    with tempfile.TemporaryDirectory(prefix="reidpipe-ablation-") as tmp:
        pipe = Pipeline(config.replace(output=str(Path(tmp) / "run"), progress=False, save_video=False))
        pipe.run(sources)
        tracklets = list(pipe.tracklets)  # as the tracker made them (before any split)
        link = dataclasses.replace(
            pipe._link_config(pipe.embedder.link_threshold if pipe.embedder else 0.5, sources), refine=True
        )
        cameras = [s.camera for s in pipe.sources]
        rows: list[dict[str, Any]] = []

        def scored(name: str, identities: list) -> None:
            path = Path(tmp) / f"{len(rows)}.json"
            write_trajectories(path, pipe.sources, identities)
            rows.append({"variant": name, **_figures(score(path, gt), identities)})

        tracks = tracklets
        for name, switches in VARIANTS.items():
            linker = Linker(dataclasses.replace(link, **switches), cameras)
            scored(name, order_identities(linker.link(copy.deepcopy(tracklets))))
            if name == "full":
                tracks = list(linker.final_tracklets)  # the tracks the full linker linked (split ones cut)
        scored("perfect linking", order_identities(_by_ground_truth(tracks, Path(tmp) / "0.json", gt, cameras)))
        less = [
            _score_subset(name, subset, link, pipe.sources, cams, gt_rows, Path(tmp))
            for name, subset, cams, gt_rows in _less_data(tracklets, cameras, gt)
        ]
    return {"tracklets": len(tracklets), "cameras": cameras, "variants": rows, "less_data": less}


def _less_data(tracklets: list, cameras: list[str], gt: list[str]):
    """(name, tracklets, cameras, ground-truth rows per camera) of the run's first and last half and,
    with 3+ cameras, of each camera pair alone."""
    rows = {c: [r for r in Path(g).read_text().splitlines() if r.strip()] for c, g in zip(cameras, gt)}
    last = max((p.frame for t in tracklets for p in t.points), default=0)
    mid = (last + 1) // 2  # frames < mid: the first half; MOT rows count frames from 1
    for name, first in (("first half", True), ("last half", False)):
        inside = [t for t in tracklets if all((p.frame < mid) == first for p in t.points)]
        halves = {c: [r for r in rs if (int(r.split(",")[0]) <= mid) == first] for c, rs in rows.items()}
        yield name, inside, cameras, halves
    if len(cameras) >= 3:
        for i, a in enumerate(cameras):
            for b in cameras[i + 1 :]:
                yield f"{a} + {b} only", [t for t in tracklets if t.camera in (a, b)], [a, b], rows


def _score_subset(name, tracklets, link, sources, cams, gt_rows, tmp: Path) -> dict[str, Any]:
    """The full linker on ``tracklets`` of cameras ``cams``, scored against ``gt_rows`` of theirs."""
    from reidpipe.pipeline.link import Linker

    folder = tmp / f"less-{name.replace(' ', '_').replace('+', '')}"
    folder.mkdir()
    gt = []
    for c in cams:
        (folder / f"{c}_gt.txt").write_text("\n".join(gt_rows[c]) + "\n")
        gt.append(str(folder / f"{c}_gt.txt"))
    identities = order_identities(Linker(link, cams).link(copy.deepcopy(tracklets)))
    write_trajectories(folder / "trajectories.json", [s for s in sources if s.camera in cams], identities)
    return {"data": name, "tracklets": len(tracklets), **_figures(score(folder / "trajectories.json", gt), identities)}


def _figures(res: dict[str, Any], identities: list) -> dict[str, Any]:
    """The columns of a row from ``reidpipe score``'s result."""
    return {
        "MTMC_IDF1": res["multi_camera"]["IDF1"],
        "link_precision": res["links"]["precision"],
        "link_recall": res["links"]["recall"],
        "link_f1": res["links"]["f1"],
        "identities": len(identities),
    }


def _by_ground_truth(tracklets: list, written: Path, gt: list[str], cameras: list[str]) -> list:
    """The tracklets grouped by the ground-truth person each matches (unmatched ones alone)."""
    truth = match_tracks(read_trajectories(written), assign_gt(list(gt), cameras))
    groups: dict[Any, list] = {}
    for t in tracklets:
        person = truth.get(t.key)
        groups.setdefault(person if person is not None else ("alone", t.key), []).append(t)
    return [Identity(id=0, tracklets=ts) for ts in groups.values()]


def format_ablation(result: dict[str, Any]) -> str:
    lines = [
        f"linker ablation ({result['tracklets']} tracklets, cameras {', '.join(result['cameras'])}; "
        "offline decisions, scored against --gt):",
        f"{'variant':<22} {'MTMC IDF1':>9} {'link P':>7} {'link R':>7} {'link F1':>7} {'ids':>5}",
    ]
    for r in result["variants"]:
        lines.append(_row(r["variant"], r))
    if result.get("less_data"):
        lines.append("the full linker on less data (the tracklets wholly inside; the ground truth of its frames):")
        lines += [_row(f"{r['data']} ({r['tracklets']})", r) for r in result["less_data"]]
    return "\n".join(lines)


def _row(name: str, r: dict[str, Any]) -> str:
    return (
        f"{name:<22} {r['MTMC_IDF1']:>9.3f} {r['link_precision']:>7.3f} "
        f"{r['link_recall']:>7.3f} {r['link_f1']:>7.3f} {r['identities']:>5d}"
    )


__all__ = ["VARIANTS", "ablation", "format_ablation"]
