"""Person detectors. Each has one method, ``detect(frame_bgr, index=None) -> supervision.Detections``
(person class only, ``xyxy`` in source pixels, ``confidence``, ``class_id`` = 0).

- :class:`UltralyticsDetector` — any ultralytics YOLO model (``yolo11n.pt`` by default, a local
  ``.pt``, an exported ``.onnx``, an OpenVINO folder).
- :class:`YOLOXDetector` — a YOLOX ONNX model run by onnxruntime (letterbox to the model's square
  input, raw per-anchor outputs decoded on the stride-8/16/32 grids, vectorised, then NMS).
- :class:`PublicDetections` — a MOTChallenge ``det.txt`` (``frame,id,x,y,w,h,conf,...``, frames
  1-based); ``detect`` then needs the frame ``index`` (0-based).

:func:`load_detector` picks one from a :class:`PipelineConfig` (the ``DETECTORS`` registry, by
``--detector-kind``); :func:`infer_detector_kind` tells a
YOLOX ONNX file (output ``(1, N, 85)``: box, objectness, 80 classes) from an ultralytics export
(output ``(1, 84, N)``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from reidpipe.console import warn
from reidpipe.errors import (
    CheckpointError,
    ConfigError,
    InputNotFoundError,
    UsageError,
    WeightsUnavailableError,
)
from reidpipe.limits import MAX_BOXES_PER_FRAME
from reidpipe.pipeline.io.motfile import read_mot_lines
from reidpipe.pipeline.models.onnx_batch import make_dynamic_batch
from reidpipe.pipeline.models.runtime import model_session
from reidpipe.pipeline.models.safe_weights import check_detector_checkpoint
from reidpipe.registry import Registry

if TYPE_CHECKING:
    from reidpipe.pipeline.config import PipelineConfig
    from reidpipe.pipeline.contracts import Detector
    from reidpipe.pipeline.types import SourceInfo

PERSON = 0
NOT_PICKLES = (".onnx", ".engine", ".tflite", ".xml", ".torchscript", ".mlpackage", ".pb")


def _empty():
    import supervision as sv

    return sv.Detections(
        xyxy=np.zeros((0, 4), np.float32), confidence=np.zeros(0, np.float32), class_id=np.zeros(0, int)
    )


def _detections(xyxy: np.ndarray, conf: np.ndarray):
    import supervision as sv

    if len(xyxy) == 0:
        return _empty()
    return sv.Detections(
        xyxy=np.asarray(xyxy, np.float32), confidence=np.asarray(conf, np.float32), class_id=np.zeros(len(xyxy), int)
    )


def nms(xyxy: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression (OpenCV's ``NMSBoxes``), best first."""
    import cv2

    if len(xyxy) == 0:
        return np.zeros(0, int)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.astype(float).tolist(), 0.0, float(iou))
    return np.asarray(keep, dtype=int).reshape(-1)


