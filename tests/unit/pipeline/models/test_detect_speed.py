"""Cheaper detection (issue 11): detection batched across cameras gives the detections of one frame at a
time; ``--detect-every K`` gives every tracked frame a box and keeps the identities; ``reidpipe quantize``
writes int8 models that load and run; ``--backend openvino`` matches onnxruntime. All on real frames
and the real YOLOX / OSNet models of ../shared/data."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from shared_data import DATA  # noqa: E402  (tests/ is on sys.path)

from reidpipe.cli import main
from reidpipe.pipeline.models.detect import YOLOXDetector

YOLOX = DATA / "models" / "yolox_nano.onnx"
OSNET = DATA / "models" / "osnet_x0_25_msmt17.onnx"
TWIN = DATA / "mtmc" / "twin_2cam"
FRAMES = 300  # of each twin camera in the --detect-every runs

pytestmark = pytest.mark.skipif(
    not (YOLOX.exists() and OSNET.exists() and TWIN.is_dir()),
    reason="../shared/data (YOLOX, OSNet, mtmc/twin_2cam) is absent",
)


def _frames(video, first: int, count: int, step: int = 1) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    cap.set(cv2.CAP_PROP_POS_FRAMES, first)
    out = []
    for i in range(count * step):
        ok, img = cap.read()
        assert ok
        if i % step == 0:
            out.append(img)
    return out


def _crowded_frames() -> list[np.ndarray]:
    """Frames of both twin cameras where people walk (2-5 per frame)."""
    return _frames(TWIN / "cam1.mp4", 300, 3, step=20) + _frames(TWIN / "cam2.mp4", 300, 3, step=20)


# ------------------------------------------------------------------------------ --imgsz
def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(a[:, None, 0], b[None, :, 0]), np.maximum(a[:, None, 1], b[None, :, 1])
    x2, y2 = np.minimum(a[:, None, 2], b[None, :, 2]), np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def test_a_smaller_input_size_finds_the_same_people_and_leaves_the_file_alone():
    import hashlib

    digest = hashlib.sha256(YOLOX.read_bytes()).hexdigest()
    frames = _crowded_frames()
    full = YOLOXDetector(str(YOLOX))
    small = YOLOXDetector(str(YOLOX), input_size=320)
    assert small.input_hw == (320, 320) and len(small.grid) == 40 * 40 + 20 * 20 + 10 * 10
    found = kept = 0
    for f in frames:
        a, b = full.detect(f), small.detect(f)
        found += len(a)
        if len(a) and len(b):
            kept += int((_iou(a.xyxy, b.xyxy).max(axis=1) >= 0.5).sum())
    assert found >= 6 and kept >= 0.6 * found  # most 416-px detections found again at 320 px (14 of 21)
    assert small.enable_batching()  # the re-sized copy batches too, with the same detections
    for f, d in zip(frames, small.detect_batch(frames)):
        np.testing.assert_allclose(small.detect(f).xyxy, d.xyxy, atol=1e-3)
    assert YOLOXDetector(str(YOLOX), input_size=416).free_size is False  # its own size: no copy
    assert hashlib.sha256(YOLOX.read_bytes()).hexdigest() == digest


def test_an_input_size_that_is_not_a_multiple_of_32_is_one_line(tmp_path, capsys):
    video = TWIN / "cam1.mp4"
    code = main(
        ["run", "--sources", str(video), "--detector", str(YOLOX), "--imgsz", "300", "--reid", "hist"]
        + ["--output", str(tmp_path / "o"), "--max-frames", "2", "--no-progress"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 10 and len(err) == 1 and "--imgsz 300" in err[0] and "multiple of 32" in err[0]


# ------------------------------------------------------------------------------ batched detection
def test_batched_detection_equals_frame_by_frame_on_real_frames():
    frames = _crowded_frames()
    det = YOLOXDetector(str(YOLOX))
    one_by_one = [det.detect(f) for f in frames]
    assert not det.batched  # the shared model has a fixed batch of 1
    assert det.enable_batching() and det.batched
    batched = det.detect_batch(frames)
    assert sum(len(d) for d in one_by_one) >= 6  # people were found
    for a, b in zip(one_by_one, batched):
        assert len(a) == len(b)
        np.testing.assert_array_equal(a.xyxy, b.xyxy)
        np.testing.assert_array_equal(a.confidence, b.confidence)


def test_a_run_with_batched_detection_writes_the_same_trajectories(tmp_path, capsys):
    runs = {}
    for name, flags in (("batched", []), ("one_by_one", ["--no-detect-batch"])):
        out = tmp_path / name
        args = ["run", "--sources", str(TWIN / "cam1.mp4"), str(TWIN / "cam2.mp4"), "--detector", str(YOLOX)]
        code = main(
            [*args, "--reid", "hist", "--max-frames", "60", "--no-progress", "--no-crops", "-o", str(out), *flags]
        )
        assert code == 0
        runs[name] = json.loads((out / "trajectories.json").read_text())["identities"]
    capsys.readouterr()
    assert runs["batched"] and runs["batched"] == runs["one_by_one"]


def test_fp16_detector_matches_fp32_and_batches():
    """fp16 is what a CUDA session gets (``half`` defaults to on there); the conversion is checked on
    the CPU, which runs the same graph."""
    frames = _crowded_frames()
    ref = [YOLOXDetector(str(YOLOX)).detect(f) for f in frames]
    half = YOLOXDetector(str(YOLOX), half=True)
    assert half.half and half.enable_batching()
    for a, b in zip(ref, half.detect_batch(frames)):
        assert len(a) == len(b)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1.0)  # pixels
    assert not YOLOXDetector(str(YOLOX), device="cpu").half  # fp32 on the CPU by default


def test_a_round_of_cameras_is_one_detector_call():
    from reidpipe.pipeline.config import PipelineConfig
    from reidpipe.pipeline.engine.worker import CameraGroup
    from reidpipe.pipeline.models.detect import PublicDetections
    from reidpipe.pipeline.types import Frame

    class Counting(YOLOXDetector):
        calls = 0

        def detect_batch(self, frames_bgr, indices=None):
            Counting.calls += 1
            return super().detect_batch(frames_bgr, indices)

    class W:  # the part of a CameraWorker a round needs
        def __init__(self, detector):
            self.detector = detector

    shared = Counting(str(YOLOX))
    public = PublicDetections(str(TWIN / "cam1_det.txt"))
    group = CameraGroup(PipelineConfig(), [], [])
    frames = _crowded_frames()[:3]
    batch = [(W(shared), Frame(camera=f"c{i}", index=i, t=0.0, image=f), True) for i, f in enumerate(frames)]
    batch.append((W(public), Frame(camera="p", index=300, t=0.0, image=frames[0]), True))
    batch.append((W(shared), Frame(camera="skipped", index=1, t=0.0, image=frames[0]), False))
    found = group._detect_round(batch)  # type: ignore[arg-type]
    assert Counting.calls == 1  # the three cameras sharing the detector; the public one reads its own file
    assert len(found) == 4 and id(batch[-1][0]) not in found  # a frame planned without detection has none
    assert all(len(found[id(w)]) == len(shared.detect(f.image)) for w, f, _ in batch[:3])
    assert len(found[id(batch[3][0])]) == len(public.detect(index=300))


# ------------------------------------------------------------------------------ --detect-every
def _run(tmp_path, name: str, *flags: str) -> dict:
    out = tmp_path / name
    videos = [str(TWIN / "cam1.mp4"), str(TWIN / "cam2.mp4")]
    dets = [str(TWIN / "cam1_det.txt"), str(TWIN / "cam2_det.txt")]
    code = main(
        ["run", "--sources", *videos, "--detections", *dets, "--reid-weights", str(OSNET), "--output", str(out)]
        + ["--no-progress", "--no-crops", "--max-frames", str(FRAMES), *flags]
    )
    assert code == 0
    return json.loads((out / "trajectories.json").read_text())


def _score(tmp_path, name: str) -> dict:
    """Scored against the ground truth of the frames the run read (``--max-frames``)."""
    from reidpipe.pipeline.score import score

    gt = {}
    for cam in ("cam1", "cam2"):
        lines = (TWIN / f"{cam}_gt.txt").read_text().splitlines()
        gt[cam] = tmp_path / f"{cam}_gt.txt"
        gt[cam].write_text("\n".join(x for x in lines if x and int(x.split(",")[0]) <= FRAMES) + "\n")
    return score(tmp_path / name / "trajectories.json", gt)


@pytest.mark.real_data
@pytest.mark.parametrize("interpolate", [True, False])
def test_detect_every_gives_every_tracked_frame_a_box(tmp_path, capsys, interpolate):
    flags = () if interpolate else ("--no-interpolate",)
    every = _run(tmp_path, "every3", "--detect-every", "3", *flags)
    capsys.readouterr()
    tracks = [t for ident in every["identities"] for t in ident["tracks"]]
    assert len(tracks) >= 4
    for t in tracks:
        frames = [p["frame"] for p in t["points"]]
        detected = [p["frame"] for p in t["points"] if not p.get("interpolated")]
        assert frames == sorted(set(frames)) and detected[0] == frames[0] and detected[-1] == frames[-1]
        assert all(f % 3 == 0 for f in detected)  # the detector ran on every 3rd frame only
        have = set(frames)
        # the 2 frames after each detection have the tracker's box (from the confirming detection on:
        # the first one is the back-filled unconfirmed box, bridged only by interpolation)
        for d in detected[1:-1]:
            assert {d + 1, d + 2} <= have, (t["camera"], t["track"], d)
        if interpolate:  # and every gap shorter than interpolate_max_gap (1 s = 10 frames) is filled
            assert all(b - a == 1 or b - a > 10 for a, b in zip(frames, frames[1:])), (t["camera"], t["track"])


@pytest.mark.real_data
def test_detect_every_2_keeps_the_identities_of_every_frame_detection(tmp_path, capsys):
    """On the 10-fps twin, detecting every 2nd frame keeps per-camera and cross-camera IDF1 (measured:
    0.974 / 0.968 vs 0.986 / 0.987 per camera). Every 3rd frame (3.3 detections/s) breaks tracks where
    people cross, as ``--stride 3`` does: a tracker limit documented in docs/performance.md."""
    _run(tmp_path, "every2", "--detect-every", "2")
    _run(tmp_path, "every1")
    capsys.readouterr()
    got, ref = _score(tmp_path, "every2"), _score(tmp_path, "every1")
    for cam in ("cam1", "cam2"):
        idf1 = got["per_camera"][cam]["IDF1"], ref["per_camera"][cam]["IDF1"]
        assert idf1[0] >= idf1[1] - 0.03 and idf1[1] > 0.9, (cam, idf1)
    assert got["multi_camera"]["IDF1"] >= ref["multi_camera"]["IDF1"] - 0.03


def test_detect_every_must_be_a_positive_integer(tmp_path, capsys):
    args = ["run", "--sources", str(TWIN / "cam1.mp4"), "--detector", str(YOLOX), "-o", str(tmp_path / "o")]
    code = main([*args, "--detect-every", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "--detect-every" in err and len(err.strip().splitlines()) == 1, err


# ------------------------------------------------------------------------------ --backend openvino
def test_openvino_backend_matches_onnxruntime():
    pytest.importorskip("openvino", reason="openvino (optional extra reidpipe[openvino]) is not installed")
    from reidpipe.pipeline.models.embed import OnnxEmbedder

    frames = _crowded_frames()
    ort_det, ov_det = YOLOXDetector(str(YOLOX)), YOLOXDetector(str(YOLOX), backend="openvino")
    # f32 by default, also where OpenVINO's own default is bf16 (CPUs with AMX / AVX-512 BF16)
    assert ov_det.session.precision == "f32"
    pairs = [(ort_det.detect(f), ov_det.detect(f)) for f in frames]
    assert sum(len(a) for a, _ in pairs) >= 6
    for a, b in pairs:
        assert len(a) == len(b)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.5)  # pixels
        np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-3)
    crops = [f[y : y + 160, x : x + 64] for f in frames for x, y in ((100, 100), (400, 250))]
    e1, e2 = OnnxEmbedder(str(OSNET)), OnnxEmbedder(str(OSNET), backend="openvino")
    assert e2.session.precision == "f32"
    cos = (e1.embed(crops) * e2.embed(crops)).sum(axis=1)
    assert cos.min() > 0.999, cos


def test_openvino_runs_bf16_only_when_asked():
    """``--openvino-precision bf16`` reaches the compiled model: it runs bf16 where the CPU has bf16
    instructions (f32 elsewhere), and its detections stay those of f32 within bf16's rounding."""
    pytest.importorskip("openvino", reason="openvino (optional extra reidpipe[openvino]) is not installed")
    import openvino as ov

    bf16_cpu = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    f32 = YOLOXDetector(str(YOLOX), backend="openvino", openvino_precision="f32")
    bf16 = YOLOXDetector(str(YOLOX), backend="openvino", openvino_precision="bf16")
    assert (f32.session.precision, bf16.session.precision) == ("f32", "bf16" if bf16_cpu else "f32")
    import supervision as sv

    clear = 0
    for frame in _crowded_frames():  # each clear f32 detection is found by bf16 too, nearly the same
        a, b = f32.detect(frame), bf16.detect(frame)
        a = a[a.confidence > 0.4]
        iou = sv.box_iou_batch(a.xyxy, b.xyxy)
        for k in range(len(a)):
            j = int(iou[k].argmax())
            assert iou[k, j] > 0.8 and abs(b.confidence[j] - a.confidence[k]) < 0.05, (iou[k], b.confidence)
            clear += 1
    assert clear >= 6


