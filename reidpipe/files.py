"""Atomic file output, shared by every writer in reidpipe (trajectories, metrics, checkpoints, ONNX).

A file is written to a temporary name in its own folder, flushed to disk, then renamed over the
target (``os.replace``), so a reader or a crash never sees half a file and nothing that was there
before is lost on failure. The rename replaces a symbolic link at the target: its target is never
written. A file written as it goes (``events.jsonl``) starts as :func:`fresh_file` for the same reason.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reidpipe.errors import OutputError

_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextmanager
def atomic_output(path: str | os.PathLike, what: str = "") -> Iterator[str]:
    """Yield a temporary path next to ``path``; when the block ends without error the temporary file
    is synced and renamed to ``path``; on any error it is removed. ``OSError`` (in the block or while
    renaming) becomes :class:`OutputError` naming ``path`` (``what`` says what it is, e.g. "checkpoint")."""
    path = Path(path)
    label = f"{what} {path}" if what else str(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write {label} ({exc.strerror or type(exc).__name__})") from None
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {label} ({exc.strerror or type(exc).__name__})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str, what: str = "") -> None:
    with atomic_output(path, what) as tmp:
        Path(tmp).write_text(text)


def fresh_file(path: str | os.PathLike, what: str = "") -> int:
    """A new, empty regular file at ``path`` that replaces whatever was there in one rename (a
    symbolic link is replaced, never followed); returns a descriptor open for writing. ``OSError``
    becomes :class:`OutputError` naming ``path``."""
    path = Path(path)
    label = f"{what} {path}" if what else str(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    except OSError as exc:
        raise OutputError(f"cannot write {label} ({exc.strerror or type(exc).__name__})") from None
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except OSError as exc:
        os.close(fd)
        os.unlink(tmp)
        raise OutputError(f"cannot write {label} ({exc.strerror or type(exc).__name__})") from None
    return fd