class YOLOXDetector:
    """YOLOX (Ge et al., 2021) exported to ONNX with raw head outputs ``(1, N, 5 + C)``.

    Pre-processing: letterbox (keep aspect ratio, resize so the frame fits the square input, pad with
    114 at the bottom/right), BGR, 0–255, CHW float32. Decoding: for each stride s in (8, 16, 32) and
    grid cell (gx, gy): ``cx, cy = (p_xy + (gx, gy)) * s``, ``w, h = exp(p_wh) * s``,
    ``score = objectness * p_person``; then NMS and division by the letterbox scale. Models whose
    graph already decodes the boxes (values in pixels) are detected and not decoded twice."""

    def __init__(
        self,
        path: str,
        *,
        conf: float = 0.3,
        iou: float = 0.45,
        device: str = "cpu",
        strides: tuple[int, ...] = (8, 16, 32),
        backend: str = "onnxruntime",
        half: bool | None = None,
        input_size: int | None = None,
        openvino_precision: str = "f32",
    ):
        self.path = str(path)
        self.device, self.backend, self.openvino_precision = device, backend, openvino_precision
        self.session = model_session(self.path, device, backend, precision=openvino_precision)
        providers = self.session.get_providers()
        # fp16 on a GPU (None: when onnxruntime runs it on CUDA); inputs and outputs stay float32
        self.half = bool(half) if half is not None else providers[:1] == ["CUDAExecutionProvider"]
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = inp.shape
        h = shape[2] if isinstance(shape[2], int) else 416
        w = shape[3] if isinstance(shape[3], int) else 416
        self.input_hw = (int(h), int(w))
        self.free_size = input_size is not None and (int(input_size), int(input_size)) != self.input_hw
        if input_size is not None:
            self.input_hw = _checked_input_size(self.path, int(input_size))
        out = self.session.get_outputs()[0].shape
        if not (len(out) == 3 and isinstance(out[-1], int) and out[-1] >= 6):
            raise CheckpointError(f"{self.path}: output shape {out} is not a YOLOX head (1, N, 5+classes)")
        self.conf = float(conf)
        self.iou = float(iou)
        grids, strides_col = [], []
        for s in strides:
            gh, gw = self.input_hw[0] // s, self.input_hw[1] // s
            ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
            grids.append(np.stack([xs, ys], -1).reshape(-1, 2))
            strides_col.append(np.full((gh * gw, 1), s))
        self.grid = np.concatenate(grids).astype(np.float32)
        self.stride = np.concatenate(strides_col).astype(np.float32)
        self._decoded: bool | None = None if isinstance(out[1], int) and out[1] == len(self.grid) else True
        self.runtime_choice: Any = None  # with backend auto: the measured choice (pipeline/runtime_choice.py)
        self.batched = not (isinstance(shape[0], int) and shape[0] == 1)  # one call for many frames
        self.threads: int | None = None  # ONNX Runtime intra-op threads (None: its default, one per core)
        self._dynamic_copy = False  # the session runs a dynamic-batch copy of the file
        if self.half or self.free_size:
            self._reload(dynamic_batch=False)
        if self.free_size:
            self._check_size()

    def enable_batching(self) -> bool:
        """Make :meth:`detect_batch` one inference call for all its frames: a model whose batch is fixed
        at 1 is re-saved with a dynamic batch (:func:`reidpipe.pipeline.models.onnx_batch.make_dynamic_batch`,
        checked equal to the original, in a temporary folder: the user's file is never modified) and
        loaded from that copy. Returns whether batching is on (False when the graph cannot be rewritten:
        the frames are then detected one by one, with the same results)."""
        if self.batched:
            return True
        try:
            self._reload(dynamic_batch=True)
        except CheckpointError:
            return False
        self.batched = self._dynamic_copy = True
        return True

    def enable_parallel_rounds(self) -> bool:
        """Make the session safe and efficient for several detect threads at once: ONNX Runtime on the
        CPU with one intra-op thread, so each call runs on its calling thread alone. One call per core
        then keeps every core busy without the intra-op threads' barriers, which leave a 2-core machine
        idle ~20 % of a small model's inference and stall whenever another thread takes a core (the
        pipeline's frame loop detects rounds ahead on one thread per core: pipeline/engine/ahead.py).
        False (nothing changed) for OpenVINO and on a GPU."""
        if self.backend != "onnxruntime" or self.session.get_providers()[:1] != ["CPUExecutionProvider"]:
            return False
        if self.threads != 1:
            self.threads = 1
            self._reload(dynamic_batch=self._dynamic_copy)
        return True

    def _check_size(self) -> None:
        """The re-sized graph runs at :attr:`input_hw` and gives one row per grid cell."""
        blob = np.zeros((1, 3, *self.input_hw), np.float32)
        try:
            rows = self.session.run(None, {self.input_name: blob})[0].shape[1]
        except Exception as exc:  # the runtime's own error classes
            raise CheckpointError(
                f"{self.path}: cannot run at input size {self.input_hw[0]} ({type(exc).__name__}): "
                "give --imgsz the file's own size or leave it out"
            ) from None
        if rows != len(self.grid):
            raise CheckpointError(
                f"{self.path}: at input size {self.input_hw[0]} the head gives {rows} rows, not the "
                f"{len(self.grid)} grid cells of strides 8/16/32: this graph cannot be re-sized"
            )
        self._decoded = None

    def _reload(self, *, dynamic_batch: bool) -> None:
        """Load the session again from a copy of the user's file made in a temporary folder: with a
        dynamic batch (checked equal to the original), with a free input size when ``--imgsz`` asks
        for another than the file's (:func:`free_input_size`), then in fp16 when :attr:`half`
        (``onnxruntime.transformers.float16``, float32 inputs and outputs kept)."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="reidpipe-detector-") as tmp:
            path = self.path
            if dynamic_batch:
                path = str(Path(tmp) / "dynamic_batch.onnx")
                make_dynamic_batch(self.path, path, check_crops=2, atol=1e-3)
            if self.free_size:
                sized = str(Path(tmp) / "free_size.onnx")
                free_input_size(path, sized)
                path = sized
            if self.half:
                import onnx
                from onnxruntime.transformers.float16 import convert_float_to_float16

                half = str(Path(tmp) / "fp16.onnx")
                onnx.save(convert_float_to_float16(onnx.load(path), keep_io_types=True), half)
                path = half
            self.session = model_session(
                path, self.device, self.backend, threads=self.threads, precision=self.openvino_precision
            )

    def preprocess(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        import cv2

        ih, iw = self.input_hw
        h, w = frame.shape[:2]
        r = min(ih / h, iw / w)
        nh, nw = int(round(h * r)), int(round(w * r))
        pad = np.full((ih, iw, 3), 114, np.uint8)  # per call: detect threads may preprocess at once
        pad[:nh, :nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
        blob = np.ascontiguousarray(pad.transpose(2, 0, 1)[None], dtype=np.float32)
        return blob, r

    def decode(self, raw: np.ndarray, r: float, frame_hw: tuple[int, int]):
        p = raw[0]
        if self._decoded is None:  # raw logits have small wh; decoded outputs are in pixels
            self._decoded = bool(np.abs(p[:, 2:4]).max() > 30.0)
        scores = p[:, 4] * p[:, 5 + PERSON]
        keep = scores >= self.conf
        if not keep.any():
            return _empty()
        p, scores = p[keep], scores[keep]
        if self._decoded:
            cxcy, wh = p[:, :2], p[:, 2:4]
        else:
            cxcy = (p[:, :2] + self.grid[keep]) * self.stride[keep]
            wh = np.exp(p[:, 2:4]) * self.stride[keep]
        xyxy = np.concatenate([cxcy - wh / 2, cxcy + wh / 2], axis=1) / r
        h, w = frame_hw
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, w)
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, h)
        idx = nms(xyxy, scores, self.iou)
        return _detections(xyxy[idx], scores[idx])

    def detect(self, frame_bgr: np.ndarray, index: int | None = None):
        blob, r = self.preprocess(frame_bgr)
        raw = self.session.run(None, {self.input_name: blob})[0]
        return self.decode(raw, r, frame_bgr.shape[:2])

    def detect_batch(self, frames_bgr: Sequence[np.ndarray], indices: Sequence[int | None] | None = None) -> list:
        """The detections of several frames (e.g. one per camera), in one inference call when
        :attr:`batched`; the same detections as :meth:`detect` frame by frame."""
        if not self.batched or len(frames_bgr) < 2:
            return [self.detect(f) for f in frames_bgr]
        prepared = [self.preprocess(f) for f in frames_bgr]  # each blob is a fresh array
        raw = self.session.run(None, {self.input_name: np.concatenate([b for b, _ in prepared])})[0]
        return [self.decode(raw[i : i + 1], r, f.shape[:2]) for i, ((_, r), f) in enumerate(zip(prepared, frames_bgr))]


def _checked_input_size(path: str, size: int) -> tuple[int, int]:
    if size < 64 or size % 32:
        raise ConfigError(f"--imgsz {size} for the YOLOX detector {path}: give a multiple of 32, at least 64")
    return size, size


def free_input_size(src: str | Path, dst: str | Path) -> None:
    """Re-save a YOLOX ONNX graph with a symbolic input height and width (``--imgsz``): its
    convolutions, resizes by scale and ``Reshape [1, 85, -1]`` do not depend on the input size, so the
    same weights run at 320² or 256² (1.8× / 2.9× cheaper than 416² on 2 CPU cores). The stored
    intermediate shapes are dropped; the caller checks that the head gives one row per grid cell."""
    import onnx

    model = onnx.load(str(src))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for k, name in ((2, "height"), (3, "width")):
        dims[k].ClearField("dim_value")
        dims[k].dim_param = name
    for out in model.graph.output:
        out.type.tensor_type.shape.dim[1].ClearField("dim_value")
        out.type.tensor_type.shape.dim[1].dim_param = "anchors"
    del model.graph.value_info[:]
    onnx.save(model, str(dst))


def _on_cuda(device: str) -> bool:
    """Whether ``--device`` puts a PyTorch model on a CUDA GPU (``auto``: when one is there)."""
    if device.startswith("cuda"):
        return True
    if device != "auto":
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def _check_export_folder(folder: Path) -> None:
    """A folder given as ``--detector`` must be an export ultralytics recognises (OpenVINO, SavedModel,
    NCNN, ...): ultralytics only finds out at the first frame, with a traceback."""
    try:
        from ultralytics.nn.autobackend import AutoBackend

        fmt = AutoBackend._model_type(str(folder))
        known = fmt in AutoBackend._BACKEND_MAP
    except (ImportError, AttributeError, TypeError):  # another ultralytics: it checks by itself
        return
    if not known:
        raise CheckpointError(
            f"--detector {folder}: a folder that holds no model ultralytics can run (an export folder "
            "such as yolo11n_openvino_model/ with its .xml and .bin, or give the .pt/.onnx file)"
        )


class UltralyticsDetector:
    """An ultralytics YOLO model, person class only."""

    def __init__(
        self,
        weights: str = "yolo11n.pt",
        *,
        conf: float = 0.3,
        iou: float = 0.45,
        imgsz: int | None = None,
        device: str = "auto",
        trust_weights: bool = False,
    ):
        self.weights = str(weights)
        self.conf, self.iou, self.imgsz = float(conf), float(iou), imgsz
        self.device = None if device == "auto" else device
        self.half = _on_cuda(device)
        local = Path(self.weights)
        if local.suffix in (".onnx", ".engine", ".tflite") or local.is_dir() or "/" in self.weights:
            if not local.exists():
                raise InputNotFoundError(f"detector weights not found: {self.weights}")
        if local.is_file() and local.suffix.lower() not in NOT_PICKLES:  # ultralytics would unpickle it
            check_detector_checkpoint(local, trust=trust_weights)
        if local.is_dir():
            _check_export_folder(local)
        try:
            from ultralytics import YOLO

            self.model = YOLO(self.weights, task="detect")
        except (ConnectionError, OSError, TimeoutError) as exc:
            if local.exists():
                raise CheckpointError(f"cannot load detector weights {self.weights}: {exc}") from None
            raise WeightsUnavailableError(
                f"detector weights {self.weights!r} are not on this machine and cannot be downloaded "
                "(offline?); use --detector PATH (local .pt/.onnx/OpenVINO), --detector-kind yolox "
                "with a YOLOX .onnx, or --detections det.txt per source"
            ) from None
        except Exception as exc:
            if local.exists():
                raise CheckpointError(
                    f"cannot load detector weights {self.weights}: "
                    f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
                ) from None
            raise WeightsUnavailableError(
                f"detector weights {self.weights!r} cannot be loaded ({type(exc).__name__}); use --detector "
                "PATH, --detector-kind yolox, or --detections det.txt per source"
            ) from None

    def detect(self, frame_bgr: np.ndarray, index: int | None = None):
        result = cast("list[Any]", self.model.predict(frame_bgr, **self._predict_kwargs()))[0]  # a list
        return self._persons(result)

    def enable_batching(self) -> bool:
        """Whether :meth:`detect_batch` is one ``predict`` call: a PyTorch model takes any batch; an
        exported file keeps the batch it was exported with (frame by frame)."""
        return not self._exported()

    def enable_parallel_rounds(self) -> bool:
        """No: an ultralytics predictor keeps per-call state (one detect thread runs the rounds)."""
        return False

    def _exported(self) -> bool:
        return Path(self.weights).suffix.lower() in NOT_PICKLES or Path(self.weights).is_dir()

    def detect_batch(self, frames_bgr: Sequence[np.ndarray], indices: Sequence[int | None] | None = None) -> list:
        """Several frames in one ``predict`` call (a list of images is one batch for ultralytics' PyTorch
        models; exported files such as ``.onnx`` keep the batch they were exported with, so they are
        run frame by frame)."""
        if len(frames_bgr) < 2 or self._exported():
            return [self.detect(f) for f in frames_bgr]
        results = cast("list[Any]", self.model.predict(list(frames_bgr), **self._predict_kwargs()))
        return [self._persons(r) for r in results]

    def _predict_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"classes": [PERSON], "conf": self.conf, "iou": self.iou, "verbose": False}
        if self.imgsz:
            kw["imgsz"] = self.imgsz
        if self.device:
            kw["device"] = self.device
        if self.half:
            kw["half"] = True  # fp16 on a GPU
        return kw

    @staticmethod
    def _persons(result):
        import supervision as sv

        det = sv.Detections.from_ultralytics(result)
        if len(det) == 0:
            return _empty()
        det = cast(sv.Detections, det[det.class_id == PERSON])  # a mask selects Detections
        det.class_id = np.zeros(len(det), int)
        return det


class PublicDetections:
    """Detections read from a MOTChallenge ``det.txt`` (frame numbers 1-based, ``x, y, w, h`` in
    pixels, top-left origin, ``conf`` optional = 1). Columns after ``conf`` are ignored."""

    def __init__(self, path: str, conf: float | None = None, frame=None):
        self.path = str(path)
        mot, lines = read_mot_lines(self.path, "detections")
        if conf is not None:
            keep = mot[:, 6] >= conf
            mot, lines = mot[keep], lines[keep]
        x, y, w, h = mot[:, 2], mot[:, 3], mot[:, 4], mot[:, 5]
        rows = np.stack([mot[:, 0] - 1, x, y, x + w, y + h, mot[:, 6]], axis=1)  # 0-based frames, xyxy
        arr = np.asarray(rows, np.float64).reshape(-1, 6)
        arr, lines, crowd_warning = cap_per_frame(self.path, arr, lines)
        fit_warning = None
        if frame is not None:
            arr, fit_warning = fit_to_frame(self.path, arr, lines, frame)
        self.warning = "; ".join(w for w in (fit_warning, crowd_warning) if w) or None
        arr = arr.astype(np.float32)
        arr = arr[np.argsort(arr[:, 0], kind="stable")]
        frames = arr[:, 0].astype(np.int64)
        self._frames, starts = np.unique(frames, return_index=True)
        ends = np.append(starts[1:], len(arr))
        self._slices = {int(f): (int(a), int(b)) for f, a, b in zip(self._frames, starts, ends)}
        self._boxes = arr[:, 1:5]
        self._conf = arr[:, 5]
        self.rows = len(arr)

    @property
    def last_frame(self) -> int:
        return int(self._frames[-1]) if len(self._frames) else -1

    def detect(self, frame_bgr: np.ndarray | None = None, index: int | None = None):
        if index is None:
            raise ConfigError("public detections need the frame index: call detect(frame, index=i)")
        sl = self._slices.get(int(index))
        if sl is None:
            return _empty()
        return _detections(self._boxes[sl[0] : sl[1]].copy(), self._conf[sl[0] : sl[1]].copy())

    def detect_batch(
        self, frames_bgr: Sequence[np.ndarray | None], indices: Sequence[int | None] | None = None
    ) -> list:
        if indices is None:
            raise ConfigError("public detections need the frame indices: call detect_batch(frames, indices)")
        return [self.detect(None, index=i) for i in indices]

    def enable_parallel_rounds(self) -> bool:
        """Nothing to share: the rows of a frame are looked up (one detect thread is plenty)."""
        return False

    def enable_batching(self) -> bool:
        """Nothing to batch: the rows of a frame are looked up."""
        return False


def cap_per_frame(path: str, rows: np.ndarray, lines: np.ndarray) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Public detection rows (``frame0, x1, y1, x2, y2, conf``), at most
    ``limits.MAX_BOXES_PER_FRAME`` per frame: a frame's least confident boxes past it are dropped
    (tracking and embedding cost grow with a frame's boxes). Returns the rows, their line numbers and
    one warning naming ``file:line`` of the first dropped row (None when no frame is over)."""
    order = np.lexsort((-rows[:, 5], rows[:, 0]))  # by frame, the most confident first
    frames = rows[order, 0]
    rank = np.arange(len(rows)) - np.searchsorted(frames, frames, side="left")  # place within its frame
    over = np.zeros(len(rows), bool)
    over[order] = rank >= MAX_BOXES_PER_FRAME
    if not over.any():
        return rows, lines, None
    crowded = len(np.unique(rows[over, 0]))
    warning = (
        f"{int(over.sum())} boxes past {MAX_BOXES_PER_FRAME} in one frame dropped, the least confident "
        f"({crowded} frame{'s' if crowded > 1 else ''}; first at {path}:{int(lines[over].min())})"
    )
    return rows[~over], lines[~over], warning


