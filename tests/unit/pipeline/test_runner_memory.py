"""A long run's memory stays flat: what the runner and the linker keep of a closed track.

A synthetic engine streams closed tracks (200 boxes each, a bank of 10 embeddings, a pooled feature
and segment sums, as a camera worker hands them over) through the real ``reidpipe.Pipeline`` runner,
linker and exporters. The online window of recent tracks (``online.HISTORY``, 5000 in a run) is made
small here so that most tracks leave it within the test; tracemalloc measures what stays in memory per
track once they have (reidpipe's own allocations: numpy's, scipy's and faiss's caches of small
buffers fill up over the first thousands of calls and are bounded), the garbage collector counts the
track objects held, and ``trajectories.json`` must still hold every track with every box.
"""

from __future__ import annotations

import copy
import gc
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import reidpipe
from reidpipe.pipeline import runner
from reidpipe.pipeline.engine.spill import SpilledPoints, TrackShelf
from reidpipe.pipeline.engine.stats import Counts, StageTimer
from reidpipe.pipeline.link import online
from reidpipe.pipeline.types import Segment, SourceEnd, SourceInfo, Step, Tracklet, TrackPoint

CAMERAS = ("cam1", "cam2")
POINTS, DIM, BANK = 200, 128, 10  # boxes per track (20 s at 10 fps), embedding size, bank size
WINDOW = 40  # online.HISTORY for the test


def _start(n: int) -> float:
    """When the n-th track starts: every 2 s, give or take (transit times that vary)."""
    return 2.0 * n + (n * 7919 % 10) / 20


def _points(track: int, t0: float) -> list[TrackPoint]:
    return [
        TrackPoint(
            frame=int(t0 * 10) + k,
            t=t0 + k / 10,
            bbox=(10.0 + k + track % 7, 20.0 + track % 5, 40.0 + k + track % 7, 120.0 + track % 5),
            score=0.5 + (k % 40) / 100,
            interpolated=k % 9 == 4,
        )
        for k in range(POINTS)
    ]


