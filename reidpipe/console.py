"""What reidpipe prints on stderr besides its one-line errors.

- :func:`warn` — ``reidpipe: warning: <message>``, one line, written through tqdm so that progress
  bars stay intact.
- :func:`quiet_libraries` — silence the libraries' own logging (FFmpeg inside OpenCV (PyAV's is off
  by default), OpenCV, Python warnings from torch/numpy/...) unless ``--verbose``: what matters is said in
  reidpipe's words instead (e.g. "26 corrupt frames skipped").
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings


def warn(msg: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"reidpipe: warning: {msg}", file=sys.stderr)


def note(msg: str) -> None:
    """``reidpipe: <message>``: one line saying what the run chose (written through tqdm, like warn)."""
    from tqdm import tqdm

    tqdm.write(f"reidpipe: {msg}", file=sys.stderr)


def quiet_libraries(verbose: bool = False) -> None:
    """Keep stderr to reidpipe's own lines; ``verbose`` leaves every library's logging as it is."""
    if verbose:
        return
    # read by OpenCV when its FFmpeg backend starts and by OpenCV's logger: must be set before first use
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    warnings.filterwarnings("ignore")
    for name in ("libav", "ultralytics", "onnxruntime", "torch"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    if "cv2" in sys.modules:  # already imported: its logger reads the level now
        import cv2

        with contextlib.suppress(AttributeError):
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
