"""Camera workers alone (pipeline/engine/worker.py), the Ray driver's lockstep merge, and RunStats."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
from walker_video import render

from reidpipe.pipeline.config import PipelineConfig
from reidpipe.pipeline.engine.ahead import DetectAhead
from reidpipe.pipeline.engine.ray_engine import LockstepMerge
from reidpipe.pipeline.engine.stats import STAGES, RunStats, StageTimer
from reidpipe.pipeline.engine.worker import CameraGroup
from reidpipe.pipeline.types import Step


def test_camera_worker_alone_turns_a_clip_into_one_closed_tracklet(tmp_path):
    video, det = render(tmp_path, "hall", start=3, n=30)
    cfg = PipelineConfig(reid="hist", track_lost_frames=5)
    group = CameraGroup(cfg, [video], ["hall"], detections=[det])
    (info,) = group.open()
    assert (info.camera, info.width, info.height, info.frames) == ("hall", 160, 120, 30)
    (start,) = group.start()
    assert start[0] == "source_start" and start[1]["kind"] == "file"
    steps = list(group.steps())
    assert [s.seq for s in steps] == list(range(31))  # 30 frames, then the source's end
    assert sum(s.frames for s in steps) == 30 and steps[-1].end is not None and steps[-1].frames == 0
    opened = [e for s in steps for e in s.events if e[0] == "track_open"]
    assert [e[1]["frame"] for e in opened] == [3]  # confirmed on its 2nd detection, opened at its 1st (back-fill)
    (tracklet,) = [t for s in steps for t in s.closed]
    # every one of the 27 detections is in the track, from the first (back-filled at confirmation)
    assert tracklet.key == ("hall", 1) and len(tracklet.points) == 27 and tracklet.points[0].frame == 3
    assert tracklet.feature is not None and np.isclose(np.linalg.norm(tracklet.feature), 1.0)
    assert 0 < len(tracklet.bank) <= cfg.sampler.bank
    end = steps[-1].end
    assert end.frames_read == 30 and end.corrupt == 0 and end.dropped is None
    assert group.stop() == []  # nothing left open
    counts = group.counts
    assert counts.frames == 30 and counts.detections == 27 and counts.crops_embedded == len(tracklet.bank)
    assert group.timer.seconds["detect"] > 0


def _stream(camera: str, n: int) -> list[Step]:
    return [Step(camera=camera, seq=i, frames=1) for i in range(n)] + [Step(camera=camera, seq=n, end=object())]


def _tracks(steps) -> list[tuple]:
    return [(t.key, [(p.frame, p.bbox) for p in t.points]) for s in steps for t in s.closed]


@pytest.mark.parametrize("every", [1, 2])
def test_recordings_are_detected_rounds_ahead_in_a_detect_thread_with_the_same_tracks(tmp_path, monkeypatch, every):
    """The detect thread runs the detector on the next rounds while the main thread tracks this one:
    every frame is detected once, in order, and the tracks are those of detecting in line."""
    from reidpipe.pipeline.engine import worker

    videos = [render(tmp_path, c, start=s, n=24) for c, s in (("a", 2), ("b", 5))]
    cfg = PipelineConfig(reid="hist", track_lost_frames=5, detect_every=every)

    def run(ahead: int):
        monkeypatch.setattr(worker, "DetectAhead", lambda threads: DetectAhead(threads, depth=ahead))
        group = CameraGroup(cfg, [v for v, _ in videos], ["a", "b"], detections=[d for _, d in videos])
        group.open()
        seen: list[tuple[str, int]] = []
        for w in group.workers:
            real = w.detector.detect

            def spy(frame, index=None, real=real, camera=w.camera):
                seen.append((threading.current_thread().name, camera, index))
                return real(frame, index=index)

            w.detector.detect = spy
        group.start()
        steps = list(group.steps())
        group.stop()
        return steps, seen

    ahead_steps, ahead_seen = run(2)
    inline_steps, _ = run(0)
    assert {name.split("_")[0] for name, _, _ in ahead_seen} == {"detect"}  # never in the main thread
    for cam in ("a", "b"):  # each frame due once, in frame order
        assert [i for _, c, i in ahead_seen if c == cam] == list(range(0, 24, every))
    assert _tracks(ahead_steps) == _tracks(inline_steps) and len(_tracks(ahead_steps)) == 2
    assert [(s.camera, s.seq) for s in ahead_steps] == [(s.camera, s.seq) for s in inline_steps]


def test_lockstep_merge_restores_the_one_process_order_whatever_the_arrival_order():
    streams = {"a": _stream("a", 5), "b": _stream("b", 2), "c": _stream("c", 4)}
    expected = sorted((s for st in streams.values() for s in st), key=lambda s: (s.seq, "abc".index(s.camera)))
    rng = random.Random(0)
    for _ in range(20):
        merge = LockstepMerge(["a", "b", "c"], {"a", "b", "c"})
        queues = {c: list(st) for c, st in streams.items()}
        got = []
        while any(queues.values()):  # each camera's steps arrive in its own order, cameras interleave at random
            cam = rng.choice([c for c, q in queues.items() if q])
            merge.push(queues[cam].pop(0))
            got.extend(merge.pop())
        assert [(s.camera, s.seq) for s in got] == [(s.camera, s.seq) for s in expected]


def test_lockstep_merge_never_waits_for_a_live_camera_nor_a_dead_one():
    merge = LockstepMerge(["file", "live"], {"file"})
    merge.push(Step(camera="live", seq=0, frames=1))
    assert [s.camera for s in merge.pop()] == ["live"]
    merge = LockstepMerge(["a", "b"], {"a", "b"})
    merge.push(Step(camera="a", seq=0, frames=1))
    assert merge.pop() == []  # waits for b's first step
    merge.drop("b")
    assert [(s.camera, s.seq) for s in merge.pop()] == [("a", 0)]


def test_stage_timer_and_run_stats_json():
    timer = StageTimer()
    with timer("detect"):
        pass
    timer.merge({"detect": 1.0, "embed": 2.0})
    assert set(STAGES) <= set(timer.seconds) and timer.seconds["detect"] >= 1.0 and timer.seconds["embed"] == 2.0
    st = RunStats(seconds={**timer.seconds, "loop": 2.0}, frames={"a": 10, "b": 30}, frames_read={"a": 10, "b": 30})
    js = st.to_json()
    assert js["fps"] == {"a": 5.0, "b": 15.0, "total": 20.0}
    assert set(js) == {
        "seconds",
        "frames",
        "frames_read",
        "fps",
        "crops_embedded",
        "detections",
        "tracked_boxes",
        "tracklets",
        "identities",
        "corrupt_frames",
        "late_frames",
        "dropped",
        "detection",
        "interrupted",
        "engine",
    }


def test_an_unknown_engine_is_named(tmp_path):
    from reidpipe.errors import ConfigError
    from reidpipe.pipeline.runner import Pipeline

    video, det = render(tmp_path, "hall", start=0, n=5)
    with pytest.raises(ConfigError, match="engine.kind: must be one of local, ray, got 'spark'"):
        Pipeline(detections=[det], reid="hist", output=str(tmp_path / "o"), engine={"kind": "spark"}).run([video])
