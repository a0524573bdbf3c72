"""Gallery runs on synthetic tracklets without video, for the gallery's tests: what the runner does
with a gallery (prime, link, commit), two runs split by camera."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from reidpipe.pipeline.bench.synthetic import pairwise_scores, synthetic_tracklets
from reidpipe.pipeline.config import PipelineConfig
from reidpipe.pipeline.gallery.session import GallerySession
from reidpipe.pipeline.gallery.times import iso, parse_iso
from reidpipe.pipeline.io.export import order_identities
from reidpipe.pipeline.link import Linker
from reidpipe.pipeline.types import SourceInfo

DAY = 86400.0
WRITTEN: dict = {}  # what the last gallery_run wrote
T0 = parse_iso("2026-11-02T09:00:00")


def people(seed: int = 0):
    ts, labels = synthetic_tracklets(160, dim=64, cameras=2, seed=seed, noise=0.5, return_labels=True)
    return ts, labels


def config(gallery, start: float, **kw) -> PipelineConfig:
    cfg = PipelineConfig(reid="hist", gallery=str(gallery), start_times=[iso(start)], output=str(gallery / "out"))
    return cfg.replace(link={"refine": True, "fallback_similarity": 0.5}, **kw)


def gallery_run(cfg: PipelineConfig, tracklets, camera: str):
    """What the runner does with a gallery, without video: prime, link, commit."""
    session = GallerySession.open(cfg, [f"{camera}.mp4"])
    try:
        span = max(t.end_t for t in tracklets) + 1
        linker = Linker(cfg.link, [camera])
        session.prime(linker, [SourceInfo(camera=camera, uri="x", fps=10.0, width=1, height=1, frames=int(span * 10))])
        linker.add_many([replace(t) for t in tracklets])
        out = session.commit(order_identities(linker.finalize()), session.run_tracklets(linker))
    finally:
        session.close()
    WRITTEN.update(session.written)
    return {t.key: ident.id for ident in out for t in ident.tracklets}


def split_runs(tmp_path, second_start: float):
    ts, labels = people()
    lab = {t.key: int(labels[k]) for k, t in enumerate(ts)}
    g = tmp_path / "g"
    ids = gallery_run(config(g, T0), [t for t in ts if t.camera == "cam0"], "cam0")
    shift = second_start - T0
    cam1 = [t for t in ts if t.camera == "cam1"]
    ids |= gallery_run(config(g, T0 + shift), cam1, "cam1")
    keys = sorted(ids)
    return g, ts, labels, pairwise_scores(np.array([lab[k] for k in keys]), np.array([ids[k] for k in keys]))
