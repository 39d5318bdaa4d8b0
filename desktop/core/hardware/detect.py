"""Putting it together: :func:`detect` probes the whole machine into a HardwareProfile.

It picks the probes for the system (sysctl and Apple on macOS, NVML plus sysfs
on Linux, NVML only elsewhere), measures or recalls the RAM bandwidth, asks
llama.cpp for its backends, and adds the warnings a person can act on: a GPU
the llama.cpp build cannot use, a broken NVIDIA driver, Rosetta.
"""

from __future__ import annotations

import dataclasses
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

from desktop.core.hardware.apple import probe_apple
from desktop.core.hardware.backends import NON_OFFLOAD_BACKENDS, backend_title, probe_backends
from desktop.core.hardware.cpu import Sysctl, cpu_cache_key, probe_cpu, run_sysctl
from desktop.core.hardware.memory import (
    PsutilLike,
    cached_ram_bandwidth,
    default_cache_dir,
    measure_ram_bandwidth,
    probe_memory,
)
from desktop.core.hardware.nvidia import NvmlLike, read_nvidia
from desktop.core.hardware.profile import (
    BANDWIDTH_CACHED,
    BANDWIDTH_MEASURED,
    BackendInfo,
    CpuInfo,
    GpuInfo,
    HardwareProfile,
    MemoryInfo,
)
from desktop.core.hardware.readers import parse_int, utc_now
from desktop.core.hardware.sysfs import probe_sysfs_gpus

# llama.cpp backends that can drive each vendor's GPUs, and the CMake switch a
# person passes (CMAKE_ARGS=... pip install llama-cpp-python) to get one.
_BACKENDS_FOR_VENDOR: dict[str, frozenset[str]] = {
    "nvidia": frozenset({"cuda", "vulkan"}),
    "amd": frozenset({"rocm", "hip", "vulkan"}),
    "intel": frozenset({"sycl", "vulkan"}),
    "apple": frozenset({"metal"}),
    "other": frozenset({"vulkan", "opencl"}),
}
_BUILD_FLAG_FOR_VENDOR = {
    "nvidia": "-DGGML_CUDA=on",
    "amd": "-DGGML_HIP=on (or -DGGML_VULKAN=on)",
    "intel": "-DGGML_VULKAN=on (or -DGGML_SYCL=on)",
    "apple": "-DGGML_METAL=on",
    "other": "-DGGML_VULKAN=on",
}
_VENDOR_TITLE = {
    "nvidia": "NVIDIA",
    "amd": "AMD",
    "intel": "Intel",
    "apple": "Apple",
    "other": "",
}


def detect(
    *,
    nvml: NvmlLike | None = None,
    sysfs_root: Path = Path("/sys"),
    sysctl: Sysctl | None = None,
    cache_dir: Path | None = None,
    measure_bandwidth: bool = True,
    check_backends: bool = True,
    cpuinfo_path: Path = Path("/proc/cpuinfo"),
    memory_source: PsutilLike | None = None,
    system: str | None = None,
    python: str = sys.executable,
) -> HardwareProfile:
    """Probe the whole machine into a HardwareProfile, with warnings a person can act on.

    Every keyword names a source so tests can swap in a fake machine;
    ``cache_dir`` defaults to the per-user cache folder. ``system`` (default
    ``platform.system()``) picks the probes: sysctl and Apple on macOS,
    NVML plus sysfs on Linux, NVML only elsewhere. Never raises.
    """
    system = system or platform.system()
    cpu = probe_cpu(cpuinfo_path, sysctl=sysctl, system=system)
    memory = probe_memory(memory_source)

    warnings: list[str] = []
    gpus: list[GpuInfo] = []
    if system == "Darwin":
        gpus += probe_apple(sysctl or run_sysctl)
        if parse_int((sysctl or run_sysctl)("sysctl.proc_translated")) == 1:
            warnings.append(
                "This Python runs under Rosetta (Intel emulation) on an Apple Silicon Mac, "
                "so llama.cpp will be slow and cannot use the GPU. Install the Apple Silicon "
                "(arm64) version of LLM Workbench or Python."
            )
    else:
        nvidia = read_nvidia(nvml)
        gpus += nvidia.gpus
        others: list[GpuInfo] = []
        if system == "Linux":
            others = probe_sysfs_gpus(sysfs_root, include_nvidia=not nvidia.gpus)
        gpus += others
        # "No NVML" is only news when an NVIDIA card is actually there.
        sees_nvidia_card = any(g.vendor == "nvidia" for g in others)
        if nvidia.notes and (nvidia.driver_present or sees_nvidia_card):
            warnings += nvidia.notes
    gpus = [dataclasses.replace(g, index=i) for i, g in enumerate(gpus)]
    gpus = [_share_host_memory(g, memory) for g in gpus]

    if measure_bandwidth:
        memory = _with_ram_bandwidth(memory, cpu, cache_dir)

    backends = probe_backends(python) if check_backends else BackendInfo()
    warnings += _backend_warnings(gpus, backends)

    return HardwareProfile(
        cpu=cpu,
        memory=memory,
        gpus=tuple(gpus),
        backends=backends,
        warnings=tuple(warnings),
        os=platform.platform(),
        created_at=utc_now(),
    )