def fit_to_frame(path: str, rows: np.ndarray, lines: np.ndarray, frame) -> tuple[np.ndarray, str | None]:
    """Public detection rows (``frame0, x1, y1, x2, y2, conf``) checked against the source's frame
    (a :class:`SourceInfo`; size 0 or frames None = unknown, e.g. a live stream), as MOTChallenge tools
    do: boxes are clipped to the frame; a row is dropped when its box lies outside the frame, is under
    1 px or over 4x the frame's size, or its frame is past the video's end. Returns the kept rows and
    one warning naming ``file:line`` of the first row of each kind (None when all rows fit)."""
    parts = []
    keep = np.ones(len(rows), bool)
    if frame.frames:
        late = rows[:, 0] >= frame.frames
        keep &= ~late
        if late.any():
            parts.append(
                f"{int(late.sum())} rows after the video's last frame {frame.frames} ignored "
                f"(first at {path}:{lines[late][0]})"
            )
    if frame.width > 0 and frame.height > 0:
        W, H = float(frame.width), float(frame.height)
        w, h = rows[:, 3] - rows[:, 1], rows[:, 4] - rows[:, 2]
        clipped = np.column_stack(
            [np.clip(rows[:, 1], 0, W), np.clip(rows[:, 2], 0, H), np.clip(rows[:, 3], 0, W), np.clip(rows[:, 4], 0, H)]
        )
        cw, ch = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
        bad = keep & ((cw < 1) | (ch < 1) | (w > 4 * W) | (h > 4 * H))
        cut = keep & ~bad & (clipped != rows[:, 1:5]).any(axis=1)
        keep &= ~bad
        if bad.any():
            parts.append(
                f"{int(bad.sum())} boxes outside the {frame.width}x{frame.height} frame, under 1 px or "
                f"over 4x its size dropped (first at {path}:{lines[bad][0]})"
            )
        if cut.any():
            parts.append(f"{int(cut.sum())} boxes clipped to the frame (first at {path}:{lines[cut][0]})")
        rows = np.concatenate([rows[:, :1], clipped, rows[:, 5:]], axis=1)
    return rows[keep], ("; ".join(parts) if parts else None)


