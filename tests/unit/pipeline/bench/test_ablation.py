"""`reidpipe bench --ablation`'s rows on less data (pipeline/bench/ablation.py): which tracklets and which
ground-truth rows each of them is scored on."""

from __future__ import annotations

from reidpipe.pipeline.bench.ablation import _less_data
from reidpipe.pipeline.types import Tracklet, TrackPoint


def _track(cam: str, n: int, frames: range) -> Tracklet:
    points = [TrackPoint(frame=f, t=f / 10, bbox=(0, 0, 10, 30), score=0.9) for f in frames]
    return Tracklet(camera=cam, track=n, points=points)


def test_halves_keep_the_tracklets_wholly_inside_and_the_ground_truth_of_their_frames(tmp_path):
    tracks = [_track("cam1", 1, range(0, 40)), _track("cam1", 2, range(30, 70)), _track("cam2", 1, range(60, 100))]
    gt = []
    for cam in ("cam1", "cam2"):  # MOTChallenge rows: frames count from 1
        (tmp_path / f"{cam}.txt").write_text("".join(f"{f},1,0,0,10,30,1,1,1\n" for f in range(1, 101)))
        gt.append(str(tmp_path / f"{cam}.txt"))
    parts = {name: (ts, cams, rows) for name, ts, cams, rows in _less_data(tracks, ["cam1", "cam2"], gt)}
    assert list(parts) == ["first half", "last half"]  # two cameras: no camera pair to leave out
    first, last = parts["first half"], parts["last half"]
    assert [t.key for t in first[0]] == [("cam1", 1)]  # cam1/2 spans the middle (frame 50): in neither
    assert [t.key for t in last[0]] == [("cam2", 1)]
    assert [int(r.split(",")[0]) for r in first[2]["cam1"]] == list(range(1, 51))
    assert [int(r.split(",")[0]) for r in last[2]["cam2"]] == list(range(51, 101))


def test_three_cameras_add_each_camera_pair_alone(tmp_path):
    cams = ["cam1", "cam2", "cam3"]
    tracks = [_track(c, 1, range(0, 20)) for c in cams]
    gt = []
    for cam in cams:
        (tmp_path / f"{cam}.txt").write_text("1,1,0,0,10,30,1,1,1\n")
        gt.append(str(tmp_path / f"{cam}.txt"))
    parts = {name: (ts, c) for name, ts, c, _ in _less_data(tracks, cams, gt)}
    assert list(parts)[2:] == ["cam1 + cam2 only", "cam1 + cam3 only", "cam2 + cam3 only"]
    assert parts["cam1 + cam3 only"] == ([tracks[0], tracks[2]], ["cam1", "cam3"])