def test_unknown_backend_is_a_usage_error(capsys):
    code = main(["run", "--sources", str(TWIN / "cam1.mp4"), "-o", "o", "--backend", "tensorrt"])
    err = capsys.readouterr().err
    assert code == 2 and "--backend" in err


# ------------------------------------------------------------------------------ reidpipe quantize
def test_quantize_detector_writes_an_int8_model_that_loads_and_detects(tmp_path, capsys):
    import onnx

    out = tmp_path / "yolox_int8.onnx"
    args = ["quantize", "--model", str(YOLOX), "--calib", str(TWIN / "cam1.mp4"), "--frames", "8"]
    code = main([*args, "--output", str(out), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and out.is_file() and result["kind"] == "detector"
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # an int8 QDQ graph
    int8 = YOLOXDetector(str(out))
    frames = _crowded_frames()
    assert sum(len(int8.detect(f)) for f in frames) >= 4  # it still finds the people
    agreement = result["agreement"]
    assert agreement["recall"] is not None and 0.0 <= agreement["recall"] <= 1.0


def test_quantize_embedder_calibrates_on_person_crops(tmp_path, capsys):
    from reidpipe.pipeline.models.embed import OnnxEmbedder

    out = tmp_path / "osnet_int8.onnx"
    code = main(
        ["quantize", "--model", str(OSNET), "--calib", str(TWIN / "cam1.mp4"), "--frames", "12"]
        + ["--detections", str(TWIN / "cam1_det.txt"), "--output", str(out), "--json"]
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["kind"] == "embedder" and result["calibration_crops"] > 0
    crops = [f[y : y + 160, x : x + 64] for f in _crowded_frames() for x, y in ((100, 100), (400, 250))]
    ref, got = OnnxEmbedder(str(OSNET)).embed(crops), OnnxEmbedder(str(out)).embed(crops)
    assert got.shape == ref.shape and np.isfinite(got).all()
    assert (ref * got).sum(axis=1).mean() > 0.9  # int8 keeps the embedding close


@pytest.fixture
def other_filesystem(tmp_path, monkeypatch):
    """A folder on another filesystem than ``$TMPDIR``: a real tmpfs where one may be mounted (root on
    Linux), else a folder into which ``os.replace`` from anywhere else fails with EXDEV, as the kernel's
    ``rename`` does across filesystems."""
    import errno
    import os
    import shutil
    import subprocess

    folder = tmp_path / "other_fs"
    folder.mkdir()
    if os.geteuid() == 0 and shutil.which("mount"):
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)], capture_output=True)
        if res.returncode == 0:
            yield folder
            subprocess.run(["umount", "-l", str(folder)], check=False)
            return
    real_replace = os.replace

    def replace(src, dst, *a, **k):
        inside = [str(os.path.abspath(p)).startswith(str(folder)) for p in (src, dst)]
        if inside[0] != inside[1]:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)
    yield folder


