"""One run's use of a gallery (``reidpipe run --gallery DIR``), in the order the runner calls it:

session = GallerySession.open(config, uris)   lock, run row, the model checked, start times
session.offsets                               per-source offsets that put sources on one axis
session.prime(linker, sources)                gallery tracklets near the run -> the linker
session.assign(identities, run_tracklets)     global ids (reads the gallery, writes nothing)
   ... the runner writes the run's outputs with those ids ...
session.store_run()                           the run written (one transaction), then the indexes
session.close()                               lock released (also after a failure)

``commit`` is ``assign`` then ``store_run``. The runner writes its outputs between the two, so that a
gallery that fails to take the run never costs the run's ``trajectories.json``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reidpipe.console import warn
from reidpipe.errors import UsageError
from reidpipe.pipeline.gallery import crossrun
from reidpipe.pipeline.gallery.index import Indexes
from reidpipe.pipeline.gallery.retention import prune
from reidpipe.pipeline.gallery.store import MAX_ID, ModelId, Store, StoredTracklet, blob, database_errors
from reidpipe.pipeline.gallery.times import start_times
from reidpipe.pipeline.io.export import order_identities
from reidpipe.pipeline.link.features import MIN_CENTER, unit
from reidpipe.pipeline.models.embed import embedder_kind
from reidpipe.pipeline.types import Identity, SourceInfo, Tracklet


def model_id(config, dim: int = 0) -> ModelId:
    """The identity of the run's embedder: kind, SHA-256 of its weights (an OpenVINO model's ``.xml``
    and ``.bin``), and the settings a query must be embedded with."""
    kind = embedder_kind(config)
    settings: dict[str, Any] = {
        "reid": kind,
        "reid_weights": str(Path(config.reid_weights).resolve()) if config.reid_weights else None,
        "reid_input_size": list(config.reid_input_size) if config.reid_input_size else None,
        "reid_mean": list(config.reid_mean) if config.reid_mean else None,
        "reid_std": list(config.reid_std) if config.reid_std else None,
        "reid_color": config.reid_color,
    }
    return ModelId(kind=kind, sha256=weights_sha256(config.reid_weights, kind), dim=int(dim), settings=settings)


def weights_sha256(path: str | None, kind: str) -> str:
    if kind == "hist" or not path:
        return "hist"
    files = [Path(path)]
    if kind == "openvino":
        files.append(Path(path).with_suffix(".bin"))
    h = hashlib.sha256()
    for f in files:
        if f.exists():
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


class GallerySession:
    def __init__(self, store: Store, config, uris: list[str]):
        self.store = store
        self.config = config
        self.model = model_id(config)
        self.starts = start_times(uris, config.start_times)
        self.origin = min(self.starts)
        self.run_id = store.begin_run(str(Path(str(config.output)).resolve()))
        self.primed: dict[tuple[str, int], int] = {}  # linker key of a gallery tracklet -> stored identity
        self.indexes: Indexes | None = None
        self.written: dict[str, int] = {}
        self.fallback = 0.5  # the linker's fallback cosine (the embedder's), known once primed
        self.committed = False
        self.assigned = False  # ``assign`` gave the run's identities their global ids
        self._plan: _Plan | None = None  # what ``assign`` decided, for ``store_run`` to write

    @classmethod
    def open(cls, config, uris: list[str]) -> GallerySession:
        if config.start_times is not None and len(config.start_times) != len(uris):
            raise UsageError(
                f"--start-time has {len(config.start_times)} values for {len(uris)} --sources; give one per source"
            )
        store = Store.open(config.gallery, write=True, create=True)
        try:
            with database_errors(store.folder):
                session = cls(store, config, uris)
                store.check_model(session.model)  # dimension 0: checked when the run's features are known
                kept = store.model
                if kept is not None:
                    session.model.dim = kept.dim
        except BaseException:
            store.close()
            raise
        return session

    @property
    def offsets(self) -> list[float]:
        """Per-source offsets: the user's ``--offsets`` plus the source's start minus the run's origin."""
        user = self.config.offsets or [0.0] * len(self.starts)
        return [float(u) + (s - self.origin) for u, s in zip(user, self.starts)]

    # ------------------------------------------------------------------ before the run
    def prime(self, linker, sources: list[SourceInfo]) -> int:
        """Give the linker the gallery's tracklets near the run (``crossrun`` step 1); returns how many."""
        self.fallback = float(linker.config.min_similarity or linker.config.fallback_similarity)
        window = self.config.link.max_gap or crossrun.DEFAULT_WINDOW
        span = _span(sources)
        with database_errors(self.store.folder):
            stored = self.store.tracklets(
                "end >= ? AND start <= ? AND feature IS NOT NULL", (self.origin - window, self.origin + span + window)
            )
        tracklets = [crossrun.as_tracklet(s, self.origin) for s in stored]
        self.primed = {t.key: s.identity for t, s in zip(tracklets, stored)}
        _warn_same_recording(sources, tracklets)
        if tracklets:
            linker.add_many(tracklets)
        return len(tracklets)

    # ------------------------------------------------------------------ after the run
    def run_tracklets(self, linker) -> list[Tracklet]:
        return [t for t in (linker.final_tracklets or linker.tracklets) if t.key not in self.primed]

    def commit(self, identities: list[Identity], run_tracklets: list[Tracklet]) -> list[Identity]:
        """``assign`` then ``store``: the run's identities under global ids, written to the gallery."""
        out = self.assign(identities, run_tracklets)
        self.store_run()
        return out

    def assign(self, identities: list[Identity], run_tracklets: list[Tracklet]) -> list[Identity]:
        """The run's identities under global ids (only the run's tracklets), ordered by first sighting.
        Reads the gallery and writes nothing: :meth:`store_run` writes what was decided."""
        with database_errors(self.store.folder):
            return self._assign(identities, run_tracklets)

    def _assign(self, identities: list[Identity], run_tracklets: list[Tracklet]) -> list[Identity]:
        dim = _dim(run_tracklets)
        if dim:
            self.model.dim = dim
            self.store.check_model(self.model)
        ids = crossrun.assign_global_ids(identities, self.primed)
        own = [k for k, ident in enumerate(identities) if any(t.key not in self.primed for t in ident.tracklets)]
        self.indexes = Indexes.open(self.store, self.model.dim, save=False) if self.model.dim else None
        means = self._camera_means(run_tracklets)
        beyond = self._beyond_window([k for k in own if k not in ids], identities, means)
        ids.update(beyond)
        fresh = iter(range(self.store.next_identity, MAX_ID))  # taken by ``store_run``: this run holds the lock
        global_of = {identities[k].id: gid for k, gid in ids.items()}  # the run's ids -> global ids
        out: list[Identity] = []
        for k in own:
            gid = ids[k] if k in ids else next(fresh)
            global_of[identities[k].id] = gid
            out.append(crossrun.only_run_tracklets(identities[k], gid, self.primed))
        _global_runner_ups(out, global_of)
        n_fresh = sum(k not in ids for k in own)
        self._plan = _Plan(out, run_tracklets, means, n_fresh)
        self.assigned = True
        self.written = {"identities": len(out), "continued": len(own) - n_fresh, "beyond": len(beyond)}
        return sorted(out, key=lambda i: (min(t.start_t for t in i.tracklets), i.id))

    def run_only(self, identities: list[Identity]) -> list[Identity]:
        """The linker's identities without the gallery's tracklets, under the run's own ids (1..N):
        what the outputs hold when the gallery could not give global ids."""
        return order_identities([crossrun.only_run_tracklets(i, i.id, self.primed) for i in identities])

    def store_run(self) -> None:
        """Write what :meth:`assign` decided in one transaction (the gallery as it was on any error),
        then bring the indexes up to date and apply ``--retention``. An index that cannot be saved is an
        ``OutputError`` after the commit: the database holds the run and the index is rebuilt from it."""
        plan = self._plan
        assert plan is not None, "assign() first"
        with database_errors(self.store.folder):
            with self.store.transaction():
                self.store.new_identity_ids(plan.fresh)  # the ids ``assign`` gave out from the counter
                self._write(plan.identities, plan.run_tracklets, plan.means)
            self.committed = True  # after COMMIT: a commit that fails leaves the gallery as it was
            self._update_indexes(plan.identities)
            if self.config.retention is not None:
                cutoff = time.time() - self.config.retention
                self.written["pruned"] = prune(self.store, self.indexes, cutoff).identities

    def _beyond_window(self, rows: list[int], identities: list[Identity], means) -> dict[int, int]:
        if self.indexes is None or not len(self.indexes.identities):
            return {}
        feats = {k: identity_feature(identities[k].tracklets, means) for k in rows}
        found_feats = {k: f for k, f in feats.items() if f is not None}  # no embedded crop: a new id
        if not found_feats:
            return {}
        rows = list(found_feats)
        Q = np.stack(list(found_feats.values()))
        exclude = set(self.primed.values())
        sample = self._negative_sample(exclude)
        found = crossrun.match_beyond_window(Q, self.indexes.identities, exclude, sample, self.fallback)
        return {rows[q]: gid for q, (gid, _) in found.items()}

    def _negative_sample(self, exclude: set[int]) -> np.ndarray:
        """Embeddings of a random (seeded: a run is deterministic) sample of the stored identities."""
        ids = [int(i) for (i,) in self.store.db.execute("SELECT id FROM identities WHERE embedding IS NOT NULL")]
        ids = [i for i in ids if i not in exclude]
        rng = np.random.default_rng(0)
        chosen = rng.choice(ids, size=min(len(ids), crossrun.NEGATIVE_SAMPLE), replace=False).tolist() if ids else []
        rows = self.store.db.execute(
            f"SELECT id, embedding FROM identities WHERE id IN ({','.join('?' * len(chosen))}) ORDER BY id", chosen
        ).fetchall()
        return self._rows("identities", rows, "embedding")

    def _camera_means(self, run_tracklets: list[Tracklet]) -> dict[str, tuple[np.ndarray, int]]:
        """Each camera's mean tracklet feature over the gallery and this run."""
        means = self.store.camera_means()
        for cam in {t.camera for t in run_tracklets}:
            feats = [unit(t.feature) for t in run_tracklets if t.camera == cam and t.feature is not None]
            if not feats:
                continue
            old, n = means.get(cam, (np.zeros_like(feats[0]), 0))
            total = n + len(feats)
            means[cam] = ((old * n + np.sum(feats, axis=0)) / total).astype(np.float32), total
        return means

    def _write(self, out: list[Identity], run_tracklets: list[Tracklet], means) -> None:
        db, o = self.store.db, self.origin
        if self.store.model is None and self.model.dim:
            self.store.set_meta("model", json.dumps(self.model.to_json()))
        for cam, (mean, n) in means.items():
            ts = [t for t in run_tracklets if t.camera == cam]
            first = min((t.start_t for t in ts), default=0.0) + o
            last = max((t.end_t for t in ts), default=0.0) + o
            db.execute(
                "INSERT INTO cameras(name, mean, count, first_seen, last_seen) VALUES(?, ?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET mean=excluded.mean, count=excluded.count, "
                "first_seen=MIN(COALESCE(first_seen, excluded.first_seen), excluded.first_seen), "
                "last_seen=MAX(COALESCE(last_seen, excluded.last_seen), excluded.last_seen)",
                (cam, blob(mean), n, first if ts else None, last if ts else None),
            )
        for ident in out:
            db.execute(
                "INSERT OR IGNORE INTO identities(id, first_seen, last_seen) VALUES(?, ?, ?)",
                (ident.id, min(t.start_t for t in ident.tracklets) + o, max(t.end_t for t in ident.tracklets) + o),
            )
            for t in ident.tracklets:
                db.execute(
                    "INSERT INTO tracklets(identity, run, camera, track, start, end, points, crops, weight, feature) "
                    "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        ident.id,
                        self.run_id,
                        t.camera,
                        t.track,
                        t.start_t + o,
                        t.end_t + o,
                        len(t.points),
                        t.crops,
                        t.weight,
                        blob(t.feature),
                    ),
                )
            refresh_identity(self.store, ident.id, means)
        self.store.set_run_status(self.run_id, "done")

    def _update_indexes(self, out: list[Identity]) -> None:
        if self.indexes is None:
            self.indexes = Indexes.open(self.store, self.model.dim, save=True) if self.model.dim else None
            return
        ix, db = self.indexes, self.store.db
        touched = [i.id for i in out]
        ix.identities.remove(touched)
        rows = (
            db.execute(
                f"SELECT id, embedding FROM identities WHERE embedding IS NOT NULL AND id IN ({','.join('?' * len(touched))})",
                touched,
            ).fetchall()
            if touched
            else []
        )
        ix.identities.add(np.array([r[0] for r in rows], np.int64), self._rows("identities", rows, "embedding"))
        new = db.execute(
            "SELECT id, feature FROM tracklets WHERE run=? AND feature IS NOT NULL", (self.run_id,)
        ).fetchall()
        ix.tracklets.add(np.array([r[0] for r in new], np.int64), self._rows("tracklets", new, "feature"))
        ix.save()

    def _rows(self, table: str, rows: list, column: str) -> np.ndarray:
        """The vectors of ``(id, blob)`` rows, each checked (a damaged one is named)."""
        vecs = [self.store.vector(b, f"{table} row {rid} {column}") for rid, b in rows]
        kept = [v for v in vecs if v is not None]
        return np.stack(kept) if kept else np.zeros((0, self.model.dim), np.float32)

    def close(self) -> None:
        """Release the gallery; a run that stopped on an error before its commit is marked ``failed``."""
        try:
            if not self.committed:
                with contextlib.suppress(sqlite3.Error), self.store.transaction():  # a damaged database stays as it is
                    self.store.set_run_status(self.run_id, "failed")
        finally:
            self.store.close()


