"""How many CPU threads PyTorch uses: the machine's *free* cores, not all of them (``$NSTUTIL_THREADS`` overrides).

Why: PyTorch starts one intra-op (OpenMP) thread per core. Its threads wait for each other at the end of every
operation, so when another process keeps one of the cores busy, every convolution waits for the thread that lost
its core: on a 2-core machine with one busy process, a 128 px, 100-evaluation run took 25-37 s in a notebook cell
and 4.6 s with one thread (``benchmarks/bench_threads.py`` measures it). A class server or a lab PC is rarely idle.

:func:`use_free_cores` counts the cores the process may use, measures how busy the machine is over a short moment
(``/proc/stat``, Linux) and gives PyTorch one thread per core that is free. Called by
:func:`nstutil.lesson.setup` (every lesson's first cell) and by the playground's run panel. Elsewhere (macOS,
Windows: no ``/proc/stat``) PyTorch's own choice stays. ``NSTUTIL_THREADS=N`` sets the number outright.
"""

from __future__ import annotations

import os
import time
from typing import Optional, Tuple

import torch

from .environment import env_int

__all__ = ["usable_cores", "busy_cores", "free_cores", "use_free_cores"]

_SAMPLE_S = 0.25  # long enough to see a busy process, short enough not to be noticed in a set-up cell


def usable_cores() -> int:
    """The number of cores this process may run on (its CPU affinity where the OS says, else all)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> Optional[Tuple[int, int]]:
    """(busy, total) jiffies of all CPUs from /proc/stat, or None where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


def busy_cores(sample_s: float = _SAMPLE_S) -> Optional[float]:
    """How many of the machine's cores other work kept busy during ``sample_s`` seconds (this process sleeps
    meanwhile, so it is not counted), or None where the OS does not say (no ``/proc/stat``)."""
    before = _cpu_times()
    if before is None:
        return None
    time.sleep(sample_s)
    after = _cpu_times()
    if after is None or after[1] <= before[1]:
        return None
    fraction = (after[0] - before[0]) / (after[1] - before[1])
    return fraction * (os.cpu_count() or 1)


def free_cores(sample_s: float = _SAMPLE_S) -> Optional[int]:
    """The usable cores minus the busy ones (at least 1), or None where the OS does not say how busy it is.

    A core counts as busy from 60 % use: a process that uses a core part of the time still makes PyTorch's
    threads wait for it."""
    busy = busy_cores(sample_s)
    if busy is None:
        return None
    taken = int(busy + 0.4)  # 0.6 of a core or more is a core taken
    return max(1, usable_cores() - taken)


def use_free_cores(*, sample_s: float = _SAMPLE_S) -> int:
    """Set PyTorch's intra-op threads to ``$NSTUTIL_THREADS`` if set, else to the free cores (see
    :func:`free_cores`); where the OS does not say, leave PyTorch's choice. Returns the number in use.

    Call it again after the machine's load changes (each lesson's set-up cell and each playground run do)."""
    wanted = env_int("NSTUTIL_THREADS", 0, minimum=0) or free_cores(sample_s)  # 0 or unset: measure
    if wanted and torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    return torch.get_num_threads()
