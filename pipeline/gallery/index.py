"""The gallery's vector indexes (FAISS): identity and tracklet embeddings, derived from the database.

Each index is a ``faiss.IndexIDMap2`` over an exhaustive inner-product index whose vectors are stored
as float16 (``IndexScalarQuantizer`` ``QT_fp16``: half the memory of float32, cosines within ~1e-3),
keyed by the database row id (identity id, tracklet id). Exhaustive search: every query sees every
vector, so a result never depends on how the index was built.

The database is the truth. After each write transaction the indexes are updated and saved (a
temporary file, then ``os.replace``), then ``index.json`` records the database ``version`` they
reflect. An index whose recorded version differs from the database's (a crash between the commit and
the save, a file deleted) is rebuilt from the database when the gallery is opened.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from reidpipe.pipeline.gallery.store import Store, unblob

KINDS = {"identities": "SELECT id, embedding FROM identities", "tracklets": "SELECT id, feature FROM tracklets"}
STATE = "index.json"
FEW_QUERIES = 8  # fewer queries than this are searched on one thread (10k vectors: 0.7 ms vs 40 ms on 2 busy cores)


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
        import faiss

        Q = np.ascontiguousarray(np.atleast_2d(Q), np.float32)
        if len(self) == 0 or k <= 0:
            return np.zeros((len(Q), 0), np.float32), np.zeros((len(Q), 0), np.int64)
        threads = faiss.omp_get_max_threads()
        if len(Q) < FEW_QUERIES:  # OpenMP's thread start-up and spinning cost more than a few queries
            faiss.omp_set_num_threads(1)
        try:
            sims, ids = self.index.search(Q, min(int(k), len(self)))
        finally:
            faiss.omp_set_num_threads(threads)
        return sims, ids

    def ids(self) -> set[int]:
        import faiss

        return {int(i) for i in faiss.vector_to_array(self.index.id_map)}

    def save(self, path: Path) -> None:
        import faiss

        tmp = path.with_suffix(path.suffix + ".tmp")
        faiss.write_index(self.index, str(tmp))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, dim: int) -> VectorIndex:
        import faiss

        return cls(dim, faiss.read_index(str(path)))


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
        if ix._recorded_version() == store.version and all(ix._path(k).exists() for k in KINDS):
            try:
                ix.by_kind = {k: VectorIndex.load(ix._path(k), dim) for k in KINDS}
            except RuntimeError:  # an unreadable file: rebuilt below
                ix.by_kind = {}
            else:
                return ix
        ix.rebuild()
        if save:
            ix.save()
        return ix

    def rebuild(self) -> None:
        for kind, sql in KINDS.items():
            vi = VectorIndex(self.dim)
            ids, vecs = [], []
            for rid, b in self.store.db.execute(sql):
                v = unblob(b)
                if v is not None and v.size == self.dim:
                    ids.append(rid)
                    vecs.append(v)
            if ids:
                vi.add(np.asarray(ids, np.int64), np.stack(vecs))
            self.by_kind[kind] = vi
        self.rebuilt = True

    def save(self) -> None:
        """Save both indexes, then record the database version they reflect."""
        for kind, vi in self.by_kind.items():
            vi.save(self._path(kind))
        state = self.store.folder / STATE
        tmp = state.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": self.store.version, "dim": self.dim}))
        os.replace(tmp, state)

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

    def _recorded_version(self) -> int | None:
        try:
            return int(json.loads((self.store.folder / STATE).read_text())["version"])
        except (OSError, ValueError, KeyError, TypeError):
            return None


__all__ = ["Indexes", "VectorIndex", "new_index"]