def test_quantize_writes_to_another_filesystem_than_its_work_folder(tmp_path, capsys, other_filesystem, monkeypatch):
    import onnx

    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the work folder: not on other_filesystem
    out = other_filesystem / "yolox_int8.onnx"
    code = main(["quantize", "--model", str(YOLOX), "--calib", str(TWIN / "cam1.mp4"), "--frames", "2", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "QuantizeLinear" in {n.op_type for n in onnx.load(str(out)).graph.node}
    assert [p.name for p in other_filesystem.iterdir()] == ["yolox_int8.onnx"]  # no temporary file left


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--output", str(YOLOX)], "would overwrite --model"),
        (["--output", "x.onnx", "--calib", "/nonexistent/v.mp4"], "--calib video not found"),
        (["--output", str(TWIN / "cam1.mp4") + "/x.onnx"], "cannot write in"),
    ],
)
def test_quantize_bad_input_is_one_line(tmp_path, capsys, extra, words):
    args = ["quantize", "--model", str(YOLOX), "--calib", str(TWIN / "cam1.mp4")]
    code = main(args + extra)
    err = capsys.readouterr().err
    assert code != 0 and words in err and len(err.strip().splitlines()) == 1, err


def test_quantize_an_embedder_without_crops_source_says_what_to_give(tmp_path, capsys):
    code = main(["quantize", "--model", str(OSNET), "--calib", str(TWIN / "cam1.mp4"), "-o", str(tmp_path / "q.onnx")])
    err = capsys.readouterr().err
    assert code == 2 and "--detector" in err, err
