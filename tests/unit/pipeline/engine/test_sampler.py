"""Quality-gated crop sampling."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from reidpipe.pipeline.config import SamplerConfig
from reidpipe.pipeline.engine.sampler import CropSampler, add_to_bank, covered_fraction, crop, quality_gate
from reidpipe.pipeline.types import Tracklet


def test_gate_rejects_small_unconfident_cut_and_occluded_boxes():
    cfg = SamplerConfig(min_height=48, min_width=16, min_conf=0.4, border=4, max_overlap=0.3)
    boxes = np.array(
        [
            [100, 50, 140, 170],  # good
            [200, 50, 210, 70],  # too small
            [300, 50, 340, 170],  # unconfident
            [0, 50, 40, 170],  # cut by the left edge
            [400, 50, 440, 170],  # half covered by the next box
            [420, 40, 470, 175],  # covers the previous one (and is itself covered < 0.3? no: ~0.3+)
        ],
        np.float32,
    )
    conf = np.array([0.9, 0.9, 0.2, 0.9, 0.9, 0.9], np.float32)
    ok, q = quality_gate(boxes, conf, (240, 640), cfg)
    assert ok.tolist()[:5] == [True, False, False, False, False]
    assert q[0] == pytest.approx(0.9 * 1.0 * 1.0)
    cov = covered_fraction(boxes)
    assert cov[4] == pytest.approx((440 - 420) * 120 / (40 * 120))


def test_every_k_frames_and_bank_of_k_best():
    cfg = SamplerConfig(every=3, bank=2, min_height=10, min_width=5, min_conf=0.1, border=0, max_overlap=1.0)
    s = CropSampler(cfg)
    picked = []
    for f in range(12):
        conf = 0.5 if f < 6 else 0.95  # later crops are better
        d = sv.Detections(
            xyxy=np.array([[10, 10, 30, 60]], np.float32),
            confidence=np.array([conf], np.float32),
            tracker_id=np.array([7]),
        )
        for _row, tid, q in s.select("cam", d, f, (100, 100)):
            picked.append((f, tid, round(q, 3)))
    frames = [p[0] for p in picked]
    assert frames[:2] == [0, 3]  # every 3rd frame while the bank fills
    assert all(b - a >= 3 for a, b in zip(frames, frames[1:]))
    assert 6 in frames and 9 in frames  # better crops replace the worst ones of the full bank
    assert all(p[1] == 7 for p in picked)


def test_add_to_bank_keeps_the_best_and_crop_clips():
    t = Tracklet("c", 1)
    e = np.eye(4, dtype=np.float32)
    add_to_bank(t, e[0], 0.2, 2)
    add_to_bank(t, e[1], 0.5, 2)
    add_to_bank(t, e[2], 0.9, 2)  # replaces the 0.2 one
    add_to_bank(t, e[3], 0.1, 2)  # worse than all: dropped
    assert sorted(t.qualities) == [0.5, 0.9]
    f = t.pooled_feature()
    assert f[0] == 0 and f[3] == 0 and f[2] > f[1] > 0
    img = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    c = crop(img, (-5, 2, 10, 50))
    assert c.shape == (18, 10, 3) and c.flags["C_CONTIGUOUS"]
