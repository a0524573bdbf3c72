"""``reidpipe demo``: the whole pipeline, offline, on the bundled two-camera scene, with its scores."""

from __future__ import annotations

import argparse

NAME = "demo"
HELP = (
    "Render (or reuse) the two-camera sample scene, run the pipeline on it offline (public detections, "
    "the 'hist' colour/texture descriptor, offline refinement), write the outputs and print the scores "
    "against the scene's ground truth."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reidpipe import limits
    from reidpipe.pipeline.validate import flag_type, integer

    parser.add_argument(
        "--output",
        default="demo_out",
        metavar="DIR",
        help="where trajectories.json, events.jsonl, MOT txt and scores.json go (default ./demo_out)",
    )
    parser.add_argument(
        "--cache",
        metavar="DIR",
        help="where the rendered scene is kept (default $REIDPIPE_CACHE/demo, else "
        "~/.cache/reidpipe/demo); reused when its files are intact",
    )
    parser.add_argument(
        "--seed",
        type=flag_type(integer(0, limits.MAX_SEED)),
        default=0,
        metavar="N",
        help="scene seed: detection jitter/misses/false positives and image noise (default 0)",
    )
    parser.add_argument(
        "--online", action="store_true", help="keep the online links (no offline refinement at the end)"
    )
    parser.add_argument("--save-video", action="store_true", help="also write annotated videos (global ids)")
    parser.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="where the cameras run: in this process (default) or as Ray actors (a local Ray)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object (scores, outputs) on stdout")


def cache_dir(explicit: str | None = None):
    """The scene cache: ``--cache``, else ``$REIDPIPE_CACHE/demo``, else ``~/.cache/reidpipe/demo``."""
    import os
    from pathlib import Path

    if explicit:
        return Path(explicit)
    env = os.environ.get("REIDPIPE_CACHE")
    if env:
        return Path(env) / "demo"
    return Path.home() / ".cache" / "reidpipe" / "demo"


def demo_config(
    scene: dict,
    output: str,
    online: bool = False,
    save_video: bool = False,
    progress: bool = True,
    engine: str = "local",
):
    """The pipeline settings of the demo: public detections, ``hist`` embedder, non-overlapping
    cameras (the scene's views are disjoint), per-camera feature centring (what the colour
    descriptor needs across differently lit cameras) and, unless ``online``, the offline refinement."""
    from reidpipe.pipeline.config import load_config

    cams = scene["cameras"]
    link = {"non_overlapping": True, "min_similarity": 0.5, "refine": not online, "camera_centering": True}
    return load_config(
        None,
        names=list(cams),
        detections=[str(scene["det"][c]) for c in cams],
        reid="hist",
        reid_weights=None,
        output=str(output),
        link=link,
        save_mot=True,
        save_video=save_video,
        progress=progress,
        engine={"kind": engine},
    )


def main(args: argparse.Namespace) -> int:
    import json
    import sys
    import time

    from reidpipe.errors import OutputError
    from reidpipe.files import atomic_write_text
    from reidpipe.pipeline.io.export import check_output_dir
    from reidpipe.pipeline.runner import Pipeline
    from reidpipe.pipeline.score import format_report, score
    from reidpipe.samples.scene import make_scene

    t0 = time.perf_counter()
    out = check_output_dir(args.output)
    try:
        scene = make_scene(cache_dir(args.cache) / f"seed{args.seed}", seed=args.seed)
    except OutputError as exc:  # cache not writable: render next to the outputs instead
        print(f"reidpipe: warning: {exc}; rendering the scene into {out / 'scene'}", file=sys.stderr)
        scene = make_scene(out / "scene", seed=args.seed)
    t_scene = time.perf_counter() - t0
    cams = scene["cameras"]
    pipe = Pipeline(
        demo_config(
            scene, str(out), online=args.online, save_video=args.save_video, progress=not args.json, engine=args.engine
        )
    )
    identities = pipe.run([str(scene["videos"][c]) for c in cams])
    res = score(out / "trajectories.json", {c: scene["gt"][c] for c in cams})
    res["run"] = {
        "identities": len(identities),
        "tracklets": pipe.stats.get("tracklets"),
        "fps": pipe.stats.get("fps", {}).get("total"),
        "scene_seconds": round(t_scene, 3),
        "total_seconds": round(time.perf_counter() - t0, 3),
        "scene": str(scene["root"]),
        "refine": not args.online,
    }
    atomic_write_text(out / "scores.json", json.dumps(res, indent=2) + "\n")
    if args.json:
        print(json.dumps(res))
    else:
        print(format_report(res))
        print(
            f"outputs in {out} (trajectories.json, events.jsonl, MOT txt, scores.json); scene in {scene['root']}; "
            f"{res['run']['total_seconds']:.1f} s"
        )
    return 0
