"""The gallery's vector indexes (FAISS): identity and tracklet embeddings, derived from the database.

Each index is a ``faiss.IndexIDMap2`` over an exhaustive inner-product index whose vectors are stored
as float16 (``IndexScalarQuantizer`` ``QT_fp16``: half the memory of float32, cosines within ~1e-3),
keyed by the database row id (identity id, tracklet id). Exhaustive search: every query sees every
vector, so a result never depends on how the index was built.

The database is the truth. After each write transaction the indexes are updated and saved (a
temporary file, then ``os.replace``), then ``index.json`` records the database ``version`` they
reflect. An index whose recorded version differs from the database's (a crash between the commit and
the save, a file deleted), or that cannot be read as an index of the gallery's kind and dimension
(garbage), is rebuilt from the database when the gallery is opened; a file larger than its rows can
fill is not read at all (its header could ask for any amount of memory).
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np

from reidpipe.cpus import faiss_threads_for
from reidpipe.files import atomic_output, atomic_write_text
from reidpipe.pipeline.gallery.store import Store

KINDS = {"identities": "SELECT id, embedding FROM identities", "tracklets": "SELECT id, feature FROM tracklets"}
_COLUMN = {"identities": "embedding", "tracklets": "feature"}
STATE = "index.json"
_SLACK = 1 << 16  # bytes of header an index file may hold beyond its vectors


def new_index(dim: int):
    import faiss

    inner = faiss.IndexScalarQuantizer(int(dim), faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    return faiss.IndexIDMap2(inner)


class VectorIndex:
    """One FAISS index of unit vectors keyed by int64 ids."""

    def __init__(self, dim: int, index=None):
        self.dim = int(dim)
        self.index = index if index is not None else new_index(dim)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids: np.ndarray, X: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(X, np.float32), np.asarray(ids, np.int64))

    def remove(self, ids) -> int:
        import faiss

        ids = np.asarray(list(ids), np.int64)
        return int(self.index.remove_ids(faiss.IDSelectorBatch(ids))) if ids.size else 0

    def search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, ids) of the ``k`` nearest rows per query (id -1 past the end)."""

        Q = np.ascontiguousarray(np.atleast_2d(Q), np.float32)
        if len(self) == 0 or k <= 0:
            return np.zeros((len(Q), 0), np.float32), np.zeros((len(Q), 0), np.int64)
        with faiss_threads_for(len(Q), len(self)):
            return self.index.search(Q, min(int(k), len(self)))

    def ids(self) -> set[int]:
        import faiss

        return {int(i) for i in faiss.vector_to_array(self.index.id_map)}

    def save(self, path: Path) -> None:
        """Written to a temporary file, then renamed over ``path`` (``OutputError`` naming it)."""
        import faiss

        with atomic_output(path, "gallery index") as tmp:
            try:
                faiss.write_index(self.index, tmp)
            except RuntimeError:
                raise OSError(errno.EIO, "FAISS could not write it") from None

    @classmethod
    def load(cls, path: Path, dim: int, rows: int) -> VectorIndex:
        """The index saved at ``path``; ``ValueError`` saying why when it is not an index of ``dim``-d
        float16 vectors, keyed by id, of at most ``rows`` vectors."""
        import faiss

        size = path.stat().st_size
        if size > rows * (2 * dim + 8) + _SLACK:
            raise ValueError(f"{size} bytes, more than {rows} vectors of {dim} dimensions fill")
        try:
            index = faiss.read_index(str(path))
        except (RuntimeError, MemoryError) as exc:
            raise ValueError(
                f"not a FAISS index ({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})"
            ) from None
        if (
            not isinstance(index, faiss.IndexIDMap2)
            or index.d != dim
            or index.metric_type != faiss.METRIC_INNER_PRODUCT
        ):
            raise ValueError(f"not an inner-product index of {dim}-d vectors keyed by id")
        if index.ntotal > rows:
            raise ValueError(f"{index.ntotal} vectors for {rows} rows")
        return cls(dim, index)


