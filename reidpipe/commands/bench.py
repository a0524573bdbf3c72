"""``reidpipe bench``: how fast the pipeline, the embedder and the linker run on this machine."""

from __future__ import annotations

import argparse

from reidpipe.limits import MAX_BATCH, MAX_BENCH_CAMERAS, MAX_BENCH_ITEMS, MAX_BENCH_REPEAT

NAME = "bench"
HELP = (
    "Measure speed: the pipeline per stage vs a detector-only pass over the same frames "
    "(--sources ...), ReID embedding in eager torch vs ONNX Runtime (--embed-only), cross-camera "
    "linking of 1k-100k tracklets (--linker-only), in-process vs Ray for 1/2/4 cameras and the online "
    "linking rate (--engine ray --sources V), the gallery's query time at 10k-1M embeddings "
    "(--gallery-only); writes bench.json and prints tables."
)


def _int_list(hi: int):
    """An argparse ``type``: comma-separated integers from 1 to ``hi``."""

    def parse(text: str) -> list[int]:
        try:
            values = [int(v) for v in text.replace(" ", "").split(",") if v]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
        if not values or min(values) < 1 or max(values) > hi:
            raise argparse.ArgumentTypeError(f"expected integers from 1 to {hi}, got {text!r}")
        return values

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reidpipe.commands.run import add_pipeline_arguments
    from reidpipe.pipeline.validate import flag_type, integer, number

    add_pipeline_arguments(parser)
    # --sources is needed by the pipeline benchmark only; main() checks it
    for action in parser._actions:
        if action.dest == "sources":
            action.required = False
            action.help = (action.help or "") + " (required unless --embed-only / --linker-only / --gallery-only)"
    g = parser.add_argument_group("benchmark")
    g.add_argument("--output", "-o", metavar="JSON", help="write the results here (e.g. bench.json)")
    g.add_argument(
        "--run-output", metavar="DIR", help="keep the pipeline's outputs here (default: a temporary folder, removed)"
    )
    g.add_argument(
        "--repeat",
        type=flag_type(integer(1, MAX_BENCH_REPEAT)),
        default=1,
        metavar="N",
        help="pipeline + detector-only passes N times; report the fastest of each (default 1)",
    )
    g.add_argument(
        "--cameras",
        type=flag_type(integer(1, MAX_BENCH_CAMERAS)),
        metavar="N",
        help="the pipeline on N cameras (one --sources video taken as N cameras, or N sources), after one run "
        "on the first camera alone; reports realtime_cameras (cameras of --camera-fps followed in real time) "
        "and the peak memory per added camera",
    )
    g.add_argument(
        "--camera-fps",
        type=flag_type(number(0, 1000, strict_lo=True), float),
        default=10.0,
        metavar="FPS",
        help="--cameras: the frame rate of the cameras counted by realtime_cameras (default 10)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument(
        "--embed-only", action="store_true", help="only the embedding benchmark of --reid-weights (checkpoint or .onnx)"
    )
    g.add_argument("--linker-only", action="store_true", help="only the linking benchmark")
    g.add_argument(
        "--gallery-only",
        action="store_true",
        help="only the gallery's query time on synthetic embeddings (--gallery-sizes, --gallery-dim)",
    )
    g.add_argument(
        "--gallery-sizes",
        type=_int_list(MAX_BENCH_ITEMS),
        default=[10_000, 1_000_000],
        metavar="N1,N2,...",
        help="gallery benchmark: numbers of embeddings (default 10000,1000000)",
    )
    g.add_argument(
        "--gallery-dim", type=int, default=512, metavar="D", help="gallery benchmark: embedding dimension (default 512)"
    )
    g.add_argument(
        "--all",
        action="store_true",
        help="with --sources: also the embedding (when --reid-weights is a model) and linking benchmarks",
    )
    g.add_argument(
        "--batch-sizes",
        type=_int_list(MAX_BATCH),
        default=[1, 2, 4, 8, 16, 32, 64, 128],
        metavar="B1,B2,...",
        help="embedding batch sizes (default 1,2,4,8,16,32,64,128)",
    )
    g.add_argument(
        "--min-time",
        type=float,
        default=1.0,
        metavar="S",
        help="embedding: time each batch size for at least S seconds per runtime (default 1)",
    )
    g.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="embedding: threads for both torch and ONNX Runtime (default: torch's default)",
    )
    g.add_argument(
        "--ablation",
        action="store_true",
        help="with --sources and --gt: run once, then link again with each source of the linker's "
        "evidence switched off in turn and score each (does ReID help on these cameras?), and the "
        "full linker on less data (each half of the run; each camera pair of 3+ cameras)",
    )
    g.add_argument(
        "--gt",
        nargs="+",
        metavar="GT_TXT",
        help="--ablation: MOTChallenge ground truth per source (CAM=PATH, or paths in the order of --sources)",
    )
    g.add_argument(
        "--link-sizes",
        type=_int_list(MAX_BENCH_ITEMS),
        default=[1000, 10000, 100000],
        metavar="N1,N2,...",
        help="linking: numbers of tracklets (default 1000,10000,100000)",
    )