def _onnx_head(path: str) -> tuple[set[str], list[int | None]]:
    """The metadata keys and the first output's dims of a detector ONNX file; ``CheckpointError`` when
    it is empty, foreign, or its output is not a detector head (3-D: YOLOX ``(1, N, 5+C)`` or
    ultralytics ``(1, 4+C, N)``, e.g. a ReID model's ``(1, 512)``)."""
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        raise CheckpointError(f"not a loadable ONNX model: {path}") from None
    outs = model.graph.output
    if not outs:
        raise CheckpointError(f"not a loadable ONNX model: {path} (no graph outputs: empty or foreign file)")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in outs[0].type.tensor_type.shape.dim]
    if len(dims) != 3:
        shown = "x".join("?" if d is None else str(d) for d in dims)
        raise CheckpointError(
            f"{path}: output {outs[0].name} is {shown}, not a detector head (YOLOX 1xNx(5+C) "
            "or ultralytics 1x(4+C)xN); a ReID model goes to --reid-weights"
        )
    return {m.key for m in model.metadata_props}, dims


def infer_detector_kind(path: str) -> str:
    """``'yolox'`` or ``'ultralytics'`` from the file: an ``.onnx`` whose output is ``(1, N, 5+C)``
    (objectness column) without ultralytics metadata is YOLOX; anything else is ultralytics."""
    p = Path(path)
    if p.suffix.lower() != ".onnx" or not p.is_file():
        return "ultralytics"
    meta, dims = _onnx_head(str(p))
    if "names" in meta and "stride" in meta:
        return "ultralytics"  # exported by ultralytics
    if dims[-1] is not None and dims[-1] == 85:
        return "yolox"
    if dims[1] is not None and dims[1] == 84:
        return "ultralytics"
    if dims[-1] is not None and dims[-1] > 5 and (dims[1] is None or dims[1] > dims[-1]):
        return "yolox"
    return "ultralytics"


