"""Absolute time for a gallery: the start time of each source, durations (``--retention 30d``).

Every source of a run with ``--gallery`` gets an absolute start time (seconds since the Unix epoch):
``--start-time`` ISO 8601 per source (``2026-12-01T09:00:00+01:00``; no zone = UTC), else the file's
modification time for a file or image folder, the wall clock for a stream or webcam. The run's *origin*
is the earliest of them; each source is shifted by its start minus the origin (added to ``--offsets``),
so the linker sees every source on one time axis and the gallery stores ``origin + t``.
"""

from __future__ import annotations

import os
import re
import time
from datetime import datetime, timezone

from reidpipe import limits
from reidpipe.pipeline.io.sources import source_kind

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_iso(text: str) -> float | None:
    """Epoch seconds of an ISO 8601 date/time (no zone: UTC), None when it is not one."""
    try:
        dt = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def parse_duration(text: str | float) -> float | None:
    """Seconds of ``30d`` / ``12h`` / ``90m`` / ``45s`` / ``2w`` / a plain number of seconds, at most
    ``limits.MAX_SECONDS``; None if not one."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        m = _DURATION.match(str(text))
        if not m:
            return None
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    return seconds if 0 < seconds <= limits.MAX_SECONDS else None


def iso(t: float) -> str:
    """``t`` (epoch seconds) as ISO 8601 UTC; a time outside the calendar's years 1-9999 (a gallery
    written with a far-future clock) as its number of seconds."""
    try:
        return datetime.fromtimestamp(float(t), tz=timezone.utc).isoformat(timespec="seconds")
    except (OverflowError, ValueError, OSError):
        return f"{float(t):.0f} s after 1970"


def start_times(uris: list[str], given: list[str] | None) -> list[float]:
    """The absolute start time of each source (see the module docstring); the values were checked by
    the config's rule (``validate.py``)."""
    if given is not None:
        out = [parse_iso(g) for g in given]
        assert all(t is not None for t in out)  # validate.py: start_times
        return [float(t) for t in out if t is not None]
    now = time.time()
    # a missing file is reported by the source itself, by its own rule, when it is opened
    return [os.stat(u).st_mtime if source_kind(u) in ("file", "folder") and os.path.exists(u) else now for u in uris]


__all__ = ["iso", "parse_duration", "parse_iso", "start_times"]