def main(args: argparse.Namespace) -> int:
    import os
    import sys

    from reidpipe.pipeline.bench import throughput as bench

    if args.gallery_only:
        return _gallery(args)
    _check_modes(args)
    if args.ablation:
        return _ablation(args)
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result: dict = {"schema": "reidpipe.bench/1", "environment": {}}
    run_embed = args.embed_only or (args.all and args.reid_weights and args.reid not in ("hist",))
    run_link = args.linker_only or args.all
    device = _bench_pipeline(args, result) or args.device or "auto"
    if run_embed:
        result["embedding"] = bench.bench_embedding(
            args.reid_weights, batch_sizes=args.batch_sizes, device=device, min_time=args.min_time, threads=args.threads
        )
    if run_link:
        result["linking"] = bench.bench_linking(args.link_sizes)
    # the machine's description is taken last, so that it does not import torch before the pipeline
    # runs (torch's memory would count in the pipeline's peak RSS)
    result["environment"] = bench.environment(device)
    result["environment"]["load_average_1m_start"] = None if load_start is None else round(load_start, 2)
    print(bench.format_report(result))
    if args.output:
        path = bench.write_json(args.output, result)
        print(f"results written to {path}", file=sys.stderr)
    return 0


def _check_modes(args: argparse.Namespace) -> None:
    """The flags that pick what is measured must name one consistent measurement."""
    from reidpipe.errors import UsageError

    if args.embed_only and args.linker_only:
        raise UsageError("--embed-only and --linker-only exclude each other; use --sources ... --all for both")
    if args.embed_only and not args.reid_weights:
        raise UsageError("--embed-only needs --reid-weights (a reidpipe checkpoint or an .onnx ReID model)")
    if not (args.embed_only or args.linker_only) and not args.sources:
        raise UsageError("give --sources (pipeline benchmark), or --embed-only --reid-weights W, or --linker-only")
    if args.min_time <= 0:
        raise UsageError(f"--min-time must be > 0, got {args.min_time}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    if args.output and not str(args.output).lower().endswith(".json"):
        raise UsageError(
            f"--output {args.output}: expected a .json file path (the pipeline's outputs go to --run-output DIR)"
        )


def _bench_pipeline(args: argparse.Namespace, result: dict) -> str | None:
    """The whole pipeline's (or the engines') measurement into ``result`` when ``--sources`` asks for
    it; returns the device the pipeline ran on (None when it did not run)."""
    from reidpipe.commands.run import config_from_args
    from reidpipe.errors import UsageError
    from reidpipe.pipeline.bench import throughput as bench

    if args.engine == "ray" and not args.sources:
        raise UsageError("--engine ray benchmarks the engines on a video: give --sources VIDEO")
    if not args.sources or args.embed_only or args.linker_only:
        return None
    cfg = config_from_args(args)
    if args.engine == "ray":
        from reidpipe.pipeline.bench import engine as bench_engine

        result["engines"] = bench_engine.bench_engines(cfg, args.sources[0])
        result["online_linking"] = bench_engine.bench_online_linking()
        print(bench_engine.format_engines(result["engines"]))
        print(bench_engine.format_online_linking(result["online_linking"]))
        return None
    if args.cameras is not None:
        result.update(
            bench.bench_cameras(
                cfg,
                args.sources,
                cameras=args.cameras,
                camera_fps=args.camera_fps,
                repeat=args.repeat,
                output=args.run_output,
            )
        )
    else:
        result.update(bench.bench_pipeline(cfg, args.sources, repeat=args.repeat, output=args.run_output))
    return cfg.device


def _gallery(args: argparse.Namespace) -> int:
    import json
    import sys

    from reidpipe.errors import UsageError
    from reidpipe.limits import MAX_BENCH_BYTES
    from reidpipe.pipeline.bench.gallery import bench_gallery, format_gallery

    if args.embed_only or args.linker_only or args.sources:
        raise UsageError("--gallery-only runs alone: drop --sources / --embed-only / --linker-only")
    if args.gallery_dim < 1:
        raise UsageError(f"--gallery-dim must be >= 1, got {args.gallery_dim}")
    need = max(args.gallery_sizes) * args.gallery_dim * 4
    if need > MAX_BENCH_BYTES:
        raise UsageError(
            f"--gallery-sizes {max(args.gallery_sizes)} x --gallery-dim {args.gallery_dim}: {need / 2**30:.0f} GiB "
            f"of embeddings; at most {MAX_BENCH_BYTES / 2**30:.0f} GiB"
        )
    rows = bench_gallery(args.gallery_sizes, dim=args.gallery_dim)
    print(format_gallery(rows))
    if args.output:
        from reidpipe.files import atomic_write_text

        atomic_write_text(args.output, json.dumps({"schema": "reidpipe.bench/1", "gallery": rows}, indent=1) + "\n")
        print(f"results written to {args.output}", file=sys.stderr)
    return 0


def _ablation(args: argparse.Namespace) -> int:
    import json
    import sys

    from reidpipe.commands.run import config_from_args
    from reidpipe.errors import UsageError
    from reidpipe.pipeline.bench.ablation import ablation, format_ablation

    if not args.sources or not args.gt:
        raise UsageError("--ablation needs --sources and --gt (one ground-truth file per source)")
    result = ablation(config_from_args(args), args.sources, args.gt)
    print(format_ablation(result))
    if args.output:
        from reidpipe.files import atomic_write_text

        atomic_write_text(args.output, json.dumps({"schema": "reidpipe.ablation/1", **result}, indent=1) + "\n")
        print(f"results written to {args.output}", file=sys.stderr)
    return 0