def check_ultralytics_onnx(path: str) -> None:
    """An ``.onnx`` run as ultralytics must be an ultralytics export (its ``names``/``stride`` metadata):
    a YOLOX model given ``--detector-kind ultralytics`` is refused with the flag that fits."""
    meta, _ = _onnx_head(path)
    if not {"names", "stride"} <= meta:
        how = (
            "it looks like YOLOX: use --detector-kind yolox"
            if infer_detector_kind(path) == "yolox"
            else "export the model with ultralytics"
        )
        raise CheckpointError(f"{path}: not an ultralytics ONNX export (no names/stride metadata); {how}")


DetectorBuilder = Callable[["PipelineConfig"], "Detector"]
DETECTORS: Registry[DetectorBuilder] = Registry("--detector-kind")  # the model kinds --detector can name


@DETECTORS.register("ultralytics", "any ultralytics YOLO: .pt, an exported .onnx, an OpenVINO folder")
def _ultralytics(config: PipelineConfig) -> Detector:
    if config.backend not in ("auto", "onnxruntime"):
        raise UsageError(
            f"--backend {config.backend} runs ONNX models (YOLOX, the ReID embedder); an ultralytics "
            "detector picks its runtime by its format: export it with ultralytics (format=openvino) "
            "and give that folder as --detector"
        )
    if Path(config.detector).suffix.lower() == ".onnx" and Path(config.detector).is_file():
        check_ultralytics_onnx(config.detector)
    return UltralyticsDetector(
        config.detector,
        conf=config.det_conf,
        iou=config.det_iou,
        imgsz=config.imgsz,
        device=config.device,
        trust_weights=config.trust_weights,
    )


