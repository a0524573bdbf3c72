"""``reidpipe run``: camera videos/streams -> global identities -> trajectories.json (+ events, videos, MOT)."""

from __future__ import annotations

import argparse

NAME = "run"
HELP = (
    "Detect, track, re-identify and link people across cameras; write trajectories.json, "
    "events.jsonl and optional annotated videos / MOT txt into --output."
)


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """Every option of the pipeline (shared by ``reidpipe run`` and ``reidpipe bench``). Defaults are
    None so that only the flags given override the config file."""
    g = parser.add_argument_group("sources")
    g.add_argument(
        "--sources",
        nargs="+",
        required=True,
        metavar="SRC",
        help="video files, image folders, rtsp:// / http:// URLs, webcam indices",
    )
    g.add_argument("--names", nargs="+", metavar="NAME", help="camera names (default: file stem, cam{i} for streams)")
    g.add_argument(
        "--offsets",
        nargs="+",
        type=float,
        metavar="SEC",
        help="start-time offset of each source in seconds (aligns cameras)",
    )
    g.add_argument("--stride", type=int, metavar="N", help="process every N-th frame (default 1)")
    g.add_argument("--max-frames", type=int, metavar="N", help="stop each source after N frames")
    g.add_argument("--config", metavar="YAML", help="pipeline settings (default: the shipped configs/pipeline.yaml)")
    g = parser.add_argument_group("detection")
    g.add_argument(
        "--detector",
        metavar="PATH",
        help="ultralytics weights (.pt/.onnx/OpenVINO folder) or a YOLOX "
        ".onnx (default yolo11n.pt, downloaded by ultralytics when online)",
    )
    g.add_argument("--detector-kind", choices=["ultralytics", "yolox"], help="default: inferred from the file")
    g.add_argument(
        "--detections",
        nargs="+",
        metavar="DET_TXT",
        help="public detections: one MOTChallenge det.txt per source, in --sources order",
    )
    g.add_argument(
        "--conf",
        type=float,
        metavar="P",
        help="detector confidence threshold (default 0.3); with "
        "--detections, rows below P are dropped (default: all kept)",
    )
    g.add_argument(
        "--trust-weights",
        action="store_true",
        default=None,
        help="load a detector .pt even if its pickle references code outside an Ultralytics model "
        "(runs that code: only for files you made)",
    )
    g.add_argument(
        "--imgsz",
        type=int,
        metavar="PX",
        help="detector input size (a multiple of 32; default the model's own, 416 for YOLOX-Nano): "
        "320 or 256 detect 1.8x / 2.9x cheaper at some cost in small people (docs/performance.md)",
    )
    g.add_argument("--device", metavar="DEV", help="cpu, cuda, cuda:0 or auto (default)")
    g.add_argument(
        "--backend",
        choices=["onnxruntime", "openvino"],
        help="runtime of the ONNX models (YOLOX detector, .onnx ReID embedder): onnxruntime (default) or "
        "openvino (reads the same .onnx, CPU)",
    )
    g.add_argument(
        "--openvino-precision",
        choices=["f32", "bf16"],
        help="OpenVINO's inference precision (--backend openvino, .xml ReID models): f32 (default: the "
        "same numbers on every CPU) or bf16 (faster on CPUs with AMX / AVX-512 BF16; embeddings "
        "differ slightly: cosine to f32 about 0.997)",
    )
    g.add_argument(
        "--detect-every",
        type=int,
        metavar="K",
        help="run the detector on every K-th frame only; the tracker predicts the boxes of the frames "
        "in between (default 1: every frame)",
    )
    g.add_argument(
        "--no-detect-batch",
        action="store_true",
        default=None,
        help="detect the cameras' frames one by one (default: the frames of one round of all cameras "
        "in one detector call; same detections)",
    )
    g = parser.add_argument_group("tracking")
    g.add_argument("--tracker", choices=["bytetrack", "botsort", "ocsort", "sort"], help="default bytetrack")
    g.add_argument(
        "--track-lost-frames",
        type=int,
        metavar="N",
        help="processed frames without a match before a track closes (default 30)",
    )
    g.add_argument(
        "--no-interpolate",
        action="store_true",
        default=None,
        help="output only the detected boxes of a track (default: fill gaps up to "
        "interpolate_max_gap seconds by linear interpolation, points marked interpolated)",
    )
    g = parser.add_argument_group("re-identification")
    g.add_argument(
        "--reid",
        choices=["auto", "onnx", "openvino", "checkpoint", "hist"],
        help="embedder (auto: .onnx -> onnx, .xml -> openvino, .pt/.pth/.safetensors -> checkpoint, none -> hist)",
    )
    g.add_argument(
        "--reid-weights",
        metavar="PATH",
        help="ONNX ReID model, OpenVINO IR (model.xml with model.bin beside it) or reidpipe checkpoint",
    )
    g.add_argument("--reid-input-size", nargs=2, type=int, metavar=("H", "W"), help="override the model's input size")
    g.add_argument("--reid-mean", nargs=3, type=float, metavar=("R", "G", "B"), help="normalisation mean (after /255)")
    g.add_argument("--reid-std", nargs=3, type=float, metavar=("R", "G", "B"), help="normalisation std (after /255)")
    g.add_argument("--reid-color", choices=["RGB", "BGR"], help="channel order the model expects")
    g.add_argument("--embed-batch", type=int, metavar="N", help="crops per embedding batch (default 32)")
    g.add_argument("--sample-every", type=int, metavar="K", help="embed a track at most every K frames (default 5)")
    g.add_argument("--bank-size", type=int, metavar="K", help="embeddings kept per track (default 10)")
    g.add_argument(
        "--no-embed-async",
        action="store_true",
        default=None,
        help="embed in the main thread (default: ONNX / OpenVINO embedders run in an embed thread, "
        "overlapping detection; same features either way)",
    )
    g.add_argument(
        "--embed-budget",
        type=float,
        metavar="CROPS_PER_S",
        help="embed at most this many crops per second of video, all cameras together, best crops "
        "first, every tracklet at least one (default: no budget)",
    )
    g = parser.add_argument_group("cross-camera linking")
    g.add_argument(
        "--link-threshold",
        type=float,
        metavar="COS",
        help="minimum cosine similarity to link a tracklet to an identity (default: the "
        "embedder's, 0.5 for hist, 0.7 for ReID models)",
    )
    g.add_argument(
        "--no-camera-centering",
        action="store_true",
        default=None,
        help="compare raw features (default: subtract each camera's mean tracklet feature first, "
        "once the camera has 4 tracklets)",
    )
    g.add_argument(
        "--no-split",
        action="store_true",
        default=None,
        help="keep every track whole (default: a track whose appearance changes to another person's, "
        "where the tracker swapped two people, is cut there; see docs/linking.md)",
    )
    g.add_argument(
        "--link-window",
        type=float,
        metavar="SECONDS",
        help="a tracklet may only join an identity seen within this many seconds (default: no limit)",
    )
    g.add_argument(
        "--max-speed",
        type=float,
        metavar="HEIGHTS_PER_S",
        help="body heights per second a person moves at most between two tracks of one camera: a track "
        "that starts farther from where another ended is someone else (default: 3; 0: no limit)",
    )
    g.add_argument(
        "--non-overlapping",
        action="store_true",
        default=None,
        help="cameras see disjoint areas: nobody is in two cameras at once",
    )
    g.add_argument(
        "--transit", nargs="+", metavar="A:B:MIN:MAX", help="transit-time window in seconds from camera A to camera B"
    )
    g.add_argument(
        "--adjacent",
        nargs="+",
        metavar="A:B",
        help="the camera graph: the pairs a person goes between directly (or is seen by at once), either "
        "order; an identity never goes straight between two other cameras, and they are never compared "
        "(default: every pair; a --transit pair counts as adjacent)",
    )
    mode = g.add_mutually_exclusive_group()
    mode.add_argument(
        "--refine",
        action="store_true",
        default=None,
        help="re-decide all tracklets offline at the end (default when every source is a recording)",
    )
    mode.add_argument(
        "--online",
        action="store_true",
        default=None,
        help="keep the identities given as tracklets close (default with a live stream)",
    )
    g = parser.add_argument_group("execution")
    g.add_argument(
        "--engine",
        choices=["local", "ray"],
        help="local: every camera in this process (default); ray: one Ray actor per camera (or "
        "group), this process links (pip install 'reidpipe[ray]')",
    )
    g.add_argument(
        "--ray-address",
        metavar="auto|HOST:PORT",
        help="--engine ray: join this Ray cluster (default: start a local Ray)",
    )
    g.add_argument("--cameras-per-worker", type=int, metavar="N", help="--engine ray: cameras per actor (default 1)")
    g.add_argument("--worker-cpus", type=float, metavar="N", help="--engine ray: CPUs asked per actor (default 1)")
    g.add_argument("--worker-gpus", type=float, metavar="N", help="--engine ray: GPUs asked per actor (default 0)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_pipeline_arguments(parser)
    g = parser.add_argument_group("outputs")
    g.add_argument("--output", "-o", required=True, metavar="DIR", help="output folder")
    g.add_argument("--save-video", action="store_true", default=None, help="annotated video per camera")
    g.add_argument("--save-mot", action="store_true", default=None, help="MOTChallenge txt per camera (global ids)")
    g.add_argument(
        "--report",
        action="store_true",
        default=None,
        help="write report.html (reidpipe report) into --output at the end of the run",
    )
    g.add_argument(
        "--no-crops",
        action="store_true",
        default=None,
        help="keep no crop thumbnails (default: thumbs/ holds the best few embedded crops of each "
        "track, for the report)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g = parser.add_argument_group("gallery (identities that last across runs, docs/gallery.md)")
    g.add_argument(
        "--gallery",
        metavar="DIR",
        help="persistent gallery: link this run's people to the identities of earlier runs (same global "
        "ids), then add this run's; created when absent; one run at a time",
    )
    g.add_argument(
        "--start-time",
        nargs="+",
        metavar="ISO",
        help="with --gallery: absolute start time of each source, ISO 8601 (2026-12-01T09:00:00+01:00; no "
        "zone = UTC); default the file's modification time, the wall clock for a stream",
    )
    g.add_argument(
        "--retention",
        metavar="AGE",
        help="with --gallery: after the run, delete identities last seen more than AGE ago (30d, 12h, 90m, seconds)",
    )


def _adjacent(items: list[str]) -> list[tuple[str, str]]:
    """``A:B`` items as ``[(A, B)]``; the pairs' rule is in ``validate``."""
    from reidpipe.errors import UsageError

    out = []
    for item in items:
        parts = item.split(":")
        if len(parts) != 2 or not all(parts):
            raise UsageError(f"--adjacent {item!r}: expected CAM_A:CAM_B")
        out.append((parts[0], parts[1]))
    return out


def _transit(items: list[str]) -> dict[tuple[str, str], tuple[float, float]]:
    """``A:B:MIN:MAX`` items as ``{(A, B): (MIN, MAX)}``; the values' rule is in ``validate``."""
    from reidpipe.errors import UsageError

    out = {}
    for item in items:
        parts = item.rsplit(":", 3)
        try:
            if len(parts) != 4:
                raise ValueError
            a, b, lo, hi = parts[0], parts[1], float(parts[2]), float(parts[3])
        except ValueError:
            raise UsageError(f"--transit {item!r}: expected CAM_A:CAM_B:MIN_SECONDS:MAX_SECONDS") from None
        out[(a, b)] = (lo, hi)
    return out


def _gallery_flags(args: argparse.Namespace, n_sources: int) -> dict:
    """``--gallery`` / ``--start-time`` / ``--retention`` as config overrides (``reidpipe run`` only)."""
    from reidpipe.errors import UsageError
    from reidpipe.limits import MAX_SECONDS
    from reidpipe.pipeline.gallery.times import parse_duration

    gallery, starts, retention = (getattr(args, k, None) for k in ("gallery", "start_time", "retention"))
    if gallery is None:
        if starts is not None or retention is not None:
            raise UsageError("--start-time and --retention need --gallery DIR")
        return {}
    over: dict = {"gallery": gallery}
    if starts is not None:
        if len(starts) != n_sources:
            raise UsageError(f"--start-time has {len(starts)} values for {n_sources} --sources; give one per source")
        over["start_times"] = list(starts)
    if retention is not None:
        seconds = parse_duration(retention)
        if seconds is None:
            raise UsageError(
                f"--retention {retention!r}: expected an age such as 30d, 12h, 90m or seconds, at most {MAX_SECONDS:g} s"
            )
        over["retention"] = seconds
    return over


def config_from_args(args: argparse.Namespace):
    """The :class:`PipelineConfig` of parsed ``add_pipeline_arguments`` flags (over ``--config``); a
    flag value that breaks its rule (``pipeline/validate.py``) is a ``UsageError`` naming the flag."""
    from reidpipe.errors import UsageError
    from reidpipe.pipeline.config import load_config
    from reidpipe.pipeline.validate import check_config

    cfg = load_config(getattr(args, "config", None))
    n = len(args.sources)
    for flag, values in (("--names", args.names), ("--offsets", args.offsets), ("--detections", args.detections)):
        if values is not None and len(values) != n:
            raise UsageError(f"{flag} has {len(values)} values for {n} --sources; give one per source")
    simple = {
        "names": args.names,
        "offsets": args.offsets,
        "stride": args.stride,
        "max_frames": args.max_frames,
        "detector": args.detector,
        "detector_kind": args.detector_kind,
        "detections": args.detections,
        "det_conf": args.conf,
        "detections_conf": args.conf if args.detections else None,
        "trust_weights": args.trust_weights,
        "device": args.device,
        "backend": args.backend,
        "openvino_precision": args.openvino_precision,
        "detect_every": args.detect_every,
        "imgsz": args.imgsz,
        "tracker": args.tracker,
        "track_lost_frames": args.track_lost_frames,
        "reid": args.reid,
        "reid_weights": args.reid_weights,
        "reid_input_size": tuple(args.reid_input_size) if args.reid_input_size else None,
        "reid_mean": tuple(args.reid_mean) if args.reid_mean else None,
        "reid_std": tuple(args.reid_std) if args.reid_std else None,
        "reid_color": args.reid_color,
        "embed_batch": args.embed_batch,
        "embed_budget": args.embed_budget,
        "output": getattr(args, "output", None),
        "save_video": getattr(args, "save_video", None),
        "save_mot": getattr(args, "save_mot", None),
        "report": getattr(args, "report", None),
    }
    over = {k: v for k, v in simple.items() if v is not None}
    if getattr(args, "no_progress", False):
        over["progress"] = False
    if getattr(args, "no_crops", None):
        over["crops"] = False
    if getattr(args, "no_interpolate", None):
        over["interpolate"] = False
    if getattr(args, "no_embed_async", None):
        over["embed_async"] = False
    if getattr(args, "no_detect_batch", None):
        over["detect_batch"] = False
    sampler = {k: v for k, v in (("every", args.sample_every), ("bank", args.bank_size)) if v is not None}
    if sampler:
        over["sampler"] = sampler
    link = {}
    if args.link_threshold is not None:
        link["min_similarity"] = args.link_threshold
    if args.non_overlapping:
        link["non_overlapping"] = True
    if args.transit:
        link["transit"] = _transit(args.transit)
    if getattr(args, "adjacent", None):
        link["adjacent"] = _adjacent(args.adjacent)
    if args.refine:
        link["refine"] = True
    if getattr(args, "online", None):
        link["refine"] = False
    if args.no_camera_centering:
        link["camera_centering"] = False
    if args.no_split:
        link["split"] = False
    if args.link_window is not None:
        link["max_gap"] = args.link_window
    if args.max_speed is not None:
        link["max_speed"] = args.max_speed or None  # 0: no limit
    if link:
        over["link"] = link
    engine = {
        k: v
        for k, v in (
            ("kind", args.engine),
            ("ray_address", args.ray_address),
            ("cameras_per_worker", args.cameras_per_worker),
            ("worker_cpus", args.worker_cpus),
            ("worker_gpus", args.worker_gpus),
        )
        if v is not None
    }
    if engine.get("kind", cfg.engine.kind) == "local" and len(engine) > ("kind" in engine):
        raise UsageError("--ray-address, --cameras-per-worker, --worker-cpus and --worker-gpus need --engine ray")
    for flag, key in (("--cameras-per-worker", "cameras_per_worker"), ("--worker-cpus", "worker_cpus")):
        if key in engine and engine[key] <= 0:
            raise UsageError(f"{flag} must be > 0, got {engine[key]}")
    if engine.get("worker_gpus", 0) < 0:
        raise UsageError(f"--worker-gpus must be >= 0, got {engine['worker_gpus']}")
    if engine:
        over["engine"] = engine
    over.update(_gallery_flags(args, n))
    if args.detections and args.detector is not None:
        raise UsageError("--detections replaces the detector; drop --detector or --detections")
    return check_config(cfg.replace(**over), as_flags=True)


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


def _raise_if_a_stream_was_lost(pipe) -> None:
    """Exit 11 (after every output is written) when a live stream dropped, or never came up, and did not
    come back: a supervisor sees that a camera was lost even though the others finished."""
    from reidpipe.errors import StreamError
    from reidpipe.pipeline.sources import source_kind

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
