"""Thread budgets (reidpipe/cpus.py): small FAISS searches run on one thread, the default comes back."""

from __future__ import annotations

import numpy as np
import pytest

from reidpipe.cpus import SMALL_SEARCH, faiss_threads_for

faiss = pytest.importorskip("faiss", reason="faiss-cpu is an optional dependency")


def test_a_small_faiss_search_runs_on_one_thread_and_a_large_one_on_faiss_default():
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(4)
    try:
        with faiss_threads_for(50, 50):
            assert faiss.omp_get_max_threads() == 1
        assert faiss.omp_get_max_threads() == 4  # restored
        with faiss_threads_for(SMALL_SEARCH, 1):
            assert faiss.omp_get_max_threads() == 4
        with pytest.raises(RuntimeError), faiss_threads_for(1, 1):
            raise RuntimeError("a failed search")
        assert faiss.omp_get_max_threads() == 4  # restored after an error too
    finally:
        faiss.omp_set_num_threads(before)


def test_the_linkers_candidate_search_and_the_gallery_use_the_budget(monkeypatch):
    from reidpipe.pipeline.gallery import index as gallery_index
    from reidpipe.pipeline.link import neighbours

    seen: list[tuple[int, int]] = []
    real = faiss_threads_for

    def spy(queries, rows):
        seen.append((queries, rows))
        return real(queries, rows)

    monkeypatch.setattr(neighbours, "faiss_threads_for", spy)
    monkeypatch.setattr(gallery_index, "faiss_threads_for", spy)
    X = np.random.default_rng(0).standard_normal((50, 16)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    i, j, _ = neighbours.candidate_pairs(X, k=5, threshold=-1.0, backend="faiss")
    assert len(i) > 0 and seen == [(50, 50)]
    index = gallery_index.VectorIndex(16)
    index.add(np.arange(50), X)
    sims, ids = index.search(X[:3], 2)
    assert ids[:, 0].tolist() == [0, 1, 2] and seen[-1] == (3, 50)


def test_blas_runs_on_one_thread_inside_the_block_and_as_before_after_it():
    import numpy as np  # noqa: F401  (loads NumPy's BLAS)
    from threadpoolctl import threadpool_info

    from reidpipe.cpus import one_blas_thread

    def blas_threads() -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before = blas_threads()
    assert before, "NumPy loads a BLAS library"
    with one_blas_thread():
        assert blas_threads() == [1] * len(before)
    assert blas_threads() == before