@DETECTORS.register("yolox", "a YOLOX ONNX model on ONNX Runtime or OpenVINO (--backend)")
def _yolox(config: PipelineConfig) -> Detector:
    if not Path(config.detector).is_file():
        raise InputNotFoundError(f"YOLOX ONNX model not found: {config.detector}")
    return YOLOXDetector(
        config.detector,
        conf=config.det_conf,
        iou=config.det_iou,
        device=config.device,
        backend="onnxruntime" if config.backend == "auto" else config.backend,
        input_size=config.imgsz,
        openvino_precision=config.openvino_precision,
    )


def load_detector(
    config: PipelineConfig, detections_file: str | None = None, frame: SourceInfo | None = None
) -> Detector:
    """The detector of one source: ``PublicDetections`` when a det.txt is given (checked against the
    source's ``frame`` info, with one warning when rows do not fit), else the ``DETECTORS`` entry of
    ``config.detector_kind`` (inferred from the file when None). ``backend: auto`` runs YOLOX on ONNX
    Runtime here; the pipeline's workers ask models/runtime_choice.py for the machine's choice."""
    if detections_file is not None:
        public = PublicDetections(detections_file, conf=config.detections_conf, frame=frame)
        if public.warning:
            warn(public.warning)
        return public
    kind = config.detector_kind or infer_detector_kind(config.detector)
    return DETECTORS.get(kind)(config)
