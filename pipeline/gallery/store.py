"""The gallery's database (SQLite): identities, tracklets, cameras, runs, the model, one lock.

One folder holds a gallery::

    DIR/gallery.db        SQLite (WAL): every fact; the source of truth
    DIR/identities.faiss  FAISS index of identity embeddings  } derived from the database, rebuilt
    DIR/tracklets.faiss   FAISS index of tracklet embeddings  } when behind it (pipeline/gallery/index.py)
    DIR/lock              held (flock) by the one process that writes: a run, prune, forget

Tables (times are absolute, seconds since the Unix epoch, UTC):

- ``meta(key, value)``: ``schema``, ``version`` (bumped by every write transaction; the indexes
  record the version they reflect), ``next_identity`` (the global id counter), ``model`` (JSON: kind,
  sha256, dim, and the settings to embed a query the same way);
- ``runs(id, started, finished, status, output)``: status ``running`` -> ``done`` (``failed`` when it
  stopped on an error before writing); a run killed before it finished stays ``running`` until the
  next writer marks it ``aborted`` (it wrote nothing else);
- ``cameras(name, mean, count, first_seen, last_seen)``: the running mean tracklet feature of each
  camera (camera centring across runs) and when it was seen;
- ``identities(id, first_seen, last_seen, embedding)``: the global identities, with their
  camera-centred mean feature;
- ``tracklets(id, identity, run, camera, track, start, end, points, crops, weight, feature)``: one
  row per exported track, with its pooled (raw) feature. No image of a person is ever stored.

A run writes everything it learned in ONE transaction at its end: a crash (even SIGKILL) before that
leaves the gallery as it was (plus a ``running`` run row), after it the whole run.

A damaged gallery is refused with one line naming what is wrong (:class:`GalleryDamagedError`, exit
5), never half-read: a file SQLite cannot read, a ``meta`` value out of its rule, a stored vector of
the wrong size or not finite, and any gallery file that is a symbolic link or a folder (SQLite, the
lock and the index writer would follow a link and write elsewhere; a dangling ``gallery.db`` link
would create the database elsewhere). ``reidpipe gallery check`` lists every such problem.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import sqlite3
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reidpipe.errors import (
    GalleryDamagedError,
    GalleryLockedError,
    GalleryMismatchError,
    InputNotFoundError,
    OutputError,
    ReidpipeError,
)

SCHEMA = "reidpipe.gallery/1"
DB_NAME = "gallery.db"
LOCK_NAME = "lock"
INDEX_FILES = ("identities.faiss", "tracklets.faiss", "index.json")  # derived: pipeline/gallery/index.py
FILES = (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", LOCK_NAME, *INDEX_FILES)
MODEL_KINDS = ("hist", "onnx", "openvino", "checkpoint")
MAX_DIM = 65536  # a stored embedding dimension above this is damage, not a model
MAX_ID = 2**53  # global ids stay exact for every JSON reader (float64)
# SQLite's primary result codes that mean the file cannot be opened or written (not that it is damaged)
_CANNOT_WRITE = {
    3: "permission denied",
    5: "busy",
    6: "locked",
    8: "read-only",
    10: "I/O error",
    13: "disk full",
    14: "cannot open",
}

_TABLES = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs(
    id INTEGER PRIMARY KEY, started REAL NOT NULL, finished REAL, status TEXT NOT NULL, output TEXT);
CREATE TABLE IF NOT EXISTS cameras(
    name TEXT PRIMARY KEY, mean BLOB NOT NULL, count INTEGER NOT NULL, first_seen REAL, last_seen REAL);
CREATE TABLE IF NOT EXISTS identities(
    id INTEGER PRIMARY KEY, first_seen REAL NOT NULL, last_seen REAL NOT NULL, embedding BLOB);
CREATE TABLE IF NOT EXISTS tracklets(
    id INTEGER PRIMARY KEY,
    identity INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    run INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    camera TEXT NOT NULL, track INTEGER NOT NULL, start REAL NOT NULL, end REAL NOT NULL,
    points INTEGER NOT NULL, crops INTEGER NOT NULL, weight REAL NOT NULL, feature BLOB);
CREATE INDEX IF NOT EXISTS tracklets_identity ON tracklets(identity);
CREATE INDEX IF NOT EXISTS tracklets_end ON tracklets(end);
CREATE INDEX IF NOT EXISTS identities_last ON identities(last_seen);
"""


