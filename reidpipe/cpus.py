"""The CPUs this process may run on: what thread budgets and capacity estimates count."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


def usable_cpus() -> int:
    """The CPUs this process may use (its affinity mask on Linux: a container's or ``taskset``'s
    limit, not the machine's count), at least 1."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


BACKGROUND_NICENESS = 10  # what a background thread adds to its niceness: ~1/10 of a core's share next to one at 0


def run_in_background() -> bool:
    """Lower the calling thread's CPU priority by ``BACKGROUND_NICENESS`` (Linux gives each thread its
    own niceness): it then gets the cores mostly when the threads at the process's priority leave
    them idle. For work that can wait (the embed thread), not for work the frame loop waits on.
    Returns whether it took effect (False where the system has no per-thread niceness)."""
    import threading

    setpriority = getattr(os, "setpriority", None)
    if setpriority is None or not hasattr(threading, "get_native_id"):
        return False
    tid = threading.get_native_id()
    try:
        setpriority(os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + BACKGROUND_NICENESS, 19))
    except OSError:
        return False
    return True


SMALL_SEARCH = 10_000_000  # inner products (queries x rows) below which FAISS searches on one thread


@contextmanager
def faiss_threads_for(queries: int, rows: int) -> Iterator[None]:
    """FAISS's OpenMP threads for one search of ``queries`` vectors among ``rows``: one thread below
    ``SMALL_SEARCH`` products, FAISS's default above; restored afterwards. OpenMP's thread start-up
    and spinning cost more than a small search: on 2 busy cores, 50 tracklets against each other
    took 38 ms on two threads and 0.7 ms on one, 1,000 took 222 ms and 50 ms."""
    import faiss

    threads = faiss.omp_get_max_threads()
    if int(queries) * int(rows) < SMALL_SEARCH:
        faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """NumPy's and SciPy's BLAS / LAPACK libraries (OpenBLAS, MKL: whichever are loaded) on one thread
    inside the block, for the whole process, restored afterwards (``threadpoolctl``; ~2 ms a call).
    The calls it covers are small, and a BLAS pool's threads wake, spin and wait for a core for each:
    - while the frames stream (``pipeline/runner.py``) the detect threads fill the cores and the calls
      are a Kalman filter's 8 x 8 inverse, a density on a few hundred gaps, a window of tracklets'
      features. On 2 cores, two cameras of 900 crowded frames took ~1.8 CPU s less with one thread
      (37.9-38.9 against 36.2-36.9 s) and ran 3-5 % faster;
    - the offline linker's products are a few hundred rows each: with two OpenBLAS threads on a
      shared 2-core machine they ran 4-15x slower than with one."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