class Indexes:
    """The identity and tracklet indexes of a gallery, kept in step with its database."""

    def __init__(self, store: Store, dim: int):
        self.store = store
        self.dim = int(dim)
        self.by_kind: dict[str, VectorIndex] = {}
        self.rebuilt = False

    @property
    def identities(self) -> VectorIndex:
        return self.by_kind["identities"]

    @property
    def tracklets(self) -> VectorIndex:
        return self.by_kind["tracklets"]

    @classmethod
    def open(cls, store: Store, dim: int, save: bool) -> Indexes:
        """Load the saved indexes, or rebuild them from the database when they are behind it (saved
        again when ``save``: the caller holds the gallery's lock)."""
        ix = cls(store, dim)
        if not ix.behind():
            try:
                ix.by_kind = {k: VectorIndex.load(ix._path(k), dim, ix._rows(k)) for k in KINDS}
                return ix
            except (OSError, ValueError):  # missing, unreadable, garbage: rebuilt below
                ix.by_kind = {}
        ix.rebuild()
        if save:
            ix.save()
        return ix

    def behind(self) -> bool:
        """The saved indexes do not reflect the database's version (a crash between the commit and the
        save, a file deleted): they are rebuilt when the gallery is opened."""
        return self._recorded_version() != self.store.version

    def problems(self) -> list[str]:
        """Saved index files that are up to date by ``index.json`` but cannot be used (empty: sound):
        missing, unreadable, of another kind or dimension, more vectors than rows."""
        if self.behind():
            return []
        out = []
        for kind in KINDS:
            path = self._path(kind)
            try:
                VectorIndex.load(path, self.dim, self._rows(kind))
            except FileNotFoundError:
                out.append(f"{path.name} is missing")
            except (OSError, ValueError) as exc:
                out.append(f"{path.name}: {exc}")
        return out

    def rebuild(self) -> None:
        for kind, sql in KINDS.items():
            vi = VectorIndex(self.dim)
            ids, vecs = [], []
            for rid, b in self.store.db.execute(sql):
                v = self.store.vector(b, f"{kind} row {rid}")
                if v is not None:
                    ids.append(rid)
                    vecs.append(v)
            if ids:
                vi.add(np.asarray(ids, np.int64), np.stack(vecs))
            self.by_kind[kind] = vi
        self.rebuilt = True

    def save(self) -> None:
        """Save both indexes, then record the database version they reflect (``OutputError`` naming a
        file that cannot be written: the database stays the truth, the indexes are rebuilt from it)."""
        for kind, vi in self.by_kind.items():
            vi.save(self._path(kind))
        atomic_write_text(
            self.store.folder / STATE,
            json.dumps({"version": self.store.version, "dim": self.dim}),
            "gallery index state",
        )

    def matches_database(self) -> list[str]:
        """Problems (empty: sound): each index holds exactly the rows of its table that have a vector."""
        problems = []
        for kind, sql in KINDS.items():
            want = {int(rid) for rid, b in self.store.db.execute(sql) if b is not None}
            have = self.by_kind[kind].ids()
            if want != have:
                problems.append(f"{kind} index holds {len(have)} vectors, database {len(want)}")
        return problems

    def _path(self, kind: str) -> Path:
        return self.store.folder / f"{kind}.faiss"

    def _rows(self, kind: str) -> int:
        """Rows of ``kind`` that hold a vector: the most its index may hold."""
        sql = f"SELECT COUNT(*) FROM {kind} WHERE {_COLUMN[kind]} IS NOT NULL"  # noqa: S608 (fixed names)
        return int(self.store.db.execute(sql).fetchone()[0])

    def _recorded_version(self) -> int | None:
        try:
            return int(json.loads((self.store.folder / STATE).read_text())["version"])
        except (OSError, ValueError, KeyError, TypeError):
            return None


__all__ = ["Indexes", "VectorIndex", "new_index"]
