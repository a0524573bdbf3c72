"""Configuration of ``reidpipe run`` (and of ``reidpipe.Pipeline``).

Each setting is declared once, on its field: its default, its rule (``pipeline/validate.py``, bounds
from ``reidpipe/limits.py``) and the flags of ``reidpipe run`` that set it, with their help
(``pipeline/settings.py`` turns these into the command line and the checks). ``configs/pipeline.yaml``
may change the defaults; flags override both. Grouped by stage.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import Any

from reidpipe import limits
from reidpipe.errors import ConfigError, InputNotFoundError, UsageError
from reidpipe.pipeline.engine.track import TRACKERS
from reidpipe.pipeline.gallery.times import parse_duration
from reidpipe.pipeline.models.detect import DETECTORS
from reidpipe.pipeline.models.embed import EMBEDDERS
from reidpipe.pipeline.models.runtime import OPENVINO_PRECISIONS
from reidpipe.pipeline.settings import Flag, nested_class, setting
from reidpipe.pipeline.validate import (
    adjacent,
    boolean,
    camera_names,
    check_config,
    choice,
    device,
    integer,
    interval,
    iso_times,
    nested,
    number,
    numbers,
    offsets,
    optional,
    path,
    path_list,
    registered,
    text,
    transit,
)
from reidpipe.yamlfile import read_yaml_file

SOURCES, DETECTION, TRACKING, REID = "sources", "detection", "tracking", "re-identification"
LINKING, EXECUTION = "cross-camera linking", "execution"
OUTPUTS, GALLERY = "outputs", "gallery (identities that last across runs, docs/gallery.md)"

UNIT = number(0.0, 1.0)  # a confidence, an IoU, a fraction
SECONDS = number(0.0, limits.MAX_SECONDS)
POSITIVE_SECONDS = number(0.0, limits.MAX_SECONDS, optional=True, strict_lo=True)  # or None: no limit


def _adjacent_pairs(items: list[str]) -> list[tuple[str, str]]:
    """``--adjacent A:B ...`` as ``[(A, B)]``; the pairs' rule is ``validate.adjacent``."""
    out = []
    for item in items:
        parts = item.split(":")
        if len(parts) != 2 or not all(parts):
            raise UsageError(f"--adjacent {item!r}: expected CAM_A:CAM_B")
        out.append((parts[0], parts[1]))
    return out


def _transit_windows(items: list[str]) -> dict[tuple[str, str], tuple[float, float]]:
    """``--transit A:B:MIN:MAX ...`` as ``{(A, B): (MIN, MAX)}``; the windows' rule is ``validate.transit``."""
    out = {}
    for item in items:
        parts = item.rsplit(":", 3)
        try:
            if len(parts) != 4:
                raise ValueError
            a, b, lo, hi = parts[0], parts[1], float(parts[2]), float(parts[3])
        except ValueError:
            raise UsageError(f"--transit {item!r}: expected CAM_A:CAM_B:MIN_SECONDS:MAX_SECONDS") from None
        out[(a, b)] = (lo, hi)
    return out


def _interval(text: str) -> int | str:
    """``--detect-every``: ``auto`` or an integer; anything else is kept as typed for the setting's rule
    to name (one line naming the flag)."""
    try:
        return int(text)
    except ValueError:
        return text


def _retention_seconds(age: str) -> float:
    """``--retention 30d`` in seconds."""
    seconds = parse_duration(age)
    if seconds is None:
        raise UsageError(
            f"--retention {age!r}: expected an age such as 30d, 12h, 90m or seconds, at most {limits.MAX_SECONDS:g} s"
        )
    return seconds


@dataclass
class SamplerConfig:
    """Quality gate of the crops that get embedded (docs/design.md §3.4)."""

    every: int = setting(  # embed a track at most every k frames
        5,
        rule=integer(1),
        flags=[Flag("--sample-every", "embed a track at most every K frames (default 5)", REID, "K", type=int)],
    )
    bank: int = setting(  # keep at most K embeddings per track
        10,
        rule=integer(1, limits.MAX_BANK),
        flags=[Flag("--bank-size", "embeddings kept per track (default 10)", REID, "K", type=int)],
    )
    min_height: int = setting(48, rule=integer(0))  # px
    min_width: int = setting(16, rule=integer(0))  # px
    min_conf: float = setting(0.4, rule=UNIT)
    border: int = setting(4, rule=integer(0))  # px: a box closer than this to the frame edge is cut by it
    max_overlap: float = setting(0.3, rule=UNIT)  # max fraction of the box covered by another box


