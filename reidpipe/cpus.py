"""The CPUs this process may run on: what thread budgets and capacity estimates count."""

from __future__ import annotations

import os


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
