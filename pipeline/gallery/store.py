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
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reidpipe.errors import GalleryLockedError, GalleryMismatchError, MalformedInputError, OutputError

SCHEMA = "reidpipe.gallery/1"
DB_NAME = "gallery.db"
LOCK_NAME = "lock"

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
    def from_json(cls, d: dict[str, Any]) -> ModelId:
        return cls(kind=d["kind"], sha256=d["sha256"], dim=int(d["dim"]), settings=dict(d.get("settings") or {}))

    def describe(self) -> str:
        return f"{self.kind} {self.sha256[:12]} ({self.dim}-d)"


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


def unblob(b: bytes | None) -> np.ndarray | None:
    return None if b is None else np.frombuffer(b, np.float32).copy()


class Lock:
    """An exclusive ``flock`` on ``DIR/lock``: released by the kernel when the process ends (even SIGKILL)."""

    def __init__(self, folder: Path):
        self.path = folder / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, folder: str | Path, write: bool = False, create: bool = False) -> Store:
        p = Path(folder)
        if not (p / DB_NAME).exists() and not create:
            from reidpipe.errors import InputNotFoundError

            raise InputNotFoundError(f"no gallery in {p} (no {DB_NAME}); a run with --gallery {p} creates one")
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"gallery folder cannot be created: {p} ({exc.strerror})") from None
        lock = Lock(p) if write else None
        if lock is not None:
            lock.acquire()
        try:
            db = _connect(p / DB_NAME)
            store = cls(p, db, lock)
            store._check_schema(create)
            if write:
                store._abort_stale_runs()
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return store

    def _check_schema(self, create: bool) -> None:
        try:
            if create or self.lock is not None:  # readers never write, not even the schema
                self.db.executescript(_TABLES)
            schema = self.meta("schema")
        except sqlite3.DatabaseError as exc:
            raise MalformedInputError(f"{self.folder / DB_NAME}: not a readable gallery database ({exc})") from None
        if schema is None:
            with self.transaction():
                self.set_meta("schema", SCHEMA)
                self.set_meta("version", "0")
                self.set_meta("next_identity", "1")
        elif schema != SCHEMA:
            raise GalleryMismatchError(f"{self.folder}: gallery schema {schema!r}, this reidpipe reads {SCHEMA!r}")

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

    @property
    def version(self) -> int:
        return int(self.meta("version") or 0)

    # ------------------------------------------------------------------ the model
    @property
    def model(self) -> ModelId | None:
        m = self.meta("model")
        return None if m is None else ModelId.from_json(json.loads(m))

    def check_model(self, model: ModelId, what: str = "this run") -> None:
        """Refuse ``model`` when the gallery was filled by another one (or set it on a new gallery)."""
        have = self.model
        if have is None:
            return
        if (have.kind, have.sha256, have.dim) != (model.kind, model.sha256, model.dim):
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
        return [StoredTracklet(*r[:9], feature=unblob(r[9])) for r in rows]  # type: ignore[misc]

    def camera_means(self) -> dict[str, tuple[np.ndarray, int]]:
        rows = self.db.execute("SELECT name, mean, count FROM cameras").fetchall()
        return {name: (np.frombuffer(m, np.float32).copy(), int(n)) for name, m, n in rows}

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
        first = int(self.meta("next_identity") or 1)
        self.set_meta("next_identity", str(first + n))
        return list(range(first, first + n))


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)  # transactions are explicit
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    return db


__all__ = ["SCHEMA", "ModelId", "Store", "StoredTracklet", "blob", "unblob"]
