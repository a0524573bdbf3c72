"""``reidpipe bench --gallery-only``: the gallery's query time on synthetic embeddings.

For each size N: N random unit vectors of ``dim`` dimensions are added to a gallery index
(:class:`~reidpipe.pipeline.gallery.index.VectorIndex`: exhaustive inner product over float16
storage, the index ``reidpipe search`` and the cross-run matching use), then ``queries`` single
queries (top ``k``) are timed one by one, as ``reidpipe search`` asks them, and once as one batch.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from reidpipe.pipeline.gallery.index import VectorIndex

CHUNK = 100_000


def _units(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    X = rng.standard_normal((n, dim), dtype=np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X


def bench_gallery(sizes: list[int], dim: int = 512, queries: int = 50, k: int = 10, seed: int = 0) -> list[dict]:
    import faiss

    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        index = VectorIndex(dim)
        t0 = time.perf_counter()
        for start in range(0, n, CHUNK):
            m = min(CHUNK, n - start)
            index.add(np.arange(start, start + m, dtype=np.int64), _units(rng, m, dim))
        t_build = time.perf_counter() - t0
        Q = _units(rng, queries, dim)
        index.search(Q[:1], k)  # warm-up
        one = []
        for q in Q:
            t = time.perf_counter()
            index.search(q[None], k)
            one.append(time.perf_counter() - t)
        t = time.perf_counter()
        index.search(Q, k)
        t_batch = time.perf_counter() - t
        out.append(
            {
                "embeddings": n,
                "dim": dim,
                "storage": "float16",
                "index_bytes": n * dim * 2,
                "build_s": round(t_build, 3),
                "query_ms_median": round(1000 * float(np.median(one)), 3),
                "query_ms_p95": round(1000 * float(np.percentile(one, 95)), 3),
                "batch_queries": queries,
                "batch_ms_per_query": round(1000 * t_batch / queries, 3),
                "threads": faiss.omp_get_max_threads(),
            }
        )
        del index
    return out


def format_gallery(rows: list[dict[str, Any]]) -> str:
    lines = [
        "gallery query time (exhaustive inner product, float16 storage, top-10)",
        f"{'embeddings':>11} {'dim':>5} {'index MB':>9} {'build s':>8} {'query ms':>9} {'p95 ms':>8} {'batch ms/q':>11}",
    ]
    for r in rows:
        lines.append(
            f"{r['embeddings']:>11,} {r['dim']:>5} {r['index_bytes'] / 1e6:>9.0f} {r['build_s']:>8.2f} "
            f"{r['query_ms_median']:>9.2f} {r['query_ms_p95']:>8.2f} {r['batch_ms_per_query']:>11.3f}"
        )
    return "\n".join(lines)


__all__ = ["bench_gallery", "format_gallery"]
