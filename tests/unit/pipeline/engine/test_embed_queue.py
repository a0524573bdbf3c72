"""The embed queue (pipeline/engine/embed_queue.py): the embed thread (``embed_async``) gives the synchronous
features and drains on stop / Ctrl-C; the embedding budget (``embed_budget``) keeps to its rate, best
crops first, and leaves no tracklet without a feature."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from shared_data import DATA
from walker_video import render

from reidpipe.pipeline.config import PipelineConfig
from reidpipe.pipeline.engine.embed_queue import EmbedQueue
from reidpipe.pipeline.engine.stats import StageTimer
from reidpipe.pipeline.engine.worker import CameraGroup
from reidpipe.pipeline.models.embed import embeds_async
from reidpipe.pipeline.types import Tracklet

TWIN = DATA / "mtmc" / "twin_2cam"
OSNET = DATA / "models" / "osnet_x0_25_msmt17.onnx"


class SlowEmbedder:
    """Wraps an embedder: each batch takes ``delay`` s more, and the thread it ran in is recorded."""

    def __init__(self, inner, delay: float = 0.0):
        self.inner, self.delay = inner, delay
        self.dim, self.link_threshold = inner.dim, inner.link_threshold
        self.threads: set[str] = set()
        self.crops = 0

    def embed(self, crops):
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        self.crops += len(crops)
        return self.inner.embed(crops)


def _tracklets(cfg: PipelineConfig, uris, names, detections, wrap=None):
    """Every tracklet a camera group closes over the clips (in order), and the group."""
    group = CameraGroup(cfg, uris, names, detections=detections)
    group.open()
    if wrap is not None:
        group.embeds.embedder = group.embedder = wrap(group.embedder)
    group.start()
    closed = [t for step in group.steps() for t in step.closed]
    return closed + group.stop(), group


def _features(tracklets):
    return {t.key: t.feature for t in tracklets}


def _embed_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("reidpipe-embed")]


def test_embed_async_is_on_by_default_for_onnx_and_openvino_only():
    assert embeds_async(PipelineConfig(reid_weights="m.onnx")) and embeds_async(PipelineConfig(reid_weights="m.xml"))
    assert not embeds_async(PipelineConfig()) and not embeds_async(PipelineConfig(reid_weights="best.pt"))
    assert not embeds_async(PipelineConfig(reid_weights="m.onnx", embed_async=False))
    assert embeds_async(PipelineConfig(embed_async=True))


def test_the_embed_thread_gives_the_synchronous_features(tmp_path):
    a, da = render(tmp_path, "hall", start=0, n=40)
    b, db = render(tmp_path, "exit", start=8, n=40, colour=(200, 60, 30))
    base = PipelineConfig(reid="hist", track_lost_frames=5, embed_batch=3)
    sync, _ = _tracklets(base.replace(embed_async=False), [a, b], ["hall", "exit"], [da, db], SlowEmbedder)
    wrapped = []
    asyn, group = _tracklets(
        base.replace(embed_async=True),
        [a, b],
        ["hall", "exit"],
        [da, db],
        lambda e: wrapped.append(SlowEmbedder(e, delay=0.02)) or wrapped[0],
    )
    assert wrapped[0].threads == {"reidpipe-embed_0"}  # every batch ran in the embed thread
    assert [t.key for t in asyn] == [t.key for t in sync] and len(sync) == 2
    for key, f in _features(sync).items():
        assert f is not None and np.array_equal(_features(asyn)[key], f)
    assert group.counts.crops_embedded == wrapped[0].crops > 0 and not _embed_threads()


def test_async_features_equal_sync_on_a_real_clip_with_osnet():
    if not (TWIN.is_dir() and OSNET.is_file()):
        pytest.skip(f"twin_2cam or the OSNet model not found under {DATA}")
    uris = [str(TWIN / "cam1.mp4"), str(TWIN / "cam2.mp4")]
    dets = [str(TWIN / "cam1_det.txt"), str(TWIN / "cam2_det.txt")]
    base = PipelineConfig(reid_weights=str(OSNET), max_frames=150, embed_batch=8, device="cpu")
    sync, _ = _tracklets(base.replace(embed_async=False), uris, ["cam1", "cam2"], dets)
    asyn, group = _tracklets(base, uris, ["cam1", "cam2"], dets)  # ONNX: async by default
    assert group.embeds._thread is not None and [t.key for t in asyn] == [t.key for t in sync]
    with_feature = [t for t in sync if t.feature is not None]
    assert len(with_feature) >= 4
    for t in asyn:
        ref = _features(sync)[t.key]
        assert (t.feature is None) == (ref is None)
        if ref is not None:
            assert np.array_equal(t.feature, ref)


def test_ctrl_c_drains_the_embed_thread_and_keeps_every_feature(tmp_path, monkeypatch):
    from reidpipe.errors import Interrupted
    from reidpipe.pipeline.engine import worker
    from reidpipe.pipeline.engine.worker import CameraWorker
    from reidpipe.pipeline.runner import Pipeline

    a, da = render(tmp_path, "hall", start=0, n=60)
    slow: list[SlowEmbedder] = []
    real_load = worker.load_embedder
    monkeypatch.setattr(worker, "load_embedder", lambda cfg: slow.append(SlowEmbedder(real_load(cfg), 0.05)) or slow[0])
    real_step = CameraWorker.step

    def step(self, item, detections=None, detected=None):
        if self.seq == 30:
            raise KeyboardInterrupt
        return real_step(self, item, detections, detected)

    monkeypatch.setattr(CameraWorker, "step", step)
    pipe = Pipeline(
        detections=[da], reid="hist", embed_async=True, embed_batch=2, output=str(tmp_path / "o"), progress=False
    )
    with pytest.raises(Interrupted):
        pipe.run([a])
    assert not _embed_threads() and slow[0].threads == {"reidpipe-embed_0"}
    assert pipe.stats["interrupted"] and pipe.stats["crops_embedded"] == slow[0].crops > 0
    (ident,) = pipe.identities  # the one open track was closed at the stop, with its feature
    # its embedded crops pooled (the bank of embeddings itself is dropped once the track is linked)
    assert ident.tracklets[0].feature is not None and ident.tracklets[0].crops > 0


def test_a_wait_cut_short_by_ctrl_c_still_waits_at_the_stop():
    queue = EmbedQueue(
        SlowEmbedder(QualityEmbedder(), delay=0.3), bank_size=10, batch=2, timer=StageTimer(), asynchronous=True
    )
    tracklet = Tracklet("cam", 1)
    for q in (0.5, 0.6):
        queue.add(tracklet, q, np.full((64, 32, 3), 100, np.uint8))
    queue.after_frame("cam", 0.0)  # a full batch: in the embed thread now
    future = queue._in_flight[0][0]
    real_result, calls = future.result, []

    def ctrl_c_once(*args, **kwargs):
        if not calls:
            calls.append(1)
            raise KeyboardInterrupt
        return real_result(*args, **kwargs)

    future.result = ctrl_c_once  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        queue.settle([tracklet])
    queue.settle([tracklet])  # what the stop does after Ctrl-C: waits for the batch still running
    assert len(tracklet.bank) == 2
    queue.close()
    assert not _embed_threads()


# ------------------------------------------------------------------ the budget
def _crowd(queue: EmbedQueue, *, people: int, frames: int, fps: float, life: int, seed: int = 0):
    """A crowded scene fed straight to the queue: ``people`` tracklets at a time, each living ``life``
    frames and offering a crop every frame (quality random); returns (closed tracklets, offered
    qualities, embedded qualities)."""
    rng = np.random.default_rng(seed)
    alive: list[tuple[Tracklet, int]] = []
    closed: list[Tracklet] = []
    offered: list[float] = []
    next_id = 0
    for f in range(frames):
        while len(alive) < people:
            alive.append((Tracklet("cam", next_id), f + int(rng.integers(life // 2, life))))
            next_id += 1
        for tr, _ in alive:
            q = float(rng.uniform(0.05, 1.0))
            offered.append(q)
            queue.add(tr, q, np.full((64, 32, 3), int(q * 255), np.uint8))
        ending = [tr for tr, end in alive if end <= f]
        alive = [(tr, end) for tr, end in alive if end > f]
        queue.settle(ending)
        closed += ending
        queue.after_frame("cam", f / fps)
    queue.settle([tr for tr, _ in alive])
    queue.close()
    return closed + [tr for tr, _ in alive], offered


class QualityEmbedder:
    """A 'descriptor' that is the crop's grey level: the bank then tells which crops were embedded."""

    dim, link_threshold = 2, 0.5

    def embed(self, crops):
        return np.stack([[c[0, 0, 0] / 255.0, 1.0] for c in crops]).astype(np.float32)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_budget_caps_a_crowded_scene_best_crops_first_and_no_tracklet_without_a_feature(asynchronous):
    budget, fps, frames, batch = 6.0, 10.0, 300, 8
    queue = EmbedQueue(
        QualityEmbedder(), bank_size=10, batch=batch, timer=StageTimer(), asynchronous=asynchronous, budget=budget
    )
    tracklets, offered = _crowd(queue, people=12, frames=frames, fps=fps, life=60)
    seconds = frames / fps
    assert len(tracklets) > 40 and len(offered) == 12 * frames
    assert queue.embedded <= budget * seconds + batch  # 3600 crops offered, at most ~188 embedded
    assert all(len(t.bank) >= 1 for t in tracklets)  # every tracklet has a feature
    embedded = [float(b[0]) for t in tracklets for b in t.bank]
    assert len(embedded) == queue.embedded
    assert np.mean(embedded) > np.mean(offered) + 0.15  # the best crops went first


