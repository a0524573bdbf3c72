"""Detectors: public det.txt, YOLOX decoding (tiny ONNX graph + the real model), kind inference,
offline ultralytics weights."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from shared_data import DATA  # noqa: E402  (tests/ is on sys.path)

from reidpipe.errors import MalformedInputError, WeightsUnavailableError
from reidpipe.pipeline.config import PipelineConfig
from reidpipe.pipeline.models.detect import PublicDetections, YOLOXDetector, infer_detector_kind, load_detector


def test_public_detections_are_zero_based_xyxy(tmp_path):
    p = tmp_path / "det.txt"
    p.write_text("1,-1,10,20,30,60,0.9,-1,-1,-1\n1,-1,100,20,20,50,0.5,-1,-1,-1\n\n3,-1,5,5,10,10,0.7\n")
    det = PublicDetections(str(p))
    d0 = det.detect(None, index=0)
    assert d0.xyxy.tolist() == [[10, 20, 40, 80], [100, 20, 120, 70]]
    assert d0.confidence.tolist() == pytest.approx([0.9, 0.5])
    assert len(det.detect(None, index=1)) == 0
    assert det.detect(None, index=2).xyxy.tolist() == [[5, 5, 15, 15]]


@pytest.mark.parametrize("line", ["1,-1,10,20,abc,60,0.9", "1,-1,10", "0,-1,1,1,5,5,0.9", "2,-1,1,1,-5,5,1"])
def test_malformed_det_line_names_file_and_line(tmp_path, line):
    p = tmp_path / "cam_det.txt"
    p.write_text("1,-1,10,20,30,60,0.9\n" + line + "\n")
    with pytest.raises(MalformedInputError, match=r"cam_det\.txt:2"):
        PublicDetections(str(p))


def _tiny_yolox(path: Path, size: int = 64) -> np.ndarray:
    """An ONNX graph with YOLOX's interface whose output is a constant raw head (1, N, 85)."""
    n = sum((size // s) ** 2 for s in (8, 16, 32))
    raw = np.full((1, n, 85), -8.0, np.float32)
    raw[..., 4:] = 0.0  # objectness / class probabilities (already sigmoid-ed in YOLOX exports)
    # anchor (gx=2, gy=3) on the stride-8 grid (8x8 cells): a person box
    a = 3 * (size // 8) + 2
    raw[0, a, :4] = [0.5, 0.25, np.log(2.0), np.log(4.0)]  # cx=(0.5+2)*8=20, cy=(0.25+3)*8=26, w=16, h=32
    raw[0, a, 4], raw[0, a, 5] = 0.9, 0.8
    # a near-duplicate on the next cell (suppressed by NMS) and a non-person (class 2)
    raw[0, a + 1, :4] = [-0.5, 0.25, np.log(2.0), np.log(4.0)]
    raw[0, a + 1, 4], raw[0, a + 1, 5] = 0.9, 0.7
    raw[0, 0, 4], raw[0, 0, 7] = 0.9, 0.9
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, n, 85])
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["z", "raw"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_yolox",
        [inp],
        [out],
        [numpy_helper.from_array(np.zeros(1, np.float32), "zero"), numpy_helper.from_array(raw, "raw")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return raw


def test_yolox_decode_letterbox_nms_and_kind_inference(tmp_path):
    path = tmp_path / "tiny_yolox.onnx"
    _tiny_yolox(path)
    assert infer_detector_kind(str(path)) == "yolox"
    det = YOLOXDetector(str(path), conf=0.3, iou=0.45)
    frame = np.zeros((64, 128, 3), np.uint8)  # letterbox scale r = 0.5 (128 -> 64)
    d = det.detect(frame)
    assert len(d) == 1  # the duplicate is suppressed, the non-person dropped
    # box / r, then clipped to the 64-pixel-high frame
    assert d.xyxy[0].tolist() == pytest.approx([(20 - 8) * 2, (26 - 16) * 2, (20 + 8) * 2, min((26 + 16) * 2, 64)])
    assert d.confidence[0] == pytest.approx(0.72)
    assert d.class_id.tolist() == [0]
    cfg = PipelineConfig(detector=str(path))
    assert isinstance(load_detector(cfg), YOLOXDetector)


@pytest.mark.real_data
@pytest.mark.skipif(not (DATA / "models" / "yolox_nano.onnx").exists(), reason="../shared/data is absent")
def test_real_yolox_finds_the_person_on_real_footage():
    det = YOLOXDetector(str(DATA / "models" / "yolox_nano.onnx"))
    cap = cv2.VideoCapture(str(DATA / "videos" / "one-by-one-person-detection.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 120)
    ok, frame = cap.read()
    cap.release()
    assert ok
    d = det.detect(frame)
    assert len(d) >= 1 and d.confidence.max() > 0.5
    x1, y1, x2, y2 = d.xyxy[int(np.argmax(d.confidence))]
    assert 0 <= x1 < x2 <= 768 and 0 <= y1 < y2 <= 432 and (y2 - y1) > 100  # a standing person


def test_missing_ultralytics_weights_offline_name_the_flags_that_avoid_the_download(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = PipelineConfig(detector="reidpipe_no_such_weights_v0.pt")
    with pytest.raises(WeightsUnavailableError) as exc:
        load_detector(cfg)
    msg = str(exc.value)
    assert "reidpipe_no_such_weights_v0.pt" in msg and "--detections" in msg and "--detector-kind yolox" in msg
    assert "\n" not in msg


def test_local_ultralytics_weights_give_person_detections_in_source_pixels(tmp_path):
    from ultralytics import YOLO

    from reidpipe.pipeline.models.detect import UltralyticsDetector

    weights = tmp_path / "random_yolo11n.pt"
    YOLO("yolo11n.yaml").save(str(weights))  # architecture only, random weights: no download
    assert infer_detector_kind(str(weights)) == "ultralytics"
    det = load_detector(PipelineConfig(detector=str(weights), det_conf=0.0001, device="cpu"))
    assert isinstance(det, UltralyticsDetector)
    d = det.detect(np.full((240, 320, 3), 100, np.uint8))
    assert set(d.class_id.tolist()) <= {0}  # person class only
    assert (d.xyxy[:, 2] <= 320 + 1e-3).all() and (d.xyxy[:, 3] <= 240 + 1e-3).all()
    assert d.confidence is not None and len(d.confidence) == len(d)


def test_a_det_txt_frame_with_more_boxes_than_the_bound_keeps_the_most_confident(tmp_path):
    from reidpipe.limits import MAX_BOXES_PER_FRAME

    rows = ["1,-1,5,5,20,40,0.9"]  # frame 1: one box
    rows += [f"2,-1,{i % 100},{i // 100},20,40,{(i % 997) / 1000:.3f}" for i in range(MAX_BOXES_PER_FRAME + 500)]
    p = tmp_path / "crowd.txt"
    p.write_text("\n".join(rows) + "\n")
    det = PublicDetections(str(p))
    kept = det.detect(None, index=1)
    assert len(det.detect(None, index=0)) == 1 and len(kept) == MAX_BOXES_PER_FRAME
    confs = np.array([(i % 997) / 1000 for i in range(MAX_BOXES_PER_FRAME + 500)], np.float32)
    assert kept.confidence.min() >= np.sort(confs)[::-1][MAX_BOXES_PER_FRAME - 1]  # the most confident kept
    first_dropped = 2 + int(np.argmin(confs))  # the least confident box of frame 2, as a file line
    assert det.warning is not None and f"500 boxes past {MAX_BOXES_PER_FRAME} in one frame dropped" in det.warning
    assert f"crowd.txt:{first_dropped}" in det.warning
