"""``reidpipe run``: camera videos/streams -> global identities -> trajectories.json (+ events, videos, MOT)."""

from __future__ import annotations

import argparse

NAME = "run"
HELP = (
    "Detect, track, re-identify and link people across cameras; write trajectories.json, "
    "events.jsonl and optional annotated videos / MOT txt into --output."
)


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """Every option of the pipeline (shared by ``reidpipe run`` and ``reidpipe bench``): ``--sources``,
    ``--config`` and the flags declared on the settings (``pipeline/config.py``). Defaults are None so
    that only the flags given override the config file."""
    from reidpipe.pipeline.config import PipelineConfig
    from reidpipe.pipeline.settings import PIPELINE_GROUPS, add_flags

    g = parser.add_argument_group(PIPELINE_GROUPS[0])
    g.add_argument(
        "--sources",
        nargs="+",
        required=True,
        metavar="SRC",
        help="video files, image folders, rtsp:// / http:// URLs, webcam indices",
    )
    g.add_argument("--config", metavar="YAML", help="pipeline settings (default: the shipped configs/pipeline.yaml)")
    add_flags(parser, PipelineConfig, PIPELINE_GROUPS, {PIPELINE_GROUPS[0]: g})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reidpipe.pipeline.config import PipelineConfig
    from reidpipe.pipeline.settings import OUTPUT_GROUPS, add_flags

    add_pipeline_arguments(parser)
    add_flags(parser, PipelineConfig, OUTPUT_GROUPS)


def config_from_args(args: argparse.Namespace):
    """The :class:`PipelineConfig` of parsed ``add_pipeline_arguments`` flags (over ``--config``); a
    flag value that breaks its rule (``pipeline/validate.py``) is a ``UsageError`` naming the flag."""
    from reidpipe.pipeline.config import PipelineConfig, load_config
    from reidpipe.pipeline.settings import flag_overrides
    from reidpipe.pipeline.validate import check_config

    cfg = load_config(getattr(args, "config", None))
    over = flag_overrides(args, PipelineConfig, len(args.sources))
    _check_combinations(over, cfg)
    if "detections" in over and "det_conf" in over:  # --conf with --detections: rows below it are dropped
        over["detections_conf"] = over["det_conf"]
    return check_config(cfg.replace(**over), as_flags=True)


def _check_combinations(over: dict, cfg) -> None:
    """Flags that mean something only with another one, or not with another one."""
    from reidpipe.errors import UsageError
    from reidpipe.pipeline.config import RAY_ONLY

    if "detections" in over and "detector" in over:
        raise UsageError("--detections replaces the detector; drop --detector or --detections")
    engine = over.get("engine", {})
    if engine.get("kind", cfg.engine.kind) == "local" and any(k in engine for k in RAY_ONLY):
        raise UsageError("--ray-address, --cameras-per-worker, --worker-cpus and --worker-gpus need --engine ray")
    if "gallery" not in over and ("start_times" in over or "retention" in over):
        raise UsageError("--start-time and --retention need --gallery DIR")


def main(args: argparse.Namespace) -> int:
    import json
    import sys

    from reidpipe.pipeline.runner import Pipeline

    cfg = config_from_args(args)
    pipe = Pipeline(cfg)
    identities = pipe.run(args.sources)
    st = pipe.stats
    assert pipe.output_dir is not None  # run() checked and made it
    multi = sum(1 for i in identities if len(i.cameras) > 1)
    print(
        f"{len(identities)} identities ({multi} seen by several cameras) from {st['tracklets']} tracks, "
        f"{sum(st['frames'].values())} frames at {st['fps']['total']:.1f} fps; "
        f"outputs in {pipe.output_dir}",
        file=sys.stderr,
    )
    _say_intervals(st["detection"])
    g = pipe.gallery_summary
    if g:
        print(
            f"gallery {cfg.gallery}: {g['continued']} identities continued from earlier runs "
            f"({g['beyond']} beyond the linking window), {g['identities'] - g['continued']} new"
            + (f"; {g['pruned']} pruned (--retention)" if "pruned" in g else ""),
            file=sys.stderr,
        )
    print(
        json.dumps(
            {
                "output": str(pipe.output_dir / "trajectories.json"),
                "identities": len(identities),
                "fps": st["fps"]["total"],
            }
        )
    )
    if not sum(st["frames"].values()):  # e.g. every camera is a stream that never came up
        from reidpipe.errors import EmptyInputError

        raise EmptyInputError(
            f"no frame was read from any of the sources ({', '.join(args.sources)}); "
            f"empty outputs written in {pipe.output_dir}"
        )
    _raise_if_a_stream_was_lost(pipe)
    return 0


def _say_intervals(detection: dict) -> None:
    """One line for the cameras whose detector interval the run chose (live cameras, detect_every auto)."""
    import sys

    chosen = {c: d for c, d in detection.items() if d.get("adaptive")}
    if chosen:
        parts = [
            f"{c} every {d['every']} (max {max([1, *(k for _, k in d['changes'])])}; "
            f"{d['tracked_only_frames']} of {d['detected_frames'] + d['tracked_only_frames']} frames only tracked)"
            for c, d in chosen.items()
        ]
        print(f"reidpipe: detector interval chosen for the live cameras: {', '.join(parts)}", file=sys.stderr)


def _raise_if_a_stream_was_lost(pipe) -> None:
    """Exit 11 (after every output is written) when a live stream dropped, or never came up, and did not
    come back: a supervisor sees that a camera was lost even though the others finished."""
    from reidpipe.errors import StreamError
    from reidpipe.pipeline.io.sources import source_kind

    lost = [
        f"{s.uri} ({s.camera})"
        for s in pipe.sources
        if s.camera in pipe.stats["dropped"] and source_kind(s.uri) in ("stream", "webcam")
    ]
    if lost:
        raise StreamError(
            f"live stream{'s' if len(lost) > 1 else ''} {', '.join(lost)} did not come back; "
            f"outputs with everything the other cameras saw are in {pipe.output_dir}"
        )