def test_a_budget_below_one_crop_per_tracklet_still_gives_every_tracklet_one():
    queue = EmbedQueue(QualityEmbedder(), bank_size=10, batch=8, timer=StageTimer(), budget=1.0)
    tracklets, _ = _crowd(queue, people=12, frames=300, fps=10.0, life=60)
    assert len(tracklets) > 30 * 1.0 + 8  # more tracklets than the budget's crops
    assert all(len(t.bank) == 1 for t in tracklets) and queue.embedded == len(tracklets)


def test_without_a_budget_every_crop_is_embedded():
    queue = EmbedQueue(QualityEmbedder(), bank_size=1000, batch=8, timer=StageTimer())
    tracklets, offered = _crowd(queue, people=5, frames=40, fps=10.0, life=20)
    assert queue.embedded == len(offered) == sum(len(t.bank) for t in tracklets)


def test_budget_on_a_real_crowded_clip_keeps_every_tracklet_with_a_feature():
    if not TWIN.is_dir():
        pytest.skip(f"twin_2cam not found under {DATA}")
    uris = [str(TWIN / "cam1.mp4"), str(TWIN / "cam2.mp4")]
    dets = [str(TWIN / "cam1_det.txt"), str(TWIN / "cam2_det.txt")]
    base = PipelineConfig(reid="hist", max_frames=300, embed_batch=8).replace(sampler={"every": 1})
    free, g_free = _tracklets(base, uris, ["cam1", "cam2"], dets)
    budget = 3.0
    capped, g_capped = _tracklets(base.replace(embed_budget=budget), uris, ["cam1", "cam2"], dets)
    seconds = 300 / 10.0  # 300 frames at 10 fps, both cameras at once
    assert g_free.counts.crops_embedded > 3 * budget * seconds  # a scene the budget has to cut
    assert g_capped.counts.crops_embedded <= budget * seconds + 8
    assert [t.key for t in capped] == [t.key for t in free]
    assert {t.key for t in capped if t.feature is not None} == {t.key for t in free if t.feature is not None}


