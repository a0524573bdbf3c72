"""Crop thumbnails for ``reidpipe report``: the best few per track by quality (kept by the camera
worker), written by the driver when the track closes."""

from __future__ import annotations

import cv2
import numpy as np

from reidpipe.pipeline.io.thumbs import ThumbKeeper, ThumbWriter, thumb_path


def _crop(value: int, h: int = 128, w: int = 48) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def test_keeps_the_best_crops_by_quality_best_first(tmp_path):
    keeper, tw = ThumbKeeper(keep=2, height=64), ThumbWriter(tmp_path / "thumbs")
    for q, v in ((0.2, 20), (0.9, 90), (0.5, 50), (0.1, 10)):
        keeper.offer("cam1", 7, q, _crop(v))
    jpegs = keeper.take("cam1", 7)
    assert len(jpegs) == 2 and keeper.take("cam1", 7) == []  # handed over once
    paths = tw.write("cam1", 7, jpegs)
    assert paths == [thumb_path(tmp_path / "thumbs", "cam1", 7, 0), thumb_path(tmp_path / "thumbs", "cam1", 7, 1)]
    imgs = [cv2.imread(str(p)) for p in paths]
    assert [i.shape[0] for i in imgs] == [64, 64] and imgs[0].shape[1] == 24  # 64 px high, aspect kept
    assert [round(float(i.mean()) / 10) for i in imgs] == [9, 5]  # qualities 0.9 then 0.5


def test_a_failed_write_turns_thumbnails_off_without_stopping_the_run(tmp_path, monkeypatch):
    from pathlib import Path

    keeper, tw = ThumbKeeper(keep=2), ThumbWriter(tmp_path / "thumbs")
    keeper.offer("cam1", 1, 0.9, _crop(90))
    keeper.offer("cam1", 1, 0.5, _crop(50))
    real = Path.write_bytes
    calls = []

    def full_disk(self, data):
        calls.append(self)
        if len(calls) > 1:
            real(self, data[:10])  # half a file, then the disk is full
            raise OSError(28, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    assert tw.write("cam1", 1, keeper.take("cam1", 1)) == [thumb_path(tmp_path / "thumbs", "cam1", 1, 0)]
    assert not thumb_path(tmp_path / "thumbs", "cam1", 1, 1).exists()  # no half-written thumbnail stays
    assert "No space left on device" in tw.error and "cam1_1_1.jpg" in tw.error
    keeper.offer("cam1", 2, 0.9, _crop(90))
    assert tw.write("cam1", 2, keeper.take("cam1", 2)) == []  # off from then on


def test_a_split_track_s_thumbnails_go_to_the_pieces_they_show(tmp_path):
    keeper, tw = ThumbKeeper(keep=3, height=64), ThumbWriter(tmp_path / "thumbs")
    for frame, v in ((10, 90), (50, 80), (31, 70)):  # qualities 0.9, 0.8, 0.7
        keeper.offer("cam1", 4, v / 100, _crop(v), frame)
    jpegs, frames = keeper.take_with_frames("cam1", 4)
    assert frames == [10, 50, 31]
    tw.write("cam1", 4, jpegs, frames)
    # cut into 4 (frames 0-29) and 1000001 (frames 40-60); frame 31 lies between them
    tw.split("cam1", 4, [(4, 0, 29), (1000001, 40, 60)])
    folder = tmp_path / "thumbs"
    assert sorted(p.name for p in folder.iterdir()) == ["cam1_1000001_0.jpg", "cam1_4_0.jpg"]
    assert (folder / "cam1_4_0.jpg").read_bytes() == jpegs[0]
    assert (folder / "cam1_1000001_0.jpg").read_bytes() == jpegs[1]
    assert tw.frames[("cam1", 1000001)] == [50]


def test_spares_spread_over_the_track_give_every_piece_a_thumbnail(tmp_path):
    """The best crops all come late in the track; the spares cover its early part, so a piece cut from
    the start still gets a thumbnail; the spares are gone once the cut is decided."""
    keeper, tw = ThumbKeeper(keep=3, spares=8, height=64), ThumbWriter(tmp_path / "thumbs", keep=3)
    for frame in range(0, 300, 10):  # quality rises with time: the best 3 are frames 270-290
        keeper.offer("cam1", 5, frame / 300, _crop(frame % 250), frame)
    jpegs, frames = keeper.take_with_frames("cam1", 5)
    assert frames[:3] == [290, 280, 270] and len(frames) <= 3 + 8 and min(frames) < 100
    folder = tmp_path / "thumbs"
    assert len(tw.write("cam1", 5, jpegs, frames)) == 3 and len(list((folder / "spares").iterdir())) == len(frames) - 3
    tw.split("cam1", 5, [(5, 0, 99), (1000001, 110, 299)])
    early = [f for f in frames[3:] if f <= 99]
    assert tw.frames[("cam1", 5)] == sorted(early, key=lambda f: -f)[:3]  # the best spares of its frames
    assert tw.frames[("cam1", 1000001)] == [290, 280, 270]
    assert sorted(p.name for p in folder.glob("*.jpg")) == [
        *(f"cam1_1000001_{k}.jpg" for k in range(3)),
        *(f"cam1_5_{k}.jpg" for k in range(len(tw.frames[("cam1", 5)]))),
    ]
    assert not list((folder / "spares").iterdir())  # the cut track's spares went with it


def test_spares_are_removed_when_the_track_is_not_cut(tmp_path):
    keeper, tw = ThumbKeeper(keep=2, spares=3), ThumbWriter(tmp_path / "thumbs", keep=2)
    for track in (1, 2):
        for frame in range(0, 100, 10):
            keeper.offer("cam1", track, 0.5 + frame / 1000, _crop(frame), frame)
        tw.write("cam1", track, *keeper.take_with_frames("cam1", track))
    spares = tmp_path / "thumbs" / "spares"
    # 3 stretches of 32 frames, the best of each: 30, 60, 90 (90 is among the best two already)
    assert sorted(p.name for p in spares.iterdir()) == [f"cam1_{t}_{k}.jpg" for t in (1, 2) for k in (0, 1)]
    assert tw.frames[("cam1", 1)] == [90, 80, 60, 30]
    tw.settle("cam1", 1)  # online: decided at its close
    assert len(list(spares.iterdir())) == 2 and tw.frames[("cam1", 1)] == [90, 80]
    tw.settle_all()  # the end of the run
    assert not spares.exists() and len(list((tmp_path / "thumbs").glob("*.jpg"))) == 4


def test_a_new_run_removes_an_older_runs_thumbnails_and_spares(tmp_path):
    from reidpipe.pipeline.io.export import discard_stale_outputs

    (tmp_path / "thumbs" / "spares").mkdir(parents=True)
    old = [tmp_path / "thumbs" / "cam1_1_0.jpg", tmp_path / "thumbs" / "spares" / "cam1_1_0.jpg"]
    for p in old:
        p.write_bytes(b"jpeg")
    discard_stale_outputs(tmp_path)  # an interrupted run left its spares behind
    assert not any(p.exists() for p in old)
