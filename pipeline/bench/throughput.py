"""``reidpipe bench``: measured speed of the pipeline, of the embedders and of the linker.

Three benchmarks, each returning a JSON-able dict (the CLI writes them into one ``bench.json``):

- :func:`bench_pipeline` runs the full pipeline (:class:`reidpipe.pipeline.runner.Pipeline`) on some
  sources and, in the same process, a *detector-only* pass over the same frames (same reader threads
  and queue, same stride and ``max_frames``, same detector settings: decode + detect, nothing else).
  The ratio ``pipeline_fps / detector_only_fps`` is what tracking, cropping, embedding, linking and
  exporting cost on top of the detector; being a ratio of two figures taken one after the other on
  the same machine, it survives a noisy, shared machine far better than either fps alone.
- :func:`bench_embedding` (``pipeline/bench/embed.py``) measures crops/s of one ReID model at several
  batch sizes, in eager torch and in ONNX Runtime, on the same exported graph.
- :func:`bench_linking` times cross-camera linking of 1k/10k/100k synthetic 512-d tracklets
  (:func:`reidpipe.pipeline.bench.synthetic.time_linking`).

Every result carries :func:`environment` (``pipeline/bench/machine.py``: CPU model and cores, load average,
library versions, device), since a figure without its machine means little. :func:`format_report` prints the tables.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reidpipe.cpus import usable_cpus
from reidpipe.errors import OutputError, UsageError
from reidpipe.files import atomic_write_text
from reidpipe.pipeline.bench.embed import ORT_TARGET_AT_32, bench_embedding
from reidpipe.pipeline.bench.machine import PeakMemory, environment, resolve_device
from reidpipe.pipeline.contracts import Detector
from reidpipe.pipeline.engine.ahead import DetectAhead, detect_threads
from reidpipe.pipeline.engine.stats import StageTimer
from reidpipe.pipeline.io.sources import open_sources, rounds, source_kind
from reidpipe.pipeline.models.detect import load_detector
from reidpipe.pipeline.models.embed import embeds_async

STAGES = ("decode", "detect", "track", "crop", "embed", "link", "export")
DEFAULT_LINK_SIZES = (1_000, 10_000, 100_000)
# pipeline / detector-only: embedding and tracking should come nearly free
TARGETS = {"pipeline_over_detector": 0.95, "ort_over_torch_at_32": ORT_TARGET_AT_32, "link_100k_seconds": 10.0}


# ---------------------------------------------------------------------------------------- linking
def bench_linking(sizes: Sequence[int] = DEFAULT_LINK_SIZES, dim: int = 512) -> dict[str, Any]:
    """Seconds to link ``n`` synthetic ``dim``-d tracklets across 4 cameras, for each ``n``
    (:func:`reidpipe.pipeline.bench.synthetic.time_linking`: offline linking, generation not timed)."""
    from reidpipe.pipeline.bench.synthetic import time_linking

    rows = []
    for n in sizes:
        if int(n) < 1:
            raise UsageError(f"--link-sizes must be positive, got {n}")
        s = float(time_linking(int(n), dim=dim))
        rows.append({"tracklets": int(n), "seconds": round(s, 4), "tracklets_per_s": round(n / s, 1) if s else None})
    out: dict[str, Any] = {"dim": dim, "results": rows, "target_100k_seconds": TARGETS["link_100k_seconds"]}
    hit = next((r for r in rows if r["tracklets"] == 100_000), None)
    out["seconds_100k"] = hit["seconds"] if hit else None
    return out


# ---------------------------------------------------------------------------------------- pipeline
def detector_only_pass(config, sources: Sequence[str], detectors: Sequence[Detector]) -> dict[str, Any]:
    """Decode + detect over the frames a pipeline run with ``config`` processes: the same reader
    threads and bounded queues (:func:`reidpipe.pipeline.io.sources.open_sources`, same stride and
    ``max_frames``), the same round-robin over cameras, ``detectors[i]`` for source ``i`` (one
    ``detect_batch`` call per round for a detector the cameras share, as the pipeline does when
    ``detect_batch`` is on); no tracking, cropping, embedding, linking or writing. Every frame is
    detected (``detect_every`` is what the pipeline saves on top). Times are measured like the runner's."""
    notify = threading.Event()
    srcs = open_sources(
        [str(s) for s in sources],
        names=config.names,
        offsets=config.offsets,
        stride=config.stride,
        max_frames=config.max_frames,
        queue_size=config.queue_size,
        reconnect_attempts=config.reconnect_attempts,
        reconnect_backoff=config.reconnect_backoff,
        notify=notify,
    )
    index = {s.info.camera: i for i, s in enumerate(srcs)}
    frames = {s.info.camera: 0 for s in srcs}
    timer = StageTimer()
    detections = 0
    # the rounds on the pipeline's own detect threads (pipeline/engine/ahead.py): the same detector
    # object, the same threads, so that the ratio compares what the pipeline adds, not two schedules
    ahead: DetectAhead[list] = DetectAhead(detect_threads(detectors[0]) if detectors else 1)

    def detect(got: list) -> list:
        with timer("detect"):
            return _detect_frames(config, [detectors[index[f.camera]] for f in got], got)

    def count(got: list, found: list) -> None:
        nonlocal detections
        detections += sum(len(d) for d in found)
        for f in got:
            frames[f.camera] += 1

    t_loop = time.perf_counter()
    cpu0 = _cpu_seconds()
    try:
        for s in srcs:
            s.start()
        for items in rounds(srcs, notify, waited=lambda seconds: timer.add("wait", seconds)):
            failed = next((s.error for s, item in items if item is None and s.error is not None), None)
            if failed is not None:
                raise failed
            got = [item for _, item in items if item is not None]
            for done, found in ahead.put(got, detect, got):
                count(done, found)
        for done, found in ahead.drain():
            count(done, found)
    finally:
        ahead.close()
        for s in srcs:
            s.stop()
        for s in srcs:
            s.join(timeout=2.0)
    wall = max(time.perf_counter() - t_loop, 1e-9)
    cpu = _cpu_seconds() - cpu0
    total = sum(frames.values())
    return {
        "cpu_seconds": round(cpu, 4),
        "seconds": {
            "decode": round(sum(s.decode_seconds for s in srcs), 4),
            "detect": round(timer.seconds["detect"], 4),
            "wait": round(timer.seconds["wait"], 4),
            "wall": round(wall, 4),
        },
        "frames": frames,
        "frames_total": total,
        "fps": {**{c: round(n / wall, 3) for c, n in frames.items()}, "total": round(total / wall, 3)},
        "detections": detections,
    }


