"""Configuration of ``reidpipe run`` (and of ``reidpipe.Pipeline``).

Defaults live here and in ``configs/pipeline.yaml``; CLI flags override them. Grouped by stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SamplerConfig:
    """Quality gate of the crops that get embedded (DESIGN §2, Embedder)."""

    every: int = 5  # embed a track at most every k frames
    bank: int = 10  # keep at most K embeddings per track
    min_height: int = 48  # px
    min_width: int = 16  # px
    min_conf: float = 0.4
    border: int = 4  # px: a box closer than this to the frame edge is cut by it
    max_overlap: float = 0.3  # max fraction of the box covered by another box


@dataclass
class LinkerConfig:
    """Cross-camera linking (DESIGN §2, Linker). Similarities are cosine in [-1, 1]."""

    min_similarity: float = 0.5  # below this a tracklet starts a new identity
    non_overlapping: bool = False  # cameras see disjoint areas: one person cannot be in two at once
    transit: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)  # (camA, camB) -> (min s, max s)
    refine: bool = False  # offline re-clustering of all tracklets at the end
    min_points: int = 3  # tracklets shorter than this are exported but not linked


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
    det_conf: float = 0.3
    det_iou: float = 0.45
    imgsz: int | None = None
    device: str = "auto"  # "cpu", "cuda", "cuda:0", "auto"
    # tracking
    tracker: str = "bytetrack"  # bytetrack | botsort | ocsort | sort
    track_lost_frames: int = 30  # a track unseen for this many processed frames is closed
    # embedding
    reid: str = "auto"  # "hist", "onnx", "checkpoint", or "auto" (from --reid-weights, else hist)
    reid_weights: str | None = None
    reid_input_size: tuple[int, int] | None = None  # (H, W); default from model metadata
    reid_mean: tuple[float, float, float] | None = None
    reid_std: tuple[float, float, float] | None = None
    reid_color: str | None = None  # "RGB" | "BGR"
    embed_batch: int = 32
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    # linking
    link: LinkerConfig = field(default_factory=LinkerConfig)
    # outputs
    output: str = "out"
    save_video: bool = False
    save_mot: bool = False
    progress: bool = True