def _share_host_memory(gpu: GpuInfo, memory: MemoryInfo) -> GpuInfo:
    """A unified-memory GPU's free memory is the host's available RAM, up to its share."""
    if not gpu.unified_memory or gpu.vram_free_bytes is not None or gpu.vram_total_bytes is None:
        return gpu
    if memory.available_bytes <= 0:
        return gpu
    reasons = tuple(r for r in gpu.unknown_reasons if not r.startswith("VRAM free:"))
    return dataclasses.replace(
        gpu,
        vram_free_bytes=min(gpu.vram_total_bytes, memory.available_bytes),
        unknown_reasons=reasons,
    )


def _with_ram_bandwidth(memory: MemoryInfo, cpu: CpuInfo, cache_dir: Path | None) -> MemoryInfo:
    try:
        folder = cache_dir if cache_dir is not None else default_cache_dir()
    except Exception:  # no home folder: measure without a cache
        folder = None
    key = cpu_cache_key(cpu)
    cached = cached_ram_bandwidth(folder, key) if folder is not None else None
    if cached is not None:
        return dataclasses.replace(
            memory, bandwidth_bytes_per_s=cached, bandwidth_source=BANDWIDTH_CACHED
        )
    measured = measure_ram_bandwidth(folder, key, refresh=True)
    if measured is None:
        return dataclasses.replace(
            memory,
            unknown_reasons=(*memory.unknown_reasons, "RAM bandwidth: the measurement failed"),
        )
    return dataclasses.replace(
        memory, bandwidth_bytes_per_s=measured, bandwidth_source=BANDWIDTH_MEASURED
    )


def _backend_warnings(gpus: Sequence[GpuInfo], backends: BackendInfo) -> list[str]:
    if not backends.checked:
        return []
    if backends.error:
        return [
            f"llama.cpp cannot be used: {backends.error}. Models cannot run until this is fixed."
        ]
    warnings: list[str] = []
    have = set(backends.backends)
    gpu_backends = sorted(have - NON_OFFLOAD_BACKENDS)
    build = (
        "is CPU-only"
        if not gpu_backends
        else "only supports " + ", ".join(backend_title(b) for b in gpu_backends)
    )
    warned: set[str] = set()
    for gpu in gpus:
        # An integrated Intel/AMD GPU rarely beats the CPU for llama.cpp, so a
        # CPU-only build is no loss there; a discrete card or Apple's GPU is.
        if gpu.unified_memory and gpu.vendor != "apple":
            continue
        if gpu.vendor in warned or have & _BACKENDS_FOR_VENDOR[gpu.vendor]:
            continue
        warned.add(gpu.vendor)
        article = "An" if gpu.vendor in ("nvidia", "amd", "intel", "apple") else "A"
        what = f"{_VENDOR_TITLE[gpu.vendor]} GPU".strip()
        warnings.append(
            f"{article} {what} is present but this llama.cpp build {build}: reinstall "
            f"llama-cpp-python with CMAKE_ARGS={_BUILD_FLAG_FOR_VENDOR[gpu.vendor]} to use it."
        )
    return warnings