def _tracklet(rng: np.random.Generator, people: np.ndarray, n: int) -> Tracklet:
    """The n-th closed track: one of 13 people (every third track someone seen once, whose identity
    is their own), in alternate cameras, one every 2 s of stream time (a person's tracks are 26 s
    apart, in one camera then the other); every seventh has no embedded crop (it can never link)."""
    person = people[n % len(people)] if n % 3 else rng.standard_normal(DIM).astype(np.float32)
    bank = [v / np.linalg.norm(v) for v in person + 0.3 * rng.standard_normal((BANK, DIM)).astype(np.float32)]
    feature = np.sum(bank, axis=0) / np.linalg.norm(np.sum(bank, axis=0))
    t0 = _start(n)
    t = Tracklet(camera=CAMERAS[n % 2], track=n // 2 + 1, points=_points(n, t0), bank=bank, qualities=[0.5] * BANK)
    t.feature = feature.astype(np.float32)
    t.segments = [
        Segment(first=int(t0 * 10), last=int(t0 * 10) + POINTS - 1, total=feature * 5.0, weight=5.0, crops=10)
    ]
    t.closed = True
    if n % 7 == 6:
        t.bank, t.qualities, t.feature, t.segments = [], [], None, []
    return t


class _StreamEngine:
    """The engine interface of ``runner._Run`` over a stream of synthetic closed tracks. With three
    ``marks`` (numbers of tracks handed over): tracemalloc runs from the first; ``growth`` is what
    reidpipe allocated and did not free (after a garbage collection) between the second and the third
    (the window's tracks at both were allocated since the first), ``held`` the track objects alive
    at each of the last two."""

    link_threshold = 0.5
    lost: dict[str, str] = {}
    decode_seconds = 0.0

    def __init__(self, tracks: int, marks: tuple[int, ...]):
        self.tracks, self.marks = tracks, marks
        self.growth = 0
        self.held: list[int] = []
        self.timer = StageTimer()
        self.counts = Counts()
        self.infos = [SourceInfo(c, f"{c}.mp4", 10.0, 640, 480, frames=20 * tracks) for c in CAMERAS]

    def open(self) -> list[SourceInfo]:
        return self.infos

    def start(self) -> list:
        return []

    def steps(self):
        rng = np.random.default_rng(0)
        people = rng.standard_normal((13, DIM)).astype(np.float32)
        used = []
        for n in range(self.tracks):
            if self.marks and n == self.marks[0]:
                tracemalloc.start()
            elif n in self.marks:
                gc.collect()
                used.append(_reidpipe_bytes(tracemalloc.take_snapshot()))
                self.held.append(sum(type(o) is Tracklet for o in gc.get_objects()))
            if self.marks and n == self.marks[-1]:
                tracemalloc.stop()
                self.growth = used[-1] - used[0]
            yield Step(camera=CAMERAS[n % 2], seq=n, frames=1, closed=[_tracklet(rng, people, n)])

    def stop(self) -> list[Tracklet]:
        return []

    def figures(self) -> dict[str, SourceEnd]:
        return {
            i.camera: SourceEnd(info=i, uri=i.uri, frames_read=0, corrupt=0, late=0, decode_seconds=0.0)
            for i in self.infos
        }

    def recordings(self) -> dict[str, str]:
        return {}

    def shutdown(self) -> None:
        pass


def _reidpipe_bytes(snapshot: tracemalloc.Snapshot) -> int:
    """Bytes traced in ``snapshot`` that reidpipe's own code allocated (a library's internal caches,
    allocated in its own files, left out)."""
    ours = snapshot.filter_traces([tracemalloc.Filter(True, f"{Path(reidpipe.__file__).parent}/*")])
    return sum(stat.size for stat in ours.statistics("filename"))


def _run(tmp_path, monkeypatch, tracks: int, marks: tuple[int, ...], online_linking: bool):
    monkeypatch.setattr(online, "HISTORY", WINDOW)
    engine = _StreamEngine(tracks, marks)

    def open_engine(self, uris):
        self.sources = engine.open()
        return engine

    monkeypatch.setattr(runner.Pipeline, "_open_engine", open_engine)
    pipe = runner.Pipeline(
        output=str(tmp_path / "out"), progress=False, crops=False, link={"refine": not online_linking}
    )
    try:
        pipe.run([f"{c}.mp4" for c in CAMERAS])
    finally:
        tracemalloc.stop()
    return pipe, engine


def _every_box_written(tmp_path, tracks: int) -> None:
    doc = json.loads((tmp_path / "out" / "trajectories.json").read_text())
    written = {(tr["camera"], tr["track"]): tr["points"] for i in doc["identities"] for tr in i["tracks"]}
    assert len(written) == tracks
    for n in (0, tracks // 2, tracks - 1):  # a track's boxes as it closed, read back from disk
        expected = [p.to_json() for p in _points(n, _start(n))]
        assert written[(CAMERAS[n % 2], n // 2 + 1)] == expected


def test_online_run_keeps_nothing_of_tracks_beyond_the_window_in_memory(tmp_path, monkeypatch):
    tracks = 170
    pipe, engine = _run(tmp_path, monkeypatch, tracks, marks=(50, 100, 160), online_linking=True)
    per_track = engine.growth / 60
    # a closed track as it arrives holds ~85 kB (200 boxes as Python objects, 10 embeddings); past
    # the window its record is on disk, and what stays is where that is, its place in its identity
    # and the identity's sightings (~0.2 kB)
    assert per_track < 500, f"{per_track:.0f} bytes kept per closed track beyond the window"
    assert max(engine.held) <= WINDOW + 2, f"track objects held: {engine.held}"  # the window's, one closing
    assert isinstance(pipe.tracklets, TrackShelf) and pipe.tracklets.in_memory == WINDOW
    old = pipe.tracklets[: tracks - 2 * WINDOW]  # read back from the run's file
    assert all(isinstance(t.points, SpilledPoints) and len(t.points) == POINTS for t in old)
    assert all(t.bank == [] and t.feature is None and t.segments == [] for t in old)
    recent = [pipe.tracklets[n] for n in range(tracks - WINDOW // 2, tracks) if n % 7 != 6]
    assert all(t.feature is not None for t in recent)  # the window still links with its features
    # ~86 identities when the 13 people are linked across their tracks (170 unlinked)
    assert len(pipe.identities) < tracks * 2 // 3
    _every_box_written(tmp_path, tracks)


def test_offline_run_keeps_features_for_the_final_pass_and_boxes_on_disk(tmp_path, monkeypatch):
    tracks = 120
    pipe, _ = _run(tmp_path, monkeypatch, tracks, marks=(), online_linking=False)
    assert all(isinstance(t.points, SpilledPoints) and t.bank == [] for t in pipe.tracklets)
    embedded = [t for n, t in enumerate(pipe.tracklets) if n % 7 != 6]
    assert all(t.feature is not None and t.feature.dtype == np.float32 for t in embedded)
    _every_box_written(tmp_path, tracks)


def test_spilled_points_read_back_exactly_and_refuse_changes(tmp_path):
    from reidpipe.pipeline.engine.spill import KEEP, PointStore

    store = PointStore(tmp_path)
    t = Tracklet(camera="cam1", track=1, points=_points(3, 1.5))
    original = list(t.points)
    store.spill(t)
    assert isinstance(t.points, SpilledPoints) and list(t.points) == original and t.points == original
    assert t.points[0] == original[0] and t.points[-1] == original[-1] and t.points[KEEP + 3] == original[KEEP + 3]
    assert t.points[: KEEP + 1] == original[: KEEP + 1] and t.points[50:60] == original[50:60]
    assert t.points[::50] == original[::50] and t.points[5:5] == []
    assert (t.start_t, t.end_t, t.detected) == (
        original[0].t,
        original[-1].t,
        sum(not p.interpolated for p in original),
    )
    with pytest.raises(TypeError, match="read-only"):
        t.points.append(original[0])
    assert copy.deepcopy(t).points == original  # a copied track (ablation's variants) shares them
    assert list(tmp_path.iterdir()) == []  # the file has no name: nothing is left behind


def test_mot_files_are_written_without_holding_the_runs_boxes(tmp_path):
    from reidpipe.pipeline.engine.spill import PointStore
    from reidpipe.pipeline.io.export import write_mot
    from reidpipe.pipeline.types import Identity

    store = PointStore(tmp_path)
    identities = []
    for n in range(250):  # 50,000 boxes, on disk as a long run's closed tracks are
        t = Tracklet(camera=CAMERAS[n % 2], track=n + 1, points=_points(n, _start(n)))
        store.spill(t)
        identities.append(Identity(id=n // 4 + 1, tracklets=[t]))
    sources = [SourceInfo(c, f"{c}.mp4", 10.0, 640, 480) for c in CAMERAS]
    tracemalloc.start()
    try:
        write_mot(tmp_path, sources, identities)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # gathered as Python tuples the boxes took ~18 MB; they are read back from a database, in order
    assert peak < 2_000_000, f"{peak / 1e6:.1f} MB held while writing the MOT files"
    lines = (tmp_path / "cam1.txt").read_text().splitlines()
    assert len(lines) == 125 * POINTS
    frames = [int(line.split(",")[0]) for line in lines]
    assert frames == sorted(frames)  # MOTChallenge order: by frame
    first = _points(0, _start(0))[0]
    assert f"{first.frame + 1},1,{first.bbox[0]:.2f}," in lines[0]