@dataclass
class ModelId:
    """Which embedder filled a gallery: a query embedded by any other is refused."""

    kind: str  # hist | onnx | openvino | checkpoint
    sha256: str  # of the weights file(s); "hist" for the weight-free descriptor
    dim: int
    settings: dict[str, Any]  # reid_weights (path as given), input size, mean, std, colour

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "sha256": self.sha256, "dim": self.dim, "settings": self.settings}

    @classmethod
    def from_json(cls, d: Any) -> ModelId:
        """The model of a gallery's ``meta``; ``ValueError`` naming the field that breaks its rule."""
        if not isinstance(d, dict):
            raise ValueError("meta model is not a JSON object")
        kind, sha, dim, settings = d.get("kind"), d.get("sha256"), d.get("dim"), d.get("settings")
        if kind not in MODEL_KINDS:
            raise ValueError(f"meta model kind {kind!r} is not one of {', '.join(MODEL_KINDS)}")
        if not (sha == "hist" or (isinstance(sha, str) and re.fullmatch("[0-9a-f]{64}", sha))):
            raise ValueError(f"meta model sha256 {str(sha)[:80]!r} is not a SHA-256")
        if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= MAX_DIM:
            raise ValueError(f"meta model dim {str(dim)[:80]!r} is not a whole number in [1, {MAX_DIM}]")
        if settings is not None and not isinstance(settings, dict):
            raise ValueError("meta model settings is not a JSON object")
        return cls(kind=kind, sha256=sha, dim=dim, settings=dict(settings or {}))

    def describe(self) -> str:
        """Kind, weights hash and dimension (0: not known yet, before the run's first embedding)."""
        return f"{self.kind} {self.sha256[:12]}" + (f" ({self.dim}-d)" if self.dim else "")


@dataclass
class StoredTracklet:
    id: int
    identity: int
    camera: str
    track: int
    start: float
    end: float
    points: int
    crops: int
    weight: float
    feature: np.ndarray | None


def blob(x: np.ndarray | None) -> bytes | None:
    return None if x is None else np.asarray(x, np.float32).ravel().tobytes()


def unblob(b: bytes | None, dim: int | None = None) -> np.ndarray | None:
    """A stored vector; ``ValueError`` saying why when it is not ``dim`` finite float32 values."""
    if b is None:
        return None
    if not isinstance(b, bytes) or len(b) % 4 or (dim is not None and len(b) != 4 * dim):
        size = len(b) if isinstance(b, bytes) else type(b).__name__
        raise ValueError(f"holds {size} bytes, not {dim or 'whole'} float32 values")
    v = np.frombuffer(b, np.float32).copy()
    if not np.isfinite(v).all():
        raise ValueError("holds a value that is not finite")
    return v


def foreign_files(folder: Path) -> list[str]:
    """The gallery's files in ``folder`` that are there but are not regular files (a symbolic link, a
    folder): SQLite, the lock and the index writer would follow a link and write elsewhere."""
    found = []
    for name in FILES:
        try:
            mode = os.lstat(folder / name).st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            found.append(f"{folder / name} cannot be read ({exc.strerror})")
            continue
        if stat.S_ISLNK(mode):
            found.append(f"{folder / name} is a symbolic link")
        elif stat.S_ISDIR(mode):
            found.append(f"{folder / name} is a folder")
        elif not stat.S_ISREG(mode):
            found.append(f"{folder / name} is not a regular file")
    return found


def database_error(folder: Path, exc: sqlite3.Error) -> ReidpipeError:
    """An SQLite error as one line: the file cannot be opened or written (exit 6), else damaged (exit 5)."""
    code = getattr(exc, "sqlite_errorcode", None)
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if code is not None and code & 0xFF in _CANNOT_WRITE:
        return OutputError(f"gallery database {folder / DB_NAME} cannot be opened or written ({first})")
    return GalleryDamagedError(f"gallery {folder} is damaged: {DB_NAME} cannot be read ({first})")


@contextlib.contextmanager
def database_errors(folder: str | Path) -> Iterator[None]:
    """Within the block an SQLite error is a one-line :class:`ReidpipeError` naming the gallery."""
    try:
        yield
    except sqlite3.Error as exc:
        raise database_error(Path(folder), exc) from None


