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