def _warn_same_recording(sources: list[SourceInfo], primed: list[Tracklet]) -> None:
    """A camera the gallery already saw at the run's own times: the same recording given twice?
    (its stored tracks would count as other people who were there at the same time)."""
    for s in sources:
        end = s.offset + (s.frames / s.fps if s.frames and s.fps else math.inf)
        n = sum(1 for t in primed if t.camera == s.camera and t.end_t >= s.offset and t.start_t <= end)
        if n:
            warn(
                f"{s.camera}: the gallery already holds {n} tracks of this camera at this run's times "
                "(the same recording twice, or a wrong --start-time?); they count as other people"
            )


def identity_feature(tracklets, means: dict[str, tuple[np.ndarray, int]]) -> np.ndarray | None:
    """The camera-centred, quality-weighted mean feature of tracklets (``Tracklet`` or ``StoredTracklet``);
    None when none of them has a feature (no crop of it was embedded)."""
    acc = None
    for t in tracklets:
        if t.feature is None:
            continue
        f = unit(t.feature)
        mean, n = means.get(t.camera, (None, 0))
        if mean is not None and n >= MIN_CENTER:
            f = unit(f - mean)
        w = float(t.weight) if isinstance(t, Tracklet) else float(getattr(t, "weight", 1.0))
        acc = f * w if acc is None else acc + f * w
    return unit(acc) if acc is not None else None