def _detect_frames(config, detectors: Sequence[Detector], frames: Sequence[Any]) -> list[Any]:
    """Detections of one round's frames: one batch when they all share a detector that batches."""
    if not frames:
        return []
    first = detectors[0]
    shared = len(frames) > 1 and all(d is first for d in detectors)
    if config.detect_batch and shared:
        return first.detect_batch([f.image for f in frames], [f.index for f in frames])
    return [d.detect(f.image, index=f.index) for d, f in zip(detectors, frames)]


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process, all threads."""
    import psutil

    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


def _pipeline_summary(stats: dict[str, Any]) -> dict[str, Any]:
    """The runner's ``stats`` plus the derived figures of the bench: the processing wall time is
    everything after setup (model loading, opening sources): the frame loop, the final linking and
    the export, so ``fps`` counts every second a user waits once the models are loaded."""
    sec = dict(stats["seconds"])
    wall = max(float(sec["total"]) - float(sec.get("setup", 0.0)), 1e-9)
    frames = dict(stats["frames"])
    total = sum(frames.values())
    crops = int(stats.get("crops_embedded", 0))
    dets = int(stats.get("detections", 0))
    embed_s = float(sec.get("embed", 0.0))
    return {
        "seconds": {
            **{k: sec.get(k, 0.0) for k in STAGES},
            "wait": sec.get("wait", 0.0),
            "embed_wait": sec.get("embed_wait", 0.0),  # main thread waiting for the embed thread
            "setup": sec.get("setup", 0.0),
            "loop": sec.get("loop", 0.0),
            "wall": round(wall, 4),
            "total": sec.get("total", 0.0),
        },
        "stage_share": {k: round(float(sec.get(k, 0.0)) / wall, 4) for k in (*STAGES, "embed_wait")},
        "frames": frames,
        "frames_total": total,
        "fps": {**{c: round(n / wall, 3) for c, n in frames.items()}, "total": round(total / wall, 3)},
        "loop_fps": dict(stats.get("fps", {})),
        "crops_embedded": crops,
        "crops_per_s_embedding": round(crops / embed_s, 2) if embed_s > 0 else None,
        "crops_per_s_wall": round(crops / wall, 2),
        "detections": dets,
        "embedded_share": round(crops / dets, 4) if dets else 0.0,
        "tracked_boxes": stats.get("tracked_boxes"),
        "tracklets": stats.get("tracklets"),
        "identities": stats.get("identities"),
        "corrupt_frames": stats.get("corrupt_frames"),
    }


def _config_summary(config) -> dict[str, Any]:
    keys = (
        "detector",
        "detector_kind",
        "detections",
        "det_conf",
        "device",
        "tracker",
        "reid",
        "reid_weights",
        "embed_batch",
        "stride",
        "max_frames",
        "queue_size",
    )
    out = {k: getattr(config, k) for k in keys}
    out["embed_async"] = embeds_async(config)
    out["embed_budget"] = config.embed_budget
    out["sample_every"] = config.sampler.every
    out["bank"] = config.sampler.bank
    out["refine"] = config.link.refine
    if out["detections"] is not None:
        out["detector"] = None
    return out


def run_pipeline_once(config, sources: Sequence[str], output: str | Path, *, cuda: bool = False):
    """One pipeline run over ``sources`` writing to ``output``: (its :func:`_pipeline_summary` with
    ``cpu_seconds`` after setup and ``memory``, the :class:`Pipeline`)."""
    from reidpipe.pipeline.runner import Pipeline

    pipe = Pipeline(config.replace(output=str(output)))
    with PeakMemory(cuda=cuda) as mem:
        t0 = time.perf_counter()
        pipe.run(list(sources))
        t1 = time.perf_counter()
    summary = _pipeline_summary(pipe.stats)
    # CPU seconds after setup (model loading is not part of the per-frame cost)
    summary["cpu_seconds"] = round(mem.cpu_between(t0 + float(pipe.stats["seconds"].get("setup", 0.0)), t1), 4)
    summary["memory"] = mem.to_json()
    return summary, pipe


def bench_pipeline(
    config, sources: Sequence[str], *, repeat: int = 1, output: str | Path | None = None
) -> dict[str, Any]:
    """Run the pipeline ``repeat`` times, each followed by a detector-only pass over the same frames
    with the same detector object(s) (the pipeline's own, already loaded). The reported pipeline and
    detector-only sections are each the fastest of the repeats (on a shared machine noise only ever
    slows a run down); ``ratio`` is their quotient and ``repeats`` keeps every pair.

    Pipeline outputs go to ``output`` (default: a temporary folder removed afterwards)."""
    if repeat < 1:
        raise UsageError(f"--repeat must be >= 1, got {repeat}")
    sources = [str(s) for s in sources]
    if not sources:
        raise UsageError("no sources given (--sources A B ...)")
    use_cuda = _uses_cuda(config.device)
    tmp_ctx = tempfile.TemporaryDirectory(prefix="reidpipe-bench-run-") if output is None else None
    out_dir = Path(tmp_ctx.name if tmp_ctx is not None else str(output))
    runs: list[dict[str, Any]] = []
    det_runs: list[dict[str, Any]] = []
    info: list[Any] = []
    detectors: list[Detector] | None = None

    def run_pipeline(r: int) -> None:
        nonlocal detectors, info
        summary, pipe = run_pipeline_once(
            config, sources, out_dir / f"run{r}" if repeat > 1 else out_dir, cuda=use_cuda
        )
        runs.append(summary)
        info = pipe.sources
        if config.detections is not None:  # public detections: one reader per det.txt
            detectors = [load_detector(config, d) for d in config.detections]
        else:  # the pipeline's own (shared) detector object, already loaded and warm
            detectors = [pipe.detector] * len(sources)

    def run_detector_only() -> None:
        assert detectors is not None  # set by the pipeline pass of run 0, which always comes first
        with PeakMemory(cuda=use_cuda) as mem:
            det = detector_only_pass(config, sources, detectors)
        det["memory"] = mem.to_json()
        det_runs.append(det)

    try:
        for r in range(repeat):
            # alternate the order (P D, D P, P D, ...) so neither pass always runs second
            if r % 2 == 0:
                run_pipeline(r)
                run_detector_only()
            else:
                run_detector_only()
                run_pipeline(r)
    finally:
        if tmp_ctx is not None:
            tmp_ctx.cleanup()
    best = max(runs, key=lambda s: s["fps"]["total"])
    best_det = max(det_runs, key=lambda s: s["fps"]["total"])
    p_fps, d_fps = best["fps"]["total"], best_det["fps"]["total"]
    # noise-robust companions of the wall-clock ratio (see format_report / performance notes):
    # CPU seconds per frame of both passes, and the detector's share of the pipeline's own wall time
    p_cpu = min(x["cpu_seconds"] / max(x["frames_total"], 1) for x in runs)
    d_cpu = min(x["cpu_seconds"] / max(x["frames_total"], 1) for x in det_runs)
    threads = detect_threads(detectors[0]) if detectors else 1  # the run's detect threads (idempotent)
    in_run = max(x["seconds"]["detect"] / (x["seconds"]["wall"] * threads) for x in runs)
    result: dict[str, Any] = {
        "config": _config_summary(config),
        "sources": [s.to_json() for s in info],
        "pipeline": best,
        "detector_only": best_det,
        "pipeline_fps": p_fps,
        "detector_only_fps": d_fps,
        "ratio": round(p_fps / d_fps, 4) if d_fps > 0 else None,
        "target_ratio": TARGETS["pipeline_over_detector"],
        "cpu_ratio": round(d_cpu / p_cpu, 4) if p_cpu > 0 else None,
        "detect_share_of_pipeline_wall": round(in_run, 4),
        "detect_threads": threads,
        "detector_runtime": _runtime_of(detectors),
        "repeats": [
            {
                "pipeline_fps": a["fps"]["total"],
                "detector_only_fps": b["fps"]["total"],
                "ratio": round(a["fps"]["total"] / b["fps"]["total"], 4) if b["fps"]["total"] > 0 else None,
            }
            for a, b in zip(runs, det_runs)
        ],
        "notes": [],
    }
    if any(source_kind(s) in ("stream", "webcam") for s in sources):
        result["notes"].append("live sources: the pipeline and the detector-only pass saw different frames")
    if best["frames_total"] != best_det["frames_total"]:
        result["notes"].append(
            f"the passes processed different frame counts ({best['frames_total']} vs {best_det['frames_total']})"
        )
    return result


def _runtime_of(detectors: Sequence[Any] | None) -> dict[str, Any] | None:
    """The runtime ``backend: auto`` chose for the detector (pipeline/runtime_choice.py), or None."""
    choice = getattr(detectors[0], "runtime_choice", None) if detectors else None
    return choice.to_json() if choice is not None else None


def _uses_cuda(device: str) -> bool:
    if not resolve_device(device).startswith("cuda"):
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


# ---------------------------------------------------------------------------------------- cameras
def camera_sources(sources: Sequence[str], cameras: int | None) -> list[str]:
    """The sources of ``bench --cameras N``: N given sources, or one source taken as N cameras."""
    sources = [str(s) for s in sources]
    if cameras is None:
        return sources
    if cameras < 1:
        raise UsageError(f"--cameras must be >= 1, got {cameras}")
    if len(sources) == 1:
        return sources * cameras
    if len(sources) != cameras:
        raise UsageError(
            f"--cameras {cameras} with {len(sources)} --sources: give one source (used as {cameras} cameras) "
            f"or {cameras} sources"
        )
    return sources


def _realtime_settings(config) -> dict[str, Any]:
    """The settings a camera count was reached with."""
    keys = ("detector", "detector_kind", "backend", "detect_every", "detect_batch", "device", "stride")
    out = {k: getattr(config, k) for k in keys}
    out.update(
        reid=config.reid, reid_weights=config.reid_weights, embed_batch=config.embed_batch, engine=config.engine.kind
    )
    if config.detections is not None:
        out["detector"] = "public detections"
    return out


def bench_cameras(
    config,
    sources: Sequence[str],
    *,
    cameras: int | None = None,
    camera_fps: float = 10.0,
    repeat: int = 1,
    output: str | Path | None = None,
) -> dict[str, Any]:
    """:func:`bench_pipeline` on N cameras (``cameras`` copies of one source, or N sources), after one
    pipeline run on the first camera alone (for the memory an added camera costs). Adds
    ``realtime_cameras``: how many cameras of ``camera_fps`` frames/s this machine follows in real time
    at the N-camera run's throughput (``floor(fps_total * stride / camera_fps)``; each camera then gets
    ``camera_fps / stride`` processed frames/s), with the settings, and a ``cameras`` section."""
    if not camera_fps > 0:
        raise UsageError(f"--camera-fps must be > 0, got {camera_fps}")
    srcs = camera_sources(sources, cameras)
    n = len(srcs)
    if config.names is None and len(set(srcs)) < n:  # the same video as N cameras: N names
        config = config.replace(names=[f"cam{i + 1}" for i in range(n)])
    if config.detections is not None and len(config.detections) == 1 and n > 1:  # and its det.txt N times
        config = config.replace(detections=list(config.detections) * n)
    with tempfile.TemporaryDirectory(prefix="reidpipe-bench-one-") as tmp:
        one_cfg = config.replace(
            names=config.names[:1] if config.names else None,
            offsets=config.offsets[:1] if config.offsets else None,
            detections=config.detections[:1] if config.detections else None,
        )
        one, _ = run_pipeline_once(one_cfg, srcs[:1], tmp, cuda=_uses_cuda(config.device))
    result = bench_pipeline(config, srcs, repeat=repeat, output=output)
    fps_total = float(result["pipeline_fps"])
    per_camera = fps_total / n
    need = camera_fps / config.stride  # processed frames/s one camera needs
    rss_one, rss_n = one["memory"]["peak_rss_mb"], result["pipeline"]["memory"]["peak_rss_mb"]
    cpu_per_frame = result["pipeline"]["cpu_seconds"] / max(result["pipeline"]["frames_total"], 1)
    cores = usable_cpus()
    section = {
        "cameras": n,
        "camera_fps": camera_fps,
        "pipeline_fps_total": fps_total,
        "pipeline_fps_per_camera": round(per_camera, 3),
        "realtime_at_these_cameras": per_camera >= need,
        "realtime_cameras": int(fps_total // need),
        # the same count from the CPU time a frame costs, if the run had every usable core to itself:
        # what a shared, busy machine can still tell (its wall-clock rate is slowed by the others)
        "cpu_ms_per_frame": round(1000 * cpu_per_frame, 3),
        "usable_cores": cores,
        "realtime_cameras_by_cpu": int(cores / (cpu_per_frame * need)) if cpu_per_frame > 0 else None,
        "settings": _realtime_settings(config),
        "one_camera_fps": one["fps"]["total"],
        "peak_rss_mb": {"1": rss_one, str(n): rss_n},
        "memory_per_added_camera_mb": round((rss_n - rss_one) / (n - 1), 1) if n > 1 else None,
    }
    result["cameras"] = section
    result["realtime_cameras"] = section["realtime_cameras"]
    return result


# ---------------------------------------------------------------------------------------- report
def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "MISSED")


def format_report(result: dict[str, Any]) -> str:
    """Readable tables of a bench result (any of its sections)."""
    lines: list[str] = []
    env = result.get("environment")
    if env:
        load = env.get("load_average_1m")
        if env.get("load_average_1m_start") is not None:
            load = f"{env['load_average_1m_start']} -> {load}"
        threads = f" ({env['torch_threads']} threads)" if env.get("torch_threads") else ""
        lines.append(
            f"machine: {env.get('cpu_model')}, {env.get('cpu_affinity')} cores usable "
            f"({env.get('cpu_count_logical')} logical), load average {load}, "
            f"device {env.get('device')}{' (' + env['cuda_device'] + ')' if env.get('cuda_device') else ''}; "
            f"torch {env.get('torch_version')}{threads}, "
            f"onnxruntime {env.get('onnxruntime_version')}"
        )
    if "pipeline" in result:
        p, d = result["pipeline"], result["detector_only"]
        lines += [
            "",
            (
                f"pipeline: {p['frames_total']} frames in {p['seconds']['wall']:.2f} s after "
                f"{p['seconds']['setup']:.2f} s setup"
            ),
        ]
        rows = [
            [
                k,
                p["seconds"][k],
                f"{100 * p['stage_share'][k]:.1f}%",
                d["seconds"].get(k) if k in ("decode", "detect") else None,
            ]
            for k in STAGES
        ]
        rows.append(["wait (main thread idle)", p["seconds"]["wait"], "", d["seconds"]["wait"]])
        if result.get("config", {}).get("embed_async"):
            share = f"{100 * p['stage_share']['embed_wait']:.1f}%"
            rows.append(["embed wait (main thread)", p["seconds"]["embed_wait"], share, None])
        rows.append(["wall", p["seconds"]["wall"], "100%", d["seconds"]["wall"]])
        lines += _table(["stage", "pipeline s", "share of wall", "detector-only s"], rows)
        overlapping = "decode runs in reader threads" + (
            ", embed in the embed thread" if result.get("config", {}).get("embed_async") else ""
        )
        n_detect = int(result.get("detect_threads") or 1)
        overlapping += f", detect on {n_detect} detect thread{'s' if n_detect > 1 else ''} (seconds summed over them)"
        lines.append(f"({overlapping}, overlapping the other stages)")
        lines.append("")
        cams = [c for c in p["fps"] if c != "total"]
        rows = [[c, p["frames"][c], p["fps"][c], d["fps"].get(c)] for c in cams]
        rows.append(["total", p["frames_total"], p["fps"]["total"], d["fps"]["total"]])
        lines += _table(["camera", "frames", "pipeline fps", "detector-only fps"], rows)
        ratio = result.get("ratio")
        lines.append(
            f"pipeline / detector-only = {_fmt(ratio, 3)} (target >= {result['target_ratio']}: "
            f"{_verdict(None if ratio is None else ratio >= result['target_ratio'])}); "
            f"noise-robust companions: CPU-time ratio {_fmt(result.get('cpu_ratio'), 3)}, "
            f"detect share of the pipeline's wall {_fmt(result.get('detect_share_of_pipeline_wall'), 3)}"
        )
        lines.append(
            f"detections {p['detections']}, crops embedded {p['crops_embedded']} "
            f"({100 * p['embedded_share']:.1f}% of detections), "
            f"{_fmt(p['crops_per_s_embedding'], 1)} crops/s in the embed stage, "
            f"{p['tracklets']} tracklets -> {p['identities']} identities"
        )
        mem = p["memory"]
        lines.append(
            f"peak RSS {mem['peak_rss_mb']} MB (process max {mem['process_max_rss_mb']} MB)"
            + (f", CUDA max allocated {mem['cuda_max_allocated_mb']} MB" if "cuda_max_allocated_mb" in mem else "")
        )
        if len(result.get("repeats", [])) > 1:
            lines.append(
                "repeats (pipeline fps / detector-only fps / ratio): "
                + "; ".join(
                    f"{r['pipeline_fps']:.2f} / {r['detector_only_fps']:.2f} / {_fmt(r['ratio'], 3)}"
                    for r in result["repeats"]
                )
            )
        for n in result.get("notes", []):
            lines.append(f"note: {n}")
    multi = result.get("cameras")
    if multi:
        per = multi["memory_per_added_camera_mb"]
        lines.append(
            f"cameras: {multi['cameras']} at {multi['pipeline_fps_per_camera']:.2f} fps each "
            f"(1 camera alone: {multi['one_camera_fps']:.2f} fps); realtime_cameras = {multi['realtime_cameras']} "
            f"cameras of {multi['camera_fps']:g} fps on this machine (from the CPU time of a frame, "
            f"{multi['cpu_ms_per_frame']} ms, on {multi['usable_cores']} idle cores: "
            f"{multi['realtime_cameras_by_cpu']}); peak RSS {multi['peak_rss_mb']} MB"
            + (f", {per} MB per added camera" if per is not None else "")
        )
        lines.append("  with " + ", ".join(f"{k}={v}" for k, v in multi["settings"].items()))
    emb = result.get("embedding")
    if emb:
        lines += [
            "",
            (
                f"embedding: {emb['weights']} ({emb['kind']}, input {emb['input_size'][0]}x"
                f"{emb['input_size'][1]}, {emb['embed_dim']}-d) on {emb['device']}, {emb['threads']} threads; "
                f"torch = {emb['torch_impl']}; ONNX Runtime {emb['ort_mode']}"
            ),
        ]
        rows = [
            [r["batch"], r["torch_crops_per_s"], r["ort_crops_per_s"], f"{r['speedup_ort_over_torch']:.2f}x"]
            for r in emb["results"]
        ]
        lines += _table(["batch", "torch crops/s", "ORT crops/s", "ORT / torch"], rows)
        s32 = emb.get("speedup_at_32")
        lines.append(
            f"ORT / torch at batch 32 = {_fmt(s32)}x (target >= {emb['target_speedup_at_32']}: "
            f"{_verdict(None if s32 is None else s32 >= emb['target_speedup_at_32'])}); "
            f"outputs agree: min cosine {emb['agreement']['min_cosine']:.5f}"
        )
        for n in emb.get("notes", []):
            lines.append(f"note: {n}")
    link = result.get("linking")
    if link:
        lines += ["", f"linking ({link['dim']}-d synthetic tracklets, 4 cameras):"]
        lines += _table(
            ["tracklets", "seconds", "tracklets/s"],
            [[r["tracklets"], r["seconds"], r["tracklets_per_s"]] for r in link["results"]],
        )
        s = link.get("seconds_100k")
        if s is not None:
            lines.append(
                f"100k tracklets in {s:.2f} s (target < {link['target_100k_seconds']} s: "
                f"{_verdict(s < link['target_100k_seconds'])})"
            )
    return "\n".join(lines)


def write_json(path: str | Path, result: dict[str, Any]) -> Path:
    """Write ``result`` to ``path`` atomically (temporary file + rename)."""
    import json

    path = Path(path)
    if path.parent and not path.parent.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the folder of --output {path} ({exc.strerror})") from None
    atomic_write_text(path, json.dumps(result, indent=2, default=str) + "\n")
    return path


__all__ = [
    "STAGES",
    "bench_embedding",
    "bench_cameras",
    "bench_linking",
    "bench_pipeline",
    "detector_only_pass",
    "environment",
    "format_report",
    "write_json",
]
