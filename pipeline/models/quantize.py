"""``reidpipe quantize``: an int8 copy of an ONNX detector (YOLOX) or ReID embedder, calibrated on the
user's own video, with ONNX Runtime's static quantization.

Steps (:func:`quantize_model`):

1. **Kind** — a YOLOX detector (output ``(1, N, 5 + C)``) or a ReID model (one vector per crop).
2. **Calibration samples** from ``--calib VIDEO``: ``--frames N`` frames spread evenly over the video
   (:func:`reidpipe.pipeline.io.sources.iter_frames` with a stride), pre-processed exactly as the
   pipeline does: the detector's letterbox (:meth:`YOLOXDetector.preprocess`); for an embedder, the
   person crops of those frames found by ``--detector`` (or a ``--detections`` det.txt), resized and
   normalised as :class:`~reidpipe.pipeline.models.embed.OnnxEmbedder` does.
3. **Quantization** — ``onnxruntime.quantization.quantize_static``: QDQ format, int8 weights per
   channel, uint8 activations, calibrated by MinMax over the samples, after ONNX Runtime's
   ``quant_pre_process`` (shape inference, graph optimisation). A model below opset 13 is first
   converted to 13 (per-channel QDQ needs the ``axis`` attribute of opset 13).
4. **Check** — the int8 model is loaded and run on the held-out half of the samples against the fp32
   model: person recall / precision of its detections (IoU >= 0.5) for a detector, cosine of the
   embeddings for an embedder. The figures are returned (and printed by the command).

The user's file is never modified; ``--output`` is written atomically (a temporary file beside it,
then a rename: the work folder in ``$TMPDIR`` may be on another filesystem).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from reidpipe.errors import CheckpointError, InputNotFoundError, OutputError, UsageError
from reidpipe.files import atomic_output
from reidpipe.pipeline.engine.sampler import crop
from reidpipe.pipeline.io.sources import IMAGE_EXTS, iter_frames, source_kind
from reidpipe.pipeline.models.detect import YOLOXDetector, infer_detector_kind
from reidpipe.pipeline.models.embed import OnnxEmbedder, l2_normalize, preprocess
from reidpipe.pipeline.models.runtime import onnx_session

OPSET = 13  # per-channel QuantizeLinear/DequantizeLinear (axis) needs opset 13


def model_kind(path: str) -> str:
    """``'detector'`` (YOLOX head) or ``'embedder'`` (one vector per crop) of an ONNX file."""
    import onnx

    if not Path(path).is_file():
        raise InputNotFoundError(f"ONNX model not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        raise CheckpointError(f"not a loadable ONNX model: {path}") from None
    if not model.graph.output:
        raise CheckpointError(f"not a loadable ONNX model: {path} (no graph outputs)")
    dims = model.graph.output[0].type.tensor_type.shape.dim
    if len(dims) == 3:
        if infer_detector_kind(path) != "yolox":
            raise UsageError(
                f"{path}: only YOLOX detectors are quantized here (export ultralytics models with int8=True)"
            )
        return "detector"
    return "embedder"


# ------------------------------------------------------------------------------------------ samples
def calibration_frames(video: str, frames: int) -> list[tuple[int, np.ndarray]]:
    """``frames`` (index, BGR image) pairs spread evenly over ``video`` (a file or an image folder)."""
    import cv2

    if source_kind(video) == "folder":
        total = sum(1 for p in Path(video).iterdir() if p.suffix.lower() in IMAGE_EXTS)
    else:
        cap = cv2.VideoCapture(str(video))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        cap.release()
    stride = max(1, total // max(frames, 1))
    out = list(iter_frames(video, stride=stride))[:frames]
    if not out:
        raise UsageError(f"--calib {video}: no frames could be read (not a video or an image folder?)")
    return out


def detector_samples(model: str, images: list[tuple[int, np.ndarray]]) -> list[np.ndarray]:
    det = YOLOXDetector(model)
    return [det.preprocess(im)[0] for _, im in images]


def embedder_samples(model: str, images: list[tuple[int, np.ndarray]], detector) -> list[np.ndarray]:
    """Pre-processed person crops (one ``(1, 3, H, W)`` array each) of the detections of ``detector`` (a
    reidpipe detector) in ``images``, prepared as :class:`~reidpipe.pipeline.models.embed.OnnxEmbedder` does."""
    emb = OnnxEmbedder(model)
    crops = [crop(im, box) for index, im in images for box in detector.detect(im, index=index).xyxy]
    x = preprocess(crops, emb.input_size, emb.mean, emb.std, emb.color)
    return [x[i : i + 1] for i in range(len(x))]


# ------------------------------------------------------------------------------------------ quantize
class _Reader:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over a list of input arrays."""

    def __init__(self, name: str, samples: list[np.ndarray]):
        self.name = name
        self.samples = samples
        self._it = iter(samples)

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._it, None)
        return None if x is None else {self.name: x}

    def rewind(self) -> None:
        """Start the samples again (calibration methods that take several passes call it)."""
        self._it = iter(self.samples)