def refresh_identity(store: Store, gid: int, means) -> None:
    """Recompute a stored identity's span and embedding from its tracklets (inside a transaction)."""
    ts: list[StoredTracklet] = store.tracklets("identity=?", (gid,))
    if not ts:
        store.db.execute("DELETE FROM identities WHERE id=?", (gid,))
        return
    emb = identity_feature(ts, means)
    store.db.execute(
        "UPDATE identities SET first_seen=?, last_seen=?, embedding=? WHERE id=?",
        (min(t.start for t in ts), max(t.end for t in ts), blob(emb), gid),
    )


@dataclass
class _Plan:
    """What ``assign`` decided: the run's identities under global ids, its tracklets, the camera means,
    how many fresh ids it takes from the counter."""

    identities: list[Identity]
    run_tracklets: list[Tracklet]
    means: dict[str, tuple[np.ndarray, int]]
    fresh: int


def _dim(tracklets: list[Tracklet]) -> int:
    return next((int(np.asarray(t.feature).size) for t in tracklets if t.feature is not None), 0)


def _span(sources: list[SourceInfo]) -> float:
    """Seconds the run covers from its origin (infinite with a live source)."""
    ends = [s.offset + s.frames / s.fps if s.frames and s.fps else math.inf for s in sources]
    return max(ends, default=0.0)


__all__ = ["GallerySession", "identity_feature", "model_id", "refresh_identity"]


def _global_runner_ups(identities: list[Identity], global_of: dict[int, int]) -> None:
    """Each track's runner-up identity (a run id) as its global id (None when it has none)."""
    for ident in identities:
        for ev in ident.evidence.values():
            if ev.runner_up is not None:
                ev.runner_up = global_of.get(ev.runner_up)