@dataclass
class LinkerConfig:
    """Cross-camera linking (docs/design.md §4). Similarities are cosine in [-1, 1]."""

    # a fixed cosine threshold (``--link-threshold``) instead of decisions calibrated from the run; in
    # [0, 1]: below 0 it would link tracklets whose features point apart
    min_similarity: float | None = setting(
        None,
        rule=number(0.0, 1.0, optional=True),
        flags=[
            Flag(
                "--link-threshold",
                "minimum cosine similarity to link a tracklet to an identity (default: the "
                "embedder's, 0.5 for hist, 0.7 for ReID models)",
                LINKING,
                "COS",
                type=float,
            )
        ],
    )
    # the cosine used where the run holds too little to calibrate (and with ``calibrate`` off); None =
    # the embedder's documented default (its ``link_threshold``: ``descriptors.HistEmbedder.link_threshold``
    # for hist, ``embed.LEARNED_LINK_THRESHOLD`` for learned models, or an exported model's
    # ``reidpipe.link_threshold``), ``link.DEFAULT_FALLBACK_SIMILARITY`` for the Linker alone
    fallback_similarity: float | None = setting(None, rule=number(-1.0, 1.0, optional=True))
    # calibrate decisions from the run's own negatives (ablation: off = fixed fallback)
    calibrate: bool = setting(True, rule=boolean)
    # learn transit times / co-occurrence from confident links (ablation: off)
    transit_evidence: bool = setting(True, rule=boolean)
    # short or sparsely embedded tracklets never drive a link (ablation: off)
    quality_gate: bool = setting(True, rule=boolean)
    min_duration: float = setting(1.0, rule=SECONDS)  # seconds a linkable tracklet lasts at least (quality gate)
    min_crops: int = setting(1, rule=integer(1))  # embedded crops a linkable tracklet pools at least (quality gate)
    non_overlapping: bool = setting(  # cameras see disjoint areas: one person cannot be in two at once
        False,
        rule=boolean,
        flags=[
            Flag(
                "--non-overlapping", "cameras see disjoint areas: nobody is in two cameras at once", LINKING, const=True
            )
        ],
    )
    transit: dict[tuple[str, str], tuple[float, float]] = setting(  # (camA, camB) -> (min s, max s)
        default_factory=dict,
        rule=transit,
        flags=[
            Flag(
                "--transit",
                "transit-time window in seconds from camera A to camera B",
                LINKING,
                "A:B:MIN:MAX",
                nargs="+",
                convert=_transit_windows,
            )
        ],
    )
    # the camera graph (``--adjacent``): the camera pairs a person goes between directly or is seen by
    # at once, either order; None = every pair. An identity's consecutive sightings in two cameras must
    # be such a pair or one with a transit window, and no other pair is compared (constraints.py, rule 3)
    adjacent: list[tuple[str, str]] | None = setting(
        None,
        rule=adjacent,
        flags=[
            Flag(
                "--adjacent",
                "the camera graph: the pairs a person goes between directly (or is seen by at once), either "
                "order; an identity never goes straight between two other cameras, and they are never compared "
                "(default: every pair; a --transit pair counts as adjacent)",
                LINKING,
                "A:B",
                nargs="+",
                convert=_adjacent_pairs,
            )
        ],
    )
    # offline re-decision of all tracklets at the end; None = auto: on when every source is a file or
    # an image folder (the whole recording is there, as offline trackers interpolate), off with a live
    # stream (identities as tracklets close)
    refine: bool | None = setting(
        None,
        rule=optional(boolean),
        flags=[
            Flag(
                "--refine",
                "re-decide all tracklets offline at the end (default when every source is a recording)",
                LINKING,
                const=True,
                exclusive="refine",
            ),
            Flag(
                "--online",
                "keep the identities given as tracklets close (default with a live stream)",
                LINKING,
                const=False,
                exclusive="refine",
            ),
        ],
    )
    min_points: int = setting(3, rule=integer(1))  # tracklets with fewer points are exported but not linked
    # a window declared for (A, B) also applies to B -> A unless (B, A) is given
    transit_symmetric: bool = setting(True, rule=boolean)
    knn: int = setting(10, rule=integer(1, limits.MAX_KNN))  # offline: candidate neighbours per tracklet
    # offline neighbour search: "auto" (faiss if installed), "faiss", "numpy"
    backend: str = setting("auto", rule=choice("auto", "faiss", "numpy"))
    # seconds: an identity's sightings must each be this close to another one; None = no limit
    max_gap: float | None = setting(
        None,
        rule=POSITIVE_SECONDS,
        flags=[
            Flag(
                "--link-window",
                "a tracklet may only join an identity seen within this many seconds (default: no limit)",
                LINKING,
                "SECONDS",
                type=float,
            )
        ],
    )
    # body heights per second a person moves at most between two tracklets of one camera (a brisk run
    # is ~2); faster means two people (pipeline/link/constraints.py, rule 6); None = no limit
    max_speed: float | None = setting(
        3.0,
        rule=number(0.0, optional=True, strict_lo=True),
        flags=[
            Flag(
                "--max-speed",
                "body heights per second a person moves at most between two tracks of one camera: a track "
                "that starts farther from where another ended is someone else (default: 3; 0: no limit)",
                LINKING,
                "HEIGHTS_PER_S",
                type=float,
                convert=lambda v: v or None,  # 0: no limit
            )
        ],
    )
    # subtract each camera's mean tracklet feature (shared lighting/background) before matching
    camera_centering: bool = setting(
        True,
        rule=boolean,
        flags=[
            Flag(
                "--no-camera-centering",
                "compare raw features (default: subtract each camera's mean tracklet feature first, "
                "once the camera has 4 tracklets)",
                LINKING,
                const=False,
            )
        ],
    )
    # offline: cut a track where its appearance changes to another person's (a tracker's identity
    # swap; pipeline/link/split.py); ``--no-split`` / ablation: off
    split: bool = setting(
        True,
        rule=boolean,
        flags=[
            Flag(
                "--no-split",
                "keep every track whole (default: a track whose appearance changes to another person's, "
                "where the tracker swapped two people, is cut there; see docs/linking.md)",
                LINKING,
                const=False,
            )
        ],
    )


