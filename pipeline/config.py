"""Configuration of ``reidpipe run`` (and of ``reidpipe.Pipeline``).

Defaults live here and in ``configs/pipeline.yaml``; CLI flags override them. Grouped by stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import Any


@dataclass
class SamplerConfig:
    """Quality gate of the crops that get embedded (docs/design.md §3.4)."""

    every: int = 5  # embed a track at most every k frames
    bank: int = 10  # keep at most K embeddings per track
    min_height: int = 48  # px
    min_width: int = 16  # px
    min_conf: float = 0.4
    border: int = 4  # px: a box closer than this to the frame edge is cut by it
    max_overlap: float = 0.3  # max fraction of the box covered by another box


@dataclass
class LinkerConfig:
    """Cross-camera linking (docs/design.md §4). Similarities are cosine in [-1, 1]."""

    # a fixed cosine threshold (``--link-threshold``) instead of decisions calibrated from the run
    min_similarity: float | None = None
    # the cosine used where the run holds too little to calibrate (and with ``calibrate`` off); None =
    # the embedder's documented default (``link_threshold``: 0.5 for hist, 0.5 for learned models after
    # camera centring, or an exported model's ``reidpipe.link_threshold``), 0.5 for the Linker alone
    fallback_similarity: float | None = None
    calibrate: bool = True  # calibrate decisions from the run's own negatives (ablation: off = fixed fallback)
    transit_evidence: bool = True  # learn transit times / co-occurrence from confident links (ablation: off)
    quality_gate: bool = True  # short or sparsely embedded tracklets never drive a link (ablation: off)
    min_duration: float = 1.0  # seconds a linkable tracklet lasts at least (quality gate)
    min_crops: int = 1  # embedded crops a linkable tracklet pools at least (quality gate)
    non_overlapping: bool = False  # cameras see disjoint areas: one person cannot be in two at once
    transit: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)  # (camA, camB) -> (min s, max s)
    # the camera graph (``--adjacent``): the camera pairs a person goes between directly or is seen by
    # at once, either order; None = every pair. An identity's consecutive sightings in two cameras must
    # be such a pair or one with a transit window, and no other pair is compared (constraints.py, rule 3)
    adjacent: list[tuple[str, str]] | None = None
    # offline re-decision of all tracklets at the end; None = auto: on when every source is a file or
    # an image folder (the whole recording is there, as offline trackers interpolate), off with a live
    # stream (identities as tracklets close)
    refine: bool | None = None
    min_points: int = 3  # tracklets with fewer points are exported but not linked
    transit_symmetric: bool = True  # a window declared for (A, B) also applies to B -> A unless (B, A) is given
    knn: int = 10  # offline: candidate neighbours per tracklet
    backend: str = "auto"  # offline neighbour search: "auto" (faiss if installed), "faiss", "numpy"
    max_gap: float | None = (
        None  # seconds: an identity's sightings must each be this close to another one; None = no limit
    )
    # body heights per second a person moves at most between two tracklets of one camera (a brisk run
    # is ~2); faster means two people (pipeline/link/constraints.py, rule 6); None = no limit
    max_speed: float | None = 3.0
    camera_centering: bool = (
        True  # subtract each camera's mean tracklet feature (shared lighting/background) before matching
    )
    # offline: cut a track where its appearance changes to another person's (a tracker's identity
    # swap; pipeline/link/split.py); ``--no-split`` / ablation: off
    split: bool = True


@dataclass
class EngineConfig:
    """Where the cameras are processed: ``local`` (this process) or ``ray`` (one actor per group of cameras)."""

    kind: str = "local"  # "local" | "ray"
    ray_address: str | None = None  # None: start a local Ray; "auto" or HOST:PORT: join that cluster
    cameras_per_worker: int = 1  # cameras handled by one Ray actor
    worker_cpus: float = 1.0  # Ray resources asked per actor
    worker_gpus: float = 0.0
    start_timeout: float = 60.0  # seconds to connect to Ray and to get the actors placed and opened
    chunk: int = 16  # frames per camera a worker processes per call (what one message carries)


@dataclass
class PipelineConfig:
    # sources
    names: list[str] | None = None  # camera names, default: file stem / "cam{i}"
    offsets: list[float] | None = None  # seconds, per source
    stride: int = 1  # process every N-th frame
    max_frames: int | None = None  # stop each source after this many frames (read, before stride)
    queue_size: int = 16  # bounded queue per reader thread
    reconnect_attempts: int = 5
    reconnect_backoff: float = 0.5  # seconds, doubled after each failed attempt
    # detection
    detector: str = "yolo11n.pt"
    detector_kind: str | None = None  # "ultralytics" | "yolox" | None = infer from the file
    detections: list[str] | None = None  # one MOTChallenge det.txt per source (public detections)
    detections_conf: float | None = None  # public detections below this confidence are dropped (None: keep all)
    trust_weights: bool = False  # load a detector .pt even if its pickle needs more than an Ultralytics model
    det_conf: float = 0.3
    det_iou: float = 0.45
    imgsz: int | None = None
    device: str = "auto"  # "cpu", "cuda", "cuda:0", "auto"
    backend: str = "onnxruntime"  # runtime of the ONNX models (YOLOX detector, ReID embedder): onnxruntime | openvino
    # OpenVINO's inference precision (every OpenVINO model): f32 = the model's own numbers on every CPU;
    # bf16 = faster on CPUs with AMX / AVX-512 BF16, embeddings' cosine to f32 ~0.997 (pipeline/runtime.py)
    openvino_precision: str = "f32"
    detect_every: int = 1  # run the detector on every K-th processed frame; the tracker predicts the others
    detect_batch: bool = True  # one detector call for the frames of all cameras of a round (same detections)
    # tracking
    tracker: str = "bytetrack"  # bytetrack | botsort | ocsort | sort
    track_lost_frames: int = 30  # a track unseen for this many processed frames is closed
    track_high_conf: float = 0.5  # ByteTrack/BoT-SORT/OC-SORT: first-stage (high-confidence) threshold
    track_new_conf: float = 0.6  # a detection must reach this confidence to start a new track
    track_min_hits: int = 2  # consecutive matches before a track gets an id
    track_min_iou: float = 0.2  # IoU needed to associate a detection with a track
    track_min_seconds: float = 1.0  # a track is output once it lasts this long (shorter: false-positive bursts)
    interpolate: bool = True  # fill a track's gaps by linear interpolation (points marked interpolated)
    interpolate_max_gap: float = 1.0  # seconds: longer gaps stay gaps
    # embedding
    reid: str = "auto"  # "hist", "onnx", "openvino", "checkpoint", or "auto" (from --reid-weights, else hist)
    reid_weights: str | None = None
    reid_input_size: tuple[int, int] | None = None  # (H, W); default from model metadata
    reid_mean: tuple[float, float, float] | None = None
    reid_std: tuple[float, float, float] | None = None
    reid_color: str | None = None  # "RGB" | "BGR"
    embed_batch: int = 32
    # embed in one embed thread, overlapping detection; None = auto: on for ONNX / OpenVINO embedders
    # (they release the GIL), off for torch checkpoints and hist
    embed_async: bool | None = None
    # crops per second of video (all cameras together) embedded at most, best crops first, each tracklet
    # at least one; None = no budget (every crop the sampler chooses is embedded)
    embed_budget: float | None = None
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    # linking
    link: LinkerConfig = field(default_factory=LinkerConfig)
    # outputs
    output: str = "out"
    save_video: bool = False
    save_mot: bool = False
    progress: bool = True
    events: bool = True  # write events.jsonl
    crops: bool = True  # keep small JPEG thumbnails of the best embedded crops in <output>/thumbs
    report: bool = False  # write <output>/report.html at the end of the run (reidpipe report)
    # gallery (identities that last across runs: pipeline/gallery/, docs/gallery.md)
    gallery: str | None = None  # folder of the persistent gallery; None = identities of this run only
    start_times: list[str] | None = None  # ISO 8601 start time per source; None = file mtime / wall clock
    retention: float | None = None  # seconds: identities last seen longer ago are pruned after the run
    # execution
    engine: EngineConfig = field(default_factory=EngineConfig)

    def replace(self, **overrides: Any) -> PipelineConfig:
        """A copy with some fields changed; ``sampler`` / ``link`` accept dicts of their own fields.
        Unknown keys raise ``ConfigError`` naming the key."""
        return _apply(self, overrides, "pipeline")


_NESTED = {"sampler": SamplerConfig, "link": LinkerConfig, "engine": EngineConfig}


def _camera_pair(p: Any) -> Any:
    """A camera pair of a config file ("A:B" or [A, B]) as a tuple; anything else as it is (the
    validation names it)."""
    if isinstance(p, str):
        return tuple(p.split(":"))
    return tuple(p) if isinstance(p, (list, tuple)) else p


def _apply(obj: Any, overrides: dict[str, Any], where: str) -> Any:
    from reidpipe.errors import ConfigError

    names = {f.name for f in fields(obj)}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in names:
            raise ConfigError(f"unknown {where} config key {key!r}; known keys: {', '.join(sorted(names))}")
        current = getattr(obj, key)
        if key in _NESTED and isinstance(value, dict):
            value = _apply(current, value, key)
        elif key == "transit" and isinstance(value, dict):
            value = {_camera_pair(k): tuple(v) if isinstance(v, (list, tuple)) else v for k, v in value.items()}
        elif key == "adjacent" and isinstance(value, (list, tuple)):
            value = [_camera_pair(p) for p in value]
        changes[key] = value
    return dc_replace(obj, **changes)


def default_config_path() -> Path:
    """The shipped defaults, ``reidpipe/configs/pipeline.yaml``."""
    return _configs_dir() / "pipeline.yaml"


def _configs_dir() -> Path:
    import reidpipe.configs

    return Path(reidpipe.configs.__file__).resolve().parent


def load_config(path: str | Path | None = None, **overrides: Any) -> PipelineConfig:
    """Read a pipeline YAML (default: the shipped ``configs/pipeline.yaml``) over the dataclass
    defaults, then apply ``overrides``. A bad file, key or value (:mod:`reidpipe.pipeline.validate`)
    raises ``ConfigError`` naming it."""
    from reidpipe.errors import ConfigError, InputNotFoundError
    from reidpipe.yamlfile import read_yaml_file

    p = Path(path) if path is not None else default_config_path()
    data: dict[str, Any] = {}
    if p.exists():
        data = read_yaml_file(p) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: expected a mapping of pipeline settings at the top level")
    elif path is not None:
        raise InputNotFoundError(f"config file not found: {p}")
    try:
        cfg = _apply(PipelineConfig(), data, f"pipeline ({p.name})")
    except TypeError as exc:
        raise ConfigError(f"{p}: {exc}") from None
    from reidpipe.pipeline.validate import check_config

    check_config(cfg, where=str(p))
    return check_config(_apply(cfg, overrides, "pipeline"))
