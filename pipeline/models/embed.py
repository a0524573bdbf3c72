"""Crop embedders: ``embed(crops_bgr: list[np.ndarray]) -> np.ndarray (N, D)`` float32, L2-normalised,
with attributes ``dim`` and ``input_size`` (H, W).

- :class:`OnnxEmbedder` — an ONNX ReID model run by onnxruntime. Input size, colour order, mean and
  std come from the flags, else from the model's ``metadata_props`` written by ``reidpipe export``
  (``reidpipe.input_size`` = "H,W", ``reidpipe.color`` = "RGB"|"BGR", ``reidpipe.mean`` /
  ``reidpipe.std`` = "r,g,b" applied after /255, ``reidpipe.embed_dim``, ``reidpipe.variant``), else
  from the input shape with RGB + ImageNet mean/std. Dynamic-batch models get batches of up to
  ``batch``; a model with a fixed batch of 1 (e.g. torchreid's OSNet export) runs through its checked,
  cached dynamic-batch copy (:mod:`reidpipe.pipeline.models.onnx_batch`; checked again on the first real
  crops, crop by crop when either check fails); a fixed batch B > 1 gets zero-padded batches of B.
- :class:`OpenVinoEmbedder` — an OpenVINO IR ReID model (``model.xml`` + ``model.bin``) run by the
  ``openvino`` runtime (optional extra ``reidpipe[openvino]``), reshaped to a dynamic batch. Input size
  from the flags, else the IR's input shape. Colour order, mean and std from the flags, else from the
  IR's ``model_info`` rt_info (the OpenVINO Model API keys ``mean_values`` / ``scale_values`` in 0-255
  units, in the model's channel order, and ``reverse_input_channels``: true = the model wants RGB),
  else the Open Model Zoo convention: **raw BGR 0-255**. OMZ IRs bake their normalisation into the
  graph at conversion (``person-reidentification-retail-0277``'s rt_info ``conversion_parameters``
  records ``mean_values``, ``scale_values`` and ``reverse_input_channels``, and its first layers
  reverse the channels and normalise), so they want the frame's own pixels. It runs in
  ``--openvino-precision`` (f32 by default; :func:`reidpipe.pipeline.models.runtime.compile_openvino`).
- :class:`CheckpointEmbedder` — a reidpipe checkpoint (``reidpipe.reid.checkpoint.load_checkpoint``):
  ``torch.inference_mode``, channels-last on CPU, autocast (fp16) on CUDA.
- ``hist``: the colour/texture descriptor ``HistEmbedder`` of :mod:`reidpipe.pipeline.models.descriptors`
  (no weights).

Pre-processing is the same for all models: ``cv2.resize`` of each crop to (W, H) (bilinear), one
``np.stack``, then a single vectorised scale/normalise/transpose of the whole batch.
:func:`load_embedder` picks one from a :class:`PipelineConfig` (the ``EMBEDDERS`` registry, by ``--reid``;
``.xml`` -> OpenVINO).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reidpipe.console import warn
from reidpipe.errors import CheckpointError, ConfigError, InputNotFoundError, UsageError
from reidpipe.limits import MAX_BATCH, MAX_EMBED_DIM, MAX_REID_SIDE
from reidpipe.pipeline.models.descriptors import HistEmbedder
from reidpipe.pipeline.models.onnx_batch import agrees, dynamic_batch_copy, parity
from reidpipe.pipeline.models.runtime import compile_openvino, compiled_precision, model_session, openvino_message
from reidpipe.registry import Registry

if TYPE_CHECKING:
    from reidpipe.pipeline.config import PipelineConfig
    from reidpipe.pipeline.contracts import Embedder

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHECKPOINT_EXTS = (".pt", ".pth", ".safetensors", ".ckpt")


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def preprocess(crops_bgr: list[np.ndarray], input_size: tuple[int, int], mean, std, color: str = "RGB") -> np.ndarray:
    """Crops (BGR uint8, any sizes) -> (N, 3, H, W) float32: resize (bilinear), colour order, /255,
    (x-mean)/std. ``mean``/``std`` are in R, G, B order whatever ``color`` is. One OpenCV call does it
    all (``cv2.dnn.blobFromImagesWithParams``: five times faster than the same steps in numpy, which
    took as much CPU as the embedder's inference on a 2-core machine)."""
    import cv2

    h, w = int(input_size[0]), int(input_size[1])
    if not crops_bgr:
        return np.zeros((0, 3, h, w), np.float32)
    rgb = color.upper() == "RGB"
    m = np.asarray(mean, np.float64) if rgb else np.asarray(mean, np.float64)[::-1]  # in the output's order
    s = np.asarray(std, np.float64) if rgb else np.asarray(std, np.float64)[::-1]
    params = cv2.dnn.Image2BlobParams()
    params.size = (w, h)
    params.swapRB = rgb
    params.ddepth = cv2.CV_32F
    params.mean = (*(255.0 * m), 0.0)  # subtracted first, then multiplied by the scale factor
    params.scalefactor = (*(1.0 / (255.0 * s)), 0.0)
    return cv2.dnn.blobFromImagesWithParams(list(crops_bgr), params)


def _floats(text: str, n: int, key: str, path: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in str(text).replace(" ", "").split(","))
    except ValueError:
        raise CheckpointError(f"{path}: metadata {key}={text!r} is not {n} comma-separated numbers") from None
    if len(vals) != n or not all(math.isfinite(v) for v in vals):
        raise CheckpointError(f"{path}: metadata {key}={text!r} is not {n} comma-separated finite numbers")
    return vals


def _check_model_bounds(path: str, input_size: tuple[int, int], batch: int | None, dim: int | None) -> None:
    """What a model file says of its sizes (metadata or fixed input/output shapes) within the bounds of
    ``reidpipe/limits.py``: a crafted file cannot make the embedder allocate without end."""
    if not all(1 <= s <= MAX_REID_SIDE for s in input_size):
        raise CheckpointError(
            f"{path}: input size {input_size[0]}x{input_size[1]} (its metadata or input shape) is past "
            f"{MAX_REID_SIDE}x{MAX_REID_SIDE}; give --reid-input-size H W"
        )
    if batch is not None and batch > MAX_BATCH:
        raise CheckpointError(f"{path}: a fixed batch of {batch} crops is past {MAX_BATCH}")
    if dim is not None and not 1 <= dim <= MAX_EMBED_DIM:
        raise CheckpointError(f"{path}: an embedding of {dim} dimensions is outside 1-{MAX_EMBED_DIM}")


# Default linking threshold (cosine, after camera centring) for learned ReID embeddings. Measured on
# the real office video with OSNet-x0.25: six different people, pairwise 0.51-0.90 raw, <= 0.65 after
# centring; 0.7 keeps them apart. A model exported by `reidpipe export` may carry its own value in the
# metadata key `reidpipe.link_threshold`.
LEARNED_LINK_THRESHOLD = 0.7


def _check_reid_io(path: str, in_shape: list, input_size: tuple[int, int], out_shape: list) -> None:
    """A ReID model gives one vector per crop: output ``(N, D)`` (or ``(N, D, 1, 1)``); a fixed
    ``(H, W)`` input takes no other size."""
    trailing = [d for d in out_shape[2:] if d != 1]
    if len(out_shape) < 2 or trailing:
        raise CheckpointError(
            f"{path}: output shape {list(out_shape)} is not one embedding per crop (N, D): "
            "not a ReID model (a detector goes to --detector)"
        )
    fixed = tuple(in_shape[2:4]) if all(isinstance(d, int) for d in in_shape[2:4]) else None
    if fixed and fixed != tuple(input_size):
        raise UsageError(
            f"--reid-input-size {input_size[0]} {input_size[1]}: {path} takes a fixed {fixed[0]}x{fixed[1]} input"
        )


class OnnxEmbedder:
    def __init__(
        self,
        path: str,
        *,
        input_size: tuple[int, int] | None = None,
        mean=None,
        std=None,
        color: str | None = None,
        batch: int = 32,
        device: str = "cpu",
        threads: int | None = None,
        backend: str = "onnxruntime",
        openvino_precision: str = "f32",
    ):
        self.path = str(path)
        self.threads = threads  # intra-op threads (None: the runtime's default, one per core)
        self.backend = backend
        # onnxruntime or OpenVINO (--backend), OpenVINO in its --openvino-precision
        self.session = model_session(self.path, device, backend, threads, openvino_precision)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = list(inp.shape)
        if len(shape) != 4:
            raise CheckpointError(f"{self.path}: input {inp.name} has shape {shape}, expected (N, 3, H, W)")
        meta = dict(self.session.get_modelmeta().custom_metadata_map or {})
        self.metadata = meta
        if input_size is None and "reidpipe.input_size" in meta:
            h, w = (int(v) for v in _floats(meta["reidpipe.input_size"], 2, "reidpipe.input_size", path))
            input_size = (h, w)
        if input_size is None:
            if not (isinstance(shape[2], int) and isinstance(shape[3], int)):
                raise UsageError(
                    f"{self.path}: the input size is dynamic and not in the metadata; give --reid-input-size H W"
                )
            input_size = (shape[2], shape[3])
        self.input_size = (int(input_size[0]), int(input_size[1]))
        out = self.session.get_outputs()[0].shape
        fixed_dim = out[-1] if isinstance(out[-1], int) else None
        meta_dim = (
            int(_floats(meta["reidpipe.embed_dim"], 1, "reidpipe.embed_dim", path)[0])
            if "reidpipe.embed_dim" in meta
            else None
        )
        _check_model_bounds(
            self.path, self.input_size, shape[0] if isinstance(shape[0], int) else None, fixed_dim or meta_dim
        )
        _check_reid_io(self.path, shape, self.input_size, self.session.get_outputs()[0].shape)
        self.color = (color or meta.get("reidpipe.color") or "RGB").upper()
        if self.color not in ("RGB", "BGR"):
            raise ConfigError(f"colour order must be RGB or BGR, got {self.color!r} ({self.path})")
        self.mean = (
            tuple(mean)
            if mean is not None
            else (
                _floats(meta["reidpipe.mean"], 3, "reidpipe.mean", path) if "reidpipe.mean" in meta else IMAGENET_MEAN
            )
        )
        self.std = (
            tuple(std)
            if std is not None
            else (_floats(meta["reidpipe.std"], 3, "reidpipe.std", path) if "reidpipe.std" in meta else IMAGENET_STD)
        )
        b = shape[0]
        self.fixed_batch = int(b) if isinstance(b, int) and b > 0 else None
        self.batch = self.fixed_batch or max(1, int(batch))
        self.batch_copy: dict | None = None  # the dynamic-batch copy of a batch-1 model (onnx_batch.py)
        self._original = None  # the batch-1 session, until the copy is checked on the first real crops
        if self.fixed_batch == 1 and batch > 1:
            self._free_batch(device, batch)
        if fixed_dim is not None:
            self.dim = int(fixed_dim)
        elif meta_dim is not None:
            self.dim = meta_dim
        else:
            self.dim = int(self._run(np.zeros((self.batch, 3, *self.input_size), np.float32)).shape[1])
        self.variant = meta.get("reidpipe.variant")
        self.link_threshold = LEARNED_LINK_THRESHOLD
        if "reidpipe.link_threshold" in meta:
            (self.link_threshold,) = _floats(meta["reidpipe.link_threshold"], 1, "reidpipe.link_threshold", path)
            if not -1.0 <= self.link_threshold <= 1.0:
                raise CheckpointError(f"{path}: metadata reidpipe.link_threshold={self.link_threshold} is not a cosine")

    def _free_batch(self, device: str, batch: int) -> None:
        """A batch-1 model embeds through its checked, cached dynamic-batch copy; crop by crop (with a
        warning) when no such copy can be made."""
        try:
            self.batch_copy = dynamic_batch_copy(self.path)
        except CheckpointError as exc:
            warn(f"embedding crop by crop: {exc}")
            return
        self._original = self.session
        self.session = model_session(self.batch_copy["path"], device, self.backend, self.threads)
        self.fixed_batch, self.batch = None, max(1, int(batch))

    def _check_copy(self, x: np.ndarray) -> None:
        """The first real crops: the dynamic-batch copy must give the original's embeddings, else the
        model goes back to crop by crop (with a warning)."""
        original, self._original = self._original, None
        assert self.batch_copy is not None
        figures = parity(original, self.session, x[:4])
        self.batch_copy["real_crops"] = figures
        if not agrees(figures):
            warn(
                f"{self.path}: its dynamic-batch copy {self.batch_copy['path']} disagrees on real crops "
                f"(max abs difference {figures['max_abs_diff']:.3g}, cosine {figures['min_cosine']:.6f}): "
                "embedding crop by crop"
            )
            self.session, self.fixed_batch, self.batch = original, 1, 1

    def _run(self, x: np.ndarray) -> np.ndarray:
        y = np.asarray(self.session.run(None, {self.input_name: x})[0], np.float32).reshape(len(x), -1)
        if not np.isfinite(y).all():
            raise CheckpointError(
                f"{self.path}: the model gave non-finite embeddings (NaN/inf); check "
                "--reid-mean/--reid-std and that this is a ReID model"
            )
        return y

    def embed(self, crops_bgr: list[np.ndarray]) -> np.ndarray:
        if not crops_bgr:
            return np.zeros((0, self.dim), np.float32)
        x = preprocess(crops_bgr, self.input_size, self.mean, self.std, self.color)
        if self._original is not None:
            self._check_copy(x)
        outs = []
        for i in range(0, len(x), self.batch):
            chunk = x[i : i + self.batch]
            n = len(chunk)
            if self.fixed_batch and n < self.fixed_batch:
                chunk = np.concatenate([chunk, np.zeros((self.fixed_batch - n, *chunk.shape[1:]), np.float32)])
            outs.append(self._run(chunk)[:n])
        return l2_normalize(np.concatenate(outs))


class OpenVinoEmbedder:
    """An OpenVINO IR ReID model, pre-processing as the module docstring says."""

    def __init__(
        self,
        path: str,
        *,
        input_size: tuple[int, int] | None = None,
        mean=None,
        std=None,
        color: str | None = None,
        batch: int = 32,
        device: str = "cpu",
        precision: str = "f32",
    ):
        self.path = str(path)
        core, model = _read_openvino(self.path)
        inp = model.inputs[0]
        shape = inp.get_partial_shape()
        if shape.rank.is_dynamic or shape.rank.get_length() != 4:
            raise CheckpointError(f"{self.path}: input {inp.get_any_name()} has shape {shape}, expected (N, 3, H, W)")
        if input_size is None:
            if not (shape[2].is_static and shape[3].is_static):
                raise UsageError(f"{self.path}: the input size is dynamic; give --reid-input-size H W")
            input_size = (shape[2].get_length(), shape[3].get_length())
        self.input_size = (int(input_size[0]), int(input_size[1]))
        _check_model_bounds(self.path, self.input_size, None, None)
        model_color, model_mean, model_std = _openvino_preprocessing(model, self.path)
        self.color = (color or model_color).upper()
        if self.color not in ("RGB", "BGR"):
            raise ConfigError(f"colour order must be RGB or BGR, got {self.color!r} ({self.path})")
        self.mean = tuple(mean) if mean is not None else model_mean
        self.std = tuple(std) if std is not None else model_std
        try:
            model.reshape({inp.get_any_name(): [-1, 3, *self.input_size]})  # dynamic batch
            self.compiled = compile_openvino(core, model, device, precision)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{self.path}: cannot run with input (N, 3, {self.input_size[0]}, "
                f"{self.input_size[1]}) on {device}: {openvino_message(exc)}"
            ) from None
        self.precision = compiled_precision(self.compiled)  # what runs (f32 unless bf16 was asked)
        self.output = self.compiled.outputs[0]
        self.batch = max(1, int(batch))
        last = self.output.get_partial_shape()[-1]
        self.dim = (
            last.get_length()
            if last.is_static
            else int(self._run(np.zeros((1, 3, *self.input_size), np.float32)).shape[1])
        )
        self.link_threshold = LEARNED_LINK_THRESHOLD

    def _run(self, x: np.ndarray) -> np.ndarray:
        y = self.compiled(x)[self.output]
        return np.asarray(y, np.float32).reshape(len(x), -1)

    def embed(self, crops_bgr: list[np.ndarray]) -> np.ndarray:
        if not crops_bgr:
            return np.zeros((0, self.dim), np.float32)
        x = preprocess(crops_bgr, self.input_size, self.mean, self.std, self.color)
        return l2_normalize(np.concatenate([self._run(x[i : i + self.batch]) for i in range(0, len(x), self.batch)]))


def _read_openvino(path: str):
    """(``openvino.Core``, the model read from ``path`` and the ``.bin`` beside it)."""
    try:
        import openvino as ov
    except ImportError:
        raise UsageError(
            f"--reid-weights {path} is an OpenVINO IR model: it needs the optional package openvino "
            "(pip install 'reidpipe[openvino]')"
        ) from None
    weights = Path(path).with_suffix(".bin")
    if not weights.is_file():
        raise InputNotFoundError(
            f"OpenVINO weights not found: {weights} (an IR is {Path(path).name} plus {weights.name} beside it)"
        )
    core = ov.Core()
    try:
        return core, core.read_model(str(path), str(weights))
    except RuntimeError as exc:
        raise CheckpointError(f"not a loadable OpenVINO IR model: {path} ({openvino_message(exc)})") from None


def _openvino_preprocessing(model, path: str) -> tuple[str, tuple[float, ...], tuple[float, ...]]:
    """(colour, mean, std) an IR asks for: the Model API ``model_info`` rt_info keys, else raw BGR 0-255
    (Open Model Zoo IRs normalise inside the graph). ``mean``/``std`` as for :func:`preprocess`."""

    def info(key: str) -> str | None:
        where = ["model_info", key]
        return str(model.get_rt_info(where).astype(str)) if model.has_rt_info(where) else None

    def rgb_values(key: str, rgb: bool) -> tuple[float, ...] | None:
        text = info(key)  # 0-255 units, in the model's channel order ("1 2 3" or "1,2,3")
        if not text:
            return None
        vals = _floats(",".join(text.replace(",", " ").split()), 3, f"model_info.{key}", path)
        return tuple(v / 255 for v in (vals if rgb else vals[::-1]))

    rgb = (info("reverse_input_channels") or "false").strip().lower() in ("true", "1", "yes")
    mean = rgb_values("mean_values", rgb) or (0.0, 0.0, 0.0)
    std = rgb_values("scale_values", rgb) or (1 / 255,) * 3
    return ("RGB" if rgb else "BGR"), mean, std


class CheckpointEmbedder:
    def __init__(self, path: str, *, batch: int = 32, device: str = "auto", input_size=None, mean=None, std=None):
        import torch

        from reidpipe.reid.checkpoint import load_checkpoint

        self.path = str(path)
        if not Path(self.path).exists():
            raise InputNotFoundError(f"ReID checkpoint not found: {self.path}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        model = load_checkpoint(self.path, map_location="cpu")
        model.eval()
        model = model.to(self.device)
        if self.device.type == "cpu":
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        h, w = (int(v) for v in (input_size or model.input_size))
        self.input_size = (h, w)
        self.mean = tuple(mean or model.pixel_mean)
        self.std = tuple(std or model.pixel_std)
        self.dim = int(model.embed_dim)
        self.batch = max(1, int(batch))
        self.color = "RGB"
        self.link_threshold = LEARNED_LINK_THRESHOLD

    def embed(self, crops_bgr: list[np.ndarray]) -> np.ndarray:
        import torch

        if not crops_bgr:
            return np.zeros((0, self.dim), np.float32)
        x = preprocess(crops_bgr, self.input_size, self.mean, self.std, "RGB")
        outs = []
        with torch.inference_mode():
            for i in range(0, len(x), self.batch):
                t = torch.from_numpy(x[i : i + self.batch]).to(self.device)
                if self.device.type == "cuda":
                    with torch.autocast("cuda", dtype=torch.float16):
                        y = self.model.embed(t)
                else:
                    y = self.model.embed(t.contiguous(memory_format=torch.channels_last))
                outs.append(y.float().cpu().numpy())
        return l2_normalize(np.concatenate(outs))


EmbedderBuilder = Callable[["PipelineConfig", str], "Embedder"]  # (config, the checked weights' path)
# the embedder kinds --reid can name; traits: ``suffixes`` (what --reid auto reads from the weights' file
# name), ``releases_gil`` (it computes outside the GIL, so an embed thread runs beside the detector),
# ``weights`` (False: it needs no --reid-weights)
EMBEDDERS: Registry[EmbedderBuilder] = Registry("--reid")


def _crop_settings(config: PipelineConfig) -> dict[str, Any]:
    """What every learned embedder takes from the run's config: crop size, normalisation, batch, device."""
    return {
        "input_size": config.reid_input_size,
        "mean": config.reid_mean,
        "std": config.reid_std,
        "batch": config.embed_batch,
        "device": config.device,
    }


@EMBEDDERS.register("onnx", "an ONNX ReID model on ONNX Runtime or OpenVINO", suffixes=(".onnx",), releases_gil=True)
def _onnx(config: PipelineConfig, weights: str) -> Embedder:
    return OnnxEmbedder(
        weights,
        **_crop_settings(config),
        color=config.reid_color,
        # beside the detector (embed thread), one thread: two pools of one thread per core fight
        # over the cores (measured on 2 cores: pipeline / detector-only 0.92-0.97 vs 0.85-0.90)
        threads=1 if embeds_async(config) else None,
        backend="onnxruntime" if config.backend == "auto" else config.backend,  # auto: the detector's
        openvino_precision=config.openvino_precision,
    )


@EMBEDDERS.register("openvino", "an OpenVINO IR ReID model (model.xml + .bin)", suffixes=(".xml",), releases_gil=True)
def _openvino(config: PipelineConfig, weights: str) -> Embedder:
    return OpenVinoEmbedder(
        weights,
        **_crop_settings(config),
        color=config.reid_color,
        precision=config.openvino_precision,
    )


@EMBEDDERS.register("checkpoint", "a reidpipe checkpoint run by torch", suffixes=CHECKPOINT_EXTS)
def _checkpoint(config: PipelineConfig, weights: str) -> Embedder:
    return CheckpointEmbedder(weights, **_crop_settings(config))


@EMBEDDERS.register("hist", "the weight-free colour/texture descriptor", weights=False)
def _hist(config: PipelineConfig, weights: str) -> Embedder:
    return HistEmbedder()


def embedder_kind(config: PipelineConfig) -> str:
    """The ``EMBEDDERS`` entry a config names: ``--reid``, or with ``auto`` the one whose ``suffixes``
    hold the weights' extension (no weights: ``hist``)."""
    kind = (config.reid or "auto").lower()
    if kind != "auto":
        return EMBEDDERS.entry(kind).name
    if not config.reid_weights:
        return "hist"
    suffix = Path(config.reid_weights).suffix.lower()
    for entry in EMBEDDERS.entries():
        if suffix in entry.traits.get("suffixes", ()):
            return entry.name
    raise UsageError(
        f"--reid-weights {config.reid_weights}: cannot tell the model kind from the extension; "
        "give --reid onnx, --reid openvino or --reid checkpoint"
    )


def embeds_async(config: PipelineConfig) -> bool:
    """Whether a run embeds in an embed thread: ``embed_async``, or by default (None) when the embedder
    releases the GIL while it computes (ONNX Runtime, OpenVINO)."""
    if config.embed_async is not None:
        return bool(config.embed_async)
    return bool(EMBEDDERS.entry(embedder_kind(config)).traits.get("releases_gil"))


def load_embedder(config: PipelineConfig) -> Embedder:
    """The embedder of a :class:`PipelineConfig`, the ``EMBEDDERS`` entry of :func:`embedder_kind`
    ("auto": ``.onnx`` -> ONNX, ``.xml`` -> OpenVINO IR, ``.pt``/``.pth``/``.safetensors`` -> reidpipe
    checkpoint, no weights -> ``hist``)."""
    entry = EMBEDDERS.entry(embedder_kind(config))
    weights = config.reid_weights or ""
    if entry.traits.get("weights", True):
        if not weights:
            raise UsageError(f"--reid {entry.name} needs --reid-weights PATH")
        if not Path(weights).exists():
            raise InputNotFoundError(f"ReID weights not found: {weights}")
    return entry.value(config, weights)