def test_embed_settings_are_validated_with_the_flag_named():
    from reidpipe.errors import ConfigError, UsageError
    from reidpipe.pipeline.validate import check_config

    with pytest.raises(UsageError, match="--embed-budget 0: must be a finite number > 0"):
        check_config(PipelineConfig(embed_budget=0), as_flags=True)
    with pytest.raises(ConfigError, match="embed_async: must be true or false"):
        check_config(PipelineConfig(embed_async="yes"))
    assert check_config(PipelineConfig(embed_budget=12.5, embed_async=False)).embed_budget == 12.5


def test_run_flags_set_the_embed_settings():
    import argparse

    from reidpipe.commands.run import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--sources", "a.mp4", "-o", "o", "--embed-budget", "20", "--no-embed-async"])
    cfg = config_from_args(args)
    assert cfg.embed_budget == 20.0 and cfg.embed_async is False
    assert config_from_args(parser.parse_args(["--sources", "a.mp4", "-o", "o"])).embed_async is None


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="per-thread niceness is a Linux feature")
def test_the_embed_thread_yields_the_cores_to_the_frame_loop():
    """A crop can wait, a frame cannot: the embed thread runs 10 niceness steps below the main thread,
    which keeps its own priority."""

    class Niceness:  # an embedder that notes the niceness of the thread it runs in
        seen: list[int] = []

        def embed(self, crops):
            Niceness.seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            return QualityEmbedder().embed(crops)

    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    queue = EmbedQueue(Niceness(), bank_size=10, batch=2, timer=StageTimer(), asynchronous=True)
    tracklet = Tracklet("cam", 1)
    for q in (0.5, 0.6):
        queue.add(tracklet, q, np.full((64, 32, 3), 100, np.uint8))
    queue.after_frame("cam", 0.0)
    queue.close()
    assert Niceness.seen == [min(main_before + 10, 19)] and len(tracklet.bank) == 2
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before
