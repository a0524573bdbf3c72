"""``reidpipe adapt RUN_DIR [RUN_DIR ...] --output DIR``: fine-tune the runs' embedder on the people
they followed, without labels (docs/training.md, "Adapting to your cameras").

1. mine pseudo-identities from each run's ``trajectories.json`` (``reidpipe.adapt.mine``: a track is
   one person, a confident link joins, coexisting tracks are two people, doubtful links left out);
2. cut their crops from the sources the runs read (``reidpipe.adapt.crops``) into ``DIR/dataset`` in
   the Market-1501 layout, some pseudo-identities held out as query / gallery
   (``reidpipe.adapt.dataset``);
3. fine-tune the runs' own embedder (or ``--init MODEL``) on it with ``reidpipe train --init``'s
   machinery: the same variant, recipe, engine, checkpoints, ``--resume`` and export; ``DIR`` is the
   training run folder, so ``DIR/model.onnx`` is the adapted model and ``DIR/metrics.json`` its
   before / after figures on the held-out pseudo-identities; with ``--source-dataset`` a labelled
   set's training people are trained on beside the mined ones (``data.mix``), so that the model
   learns the cameras without forgetting how to tell other people apart;
4. ``DIR/adapt.json``: what was mined and what training did.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

NAME = "adapt"
HELP = (
    "fine-tune the embedder of finished runs on the people they followed (no labels): mine "
    "pseudo-identities, write them as a Market-1501 data set, train, export DIR/model.onnx"
)
DEFAULT_TRAIN_CROPS = 6_000
MIN_EPOCHS, MAX_EPOCHS = 3, 60
# --source-dataset: labelled crops drawn per mined training crop. 1 gave the higher mean on unseen clips
# of the same cameras, 3 the smaller worst loss and half the same-clip gain (docs/training.md,
# "Adapting to your cameras"); 1 also keeps an epoch short
SOURCE_SHARE = 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    from reidpipe.adapt.mine import DEFAULT_MIN_MARGIN, DEFAULT_MIN_Z

    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="output folders of finished `reidpipe run`s")
    p.add_argument("--output", "-o", required=True, metavar="DIR", help="where the mined set and the model go")
    p.add_argument(
        "--init",
        default=None,
        metavar="MODEL",
        help="fine-tune this model instead of the one the runs used (ONNX, OSNet .pth, reidpipe checkpoint)",
    )
    p.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="CAM=PATH",
        help="camera CAM's recording is now at PATH (the run's source moved); repeatable",
    )
    p.add_argument("--crops-per-track", type=int, default=16, help="evenly spaced crops cut per track (default 16)")
    p.add_argument("--min-height", type=float, default=48.0, help="smallest box height cropped, px (default 48)")
    p.add_argument(
        "--min-margin",
        type=float,
        default=DEFAULT_MIN_MARGIN,
        help=f"a track joins its identity only with this margin over the runner-up (default {DEFAULT_MIN_MARGIN})",
    )
    p.add_argument(
        "--min-z",
        type=float,
        default=DEFAULT_MIN_Z,
        help="... and a similarity this many spreads above two different people's (default "
        f"{DEFAULT_MIN_Z}); lower: more joins, more wrong ones",
    )
    p.add_argument(
        "--holdout",
        type=float,
        default=0.2,
        help="share of the people seen by 2+ cameras held out to measure before/after (default 0.2)",
    )
    p.add_argument(
        "--train-crops",
        type=int,
        default=DEFAULT_TRAIN_CROPS,
        help=f"crops seen in training in all; sets the epochs (default {DEFAULT_TRAIN_CROPS:,}: about 5 min on a quiet 2-core CPU)",
    )
    p.add_argument(
        "--source-dataset",
        default=None,
        metavar="NAME",
        help="train on this labelled data set's training people too (e.g. market1501, the one the model "
        "was tuned on), so that it learns your cameras without forgetting other people; needs --source-root",
    )
    p.add_argument("--source-root", default=None, metavar="DIR", help="where --source-dataset is")
    p.add_argument(
        "--source-ids",
        type=int,
        default=None,
        metavar="N",
        help="how many of its identities (a seeded random choice; default: as many as give about "
        f"{SOURCE_SHARE}x the mined training crops)",
    )
    p.add_argument("--mine-only", action="store_true", help="write the mined set and adapt.json, do not train")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a training config key (as reidpipe train --set)",
    )
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the adaptation in --output: train on its mined set (as it is now) from last.pt, or "
        "from the start after --mine-only",
    )


def main(args: argparse.Namespace) -> int:
    from reidpipe.adapt.runs import check_moved_cameras, open_run, parse_source_map
    from reidpipe.errors import UsageError
    from reidpipe.trainers.cpu import prefer_passive_openmp

    prefer_passive_openmp()  # before torch loads (trainers/cpu.py)
    _check_flags(args)
    out = Path(args.output)
    record = out / "adapt.json"
    if record.exists() and not args.resume:
        raise UsageError(
            f"{out} already holds an adaptation ({record}): --resume continues it, or give another --output"
        )
    if args.resume and not record.is_file():
        raise UsageError(f"--resume: {out} holds no adaptation to continue ({record} is missing)")
    moved = parse_source_map(args.source)
    runs = [open_run(folder, k, moved) for k, folder in enumerate(args.runs, start=1)]
    check_moved_cameras(runs, moved)
    model = args.init or _runs_embedder(runs)
    from reidpipe.reid.init_model import resolve_init

    init = resolve_init(model)
    source = _read_source(args)  # a wrong folder is an error before anything is mined
    if args.resume:
        report = json.loads(record.read_text())
    else:
        report = _mine(args, runs, out, model, init)
    if args.mine_only:
        print(f"mined set in {out / 'dataset'} (no training: --mine-only)")
        return 0
    _train(args, out, init, report, source)
    return 0


# ---------------------------------------------------------------------------------------- flags
def _check_flags(args: argparse.Namespace) -> None:
    from reidpipe.errors import UsageError
    from reidpipe.limits import MAX_CLASSES, MAX_CROPS_PER_TRACK, MAX_REID_SIDE, MAX_TRAIN_CROPS

    bounds: list[tuple[str, float, float, float]] = [
        ("--crops-per-track", args.crops_per_track, 1, MAX_CROPS_PER_TRACK),
        ("--min-height", args.min_height, 1, MAX_REID_SIDE),
        ("--min-margin", args.min_margin, -2.0, 2.0),
        ("--min-z", args.min_z, -10.0, 10.0),
        ("--holdout", args.holdout, 0.01, 0.5),
        ("--train-crops", args.train_crops, 1, MAX_TRAIN_CROPS),
    ]
    if args.source_ids is not None:
        bounds.append(("--source-ids", args.source_ids, 1, MAX_CLASSES))
    for flag, value, low, high in bounds:
        if not (math.isfinite(value) and low <= value <= high):
            raise UsageError(f"{flag} {value} is outside {low:g}..{high:g}")
    if (args.source_dataset is None) != (args.source_root is None):
        raise UsageError("--source-dataset and --source-root go together (the labelled set's name and folder)")
    if args.source_ids is not None and args.source_dataset is None:
        raise UsageError("--source-ids needs --source-dataset and --source-root")


# ---------------------------------------------------------------------------------------- model
def _runs_embedder(runs) -> str:
    """The ReID model the runs used (each recorded it in trajectories.json); all must agree."""
    from reidpipe.errors import CheckpointError, InputNotFoundError, UsageError
    from reidpipe.pipeline.gallery.session import weights_sha256

    seen: dict[str, str] = {}
    for run in runs:
        e = run.embedder
        settings = (e or {}).get("settings") or {}
        path, kind = settings.get("reid_weights"), (e or {}).get("kind")
        if not e or not isinstance(path, str) or kind not in ("onnx", "checkpoint"):
            what = f"the {kind!r} embedder" if e else "no record of its embedder"
            raise UsageError(
                f"run {run.folder} has {what}: nothing reidpipe can fine-tune there; "
                "give --init MODEL (an ONNX ReID model, an OSNet .pth or a reidpipe checkpoint)"
            )
        if not Path(path).is_file():
            raise InputNotFoundError(
                f"the embedder of run {run.folder}, {path}, is not there any more: give --init MODEL"
            )
        if weights_sha256(path, kind) != e.get("sha256"):
            raise CheckpointError(
                f"the embedder of run {run.folder}, {path}, has changed since the run (another SHA-256): give --init MODEL"
            )
        seen[str(e.get("sha256"))] = path
    if len(seen) > 1:
        raise UsageError(
            f"the runs used {len(seen)} different embedders ({', '.join(seen.values())}): give --init MODEL"
        )
    return next(iter(seen.values()))


# ---------------------------------------------------------------------------------------- mining
def _mine(args: argparse.Namespace, runs, out: Path, model: str, init) -> dict[str, Any]:
    """Mine, cut and write the data set; write adapt.json's mining part; returns it."""
    from reidpipe.adapt.crops import CropRule, plan_track, read_crops, run_boxes
    from reidpipe.adapt.dataset import DatasetWriter, build_layout, check_enough, summary
    from reidpipe.adapt.mine import LinkRule, mine_run
    from reidpipe.errors import DatasetError
    from reidpipe.limits import MAX_ADAPT_CROPS
    from reidpipe.trainers.hooks import write_json_atomic

    t0 = time.perf_counter()
    rule = LinkRule(args.min_margin, args.min_z)
    crop_rule = CropRule(args.crops_per_track, args.min_height)
    planned, left_out = [], []
    for run in runs:
        mined = mine_run(run.trajectories, run.index, rule)
        boxes = run_boxes(run.trajectories)
        for pseudo in mined.identities:
            crops = [c for t in pseudo.tracks for c in plan_track(t, run.sources[t.camera], boxes, crop_rule)]
            planned.append((pseudo, crops))
        left_out += mined.left_out
    layout = build_layout(planned, args.holdout, seed=0)
    total = sum(len(p.crops) for p in layout.people)
    if total > MAX_ADAPT_CROPS:
        raise DatasetError(f"{total} crops to cut, more than {MAX_ADAPT_CROPS}: lower --crops-per-track")
    check_enough(layout, _batch_p(args, init))
    writer = DatasetWriter(out / "dataset", layout, {r.index: str(r.folder) for r in runs})
    try:
        for run in runs:
            for cam, source in run.sources.items():
                mine = [c for p in layout.people for c in p.crops if c.run == run.index and c.camera == cam]
                read_crops(source, mine, writer.write)
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    seconds = time.perf_counter() - t0
    report: dict[str, Any] = {
        "runs": [str(r.folder) for r in runs],
        "model": str(model),
        "rules": {
            "min_margin": rule.min_margin,
            "min_z": rule.min_z,
            "crops_per_track": crop_rule.per_track,
            "min_height": crop_rule.min_height,
            "holdout": args.holdout,
        },
        "mined": {
            **summary(layout),
            "cross_camera_joins": sum(len(p.cameras) - 1 for p in layout.people),
            "left_out": dict(Counter(x.reason for x in left_out)),
            "left_out_tracks": [x.to_json() for x in left_out],
        },
        "mine_seconds": round(seconds, 1),
        "crops_per_s": round(writer.written / seconds, 1) if seconds > 0 else None,
        "dataset": str(out / "dataset"),
    }
    write_json_atomic(out / "adapt.json", report)
    m: dict[str, Any] = report["mined"]
    print(
        f"mined {m['identities']} pseudo-identities ({m['multi_camera_identities']} seen by 2+ cameras, "
        f"{m['cross_camera_joins']} cross-camera joins) from {len(runs)} run(s): {m['crops']} crops of "
        f"{len(m['cameras'])} cameras in {seconds:.0f} s; left out: "
        + (", ".join(f"{n} {why.replace('_', ' ')}" for why, n in sorted(m["left_out"].items())) or "nothing")
        + f"; {m['train_identities']} to train on, {m['held_out_identities']} held out ({out / 'dataset'})"
    )
    return report


