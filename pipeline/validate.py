"""The value rules of the pipeline settings, and their check.

Each setting's rule is declared on its config field (``pipeline/config.py``, with ``pipeline/settings.py``);
the rule constructors are here. :func:`check_config` applies them to a :class:`PipelineConfig` wherever
one is built: by
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
from dataclasses import Field, fields
from typing import Any

from reidpipe import limits
from reidpipe.errors import ConfigError, UsageError
from reidpipe.pipeline.gallery.times import parse_iso
from reidpipe.pipeline.settings import flag_of, nested_class, rule_of
from reidpipe.registry import Registry

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


def registered(registry: Registry[Any], *also: Any) -> Rule:
    """A name of ``registry`` (read when the rule runs: a kind registered later is valid too), or one
    of ``also``."""

    def rule(v: Any) -> str | None:
        return choice(*also, *registry.names())(v)

    return rule


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


def interval(v: Any) -> str | None:
    """``detect_every``: a fixed interval, or ``auto`` (pipeline/engine/cadence.py)."""
    if v == "auto" or (_is_int(v) and 1 <= v <= limits.MAX_DETECT_EVERY):
        return None
    return f"must be auto or an integer from 1 to {limits.MAX_DETECT_EVERY}"


def nested(kind: type) -> Rule:
    return lambda v: None if isinstance(v, kind) else f"must be a mapping of {kind.__name__} settings"


def optional(rule: Rule) -> Rule:
    """``rule``, or None."""
    return lambda v: None if v is None else rule(v)


def text(what: str) -> Rule:
    return lambda v: None if isinstance(v, str) else what


def problems(cfg: Any, prefix: str = "") -> Iterator[tuple[str, Any, str, Field]]:
    """``(key, value, what it must be, field)`` for every setting of ``cfg`` that breaks its rule, in
    field order (``sampler.*`` / ``link.*`` / ``engine.*`` for the groups, checked when the group itself
    is one)."""
    for f in fields(cfg):
        key, value = prefix + f.name, getattr(cfg, f.name)
        problem = rule_of(f)(value)
        if problem:
            yield key, value, problem, f
        elif nested_class(f) is not None:
            yield from problems(value, f"{key}.")


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
    for key, value, problem, f in problems(cfg):
        flag = flag_of(f)
        if as_flags and flag is not None:
            raise UsageError(f"{flag} {_shown(value)}: {problem}")
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
