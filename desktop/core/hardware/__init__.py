"""What this computer has: CPU, RAM, every GPU, memory bandwidth, llama.cpp backends.

The result is a :class:`HardwareProfile`, an immutable snapshot with every size
in integer bytes (``profile``). It round-trips through JSON (``llm-workbench
hardware --json`` prints it, ``--hardware FILE`` reads one back), and
``from_dict`` accepts a hand-written profile with only a few fields, so "what
if I had a 16 GB card" is a three-line file.

Every probe takes its source as a parameter (an NVML-like object, a sysfs
root, a sysctl function, a /proc/cpuinfo path, a Python interpreter) so that
tests can hand it a fake machine, and every probe *never raises*: a field that
cannot be read becomes ``None`` and a sentence in ``unknown_reasons`` saying
why, in the spirit of nvitop's NVML wrapper. A person with a broken driver
still gets a profile, plus a warning that tells them what to fix.

One module per source: ``cpu``, ``memory`` (with the bandwidth benchmark),
``nvidia`` (NVML, and :class:`Nvml`, the app's one NVML wrapper), ``sysfs``
(AMD, Intel), ``apple``, ``backends`` (llama.cpp, asked in a child process);
``detect`` puts them together and ``summary`` writes the text. Everything
callers use is importable from here.

This package is pure Python: no Qt, and llama_cpp is never imported here (an
import-linter contract checks it). The llama.cpp build is asked about its
backends in a child process, because importing a mismatched build can kill
the process with an illegal instruction.
"""

from __future__ import annotations

from desktop.core.hardware.apple import apple_recommended_working_set, probe_apple
from desktop.core.hardware.backends import NON_OFFLOAD_BACKENDS, probe_backends
from desktop.core.hardware.cpu import Sysctl, cpu_cache_key, probe_cpu
from desktop.core.hardware.detect import detect
from desktop.core.hardware.memory import (
    PsutilLike,
    cached_ram_bandwidth,
    default_cache_dir,
    measure_ram_bandwidth,
    probe_memory,
)
from desktop.core.hardware.nvidia import Nvml, NvmlLike, probe_nvidia
from desktop.core.hardware.profile import (
    BANDWIDTH_CACHED,
    BANDWIDTH_MANUAL,
    BANDWIDTH_MEASURED,
    BANDWIDTH_NVML,
    BANDWIDTH_UNKNOWN,
    GPU_VENDORS,
    SCHEMA_VERSION,
    BackendInfo,
    CpuInfo,
    GpuInfo,
    HardwareProfile,
    MemoryInfo,
)
from desktop.core.hardware.summary import summary_lines
from desktop.core.hardware.sysfs import probe_sysfs_gpus

__all__ = [
    "BANDWIDTH_CACHED",
    "BANDWIDTH_MANUAL",
    "BANDWIDTH_MEASURED",
    "BANDWIDTH_NVML",
    "BANDWIDTH_UNKNOWN",
    "GPU_VENDORS",
    "NON_OFFLOAD_BACKENDS",
    "SCHEMA_VERSION",
    "BackendInfo",
    "CpuInfo",
    "GpuInfo",
    "HardwareProfile",
    "MemoryInfo",
    "Nvml",
    "NvmlLike",
    "PsutilLike",
    "Sysctl",
    "apple_recommended_working_set",
    "cached_ram_bandwidth",
    "cpu_cache_key",
    "default_cache_dir",
    "detect",
    "measure_ram_bandwidth",
    "probe_apple",
    "probe_backends",
    "probe_cpu",
    "probe_memory",
    "probe_nvidia",
    "probe_sysfs_gpus",
    "summary_lines",
]