@dataclass
class EngineConfig:
    """Where the cameras are processed: ``local`` (this process) or ``ray`` (one actor per group of cameras)."""

    kind: str = setting(
        "local",
        rule=choice("local", "ray"),
        flags=[
            Flag(
                "--engine",
                "local: every camera in this process (default); ray: one Ray actor per camera (or "
                "group), this process links (pip install 'reidpipe[ray]')",
                EXECUTION,
                choices=["local", "ray"],
            )
        ],
    )
    # None: start a local Ray; "auto" or HOST:PORT: join that cluster
    ray_address: str | None = setting(
        None,
        rule=optional(text("a string (auto or HOST:PORT)")),
        flags=[
            Flag(
                "--ray-address",
                "--engine ray: join this Ray cluster (default: start a local Ray)",
                EXECUTION,
                "auto|HOST:PORT",
            )
        ],
    )
    cameras_per_worker: int = setting(  # cameras handled by one Ray actor
        1,
        rule=integer(1),
        flags=[Flag("--cameras-per-worker", "--engine ray: cameras per actor (default 1)", EXECUTION, "N", type=int)],
    )
    worker_cpus: float = setting(  # Ray resources asked per actor
        1.0,
        rule=number(0.0, strict_lo=True),
        flags=[Flag("--worker-cpus", "--engine ray: CPUs asked per actor (default 1)", EXECUTION, "N", type=float)],
    )
    worker_gpus: float = setting(
        0.0,
        rule=number(0.0),
        flags=[Flag("--worker-gpus", "--engine ray: GPUs asked per actor (default 0)", EXECUTION, "N", type=float)],
    )
    # seconds to connect to Ray and to get the actors placed and opened
    start_timeout: float = setting(60.0, rule=number(0.0, limits.MAX_WAIT_SECONDS, strict_lo=True))
    # frames per camera a worker processes per call (what one message carries)
    chunk: int = setting(16, rule=integer(1, limits.MAX_QUEUE))


