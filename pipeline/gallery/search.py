"""Person search in a gallery (``reidpipe search``): the identities most similar to a person image or
to a known identity, with where and when each was seen.

- ``--image crop.jpg``: the crop is embedded with the gallery's own model (the weights named in the
  gallery, or ``--reid-weights`` when they moved; refused unless its SHA-256, kind and dimension are
  the gallery's) and compared with every stored **tracklet** (FAISS, raw pooled features: a crop has
  no camera to centre it by); an identity scores its best tracklet.
- ``--identity N``: identity N's camera-centred embedding compared with every other **identity**.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reidpipe.errors import GalleryMismatchError, InputNotFoundError, MalformedInputError, UsageError
from reidpipe.pipeline.config import PipelineConfig
from reidpipe.pipeline.gallery.index import Indexes
from reidpipe.pipeline.gallery.store import Store
from reidpipe.pipeline.gallery.times import iso
from reidpipe.pipeline.models.embed import embedder_kind, load_embedder

WIDEN = 20  # tracklets looked at per identity asked for (an identity has several)


@dataclass
class Hit:
    identity: int
    similarity: float
    sightings: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        cams: list[str] = []
        for s in self.sightings:
            if s["camera"] not in cams:
                cams.append(s["camera"])
        return {
            "identity": self.identity,
            "similarity": round(self.similarity, 4),
            "cameras": cams,
            "first_seen": min(s["start"] for s in self.sightings) if self.sightings else None,
            "last_seen": max(s["end"] for s in self.sightings) if self.sightings else None,
            "sightings": self.sightings,
        }


def open_for_search(folder: str | Path) -> tuple[Store, Indexes]:
    store = Store.open(folder)
    model = store.model
    if model is None:
        store.close()
        raise MalformedInputError(f"gallery {folder} holds no run yet (no model, nothing to search)")
    return store, Indexes.open(store, model.dim, save=False)


def by_identity(store: Store, indexes: Indexes, gid: int, top: int) -> list[Hit]:
    row = store.db.execute("SELECT embedding FROM identities WHERE id=?", (int(gid),)).fetchone()
    if row is None:
        raise UsageError(f"--identity {gid}: no such identity in gallery {store.folder}")
    query = store.vector(row[0], f"identities row {int(gid)} embedding")
    if query is None:
        return []
    sims, ids = indexes.identities.search(query[None], top + 1)
    hits = [Hit(int(i), float(s)) for s, i in zip(sims[0], ids[0]) if i >= 0 and int(i) != int(gid)]
    return _with_sightings(store, hits[:top])


def by_image(store: Store, indexes: Indexes, image: str | Path, top: int, weights: str | None = None) -> list[Hit]:
    q = embed_query(store, image, weights)
    sims, ids = indexes.tracklets.search(q[None], top * WIDEN)
    owner = _owners(store, [int(i) for i in ids[0] if i >= 0])
    best: dict[int, float] = {}
    for s, i in zip(sims[0], ids[0]):
        gid = owner.get(int(i))
        if gid is not None and gid not in best:  # results come most similar first
            best[gid] = float(s)
    hits = [Hit(g, s) for g, s in sorted(best.items(), key=lambda kv: -kv[1])[:top]]
    return _with_sightings(store, hits)


def embed_query(store: Store, image: str | Path, weights: str | None = None) -> np.ndarray:
    """The crop embedded by the gallery's model (refused when ``weights`` is another model)."""
    import cv2

    from reidpipe.pipeline.gallery.session import model_id

    model = store.model
    assert model is not None  # open_for_search
    st = dict(model.settings)
    kind = model.kind if weights is None else embedder_kind(PipelineConfig(reid_weights=weights))
    cfg = PipelineConfig(
        reid=kind,
        reid_weights=weights or st.get("reid_weights"),
        reid_input_size=tuple(st["reid_input_size"]) if st.get("reid_input_size") else None,
        reid_mean=tuple(st["reid_mean"]) if st.get("reid_mean") else None,
        reid_std=tuple(st["reid_std"]) if st.get("reid_std") else None,
        reid_color=st.get("reid_color"),
        device="cpu",
        embed_batch=1,
    )
    if cfg.reid_weights and not Path(cfg.reid_weights).exists():
        raise InputNotFoundError(
            f"the gallery's model {cfg.reid_weights} is not there; give its new place with --reid-weights"
        )
    store.check_model(model_id(cfg, model.dim), what="the query")
    crop = cv2.imread(str(image))
    if crop is None:
        if not Path(image).exists():
            raise InputNotFoundError(f"--image {image}: no such file")
        raise MalformedInputError(f"--image {image}: not an image OpenCV can read")
    q = np.asarray(load_embedder(cfg).embed([crop]), np.float32)[0]
    if q.size != model.dim:
        raise GalleryMismatchError(f"the query's embedding has {q.size} dimensions, the gallery's {model.dim}")
    return q / max(float(np.linalg.norm(q)), 1e-12)


def _owners(store: Store, tracklet_ids: list[int]) -> dict[int, int]:
    if not tracklet_ids:
        return {}
    rows = store.db.execute(
        f"SELECT id, identity FROM tracklets WHERE id IN ({','.join('?' * len(tracklet_ids))})", tracklet_ids
    )
    return {int(t): int(g) for t, g in rows}


def _with_sightings(store: Store, hits: list[Hit]) -> list[Hit]:
    for h in hits:
        h.sightings = [
            {"camera": cam, "start": iso(s), "end": iso(e), "start_t": round(s, 3), "end_t": round(e, 3)}
            for cam, s, e in store.db.execute(
                "SELECT camera, start, end FROM tracklets WHERE identity=? ORDER BY start", (h.identity,)
            )
        ]
    return hits


def format_hits(hits: list[Hit]) -> str:
    if not hits:
        return "no identity found"
    lines = [f"{'identity':>8}  {'cosine':>6}  seen"]
    for h in hits:
        seen = "; ".join(f"{s['camera']} {s['start']} .. {s['end'][11:]}" for s in h.sightings)
        lines.append(f"{h.identity:>8}  {h.similarity:6.3f}  {seen}")
    return "\n".join(lines)


__all__ = ["Hit", "by_identity", "by_image", "embed_query", "format_hits", "open_for_search"]