def _batch_p(args: argparse.Namespace, init) -> int:
    """The P of the P x K batch the training config will have (its ``--set`` included)."""
    from reidpipe.commands.train import fine_tune_overrides
    from reidpipe.trainers.config import load_config

    cfg = load_config(init.variant, "market1501", fine_tune_overrides(init) + list(args.overrides))
    return min(int(st["p"]) for st in cfg["stages"] if st.get("sampler", "pk") == "pk")


# ---------------------------------------------------------------------------------------- training
def _train(args: argparse.Namespace, out: Path, init, report: dict[str, Any], source: list | None) -> None:
    from reidpipe.commands.train import fine_tune_overrides, fit, run_config
    from reidpipe.trainers.hooks import write_json_atomic

    resuming = args.resume and (out / "last.pt").is_file()  # else: first training on a mined (cleaned) set
    overrides = fine_tune_overrides(init) + [f"data.root={out / 'dataset'}"]
    if not resuming:
        mined = _images(out / "dataset" / "bounding_box_train")
        mix = _source_mix(args, source, mined) if source else None
        if mix:
            overrides.append("data.mix=" + json.dumps([{k: mix[k] for k in ("dataset", "root", "ids")}]))
            report["source"] = mix
            write_json_atomic(out / "adapt.json", report)  # a --resume after an interruption keeps it
        overrides += _schedule(args.train_crops, mined + (mix or {}).get("crops", 0))
    if args.device:
        overrides.append(f"device={args.device}")
    overrides += list(args.overrides)
    cfg = run_config(init.variant, "market1501", overrides, [], out, resuming)
    t0 = time.perf_counter()
    summary = fit(cfg, out, resuming)
    if not summary.get("finished"):
        print(f"training stopped early; continue with: reidpipe adapt ... --output {out} --resume")
        return
    metrics = json.loads((out / "metrics.json").read_text())
    report["training"] = {
        "epochs": [int(st["epochs"]) for st in cfg["stages"]],
        "seconds": round(time.perf_counter() - t0, 1),
        "crops_per_s": _mean_speed(out / "metrics.jsonl"),
        "before": _figures(metrics.get("before")),
        "after": _figures(metrics.get("after")),
        "link_threshold": metrics.get("link_threshold"),
        "model": str(out / "model.onnx"),
    }
    write_json_atomic(out / "adapt.json", report)
    b, a = report["training"]["before"], report["training"]["after"]
    print(
        f"held-out pseudo-identities: mAP {b.get('mAP', float('nan')):.3f} -> {a['mAP']:.3f}, rank-1 "
        f"{b.get('rank1', float('nan')):.3f} -> {a['rank1']:.3f}; adapted model {out / 'model.onnx'} "
        "(reidpipe run --reid-weights)"
    )