def quantize_onnx(src: str, dst: str, samples: list[np.ndarray]) -> None:
    """Static int8 quantization of ``src`` calibrated on ``samples`` (model inputs), written to ``dst``."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(src))
    name = model.graph.input[0].name
    with tempfile.TemporaryDirectory(prefix="reidpipe-quantize-") as tmp:
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), OPSET)
        if opset < OPSET:
            model = version_converter.convert_version(model, OPSET)
        staged = os.path.join(tmp, "model.onnx")
        onnx.save(model, staged)
        prepared = os.path.join(tmp, "prepared.onnx")
        quant_pre_process(staged, prepared)
        out = os.path.join(tmp, "int8.onnx")
        quantize_static(
            prepared,
            out,
            _Reader(name, samples),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        _copy_metadata(model, out)
        # the work folder may be on another filesystem than dst: copy beside dst, then rename
        with atomic_output(dst, "--output") as staged_dst:
            shutil.copyfile(out, staged_dst)


def _copy_metadata(model, path: str) -> None:
    """Keep the fp32 model's ``metadata_props`` (the embedder's input size, colour, mean/std...)."""
    import onnx

    if not model.metadata_props:
        return
    q = onnx.load(path)
    have = {p.key for p in q.metadata_props}
    for p in model.metadata_props:
        if p.key not in have:
            q.metadata_props.add(key=p.key, value=p.value)
    onnx.save(q, path)


def _check_writable(path: str) -> None:
    """``--output``'s folder exists (or is made) and takes a file, before any work is done."""
    folder = Path(path).parent
    if Path(path).is_dir():
        raise OutputError(f"--output {path} is a folder; give the model's file name (e.g. {path}/model_int8.onnx)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=folder, prefix=".reidpipe-write-check-").close()  # made and removed
    except OSError as exc:
        raise OutputError(f"--output {path}: cannot write in {folder} ({exc.strerror})") from None


# ------------------------------------------------------------------------------------------ check
def detector_agreement(reference, candidate, images: list[tuple[int, np.ndarray]], iou: float = 0.5) -> dict[str, Any]:
    """Person recall / precision of ``candidate``'s detections against ``reference``'s (a detector's
    accuracy cost), greedy one-to-one matching at IoU >= ``iou``."""
    ref = [reference.detect(im).xyxy for _, im in images]
    return box_agreement(ref, [candidate.detect(im).xyxy for _, im in images], iou)


def box_agreement(reference: list[np.ndarray], boxes: list[np.ndarray], iou: float = 0.5) -> dict[str, Any]:
    """Recall / precision of ``boxes`` (xyxy per frame) against ``reference``'s, greedy one-to-one at
    IoU >= ``iou``."""
    import supervision as sv

    ref_n = cand_n = matched = 0
    for a, b in zip(reference, boxes):
        ref_n, cand_n = ref_n + len(a), cand_n + len(b)
        if len(a) and len(b):
            m = sv.box_iou_batch(a, b)
            while m.size and m.max() >= iou:
                i, j = np.unravel_index(int(m.argmax()), m.shape)
                matched += 1
                m[i, :] = -1
                m[:, j] = -1
    return {
        "frames": len(reference),
        "reference_boxes": ref_n,
        "boxes": cand_n,
        "recall": round(matched / ref_n, 4) if ref_n else None,
        "precision": round(matched / cand_n, 4) if cand_n else None,
    }


def embedder_agreement(reference, candidate, crops: list[np.ndarray]) -> dict[str, Any]:
    """Cosine between the embeddings of ``reference`` and ``candidate`` (sessions) on pre-processed crops."""

    def run(sess, x):
        return l2_normalize(np.asarray(sess.run(None, {sess.get_inputs()[0].name: x})[0]).reshape(len(x), -1))

    cos = np.array([float((run(reference, x) * run(candidate, x)).sum()) for x in crops])
    return {"crops": len(crops), "mean_cosine": round(float(cos.mean()), 5), "min_cosine": round(float(cos.min()), 5)}


def quantize_model(
    model: str,
    calib: str,
    output: str,
    *,
    frames: int = 64,
    detector=None,
) -> dict[str, Any]:
    """Quantize ``model`` (see the module docstring); ``detector`` (a reidpipe detector) finds the
    calibration crops of an embedder. Returns what was done and the int8 model's agreement with fp32."""
    if Path(output).resolve() == Path(model).resolve():
        raise UsageError(f"--output {output} would overwrite --model; give another path")
    if not Path(calib).exists():
        raise InputNotFoundError(f"--calib video not found: {calib}")
    _check_writable(output)
    kind = model_kind(model)
    if kind == "embedder" and detector is None:
        raise UsageError("quantizing an embedder needs person crops: give --detector (or --detections)")
    images = calibration_frames(calib, frames)
    calib_images, held_out = images[0::2], images[1::2] or images
    result: dict[str, Any] = {"model": str(model), "kind": kind, "calib": str(calib), "output": str(output)}
    if kind == "detector":
        quantize_onnx(model, output, detector_samples(model, calib_images))
        result["calibration_frames"] = len(calib_images)
        result["agreement"] = detector_agreement(YOLOXDetector(model), YOLOXDetector(output), held_out)
    else:
        samples = embedder_samples(model, calib_images, detector)
        if not samples:
            raise UsageError(
                f"--calib {calib}: no person detected in {len(calib_images)} frames; give a video with people"
            )
        quantize_onnx(model, output, samples)
        result["calibration_frames"] = len(calib_images)
        result["calibration_crops"] = len(samples)
        checks = embedder_samples(model, held_out, detector) or samples
        result["agreement"] = embedder_agreement(onnx_session(model), onnx_session(output), checks)
    return result
