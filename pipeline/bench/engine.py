"""``reidpipe bench --engine ray``: what running the cameras as Ray actors costs, and how fast the one
linker on the driver can take tracklets.

- :func:`bench_engines` runs the same source as 1, 2 and 4 cameras (the video repeated) with the
  in-process engine and with Ray actors (one per camera), and reports each run's wall time
  (``run``: sources opened and models loaded in the workers, to the outputs written) and loop
  frames per second. Ray is started once before (its start-up is reported apart, ``ray_start_s``).
- :func:`bench_online_linking` feeds synthetic tracklets
  (:func:`reidpipe.pipeline.bench.synthetic.synthetic_tracklets`) one by one, in the order they end,
  to ``Linker.add`` — what the driver does online — and reports the sustained rate (tracklets per
  second) per slice of the stream, so that a rate that falls as the linker fills up shows.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reidpipe.pipeline.config import LinkerConfig

DEFAULT_CAMERAS = (1, 2, 4)


def bench_engines(config, source: str, cameras: Sequence[int] = DEFAULT_CAMERAS) -> dict[str, Any]:
    """In-process vs Ray for each number of cameras in ``cameras`` (``source`` repeated)."""
    import ray

    from reidpipe.pipeline.runner import Pipeline

    t0 = time.perf_counter()
    started = not ray.is_initialized()
    if started:
        ray.init(
            address=config.engine.ray_address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR
        )
    ray_start = time.perf_counter() - t0
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="reidpipe-bench-engine-") as tmp:
            for n in cameras:
                row: dict[str, Any] = {"cameras": int(n)}
                for kind in ("local", "ray"):
                    cfg = config.replace(
                        output=str(Path(tmp) / f"{kind}{n}"),
                        progress=False,
                        names=[f"cam{i}" for i in range(n)],
                        offsets=None,
                        detections=list(config.detections or [])[:1] * n or None,
                        engine={"kind": kind},
                    )
                    pipe = Pipeline(cfg)
                    t = time.perf_counter()
                    pipe.run([source] * n)
                    st = pipe.stats
                    row[kind] = {
                        "run_s": round(time.perf_counter() - t, 3),
                        "setup_s": st["seconds"]["setup"],
                        "loop_s": st["seconds"]["loop"],
                        "fps": st["fps"]["total"],
                        "frames": sum(st["frames"].values()),
                        "identities": st["identities"],
                    }
                row["ray_over_local_run"] = round(row["ray"]["run_s"] / max(row["local"]["run_s"], 1e-9), 3)
                row["same_identities"] = row["ray"]["identities"] == row["local"]["identities"]
                rows.append(row)
    finally:
        if started:
            ray.shutdown()
    return {"source": str(source), "ray_start_s": round(ray_start, 3), "results": rows}


def bench_online_linking(n: int = 4000, dim: int = 512, cameras: int = 4, slices: int = 4) -> dict[str, Any]:
    """Tracklets per second ``Linker.add`` takes, one at a time in end-time order, per slice of ``n``."""
    from reidpipe.pipeline.bench.synthetic import synthetic_tracklets
    from reidpipe.pipeline.link import Linker

    tracklets = sorted(synthetic_tracklets(n, dim=dim, cameras=cameras), key=lambda t: t.end_t)
    linker = Linker(LinkerConfig(min_similarity=0.5), [f"cam{c}" for c in range(cameras)])
    size = max(1, n // slices)
    rates = []
    t_all = time.perf_counter()
    for start in range(0, n, size):
        chunk = tracklets[start : start + size]
        t = time.perf_counter()
        for tr in chunk:
            linker.add(tr)
        rates.append(round(len(chunk) / max(time.perf_counter() - t, 1e-9), 1))
    total = time.perf_counter() - t_all
    timeline = max(t.end_t for t in tracklets) - min(t.start_t for t in tracklets)
    return {
        "tracklets": n,
        "dim": dim,
        "cameras": cameras,
        "seconds": round(total, 3),
        "rate_per_slice": rates,
        "sustained_per_s": min(rates),
        "arrival_per_s": round(n / max(timeline, 1e-9), 2),
        "identities": len(linker.finalize()),
    }


def format_engines(res: dict[str, Any]) -> str:
    lines = [
        f"engines (same video as N cameras; Ray start-up {res['ray_start_s']:.1f} s, not counted):",
        f"{'cameras':>7}  {'local run s':>11}  {'ray run s':>9}  {'ray/local':>9}  {'local fps':>9}  "
        f"{'ray fps':>8}  same ids",
    ]
    for r in res["results"]:
        lo, ra = r["local"], r["ray"]
        lines.append(
            f"{r['cameras']:>7}  {lo['run_s']:>11.2f}  {ra['run_s']:>9.2f}  {r['ray_over_local_run']:>9.2f}  "
            f"{lo['fps']:>9.1f}  {ra['fps']:>8.1f}  {r['same_identities']}"
        )
    return "\n".join(lines)


def format_online_linking(res: dict[str, Any]) -> str:
    return (
        f"online linking: {res['tracklets']} tracklets ({res['dim']}-d, {res['cameras']} cameras) one by one "
        f"in {res['seconds']:.1f} s; rate per slice {res['rate_per_slice']} tracklets/s, sustained "
        f"{res['sustained_per_s']:.0f}/s"
    )