class Lock:
    """An exclusive ``flock`` on ``DIR/lock``: released by the kernel when the process ends (even SIGKILL)."""

    def __init__(self, folder: Path):
        self.path = folder / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> None:
        try:  # never through a link: the lock file is the gallery's own
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise GalleryDamagedError(
                    f"gallery {self.path.parent} is damaged: {self.path} is a symbolic link"
                ) from None
            raise OutputError(f"cannot open the gallery lock {self.path} ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise GalleryLockedError(
                f"gallery {self.path.parent} is in use by another process (pid {holder}); "
                "wait for it to finish (one writer at a time)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


class Store:
    """The database of one gallery folder. ``Store.open(DIR, write=True)`` takes the lock (a second
    writer gets ``GalleryLockedError``); readers (search, info) never wait for a writer (WAL)."""

    def __init__(self, folder: Path, db: sqlite3.Connection, lock: Lock | None):
        self.folder = folder
        self.db = db
        self.lock = lock
        self._model: tuple[str | None, ModelId | None] | None = None  # (meta text, parsed)

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, folder: str | Path, write: bool = False, create: bool = False, strict: bool = True) -> Store:
        """Open a gallery (``write``: take its lock; ``create``: make it when absent). A damaged gallery
        is refused (``GalleryDamagedError``) unless ``strict`` is False (``gallery check``, which lists
        the damage itself); a gallery file that is a link or a folder is refused always."""
        p = Path(folder)
        foreign = foreign_files(p)
        if foreign and (strict or any(f.startswith(str(p / DB_NAME)) for f in foreign)):
            raise GalleryDamagedError(f"gallery {p} is damaged: {'; '.join(foreign)} (a gallery's files are its own)")
        if not (p / DB_NAME).exists() and not create:
            raise InputNotFoundError(f"no gallery in {p} (no {DB_NAME}); a run with --gallery {p} creates one")
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"gallery folder cannot be created: {p} ({exc.strerror})") from None
        lock = Lock(p) if write else None
        if lock is not None:
            lock.acquire()
        try:
            with database_errors(p):
                store = cls(p, _connect(p / DB_NAME), lock)
                store._check_schema(create)
                if strict:
                    store._check_meta()
                if write:
                    store._abort_stale_runs()
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return store

    def _check_schema(self, create: bool) -> None:
        if create or self.lock is not None:  # readers never write, not even the schema
            self.db.executescript(_TABLES)
        schema = self.meta("schema")
        if schema is None:
            with self.transaction():
                self.set_meta("schema", SCHEMA)
                self.set_meta("version", "0")
                self.set_meta("next_identity", "1")
        elif schema != SCHEMA:
            raise GalleryMismatchError(f"{self.folder}: gallery schema {schema!r}, this reidpipe reads {SCHEMA!r}")

    def _check_meta(self) -> None:
        problems = self.meta_problems()
        if problems:
            raise self.damaged("; ".join(problems))

    def meta_problems(self) -> list[str]:
        """The ``meta`` values that break their rule (empty: sound)."""
        problems = []
        for check in (lambda: self.version, lambda: self.next_identity, lambda: self.model):
            try:
                check()
            except GalleryDamagedError as exc:
                problems.append(exc.reason)  # type: ignore[attr-defined]
        return problems

    def damaged(self, reason: str) -> GalleryDamagedError:
        err = GalleryDamagedError(f"gallery {self.folder} is damaged: {reason}")
        err.reason = reason  # type: ignore[attr-defined]
        return err

    def _abort_stale_runs(self) -> None:
        """Runs still ``running`` when a writer holds the lock were killed: they wrote nothing else."""
        with self.transaction():
            self.db.execute("UPDATE runs SET status='aborted' WHERE status='running'")

    def close(self) -> None:
        self.db.close()
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ transactions and meta
    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (all or nothing); bumps ``version`` when it wrote."""
        self.db.execute("BEGIN IMMEDIATE")
        before = self.db.total_changes
        try:
            yield self.db
            if self.db.total_changes > before:
                self.db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='version'")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, value))

    def _whole_meta(self, key: str, low: int) -> int:
        text = self.meta(key)
        if text is None or not re.fullmatch(r"\d{1,16}", text.strip()) or not low <= int(text) <= MAX_ID:
            raise self.damaged(f"meta {key} {str(text)[:80]!r} is not a whole number in [{low}, 2^53]")
        return int(text)

    @property
    def version(self) -> int:
        return self._whole_meta("version", 0)

    @property
    def next_identity(self) -> int:
        return self._whole_meta("next_identity", 1)

    # ------------------------------------------------------------------ the model
    @property
    def model(self) -> ModelId | None:
        text = self.meta("model")
        if self._model is None or self._model[0] != text:
            try:
                parsed = None if text is None else ModelId.from_json(json.loads(text))
            except ValueError as exc:  # JSONDecodeError included
                raise self.damaged(str(exc) if "meta model" in str(exc) else "meta model is not JSON") from None
            self._model = (text, parsed)
        return self._model[1]

    def vector(self, b: bytes | None, what: str) -> np.ndarray | None:
        """A stored vector (``what`` names it: ``tracklets row 5 feature``), checked against the
        gallery's model: ``dim`` finite float32 values, else the gallery is damaged."""
        model = self.model
        try:
            return unblob(b, model.dim if model is not None else None)
        except ValueError as exc:
            raise self.damaged(f"{what} {exc}") from None

    def check_model(self, model: ModelId, what: str = "this run") -> None:
        """Refuse ``model`` when the gallery was filled by another one (or set it on a new gallery)."""
        have = self.model
        if have is None:
            return
        same_dim = have.dim == model.dim or not model.dim
        if (have.kind, have.sha256) != (model.kind, model.sha256) or not same_dim:
            raise GalleryMismatchError(
                f"gallery {self.folder} holds embeddings of {have.describe()}; {what} uses "
                f"{model.describe()} (use the gallery's model or another gallery)"
            )

    # ------------------------------------------------------------------ reading
    def tracklets(self, where: str = "1", args: tuple = ()) -> list[StoredTracklet]:
        rows = self.db.execute(
            "SELECT id, identity, camera, track, start, end, points, crops, weight, feature FROM tracklets "
            f"WHERE {where} ORDER BY start, id",
            args,
        ).fetchall()
        return [
            StoredTracklet(*r[:9], feature=self.vector(r[9], f"tracklets row {r[0]} feature"))  # type: ignore[misc]
            for r in rows
        ]

    def camera_means(self) -> dict[str, tuple[np.ndarray, int]]:
        rows = self.db.execute("SELECT name, mean, count FROM cameras").fetchall()
        means = {}
        for name, m, n in rows:
            mean = self.vector(m, f"cameras row {str(name)[:80]!r} mean")
            if mean is None or isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise self.damaged(f"cameras row {str(name)[:80]!r} has no mean or a count {n!r} that is not >= 0")
            means[str(name)] = (mean, n)
        return means

    def bad_vectors(self, limit: int = 5) -> list[str]:
        """Stored vectors that break the rule of :meth:`vector` (at most ``limit`` named; empty: sound).
        Reads every vector once."""
        problems = []
        for table, key, column in (
            ("tracklets", "id", "feature"),
            ("identities", "id", "embedding"),
            ("cameras", "name", "mean"),
        ):
            for k, b in self.db.execute(f"SELECT {key}, {column} FROM {table}"):  # noqa: S608 (fixed names)
                try:
                    self.vector(b, "")
                except GalleryDamagedError as exc:
                    problems.append(f"{table} row {k!r} {column}{exc.reason}")  # type: ignore[attr-defined]
        more = [f"{len(problems) - limit} more vectors like these"] if len(problems) > limit else []
        return problems[:limit] + more

    def count(self, table: str) -> int:
        return int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608 (fixed names)

    def integrity(self) -> list[str]:
        """Problems found (empty: sound): SQLite's own check, foreign keys, identities without tracklets."""
        problems = [r[0] for r in self.db.execute("PRAGMA integrity_check").fetchall() if r[0] != "ok"]
        problems += [f"dangling reference in {r[0]}" for r in self.db.execute("PRAGMA foreign_key_check").fetchall()]
        empty = self.db.execute(
            "SELECT COUNT(*) FROM identities WHERE id NOT IN (SELECT identity FROM tracklets)"
        ).fetchone()[0]
        if empty:
            problems.append(f"{empty} identities without tracklets")
        return problems

    # ------------------------------------------------------------------ writing
    def begin_run(self, output: str) -> int:
        with self.transaction():
            cur = self.db.execute(
                "INSERT INTO runs(started, status, output) VALUES(?, 'running', ?)", (time.time(), output)
            )
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def set_run_status(self, run: int, status: str) -> None:
        self.db.execute("UPDATE runs SET status=?, finished=? WHERE id=?", (status, time.time(), run))

    def new_identity_ids(self, n: int) -> list[int]:
        """``n`` fresh global ids from the counter (inside the caller's transaction)."""
        first = self.next_identity
        self.set_meta("next_identity", str(first + n))
        return list(range(first, first + n))


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)  # transactions are explicit
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    return db


__all__ = [
    "SCHEMA",
    "ModelId",
    "Store",
    "StoredTracklet",
    "blob",
    "database_error",
    "database_errors",
    "foreign_files",
    "unblob",
]
