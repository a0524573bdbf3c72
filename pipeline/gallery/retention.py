"""Retention and privacy: what ``reidpipe gallery prune / forget`` (and ``run --retention``) delete.

A gallery keeps embeddings and metadata only (never an image of a person). ``prune`` deletes every
identity last seen before a cut-off, with all its tracklets; ``forget`` deletes one identity. Both
delete from the database in one transaction (tracklets go with their identity: ``ON DELETE CASCADE``)
and then the same rows from both FAISS indexes, and say how many of each went.
"""

from __future__ import annotations

from dataclasses import dataclass

from reidpipe.pipeline.gallery.index import Indexes
from reidpipe.pipeline.gallery.store import Store


@dataclass
class Removed:
    identities: int = 0
    tracklets: int = 0
    index_identities: int = 0  # vectors removed from the identity index
    index_tracklets: int = 0  # vectors removed from the tracklet index

    def to_json(self) -> dict[str, int]:
        return dict(vars(self))


def delete_identities(store: Store, indexes: Indexes | None, where: str, args: tuple) -> Removed:
    """Delete the identities matching ``where`` (SQL over ``identities``) and their tracklets."""
    with store.transaction():
        gids = [int(r[0]) for r in store.db.execute(f"SELECT id FROM identities WHERE {where}", args)]
        tids = [int(r[0]) for r in _in(store, "SELECT id FROM tracklets WHERE identity IN ({})", gids)]
        _in(store, "DELETE FROM identities WHERE id IN ({})", gids)  # tracklets: ON DELETE CASCADE
    removed = Removed(identities=len(gids), tracklets=len(tids))
    if indexes is not None:
        removed.index_identities = indexes.identities.remove(gids)
        removed.index_tracklets = indexes.tracklets.remove(tids)
        indexes.save()
    return removed


def prune(store: Store, indexes: Indexes | None, cutoff: float) -> Removed:
    """Delete the identities last seen before ``cutoff`` (epoch seconds)."""
    return delete_identities(store, indexes, "last_seen < ?", (float(cutoff),))


def forget(store: Store, indexes: Indexes | None, gid: int) -> Removed:
    """Delete identity ``gid`` and everything stored of it."""
    return delete_identities(store, indexes, "id = ?", (int(gid),))


def _in(store: Store, sql: str, ids: list[int]) -> list:
    """Run ``sql`` with ``IN ({})`` over ``ids`` in chunks (SQLite's limit on parameters)."""
    out: list = []
    for k in range(0, len(ids), 900):
        chunk = ids[k : k + 900]
        out += store.db.execute(sql.format(",".join("?" * len(chunk))), chunk).fetchall()
    return out


__all__ = ["Removed", "delete_identities", "forget", "prune"]
