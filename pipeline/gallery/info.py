"""``reidpipe gallery info`` and ``check``: what a gallery holds, and whether it is sound."""

from __future__ import annotations

from typing import Any

from reidpipe.errors import GalleryDamagedError
from reidpipe.pipeline.gallery.index import Indexes
from reidpipe.pipeline.gallery.store import Store, foreign_files
from reidpipe.pipeline.gallery.times import iso


def info(store: Store) -> dict[str, Any]:
    db = store.db
    model = store.model
    first, last = db.execute("SELECT MIN(start), MAX(end) FROM tracklets").fetchone()
    runs = dict(db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
    cameras = [
        {"camera": c, "tracklets": int(n), "first_seen": iso(a) if a else None, "last_seen": iso(b) if b else None}
        for c, n, a, b in db.execute(
            "SELECT camera, COUNT(*), MIN(start), MAX(end) FROM tracklets GROUP BY camera ORDER BY camera"
        )
    ]
    size = sum(p.stat().st_size for p in store.folder.iterdir() if p.is_file())
    return {
        "gallery": str(store.folder),
        "model": model.to_json() if model else None,
        "identities": store.count("identities"),
        "tracklets": store.count("tracklets"),
        "runs": runs,
        "cameras": cameras,
        "first_seen": iso(first) if first is not None else None,
        "last_seen": iso(last) if last is not None else None,
        "images_stored": 0,
        "bytes": size,
    }


def check(store: Store) -> list[str]:
    """Every problem found (empty: sound), as they are on disk (nothing is rebuilt or repaired): gallery
    files that are links or folders, the database's integrity, ``meta`` values out of their rule,
    vectors of the wrong size, index files that cannot be used, and each index holding exactly its
    table's vectors. Indexes behind the database (a crash between the commit and their save) are not
    a problem: the next writer rebuilds them; they are compared after an in-memory rebuild."""
    problems = foreign_files(store.folder)
    problems += store.integrity()
    if problems:
        return problems
    problems += store.meta_problems()
    model = None if problems else store.model
    if model is None:
        return problems
    problems += store.bad_vectors()
    if problems:
        return problems
    indexes = Indexes(store, model.dim)
    unusable = indexes.problems()
    problems += [f"{p} (rebuilt from the database by the next run, prune or forget)" for p in unusable]
    if not unusable:
        try:
            problems += Indexes.open(store, model.dim, save=False).matches_database()
        except GalleryDamagedError as exc:  # a vector that is not finite
            problems.append(getattr(exc, "reason", str(exc)))
    return problems


def format_info(d: dict[str, Any]) -> str:
    m = d["model"]
    lines = [
        f"gallery    {d['gallery']}",
        f"model      {m['kind']} sha256 {m['sha256'][:16]} ({m['dim']}-d)" if m else "model      (none yet)",
        f"identities {d['identities']}  tracklets {d['tracklets']}  images 0  ({d['bytes'] / 1e6:.1f} MB)",
        f"runs       {', '.join(f'{n} {s}' for s, n in sorted(d['runs'].items())) or 'none'}",
        f"time span  {d['first_seen']} .. {d['last_seen']}",
    ]
    for c in d["cameras"]:
        lines.append(f"camera     {c['camera']}: {c['tracklets']} tracklets, {c['first_seen']} .. {c['last_seen']}")
    return "\n".join(lines)


__all__ = ["check", "format_info", "info"]
