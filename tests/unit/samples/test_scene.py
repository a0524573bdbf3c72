"""The deterministic two-camera demo scene (samples/scene.py)."""

from __future__ import annotations

import json

import numpy as np

from reidpipe.samples import scene as sc


def _ids(path):
    return {int(line.split(",")[1]) for line in path.read_text().splitlines()}


def test_scene_files_ground_truth_cache_and_repair(tmp_path):
    import cv2

    paths = sc.make_scene(tmp_path / "s", seed=0)
    assert paths["cameras"] == ["cam1", "cam2"]
    for cam in paths["cameras"]:
        cap = cv2.VideoCapture(str(paths["videos"][cam]))
        assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == sc.FRAMES
        ok, frame = cap.read()
        assert ok and frame.shape == (sc.HEIGHT, sc.WIDTH, 3)
        cap.release()
        for line in paths["gt"][cam].read_text().splitlines():
            f, pid, x, y, w, h, c, k, vis = (float(v) for v in line.split(","))
            assert 1 <= f <= sc.FRAMES and w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= sc.WIDTH
            assert (c, k) == (1, 1) and 0.15 <= vis <= 1
        det = [line.split(",") for line in paths["det"][cam].read_text().splitlines()]
        assert all(len(d) == 10 and d[1] == "-1" and 0 < float(d[6]) <= 1 for d in det)
        assert any(float(d[6]) < 0.46 for d in det)  # a few low-confidence false positives
    # ids are global: three people walk from cam1 to cam2, two are seen by each camera alone
    both = _ids(paths["gt"]["cam1"]) & _ids(paths["gt"]["cam2"])
    assert both == {1, 2, 5}
    assert len(_ids(paths["gt"]["cam1"]) | _ids(paths["gt"]["cam2"])) == 7
    # transit: each shared person leaves cam1 at least 1.5 s before entering cam2
    for pid in both:
        last1 = max(
            int(ln.split(",")[0]) for ln in paths["gt"]["cam1"].read_text().splitlines() if int(ln.split(",")[1]) == pid
        )
        first2 = min(
            int(ln.split(",")[0]) for ln in paths["gt"]["cam2"].read_text().splitlines() if int(ln.split(",")[1]) == pid
        )
        assert first2 - last1 >= 1.5 * sc.FPS
    # several people at once, partially occluded
    rows = sc.ground_truth_rows("cam1", 0)
    per_frame = np.bincount([r[0] for r in rows])
    assert per_frame.max() >= 3 and min(r[3] for r in rows) < 0.8
    # cached: a second call re-uses the files untouched
    stamp = {p: p.stat().st_mtime_ns for p in paths["videos"].values()}
    again = sc.make_scene(tmp_path / "s", seed=0)
    assert {p: p.stat().st_mtime_ns for p in again["videos"].values()} == stamp
    # an altered file is detected and the scene rendered again, byte-identical gt/det
    gt_bytes = paths["gt"]["cam2"].read_bytes()
    det_bytes = paths["det"]["cam1"].read_bytes()
    paths["gt"]["cam2"].write_text("garbage\n")
    sc.make_scene(tmp_path / "s", seed=0)
    assert paths["gt"]["cam2"].read_bytes() == gt_bytes and paths["det"]["cam1"].read_bytes() == det_bytes
    meta = json.loads(paths["meta"].read_text())
    assert meta["seed"] == 0 and set(meta["files"]) >= {"cam1.mp4", "cam2_gt.txt", "cam1_det.txt"}


def test_same_seed_same_bytes_other_seed_other_detections():
    for cam in sc.CAMERAS:
        rows = sc.ground_truth_rows(cam, 0)
        assert sc._gt_text(rows) == sc._gt_text(sc.ground_truth_rows(cam, 0))
        assert sc._det_text(rows, cam, 0) == sc._det_text(rows, cam, 0)
        assert sc._det_text(rows, cam, 0) != sc._det_text(rows, cam, 1)
