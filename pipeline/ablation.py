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
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

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
    from reidpipe.pipeline.export import order_identities, write_trajectories
    from reidpipe.pipeline.link import Linker
    from reidpipe.pipeline.runner import Pipeline
    from reidpipe.pipeline.score import score

    with tempfile.TemporaryDirectory(prefix="reidpipe-ablation-") as tmp:
        pipe = Pipeline(config.replace(output=str(Path(tmp) / "run"), progress=False, save_video=False))
        pipe.run(sources)
        tracklets = pipe.tracklets  # as the tracker made them (before any split)
        link = dataclasses.replace(
            pipe._link_config(pipe.embedder.link_threshold if pipe.embedder else 0.5, sources), refine=True
        )
        cameras = [s.camera for s in pipe.sources]
        rows: list[dict[str, Any]] = []

        def scored(name: str, identities: list) -> None:
            path = Path(tmp) / f"{len(rows)}.json"
            write_trajectories(path, pipe.sources, identities)
            res = score(path, gt)
            rows.append(
                {
                    "variant": name,
                    "MTMC_IDF1": res["multi_camera"]["IDF1"],
                    "link_precision": res["links"]["precision"],
                    "link_recall": res["links"]["recall"],
                    "link_f1": res["links"]["f1"],
                    "identities": len(identities),
                }
            )

        tracks = tracklets
        for name, switches in VARIANTS.items():
            linker = Linker(dataclasses.replace(link, **switches), cameras)
            scored(name, order_identities(linker.link(copy.deepcopy(tracklets))))
            if name == "full":
                tracks = linker.final_tracklets  # the tracks the full linker linked (split ones cut)
        scored("perfect linking", order_identities(_by_ground_truth(tracks, Path(tmp) / "0.json", gt, cameras)))
    return {"tracklets": len(tracklets), "cameras": cameras, "variants": rows}


def _by_ground_truth(tracklets: list, written: Path, gt: list[str], cameras: list[str]) -> list:
    """The tracklets grouped by the ground-truth person each matches (unmatched ones alone)."""
    from reidpipe.pipeline.export import read_trajectories
    from reidpipe.pipeline.score import assign_gt, match_tracks
    from reidpipe.pipeline.types import Identity

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
        lines.append(
            f"{r['variant']:<22} {r['MTMC_IDF1']:>9.3f} {r['link_precision']:>7.3f} "
            f"{r['link_recall']:>7.3f} {r['link_f1']:>7.3f} {r['identities']:>5d}"
        )
    return "\n".join(lines)


__all__ = ["VARIANTS", "ablation", "format_ablation"]
