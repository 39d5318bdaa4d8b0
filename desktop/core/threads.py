"""How many CPU threads llama.cpp gets when the person does not choose.

llama-cpp-python's own default is ``cpu_count() // 2``: on a 2-vCPU machine that is one
thread, and a 7B Q4_K_M model decodes at 3.3 tok/s instead of 5.9 with two (measured on the
development VM). llama.cpp's own tools (``common/common.cpp``, ``cpu_get_num_math``) use the
number of physical cores, because hyper-threads share a core's SIMD units and add nothing to
a memory-bound decode. We do the same, and never use more threads than the CPUs this
process is allowed to run on (a container's or ``taskset``'s affinity mask).
"""

from __future__ import annotations

import os

__all__ = ["default_threads", "usable_cpus"]


def usable_cpus() -> int | None:
    """The number of CPUs this process may run on (its affinity mask), when the OS says."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no sched_getaffinity
        return os.cpu_count()


def default_threads(
    physical_cores: int | None, logical_cores: int | None, usable: int | None = None
) -> int:
    """Threads for decoding: the physical cores, at most the usable CPUs, at least one."""
    cores = physical_cores or logical_cores or usable or 1
    if usable:
        cores = min(cores, usable)
    return max(int(cores), 1)
