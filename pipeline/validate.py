"""The value rules of every pipeline setting: one rule per key, one copy of each rule.

:func:`check_config` applies them to a :class:`PipelineConfig` wherever one is built: by
``load_config`` (a YAML file: :class:`ConfigError` naming the file and key, exit 10), by
``reidpipe run`` / ``bench`` (``config_from_args``: :class:`UsageError` naming the flag, exit 2) and
by ``reidpipe.Pipeline(...)`` (:class:`ConfigError` naming the key). A rule returns what the value
must be, or None when the value is fine; non-finite numbers (NaN, infinity) never pass, and the
upper bounds of ``reidpipe/limits.py`` apply (a value past one would exhaust the machine).
:func:`flag_type` turns a rule into an argparse ``type`` for the flags of the other commands.

:func:`check_runnable` checks what needs the machine (is the ``device`` there?), once, at the start
of a run.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import fields
from typing import Any

from reidpipe import limits
from reidpipe.errors import ConfigError, UsageError
from reidpipe.pipeline.runtime import OPENVINO_PRECISIONS

Rule = Callable[[Any], "str | None"]

# camera names become file names (<name>.txt, <name>.mp4): letters, digits, '.', '_', '-'; no leading '.'
CAMERA_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$")
DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda|cuda:\d+)$")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def integer(lo: int, hi: int | None = None, optional: bool = False) -> Rule:
    span = f">= {lo}" if hi is None else f"from {lo} to {hi}"
    what = f"an integer {span}" + (" (or null)" if optional else "")

    def rule(v: Any) -> str | None:
        if v is None and optional:
            return None
        ok = _is_int(v) and v >= lo and (hi is None or v <= hi)
        return None if ok else f"must be {what}"

    return rule


def flag_type(rule: Rule, parse: Callable[[str], Any] = int) -> Callable[[str], Any]:
    """An argparse ``type`` that parses a flag's text and applies ``rule`` (a bad value is argparse's
    one line naming the flag: ``argument --batch: must be ...``)."""
    import argparse

    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            value = text
        problem = rule(value)
        if problem:
            raise argparse.ArgumentTypeError(f"{problem}, got {text!r}")
        return value

    return convert


def number(
    lo: float | None = None, hi: float | None = None, *, optional: bool = False, strict_lo: bool = False
) -> Rule:
    lo_txt = "" if lo is None else (f" > {lo}" if strict_lo else f" >= {lo}")
    hi_txt = "" if hi is None else f" <= {hi}"
    what = f"a finite number{lo_txt}{' and' if lo_txt and hi_txt else ''}{hi_txt}" + (" (or null)" if optional else "")

    def rule(v: Any) -> str | None:
        if v is None and optional:
            return None
        ok = _is_number(v) and (lo is None or (v > lo if strict_lo else v >= lo)) and (hi is None or v <= hi)
        return None if ok else f"must be {what}"

    return rule


def boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def choice(*options: Any) -> Rule:
    return lambda v: None if v in options else f"must be one of {', '.join(map(str, options))}"


def path(optional: bool = False) -> Rule:
    def rule(v: Any) -> str | None:
        if v is None and optional:
            return None
        ok = isinstance(v, (str, os.PathLike)) and str(v).strip() != ""
        return None if ok else "must be a non-empty path" + (" (or null)" if optional else "")

    return rule


def numbers(count: int, item: Rule, what: str) -> Rule:
    def rule(v: Any) -> str | None:
        if v is None:
            return None
        if not isinstance(v, (list, tuple)) or len(v) != count or any(item(x) for x in v):
            return f"must be {count} {what}"
        return None

    return rule


def camera_names(v: Any) -> str | None:
    if v is None:
        return None
    if not isinstance(v, (list, tuple)):
        return "must be a list of camera names"
    for name in v:
        if not isinstance(name, str) or not CAMERA_NAME_RE.match(name):
            return (
                f"camera name {name!r} is not a safe file name (letters, digits, '.', '_', '-'; "
                "1-64 characters, not starting with '.')"
            )
    if len(set(v)) != len(v):
        return "camera names must be unique"
    return None


def _seconds(v: Any) -> bool:
    return _is_number(v) and abs(v) <= limits.MAX_SECONDS


def offsets(v: Any) -> str | None:
    if v is None:
        return None
    if not isinstance(v, (list, tuple)) or not all(_seconds(x) for x in v):
        return f"must be a list of finite numbers of seconds between -{limits.MAX_SECONDS:g} and {limits.MAX_SECONDS:g}"
    return None


def iso_times(v: Any) -> str | None:
    from reidpipe.pipeline.gallery.times import parse_iso

    if v is None:
        return None
    if not isinstance(v, (list, tuple)) or any(not _seconds(parse_iso(x)) for x in v):
        return (
            "must be a list of ISO 8601 times (2026-12-01T09:00:00+01:00; no zone = UTC) "
            f"within {limits.MAX_SECONDS:g} s of 1970 (years 1654 to 2286)"
        )
    return None


def path_list(v: Any) -> str | None:
    if v is None:
        return None
    if not isinstance(v, (list, tuple)) or any(path()(x) for x in v):
        return "must be a list of file paths"
    return None


def device(v: Any) -> str | None:
    return None if isinstance(v, str) and DEVICE_RE.match(v) else "must be auto, cpu, mps, cuda or cuda:N"


def _shown_pair(pair: Any) -> str:
    return ":".join(map(str, pair)) if isinstance(pair, tuple) else str(pair)


def _is_camera_pair(pair: Any) -> bool:
    return isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(c, str) and c for c in pair)


def transit(v: Any) -> str | None:
    if not isinstance(v, dict):
        return "must map CAM_A:CAM_B to [MIN_SECONDS, MAX_SECONDS]"
    for key, window in v.items():
        pair = _shown_pair(key)
        if not _is_camera_pair(key):
            return f"key {pair!r} must be two camera names CAM_A:CAM_B"
        if key[0] == key[1]:
            return f"{pair}: names one camera twice; a transit is between two different cameras"
        if not (
            isinstance(window, (list, tuple))
            and len(window) == 2
            and all(_seconds(x) for x in window)
            and 0 <= window[0] <= window[1]
        ):
            return (
                f"{pair}: the window must be two finite numbers of seconds with "
                f"0 <= MIN <= MAX <= {limits.MAX_SECONDS:g}, got {window}"
            )
    return None


def adjacent(v: Any) -> str | None:
    if v is None:
        return None
    if not isinstance(v, (list, tuple)) or not v:
        return "must be a list of camera pairs CAM_A:CAM_B"
    for pair in v:
        shown = _shown_pair(pair)
        if not _is_camera_pair(pair):
            return f"{shown!r} must be two camera names CAM_A:CAM_B"
        if pair[0] == pair[1]:
            return f"{shown!r} names one camera twice; a pair is two different cameras"
    return None


def nested(kind: type) -> Rule:
    return lambda v: None if isinstance(v, kind) else f"must be a mapping of {kind.__name__} settings"


def _rules() -> dict[str, Rule]:
    from reidpipe.pipeline.config import EngineConfig, LinkerConfig, SamplerConfig

    unit = number(0.0, 1.0)
    seconds = number(0.0, limits.MAX_SECONDS)
    wait = number(0.0, limits.MAX_WAIT_SECONDS, strict_lo=True)
    return {
        "names": camera_names,
        "offsets": offsets,
        "stride": integer(1),
        "max_frames": integer(1, optional=True),
        "queue_size": integer(1, limits.MAX_QUEUE),
        "reconnect_attempts": integer(0),
        "reconnect_backoff": number(0.0, limits.MAX_WAIT_SECONDS),
        "detector": path(),
        "detector_kind": choice(None, "ultralytics", "yolox"),
        "detections": path_list,
        "detections_conf": number(0.0, 1.0, optional=True),
        "trust_weights": boolean,
        "det_conf": unit,
        "det_iou": unit,
        "imgsz": integer(32, limits.MAX_DETECTOR_SIDE, optional=True),
        "device": device,
        "backend": choice("onnxruntime", "openvino"),
        "openvino_precision": choice(*OPENVINO_PRECISIONS),
        "detect_every": integer(1),
        "detect_batch": boolean,
        "tracker": choice("bytetrack", "botsort", "ocsort", "sort"),
        "track_lost_frames": integer(1),
        "track_high_conf": unit,
        "track_new_conf": unit,
        "track_min_hits": integer(1),
        "track_min_iou": unit,
        "track_min_seconds": seconds,
        "interpolate": boolean,
        "interpolate_max_gap": seconds,
        "reid": choice("auto", "onnx", "openvino", "checkpoint", "hist"),
        "reid_weights": path(optional=True),
        "reid_input_size": numbers(
            2, integer(1, limits.MAX_REID_SIDE), f"integers from 1 to {limits.MAX_REID_SIDE} (H W)"
        ),
        "reid_mean": numbers(3, number(), "finite numbers (R G B)"),
        "reid_std": numbers(3, number(0.0, strict_lo=True), "finite numbers > 0 (R G B)"),
        "reid_color": choice(None, "RGB", "BGR"),
        "embed_batch": integer(1, limits.MAX_BATCH),
        "embed_async": lambda v: None if v is None else boolean(v),
        "embed_budget": number(0.0, limits.MAX_SECONDS, optional=True, strict_lo=True),
        "sampler": nested(SamplerConfig),
        "sampler.every": integer(1),
        "sampler.bank": integer(1, limits.MAX_BANK),
        "sampler.min_height": integer(0),
        "sampler.min_width": integer(0),
        "sampler.min_conf": unit,
        "sampler.border": integer(0),
        "sampler.max_overlap": unit,
        "link": nested(LinkerConfig),
        "link.min_similarity": number(0.0, 1.0, optional=True),
        "link.non_overlapping": boolean,
        "link.transit": transit,
        "link.adjacent": adjacent,
        "link.refine": lambda v: None if v is None else boolean(v),
        "link.min_points": integer(1),
        "link.transit_symmetric": boolean,
        "link.knn": integer(1, limits.MAX_KNN),
        "link.backend": choice("auto", "faiss", "numpy"),
        "link.max_gap": number(0.0, limits.MAX_SECONDS, optional=True, strict_lo=True),
        "link.max_speed": number(0.0, optional=True, strict_lo=True),
        "link.camera_centering": boolean,
        "link.split": boolean,
        "link.fallback_similarity": number(-1.0, 1.0, optional=True),
        "link.calibrate": boolean,
        "link.transit_evidence": boolean,
        "link.quality_gate": boolean,
        "link.min_duration": seconds,
        "link.min_crops": integer(1),
        "engine": nested(EngineConfig),
        "engine.kind": choice("local", "ray"),
        "engine.ray_address": lambda v: None if v is None or isinstance(v, str) else "a string (auto or HOST:PORT)",
        "engine.cameras_per_worker": integer(1),
        "engine.worker_cpus": number(0.0, strict_lo=True),
        "engine.worker_gpus": number(0.0),
        "engine.start_timeout": wait,
        "engine.chunk": integer(1, limits.MAX_QUEUE),
        "output": path(),
        "save_video": boolean,
        "save_mot": boolean,
        "progress": boolean,
        "events": boolean,
        "crops": boolean,
        "report": boolean,
        "gallery": path(optional=True),
        "start_times": iso_times,
        "retention": number(0.0, limits.MAX_SECONDS, optional=True, strict_lo=True),
    }


# the flag of `reidpipe run` that sets each key (errors name the flag the user typed)
FLAGS = {
    "names": "--names",
    "offsets": "--offsets",
    "stride": "--stride",
    "max_frames": "--max-frames",
    "detector": "--detector",
    "detector_kind": "--detector-kind",
    "detections": "--detections",
    "detections_conf": "--conf",
    "trust_weights": "--trust-weights",
    "det_conf": "--conf",
    "device": "--device",
    "backend": "--backend",
    "openvino_precision": "--openvino-precision",
    "detect_every": "--detect-every",
    "imgsz": "--imgsz",
    "tracker": "--tracker",
    "track_lost_frames": "--track-lost-frames",
    "reid": "--reid",
    "reid_weights": "--reid-weights",
    "reid_input_size": "--reid-input-size",
    "reid_mean": "--reid-mean",
    "reid_std": "--reid-std",
    "reid_color": "--reid-color",
    "embed_batch": "--embed-batch",
    "embed_async": "--no-embed-async",
    "embed_budget": "--embed-budget",
    "sampler.every": "--sample-every",
    "sampler.bank": "--bank-size",
    "link.min_similarity": "--link-threshold",
    "link.transit": "--transit",
    "link.adjacent": "--adjacent",
    "link.max_gap": "--link-window",
    "link.max_speed": "--max-speed",
    "output": "--output",
    "engine.kind": "--engine",
    "engine.ray_address": "--ray-address",
    "engine.cameras_per_worker": "--cameras-per-worker",
    "engine.worker_cpus": "--worker-cpus",
    "engine.worker_gpus": "--worker-gpus",
    "gallery": "--gallery",
    "start_times": "--start-time",
    "retention": "--retention",
}


def problems(cfg: Any) -> Iterator[tuple[str, Any, str]]:
    """``(key, value, what it must be)`` for every setting of ``cfg`` that breaks its rule, in field order
    (``sampler.*`` / ``link.*`` for the nested groups)."""
    rules = _rules()
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        problem = rules[f.name](value)
        if problem:
            yield f.name, value, problem
        elif f.name in ("sampler", "link", "engine"):
            for g in fields(value):
                sub = getattr(value, g.name)
                problem = rules[f"{f.name}.{g.name}"](sub)
                if problem:
                    yield f"{f.name}.{g.name}", sub, problem


def _one(value: Any) -> str:
    """A value as the user typed it; quoted when blank or holding a control character (a newline must
    not split the error line)."""
    text = str(value)
    return repr(text) if isinstance(value, str) and (not text.strip() or not text.isprintable()) else text


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):  # a list of values, or of camera pairs
        return " ".join(":".join(map(_one, v)) if isinstance(v, tuple) else _one(v) for v in value)
    if isinstance(value, dict):  # transit windows
        return " ".join(f"{':'.join(map(_one, k))}:{':'.join(map(str, v))}" for k, v in value.items())
    return _one(value)


def check_config(cfg: Any, *, where: str = "", as_flags: bool = False) -> Any:
    """Raise on the first setting that breaks its rule: :class:`UsageError` naming the flag when
    ``as_flags`` (the values came from the command line), else :class:`ConfigError` naming ``where``
    (a file) and the key. Returns ``cfg``."""
    for key, value, problem in problems(cfg):
        if as_flags and key in FLAGS:
            raise UsageError(f"{FLAGS[key]} {_shown(value)}: {problem}")
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}{key}: {problem}, got {value!r}")
    return cfg


def check_runnable(cfg: Any) -> None:
    """What a valid config still needs from this machine: the requested ``device`` must exist."""
    dev = cfg.device
    if dev in ("auto", "cpu"):
        return
    import torch

    if dev == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UsageError("--device mps: this machine has no Apple GPU; use --device cpu or auto")
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(dev.split(":")[1]) if ":" in dev else 0
    if index >= count:
        seen = "no CUDA GPU" if not count else f"{count} CUDA GPU{'s' if count > 1 else ''} (cuda:0..cuda:{count - 1})"
        raise UsageError(f"--device {dev}: this machine has {seen}; use --device cpu or auto")
