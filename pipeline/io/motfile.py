"""Reading MOTChallenge text files (``det.txt`` public detections, ``gt.txt`` ground truth).

One row per line: ``frame, id, x, y, w, h[, conf[, class[, visibility, ...]]]``, frame numbers
1-based, boxes top-left + size in pixels; commas, spaces, tabs or semicolons separate the fields,
blank lines and ``#`` comments are skipped (UTF-8, with or without a BOM). A bad line is a :class:`MalformedInputError` naming
``file:line``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from reidpipe.errors import InputNotFoundError, MalformedInputError
from reidpipe.limits import MAX_FRAME

COLUMNS = ("frame", "id", "x", "y", "w", "h", "conf", "class")


def read_mot(path: str | Path, what: str = "MOT") -> np.ndarray:
    """``(N, 8)`` float64 rows ``frame (1-based), id, x, y, w, h, conf (default 1), class (default 1)``
    in file order. ``what`` names the kind of file in errors ("detections", "ground-truth")."""
    return read_mot_lines(path, what)[0]


def read_mot_lines(path: str | Path, what: str = "MOT") -> tuple[np.ndarray, np.ndarray]:
    """:func:`read_mot` and the 1-based line number of each row (for warnings naming ``file:line``).

    UTF-8 with or without a BOM; commas, spaces, tabs or semicolons separate fields; a byte that is not
    UTF-8 is harmless in a comment and makes its data line a malformed one (named)."""
    p = Path(path)
    if p.is_dir():
        raise InputNotFoundError(f"{what} file {p} is a folder; give the MOTChallenge text file (e.g. {p}/det.txt)")
    if not p.is_file():
        raise InputNotFoundError(f"{what} file not found: {p}")
    try:
        text = p.read_bytes().decode("utf-8-sig", errors="replace")
    except OSError:
        raise MalformedInputError(f"{p}: {what} file is not readable") from None
    rows, lines = [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        rows.append(_row(p, lineno, s))
        lines.append(lineno)
    return np.asarray(rows, np.float64).reshape(-1, 8), np.asarray(lines, np.int64)


def _row(p: Path, lineno: int, s: str) -> list[float]:
    parts = [x for x in re.split(r"[,;\s]+", s) if x != ""]
    try:
        if len(parts) < 6:
            raise ValueError
        vals = [float(v) for v in parts[:8]]
    except ValueError:
        raise MalformedInputError(
            f"{p}:{lineno}: expected 'frame,id,x,y,w,h[,conf,class,...]' (numbers), got {s[:60]!r}"
        ) from None
    vals += [1.0] * (8 - len(vals))  # conf and class default to 1
    if not np.isfinite(vals[:7]).all():
        raise MalformedInputError(f"{p}:{lineno}: frame, id, x, y, w, h and conf must be finite, got {s[:60]!r}")
    if not vals[0].is_integer() or vals[0] < 1:
        raise MalformedInputError(f"{p}:{lineno}: frame must be a whole number >= 1, got {s[:60]!r}")
    if vals[0] > MAX_FRAME:
        raise MalformedInputError(f"{p}:{lineno}: frame {parts[0]} is past the largest frame number read, {MAX_FRAME}")
    if vals[4] <= 0 or vals[5] <= 0:
        raise MalformedInputError(f"{p}:{lineno}: w and h must be > 0, got {s[:60]!r}")
    return vals