def _read_source(args: argparse.Namespace) -> list | None:
    """The training records of ``--source-dataset`` at ``--source-root`` (None without it)."""
    if args.source_dataset is None:
        return None
    from reidpipe.trainers.build import mix_records

    return mix_records(_source_entry(args, None))


def _source_entry(args: argparse.Namespace, ids: int | None) -> dict[str, Any]:
    return {"dataset": args.source_dataset, "root": str(Path(args.source_root).resolve()), "ids": ids}


def _source_mix(args: argparse.Namespace, records: list, mined_crops: int) -> dict[str, Any]:
    """The ``data.mix`` entry of the labelled set trained on beside the mined one, and its crops: the
    identities drawn are ``--source-ids``, else as many as give about ``SOURCE_SHARE`` crops per mined
    training crop (the mined people teach the cameras, the labelled ones keep the model apart on
    people it never saw)."""
    from reidpipe.trainers.build import mix_records

    people = len({r.pid for r in records})
    ids = min(args.source_ids or max(1, round(SOURCE_SHARE * mined_crops * people / len(records))), people)
    entry = _source_entry(args, ids)
    return {**entry, "crops": len(mix_records(entry))}


def _images(folder: Path) -> int:
    """Training crops in the mined set as it is now (a person may have deleted some)."""
    from reidpipe.reid.datasets.base import list_images

    return len(list_images(folder)) if folder.is_dir() else 0


def _schedule(train_crops: int, set_crops: int) -> list[str]:
    """Epochs that show the model ``train_crops`` crops (an epoch shows each training crop about
    once), at least ``MIN_EPOCHS``; the learning rate drops x0.1 for the last quarter, as the
    fine-tuning recipe's does."""
    epochs = min(max(math.ceil(train_crops / max(set_crops, 1)), MIN_EPOCHS), MAX_EPOCHS)
    drop = epochs - max(1, epochs // 4) + 1
    return [f"stages.*.epochs={epochs}", f"stages.*.schedule.milestones=[{drop}]"]


def _figures(m: dict[str, Any] | None) -> dict[str, Any]:
    if not m:
        return {}
    return {k: m[k] for k in ("mAP", "rank1", "rank5", "mINP", "num_query", "num_gallery") if k in m}


def _mean_speed(path: Path) -> float | None:
    if not path.is_file():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    speeds = [r["crops_per_s"] for r in rows if isinstance(r.get("crops_per_s"), (int, float))]
    return round(sum(speeds) / len(speeds), 1) if speeds else None
