"""Counts the CPUs this process may use, and the Mojo kernel's default worker counts on them.

A container's CPU limit or `taskset` leaves a process fewer CPUs than the machine has, so the count
comes from the process's affinity, not `os.cpu_count()`; a core's hardware threads are read from
the machine (Linux's sysfs) rather than assumed to be two.
"""

from __future__ import annotations

import os
from pathlib import Path

SYSFS_CPUS = Path("/sys/devices/system/cpu")


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):  # Linux: the affinity a container or taskset sets
        return len(os.sched_getaffinity(0)) or 1
    counted = getattr(os, "process_cpu_count", os.cpu_count)  # 3.13+, else macOS's whole machine
    return counted() or 1


def threads_per_core() -> int | None:
    """How many hardware threads share a core of a CPU this process may use; None when the
    machine does not say (no sysfs)."""
    cpu = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    siblings = SYSFS_CPUS / f"cpu{cpu}" / "topology" / "thread_siblings_list"
    if not siblings.exists():
        return None
    count = 0
    for part in siblings.read_text().strip().split(","):  # "0-1", "0,4" or "3"
        first, _, last = part.partition("-")
        count += int(last or first) - int(first) + 1
    return count


def kernel_worker_counts() -> tuple[int, ...]:
    """The worker counts the Mojo kernel may split its rows into by default (one per core): the
    usable CPUs over the threads per core, or, when the threads are unknown, one or two per core."""
    cpus = usable_cpus()
    per_core = threads_per_core()
    counts = (cpus, cpus // per_core) if per_core else (cpus, cpus // 2)
    return tuple(dict.fromkeys(count for count in counts if count >= 1))