# the engine settings that mean something only with ``kind: ray``
RAY_ONLY = ("ray_address", "cameras_per_worker", "worker_cpus", "worker_gpus")


@dataclass
class PipelineConfig:
    # sources
    names: list[str] | None = setting(  # camera names, default: file stem / "cam{i}"
        None,
        rule=camera_names,
        flags=[
            Flag(
                "--names",
                "camera names (default: file stem, cam{i} for streams)",
                SOURCES,
                "NAME",
                nargs="+",
                per_source=True,
            )
        ],
    )
    offsets: list[float] | None = setting(  # seconds, per source
        None,
        rule=offsets,
        flags=[
            Flag(
                "--offsets",
                "start-time offset of each source in seconds (aligns cameras)",
                SOURCES,
                "SEC",
                nargs="+",
                type=float,
                per_source=True,
            )
        ],
    )
    stride: int = setting(  # process every N-th frame
        1,
        rule=integer(1),
        flags=[Flag("--stride", "process every N-th frame (default 1)", SOURCES, "N", type=int)],
    )
    max_frames: int | None = setting(  # stop each source after this many frames (read, before stride)
        None,
        rule=integer(1, optional=True),
        flags=[Flag("--max-frames", "stop each source after N frames", SOURCES, "N", type=int)],
    )
    queue_size: int = setting(16, rule=integer(1, limits.MAX_QUEUE))  # bounded queue per reader thread
    reconnect_attempts: int = setting(5, rule=integer(0))
    # seconds, doubled after each failed attempt
    reconnect_backoff: float = setting(0.5, rule=number(0.0, limits.MAX_WAIT_SECONDS))
    # read files and image folders at their frame rate, as live cameras
    pace: bool = setting(
        False,
        rule=boolean,
        flags=[
            Flag(
                "--pace",
                "read video files and image folders at their frame rate, as live cameras: nothing waits for "
                "the pipeline, frames it cannot take in time are dropped and counted (default: every frame)",
                SOURCES,
                const=True,
            )
        ],
    )
    # detection
    detector: str = setting(
        "yolo11n.pt",
        rule=path(),
        flags=[
            Flag(
                "--detector",
                "ultralytics weights (.pt/.onnx/OpenVINO folder) or a YOLOX "
                ".onnx (default yolo11n.pt, downloaded by ultralytics when online)",
                DETECTION,
                "PATH",
            )
        ],
    )
    detector_kind: str | None = setting(  # "ultralytics" | "yolox" | None = infer from the file
        None,
        rule=registered(DETECTORS, None),
        flags=[Flag("--detector-kind", "default: inferred from the file", DETECTION, choices=DETECTORS.names())],
    )
    detections: list[str] | None = setting(  # one MOTChallenge det.txt per source (public detections)
        None,
        rule=path_list,
        flags=[
            Flag(
                "--detections",
                "public detections: one MOTChallenge det.txt per source, in --sources order",
                DETECTION,
                "DET_TXT",
                nargs="+",
                per_source=True,
            )
        ],
    )
    # public detections below this confidence are dropped (None: keep all); ``--conf`` with --detections
    detections_conf: float | None = setting(None, rule=number(0.0, 1.0, optional=True), named_by="--conf")
    # load a detector .pt even if its pickle needs more than an Ultralytics model
    trust_weights: bool = setting(
        False,
        rule=boolean,
        flags=[
            Flag(
                "--trust-weights",
                "load a detector .pt even if its pickle references code outside an Ultralytics model "
                "(runs that code: only for files you made)",
                DETECTION,
                const=True,
            )
        ],
    )
    det_conf: float = setting(
        0.3,
        rule=UNIT,
        flags=[
            Flag(
                "--conf",
                "detector confidence threshold (default 0.3); with "
                "--detections, rows below P are dropped (default: all kept)",
                DETECTION,
                "P",
                type=float,
            )
        ],
    )
    det_iou: float = setting(0.45, rule=UNIT)
    imgsz: int | None = setting(
        None,
        rule=integer(32, limits.MAX_DETECTOR_SIDE, optional=True),
        flags=[
            Flag(
                "--imgsz",
                "detector input size (a multiple of 32; default the model's own, 416 for YOLOX-Nano): "
                "320 or 256 detect 1.8x / 2.9x cheaper at some cost in small people (docs/performance.md)",
                DETECTION,
                "PX",
                type=int,
            )
        ],
    )
    device: str = setting(  # "cpu", "cuda", "cuda:0", "auto"
        "auto",
        rule=device,
        flags=[Flag("--device", "cpu, cuda, cuda:0 or auto (default)", DETECTION, "DEV")],
    )
    # runtime of the ONNX models (YOLOX detector, ReID embedder): onnxruntime | openvino | auto (the
    # detector on the runtime and precision measured fastest here that keep its detections, the
    # embedder on onnxruntime: pipeline/models/runtime_choice.py)
    backend: str = setting(
        "auto",
        rule=choice("auto", "onnxruntime", "openvino"),
        flags=[
            Flag(
                "--backend",
                "runtime of the ONNX models (YOLOX detector, .onnx ReID embedder): auto (default: the YOLOX "
                "detector on the runtime and precision measured fastest on this machine that keep its "
                "detections, cached per machine and model; the embedder on onnxruntime), onnxruntime, or "
                "openvino (reads the same .onnx, CPU)",
                DETECTION,
                choices=["auto", "onnxruntime", "openvino"],
            )
        ],
    )
    # OpenVINO's inference precision (every OpenVINO model): f32 = the model's own numbers on every CPU;
    # bf16 = faster on CPUs with AMX / AVX-512 BF16, embeddings' cosine to f32 ~0.997 (pipeline/models/runtime.py)
    openvino_precision: str = setting(
        "f32",
        rule=choice(*OPENVINO_PRECISIONS),
        flags=[
            Flag(
                "--openvino-precision",
                "OpenVINO's inference precision (--backend openvino, .xml ReID models): f32 (default: the "
                "same numbers on every CPU) or bf16 (faster on CPUs with AMX / AVX-512 BF16; embeddings "
                "differ slightly: cosine to f32 about 0.997)",
                DETECTION,
                choices=list(OPENVINO_PRECISIONS),
            )
        ],
    )
    # run the detector on every K-th processed frame; the tracker predicts the others. "auto": every
    # frame of a recording; for live cameras, the interval the measured load allows (pipeline/engine/cadence.py)
    detect_every: int | str = setting(
        "auto",
        rule=interval,
        flags=[
            Flag(
                "--detect-every",
                "run the detector on every K-th frame only; the tracker predicts the boxes of the frames "
                "in between (default auto: every frame of a recording; for live cameras, the interval this "
                "machine keeps up with, up to detect_every_max = 4)",
                DETECTION,
                "K|auto",
                type=_interval,
            )
        ],
    )
    # the largest interval "auto" chooses; past it, live frames are dropped (counted)
    detect_every_max: int = setting(4, rule=integer(1, limits.MAX_DETECT_EVERY))
    # one detector call for the frames of all cameras of a round (same detections)
    detect_batch: bool = setting(
        True,
        rule=boolean,
        flags=[
            Flag(
                "--no-detect-batch",
                "detect the cameras' frames one by one (default: the frames of one round of all cameras "
                "in one detector call; same detections)",
                DETECTION,
                const=False,
            )
        ],
    )
    # tracking
    tracker: str = setting(
        "bytetrack",
        rule=registered(TRACKERS),
        flags=[Flag("--tracker", "default bytetrack", TRACKING, choices=TRACKERS.names())],
    )
    track_lost_frames: int = setting(  # a track unseen for this many processed frames is closed
        30,
        rule=integer(1),
        flags=[
            Flag(
                "--track-lost-frames",
                "processed frames without a match before a track closes (default 30)",
                TRACKING,
                "N",
                type=int,
            )
        ],
    )
    track_high_conf: float = setting(0.5, rule=UNIT)  # ByteTrack/BoT-SORT/OC-SORT: first-stage threshold
    track_new_conf: float = setting(0.6, rule=UNIT)  # a detection must reach this confidence to start a track
    track_min_hits: int = setting(2, rule=integer(1))  # consecutive matches before a track gets an id
    track_min_iou: float = setting(0.2, rule=UNIT)  # IoU needed to associate a detection with a track
    # a track is output once it lasts this long (shorter: false-positive bursts)
    track_min_seconds: float = setting(1.0, rule=SECONDS)
    # a box less than this share foreground (the camera's background model) is the static background,
    # not a person: no track starts on it, none ends on it (pipeline/engine/track.py, step 4); 0: off
    track_min_foreground: float = setting(0.1, rule=UNIT)
    # a box partly hidden by another person's is grown back to the track's own size (track.py, step 5)
    track_complete_hidden: bool = setting(True, rule=boolean)
    # fill a track's gaps by linear interpolation (points marked interpolated)
    interpolate: bool = setting(
        True,
        rule=boolean,
        flags=[
            Flag(
                "--no-interpolate",
                "output only the detected boxes of a track (default: fill gaps up to "
                "interpolate_max_gap seconds by linear interpolation, points marked interpolated)",
                TRACKING,
                const=False,
            )
        ],
    )
    interpolate_max_gap: float = setting(1.0, rule=SECONDS)  # seconds: longer gaps stay gaps
    # embedding
    # "hist", "onnx", "openvino", "checkpoint", or "auto" (from --reid-weights, else hist)
    reid: str = setting(
        "auto",
        rule=registered(EMBEDDERS, "auto"),
        flags=[
            Flag(
                "--reid",
                "embedder (auto: .onnx -> onnx, .xml -> openvino, .pt/.pth/.safetensors -> checkpoint, none -> hist)",
                REID,
                choices=["auto", *EMBEDDERS.names()],
            )
        ],
    )
    reid_weights: str | None = setting(
        None,
        rule=path(optional=True),
        flags=[
            Flag(
                "--reid-weights",
                "ONNX ReID model, OpenVINO IR (model.xml with model.bin beside it) or reidpipe checkpoint",
                REID,
                "PATH",
            )
        ],
    )
    reid_input_size: tuple[int, int] | None = setting(  # (H, W); default from model metadata
        None,
        rule=numbers(2, integer(1, limits.MAX_REID_SIDE), f"integers from 1 to {limits.MAX_REID_SIDE} (H W)"),
        flags=[
            Flag(
                "--reid-input-size",
                "override the model's input size",
                REID,
                ("H", "W"),
                nargs=2,
                type=int,
                convert=tuple,
            )
        ],
    )
    reid_mean: tuple[float, float, float] | None = setting(
        None,
        rule=numbers(3, number(), "finite numbers (R G B)"),
        flags=[
            Flag(
                "--reid-mean",
                "normalisation mean (after /255)",
                REID,
                ("R", "G", "B"),
                nargs=3,
                type=float,
                convert=tuple,
            )
        ],
    )
    reid_std: tuple[float, float, float] | None = setting(
        None,
        rule=numbers(3, number(0.0, strict_lo=True), "finite numbers > 0 (R G B)"),
        flags=[
            Flag(
                "--reid-std",
                "normalisation std (after /255)",
                REID,
                ("R", "G", "B"),
                nargs=3,
                type=float,
                convert=tuple,
            )
        ],
    )
    reid_color: str | None = setting(  # "RGB" | "BGR"
        None,
        rule=choice(None, "RGB", "BGR"),
        flags=[Flag("--reid-color", "channel order the model expects", REID, choices=["RGB", "BGR"])],
    )
    embed_batch: int = setting(
        32,
        rule=integer(1, limits.MAX_BATCH),
        flags=[Flag("--embed-batch", "crops per embedding batch (default 32)", REID, "N", type=int)],
    )
    # embed in one embed thread, overlapping detection; None = auto: on for ONNX / OpenVINO embedders
    # (they release the GIL), off for torch checkpoints and hist
    embed_async: bool | None = setting(
        None,
        rule=optional(boolean),
        flags=[
            Flag(
                "--no-embed-async",
                "embed in the main thread (default: ONNX / OpenVINO embedders run in an embed thread, "
                "overlapping detection; same features either way)",
                REID,
                const=False,
            )
        ],
    )
    # crops per second of video (all cameras together) embedded at most, best crops first, each tracklet
    # at least one; None = no budget (every crop the sampler chooses is embedded)
    embed_budget: float | None = setting(
        None,
        rule=POSITIVE_SECONDS,
        flags=[
            Flag(
                "--embed-budget",
                "embed at most this many crops per second of video, all cameras together, best crops "
                "first, every tracklet at least one (default: no budget)",
                REID,
                "CROPS_PER_S",
                type=float,
            )
        ],
    )
    sampler: SamplerConfig = setting(default_factory=SamplerConfig, rule=nested(SamplerConfig))
    # linking
    link: LinkerConfig = setting(default_factory=LinkerConfig, rule=nested(LinkerConfig))
    # outputs
    output: str = setting(
        "out",
        rule=path(),
        flags=[Flag("--output", "output folder", OUTPUTS, "DIR", aliases=("-o",), required=True)],
    )
    save_video: bool = setting(
        False, rule=boolean, flags=[Flag("--save-video", "annotated video per camera", OUTPUTS, const=True)]
    )
    save_mot: bool = setting(
        False,
        rule=boolean,
        flags=[Flag("--save-mot", "MOTChallenge txt per camera (global ids)", OUTPUTS, const=True)],
    )
    progress: bool = setting(
        True, rule=boolean, flags=[Flag("--no-progress", "no progress bars", OUTPUTS, const=False)]
    )
    events: bool = setting(True, rule=boolean)  # write events.jsonl
    # keep small JPEG thumbnails of the best embedded crops in <output>/thumbs
    crops: bool = setting(
        True,
        rule=boolean,
        flags=[
            Flag(
                "--no-crops",
                "keep no crop thumbnails (default: thumbs/ holds the best few embedded crops of each "
                "track, for the report)",
                OUTPUTS,
                const=False,
            )
        ],
    )
    # write <output>/report.html at the end of the run (reidpipe report)
    report: bool = setting(
        False,
        rule=boolean,
        flags=[
            Flag(
                "--report",
                "write report.html (reidpipe report) into --output at the end of the run",
                OUTPUTS,
                const=True,
            )
        ],
    )
    # gallery (identities that last across runs: pipeline/gallery/, docs/gallery.md)
    gallery: str | None = setting(  # folder of the persistent gallery; None = identities of this run only
        None,
        rule=path(optional=True),
        flags=[
            Flag(
                "--gallery",
                "persistent gallery: link this run's people to the identities of earlier runs (same global "
                "ids), then add this run's; created when absent; one run at a time",
                GALLERY,
                "DIR",
            )
        ],
    )
    start_times: list[str] | None = setting(  # ISO 8601 start time per source; None = file mtime / wall clock
        None,
        rule=iso_times,
        flags=[
            Flag(
                "--start-time",
                "with --gallery: absolute start time of each source, ISO 8601 (2026-12-01T09:00:00+01:00; no "
                "zone = UTC); default the file's modification time, the wall clock for a stream",
                GALLERY,
                "ISO",
                nargs="+",
                per_source=True,
            )
        ],
    )
    # seconds: identities last seen longer ago are pruned after the run
    retention: float | None = setting(
        None,
        rule=POSITIVE_SECONDS,
        flags=[
            Flag(
                "--retention",
                "with --gallery: after the run, delete identities last seen more than AGE ago (30d, 12h, 90m, seconds)",
                GALLERY,
                "AGE",
                convert=_retention_seconds,
            )
        ],
    )
    # execution
    engine: EngineConfig = setting(default_factory=EngineConfig, rule=nested(EngineConfig))

    def replace(self, **overrides: Any) -> PipelineConfig:
        """A copy with some fields changed; ``sampler`` / ``link`` / ``engine`` accept dicts of their own
        fields. Unknown keys raise ``ConfigError`` naming the key."""
        return _apply(self, overrides, "pipeline")


def _camera_pair(p: Any) -> Any:
    """A camera pair of a config file ("A:B" or [A, B]) as a tuple; anything else as it is (the
    validation names it)."""
    if isinstance(p, str):
        return tuple(p.split(":"))
    return tuple(p) if isinstance(p, (list, tuple)) else p


def _apply(obj: Any, overrides: dict[str, Any], where: str) -> Any:
    declared = {f.name: f for f in fields(obj)}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in declared:
            raise ConfigError(f"unknown {where} config key {key!r}; known keys: {', '.join(sorted(declared))}")
        current = getattr(obj, key)
        if nested_class(declared[key]) is not None and isinstance(value, dict):
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
    check_config(cfg, where=str(p))
    return check_config(_apply(cfg, overrides, "pipeline"))
