"""Reading MOTChallenge text files (``det.txt`` public detections, ``gt.txt`` ground truth).

One row per line: ``frame, id, x, y, w, h[, conf[, class[, visibility, ...]]]``, frame numbers
1-based, boxes top-left + size in pixels; commas, spaces or semicolons separate the fields, blank
lines and ``#`` comments are skipped. A bad line is a :class:`MalformedInputError` naming
``file:line``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reidpipe.errors import InputNotFoundError, MalformedInputError

COLUMNS = ("frame", "id", "x", "y", "w", "h", "conf", "class")


def read_mot(path: str | Path, what: str = "MOT") -> np.ndarray:
    """``(N, 8)`` float64 rows ``frame (1-based), id, x, y, w, h, conf (default 1), class (default 1)``
    in file order. ``what`` names the kind of file in errors ("detections", "ground-truth")."""
    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"{what} file not found: {p}")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError):
        raise MalformedInputError(f"{p}: {what} file is not readable text") from None
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = [x for x in s.replace(";", ",").replace(" ", ",").split(",") if x != ""]
        try:
            if len(parts) < 6:
                raise ValueError
            vals = [float(v) for v in parts[:8]]
        except ValueError:
            raise MalformedInputError(
                f"{p}:{lineno}: expected 'frame,id,x,y,w,h[,conf,class,...]' (numbers), got {s[:60]!r}"
            ) from None
        vals += [1.0] * (8 - len(vals))  # conf and class default to 1
        if vals[0] < 1 or vals[4] <= 0 or vals[5] <= 0 or not np.isfinite(vals[:7]).all():
            raise MalformedInputError(f"{p}:{lineno}: frame must be >= 1 and w, h > 0, got {s[:60]!r}")
        rows.append(vals)
    return np.asarray(rows, np.float64).reshape(-1, 8)
