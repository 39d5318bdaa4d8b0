"""What this computer has: CPU, RAM, every GPU, memory bandwidth, llama.cpp backends.

The result is a :class:`HardwareProfile`, an immutable snapshot with every size
in integer bytes. It round-trips through JSON (``llm-workbench hardware
--json`` prints it, ``--hardware FILE`` reads one back), and ``from_dict``
accepts a hand-written profile with only a few fields, so "what if I had a
16 GB card" is a three-line file.

Every probe takes its source as a parameter (an NVML-like object, a sysfs
root, a sysctl function, a /proc/cpuinfo path, a Python interpreter) so that
tests can hand it a fake machine, and every probe *never raises*: a field that
cannot be read becomes ``None`` and a sentence in ``unknown_reasons`` saying
why, in the spirit of nvitop's NVML wrapper. A person with a broken driver
still gets a profile, plus a warning that tells them what to fix.

GPUs are listed one by one and never summed: two 12 GB cards are not one
24 GB card for llama.cpp (layers are split, and each card needs its own
buffers), and the estimator must see each.

This module is pure Python: no Qt, and llama_cpp is never imported here (an
import-linter contract checks it). The llama.cpp build is asked about its
backends in a child process, because importing a mismatched build can kill
the process with an illegal instruction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from desktop.core.units import GIB, MIB, format_bandwidth, format_bytes

__all__ = [
    "BackendInfo",
    "CpuInfo",
    "GpuInfo",
    "HardwareProfile",
    "MemoryInfo",
    "NvmlLike",
    "PsutilLike",
    "Sysctl",
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

SCHEMA_VERSION = 1

# Where a bandwidth number came from. RAM: "measured" now, "cached" from an
# earlier measurement on this CPU, "manual" typed into a what-if profile.
# GPU: "nvml" (bus width x memory clock, see _nvml_bandwidth), "manual".
# "unknown" everywhere when there is no number.
BANDWIDTH_MEASURED = "measured"
BANDWIDTH_CACHED = "cached"
BANDWIDTH_NVML = "nvml"
BANDWIDTH_MANUAL = "manual"
BANDWIDTH_UNKNOWN = "unknown"

GPU_VENDORS = ("nvidia", "amd", "intel", "apple", "other")

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


# --------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuInfo:
    """The processor. ``features`` are the SIMD flags llama.cpp's CPU kernels use."""

    brand: str = "unknown CPU"
    architecture: str = "unknown"  # normalised: "x86_64", "arm64", ...
    physical_cores: int | None = None
    logical_cores: int | None = None
    features: tuple[str, ...] = ()  # lower case, e.g. ("sse3", "avx", "avx2", "fma")


@dataclass(frozen=True)
class MemoryInfo:
    """System RAM. The CPU part of a model is read from here once per token."""

    total_bytes: int = 0
    available_bytes: int = 0
    swap_total_bytes: int = 0
    swap_free_bytes: int = 0
    bandwidth_bytes_per_s: int | None = None
    bandwidth_source: str = BANDWIDTH_UNKNOWN  # "measured" / "cached" / "manual" / "unknown"
    unknown_reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class GpuInfo:
    """One GPU. Fields that could not be read are None, with a reason in ``unknown_reasons``."""

    index: int = 0
    vendor: str = "other"  # one of GPU_VENDORS
    name: str = "unknown GPU"
    vram_total_bytes: int | None = None  # unified GPUs: the share the GPU may use
    vram_free_bytes: int | None = None
    vram_used_bytes: int | None = None
    unified_memory: bool = False  # integrated GPUs and Apple share system RAM
    driver_version: str | None = None
    cuda_version: str | None = None  # highest CUDA the driver supports, e.g. "12.4"
    compute_capability: str | None = None  # e.g. "8.9"
    memory_bus_width_bits: int | None = None
    max_memory_clock_mhz: int | None = None  # as NVML reports it, see _nvml_bandwidth
    bandwidth_bytes_per_s: int | None = None  # theoretical peak
    bandwidth_source: str = BANDWIDTH_UNKNOWN  # "nvml" / "manual" / "unknown"
    pcie_generation: int | None = None
    pcie_width: int | None = None  # lanes
    unknown_reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackendInfo:
    """What the installed llama-cpp-python build can use.

    ``checked`` is False when nobody asked (``detect(check_backends=False)``, or
    a hand-written profile without a "backends" entry); then ``backends`` is
    empty and means "unknown", not "none".
    """

    backends: tuple[str, ...] = ()  # lower case, "cpu" first, e.g. ("cpu", "cuda")
    llama_cpp_version: str | None = None
    gpu_offload_supported: bool = False
    devices: tuple[str, ...] = ()  # ggml devices, e.g. "CUDA0: NVIDIA GeForce RTX 4090"
    system_info: str | None = None  # llama_print_system_info(), for bug reports
    error: str | None = None  # why llama.cpp could not be asked, in words
    checked: bool = False


@dataclass(frozen=True)
class HardwareProfile:
    """Everything the estimator needs to know about one machine (real or imagined)."""

    cpu: CpuInfo = field(default_factory=CpuInfo)
    memory: MemoryInfo = field(default_factory=MemoryInfo)
    gpus: tuple[GpuInfo, ...] = ()  # each card separately, never summed
    backends: BackendInfo = field(default_factory=BackendInfo)
    warnings: tuple[str, ...] = ()  # sentences for the person, with the fix
    os: str = ""  # platform.platform()
    created_at: str = ""  # ISO 8601, UTC

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of JSON types; ``from_dict`` turns it back into an equal profile."""
        data: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        data.update(dataclasses.asdict(self))
        return data

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HardwareProfile:
        """Build a profile from a dict, filling every missing optional key with a default.

        Raises ValueError, naming the field, when a value has the wrong type: this
        reads files people write by hand, and they deserve to know which line is wrong.
        """
        if not isinstance(data, Mapping):
            raise ValueError("a hardware profile must be a JSON object")
        gpus_raw = data.get("gpus") or []
        if not isinstance(gpus_raw, list | tuple):
            raise ValueError("'gpus' must be a list of GPU objects")
        return cls(
            cpu=_cpu_from_dict(_section(data, "cpu")),
            memory=_memory_from_dict(_section(data, "memory")),
            gpus=tuple(_gpu_from_dict(g, i) for i, g in enumerate(gpus_raw)),
            backends=_backends_from_dict(data.get("backends")),
            warnings=_str_tuple(data, "warnings", "warnings"),
            os=_str(data, "os", "os", ""),
            created_at=_str(data, "created_at", "created_at", ""),
        )

    @classmethod
    def from_json(cls, text: str) -> HardwareProfile:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from exc
        return cls.from_dict(data)


def _section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"'{key}' must be an object")
    return value


def _opt_int(data: Mapping[str, Any], key: str, where: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    # bool is an int subclass; "true" bytes is always a typo.
    if isinstance(value, bool):
        raise ValueError(f"{where} must be a whole number, not {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)  # 8.0e9 written by hand is fine
    raise ValueError(f"{where} must be a whole number, not {value!r}")


def _int(data: Mapping[str, Any], key: str, where: str, default: int) -> int:
    value = _opt_int(data, key, where)
    return default if value is None else value


def _opt_str(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where} must be text, not {value!r}")
    return value


def _str(data: Mapping[str, Any], key: str, where: str, default: str) -> str:
    value = _opt_str(data, key, where)
    return default if value is None else value


def _bool(data: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ValueError(f"{where} must be true or false, not {value!r}")
    return value


def _str_tuple(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where} must be a list of text")
    return tuple(value)


def _cpu_from_dict(d: Mapping[str, Any]) -> CpuInfo:
    return CpuInfo(
        brand=_str(d, "brand", "cpu.brand", CpuInfo.brand),
        architecture=_str(d, "architecture", "cpu.architecture", CpuInfo.architecture),
        physical_cores=_opt_int(d, "physical_cores", "cpu.physical_cores"),
        logical_cores=_opt_int(d, "logical_cores", "cpu.logical_cores"),
        features=_str_tuple(d, "features", "cpu.features"),
    )


def _memory_from_dict(d: Mapping[str, Any]) -> MemoryInfo:
    total = _int(d, "total_bytes", "memory.total_bytes", 0)
    bandwidth = _opt_int(d, "bandwidth_bytes_per_s", "memory.bandwidth_bytes_per_s")
    source = _opt_str(d, "bandwidth_source", "memory.bandwidth_source")
    if source is None:
        # A number typed into a what-if file is the person's own figure.
        source = BANDWIDTH_UNKNOWN if bandwidth is None else BANDWIDTH_MANUAL
    return MemoryInfo(
        total_bytes=total,
        # A what-if profile rarely says what is free; assume an idle machine.
        available_bytes=_int(d, "available_bytes", "memory.available_bytes", total),
        swap_total_bytes=_int(d, "swap_total_bytes", "memory.swap_total_bytes", 0),
        swap_free_bytes=_int(d, "swap_free_bytes", "memory.swap_free_bytes", 0),
        bandwidth_bytes_per_s=bandwidth,
        bandwidth_source=source,
        unknown_reasons=_str_tuple(d, "unknown_reasons", "memory.unknown_reasons"),
    )


def _gpu_from_dict(raw: Any, position: int) -> GpuInfo:
    where = f"gpus[{position}]"
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be an object")
    name = _str(raw, "name", f"{where}.name", GpuInfo.name)
    vendor = _str(raw, "vendor", f"{where}.vendor", _vendor_from_name(name))
    if vendor not in GPU_VENDORS:
        raise ValueError(f"{where}.vendor must be one of {', '.join(GPU_VENDORS)}")
    bandwidth = _opt_int(raw, "bandwidth_bytes_per_s", f"{where}.bandwidth_bytes_per_s")
    source = _opt_str(raw, "bandwidth_source", f"{where}.bandwidth_source")
    if source is None:
        source = BANDWIDTH_UNKNOWN if bandwidth is None else BANDWIDTH_MANUAL

    def opt_int(key: str) -> int | None:
        return _opt_int(raw, key, f"{where}.{key}")

    def opt_str(key: str) -> str | None:
        return _opt_str(raw, key, f"{where}.{key}")

    return GpuInfo(
        index=_int(raw, "index", f"{where}.index", position),
        vendor=vendor,
        name=name,
        vram_total_bytes=opt_int("vram_total_bytes"),
        vram_free_bytes=opt_int("vram_free_bytes"),
        vram_used_bytes=opt_int("vram_used_bytes"),
        unified_memory=_bool(raw, "unified_memory", f"{where}.unified_memory", vendor == "apple"),
        driver_version=opt_str("driver_version"),
        cuda_version=opt_str("cuda_version"),
        compute_capability=opt_str("compute_capability"),
        memory_bus_width_bits=opt_int("memory_bus_width_bits"),
        max_memory_clock_mhz=opt_int("max_memory_clock_mhz"),
        bandwidth_bytes_per_s=bandwidth,
        bandwidth_source=source,
        pcie_generation=opt_int("pcie_generation"),
        pcie_width=opt_int("pcie_width"),
        unknown_reasons=_str_tuple(raw, "unknown_reasons", f"{where}.unknown_reasons"),
    )


def _vendor_from_name(name: str) -> str:
    """Guess the vendor of a hand-written GPU from its name ("RTX 3060" -> nvidia)."""
    lowered = name.lower()
    if any(w in lowered for w in ("nvidia", "geforce", "rtx", "gtx", "quadro", "tesla")):
        return "nvidia"
    if any(w in lowered for w in ("amd", "radeon", "instinct")):
        return "amd"
    if any(w in lowered for w in ("intel", "arc ", "iris")):
        return "intel"
    if lowered.startswith("apple") or re.search(r"\bm[1-9]\b", lowered):
        return "apple"
    return "other"


def _backends_from_dict(raw: Any) -> BackendInfo:
    if raw is None:
        return BackendInfo()
    # A bare list, ["cpu", "cuda"], is the natural thing to write by hand.
    if isinstance(raw, list | tuple):
        names = _str_tuple({"b": raw}, "b", "backends")
        return BackendInfo(
            backends=names,
            gpu_offload_supported=any(n != "cpu" for n in names),
            checked=True,
        )
    if not isinstance(raw, Mapping):
        raise ValueError("'backends' must be an object or a list of backend names")
    names = _str_tuple(raw, "backends", "backends.backends")
    return BackendInfo(
        backends=names,
        llama_cpp_version=_opt_str(raw, "llama_cpp_version", "backends.llama_cpp_version"),
        gpu_offload_supported=_bool(
            raw,
            "gpu_offload_supported",
            "backends.gpu_offload_supported",
            any(n != "cpu" for n in names),
        ),
        devices=_str_tuple(raw, "devices", "backends.devices"),
        system_info=_opt_str(raw, "system_info", "backends.system_info"),
        error=_opt_str(raw, "error", "backends.error"),
        checked=_bool(raw, "checked", "backends.checked", bool(names)),
    )


# --------------------------------------------------------------------------
# Small readers that never raise
# --------------------------------------------------------------------------


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _parse_int(text: str | None, base: int = 10) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip(), base)
    except ValueError:
        return None


def _utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


# --------------------------------------------------------------------------
# CPU
# --------------------------------------------------------------------------

Sysctl = Callable[[str], str | None]
"""Answers ``sysctl -n NAME`` as text, or None when the name does not exist."""

# /proc/cpuinfo (and macOS sysctl) flag -> the name we report. Only flags that
# llama.cpp's CPU backend selects kernels by (its system_info line lists the
# same set), so the list stays short enough to show a person.
_X86_FLAGS = {
    "pni": "sse3",  # the kernel calls SSE3 "pni" (Prescott New Instructions)
    "sse3": "sse3",
    "ssse3": "ssse3",
    "avx": "avx",
    "avx1.0": "avx",  # macOS spelling
    "avx_vnni": "avx_vnni",
    "avxvnni": "avx_vnni",
    "avx2": "avx2",
    "f16c": "f16c",
    "fma": "fma",
    "bmi2": "bmi2",
    "avx512f": "avx512f",
    "avx512bw": "avx512bw",
    "avx512vbmi": "avx512vbmi",
    "avx512_vnni": "avx512vnni",
    "avx512vnni": "avx512vnni",
    "avx512_bf16": "avx512_bf16",
    "avx512bf16": "avx512_bf16",
    "amx_tile": "amx_tile",
    "amx_int8": "amx_int8",
    "amx_bf16": "amx_bf16",
}
_ARM_FLAGS = {
    "neon": "neon",  # 32-bit ARM
    "asimd": "neon",  # AArch64 calls NEON "Advanced SIMD"
    "asimdhp": "fp16",  # half-precision vector arithmetic (llama.cpp FP16_VA)
    "asimddp": "dotprod",
    "i8mm": "i8mm",
    "bf16": "bf16",
    "sve": "sve",
    "sve2": "sve2",
    "sme": "sme",
}
_FEATURE_ORDER = (
    *("sse3", "ssse3", "avx", "avx_vnni", "avx2", "f16c", "fma", "bmi2"),
    *("avx512f", "avx512bw", "avx512vbmi", "avx512vnni", "avx512_bf16"),
    *("amx_tile", "amx_int8", "amx_bf16"),
    *("neon", "fp16", "dotprod", "i8mm", "bf16", "sve", "sve2", "sme"),
)


def _ordered_features(found: Iterable[str]) -> tuple[str, ...]:
    found_set = set(found)
    return tuple(f for f in _FEATURE_ORDER if f in found_set)


def _normalise_arch(machine: str) -> str:
    lowered = machine.strip().lower()
    if lowered in ("x86_64", "amd64", "x64"):
        return "x86_64"
    if lowered in ("aarch64", "arm64", "armv8", "armv8l"):
        return "arm64"
    return lowered or "unknown"


def _run_sysctl(name: str) -> str | None:
    """The real sysctl (macOS, BSD). None when absent or failing."""
    try:
        done = subprocess.run(
            ["sysctl", "-n", name], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def probe_cpu(
    cpuinfo_path: Path = Path("/proc/cpuinfo"),
    *,
    sysctl: Sysctl | None = None,
    system: str | None = None,
    machine: str | None = None,
) -> CpuInfo:
    """Read the CPU: /proc/cpuinfo on Linux, sysctl on macOS, ``platform`` elsewhere.

    ``system`` and ``machine`` default to ``platform.system()`` / ``platform.machine()``
    and exist so tests can pretend to be another OS. Never raises.
    """
    system = system or platform.system()
    arch = _normalise_arch(machine or platform.machine())
    try:
        if system == "Darwin":
            info = _cpu_from_sysctl(sysctl or _run_sysctl, arch)
            if info is not None:
                return info
        else:
            text = _read_text(cpuinfo_path)
            if text:
                return _cpu_from_cpuinfo(text, arch)
    except Exception:  # a probe never raises; fall through to the plain answer
        pass
    return _cpu_fallback(arch)


def _cpu_fallback(arch: str) -> CpuInfo:
    """Windows and anything unusual: name and core counts only, no SIMD flags."""
    physical: int | None = None
    with contextlib.suppress(Exception):
        import psutil

        physical = psutil.cpu_count(logical=False)
    return CpuInfo(
        brand=platform.processor() or f"{arch} CPU",
        architecture=arch,
        physical_cores=physical,
        logical_cores=os.cpu_count(),
        features=(),
    )


def _cpu_from_cpuinfo(text: str, arch: str) -> CpuInfo:
    """Parse /proc/cpuinfo: one block per logical CPU, "key : value" lines."""
    logical = 0
    cores: set[tuple[str, str]] = set()
    brand: str | None = None
    board_model: str | None = None
    flags: set[str] = set()
    physical_id = ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        value = value.strip()
        if key == "processor" and value.isdigit():
            logical += 1
            physical_id = ""
        elif key == "model name" and brand is None:
            brand = value
        elif key in ("model", "hardware") and board_model is None and not value.isdigit():
            board_model = value  # Raspberry Pi and other ARM boards name themselves here
        elif key in ("flags", "features"):
            flags.update(value.lower().split())
        elif key == "physical id":
            physical_id = value
        elif key == "core id":
            cores.add((physical_id, value))
    table = _ARM_FLAGS if arch.startswith("arm") else _X86_FLAGS
    features = _ordered_features(table[f] for f in flags if f in table)
    logical_cores = logical or os.cpu_count()
    # "core id" is absent on ARM, which has no SMT: one thread per core.
    physical_cores = len(cores) if cores else logical_cores
    return CpuInfo(
        brand=brand or board_model or f"{arch} CPU",
        architecture=arch,
        physical_cores=physical_cores,
        logical_cores=logical_cores,
        features=features,
    )


def _cpu_from_sysctl(sysctl: Sysctl, arch: str) -> CpuInfo | None:
    brand = sysctl("machdep.cpu.brand_string")
    if brand is None:
        return None
    # platform.machine() says x86_64 when this Python runs under Rosetta on an
    # Apple Silicon Mac; the hardware itself answers hw.optional.arm64.
    if _parse_int(sysctl("hw.optional.arm64")) == 1:
        arch = "arm64"
    found: list[str] = []
    if arch == "arm64":
        arm_sysctls = {
            "hw.optional.neon": "neon",
            "hw.optional.arm.FEAT_FP16": "fp16",
            "hw.optional.neon_fp16": "fp16",
            "hw.optional.arm.FEAT_DotProd": "dotprod",
            "hw.optional.arm.FEAT_I8MM": "i8mm",
            "hw.optional.arm.FEAT_BF16": "bf16",
            "hw.optional.arm.FEAT_SME": "sme",
        }
        found = [flag for name, flag in arm_sysctls.items() if _parse_int(sysctl(name)) == 1]
    else:
        words: list[str] = []
        for name in ("machdep.cpu.features", "machdep.cpu.leaf7_features"):
            words += (sysctl(name) or "").lower().split()
        found = [_X86_FLAGS[w] for w in words if w in _X86_FLAGS]
    return CpuInfo(
        brand=brand,
        architecture=arch,
        physical_cores=_parse_int(sysctl("hw.physicalcpu")),
        logical_cores=_parse_int(sysctl("hw.logicalcpu")) or os.cpu_count(),
        features=_ordered_features(found),
    )


def cpu_cache_key(cpu: CpuInfo) -> str:
    """Key for per-CPU caches: brand plus core counts (the same model can ship in sizes)."""
    return f"{cpu.brand} ({cpu.physical_cores}C/{cpu.logical_cores}T, {cpu.architecture})"


# --------------------------------------------------------------------------
# RAM
# --------------------------------------------------------------------------


class PsutilLike(Protocol):
    """The two psutil functions probe_memory uses (tests pass a fake)."""

    def virtual_memory(self) -> Any: ...  # .total, .available

    def swap_memory(self) -> Any: ...  # .total, .free


def probe_memory(ps: PsutilLike | None = None) -> MemoryInfo:
    """Total and available RAM and swap, in bytes. Bandwidth is filled in by ``detect``."""
    reasons: list[str] = []
    if ps is None:
        try:
            import psutil

            ps = psutil
        except ImportError:
            reasons.append("RAM: psutil is not installed; reinstall LLM Workbench")
            return MemoryInfo(unknown_reasons=tuple(reasons))
    total = available = swap_total = swap_free = 0
    try:
        vm = ps.virtual_memory()
        total, available = int(vm.total), int(vm.available)
    except Exception as exc:  # a probe never raises
        reasons.append(f"RAM: could not be read ({type(exc).__name__}: {exc})")
    try:
        sw = ps.swap_memory()
        swap_total, swap_free = int(sw.total), int(sw.free)
    except Exception as exc:  # Some containers have no readable swap info.
        reasons.append(f"swap: could not be read ({type(exc).__name__}: {exc})")
    return MemoryInfo(
        total_bytes=total,
        available_bytes=available,
        swap_total_bytes=swap_total,
        swap_free_bytes=swap_free,
        unknown_reasons=tuple(reasons),
    )


def default_cache_dir() -> Path:
    """Per-user cache folder (for the RAM bandwidth measurement)."""
    import platformdirs

    return platformdirs.user_cache_path("llm-workbench")


_BANDWIDTH_CACHE_FILE = "ram_bandwidth.json"


def _load_bandwidth_cache(cache_dir: Path) -> dict[str, Any]:
    text = _read_text(cache_dir / _BANDWIDTH_CACHE_FILE)
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {}  # a damaged cache is only a reason to measure again
    return data if isinstance(data, dict) else {}


def cached_ram_bandwidth(cache_dir: Path, cpu_key: str) -> int | None:
    """The bandwidth measured earlier on this CPU, or None."""
    entry = _load_bandwidth_cache(cache_dir).get(cpu_key)
    if isinstance(entry, dict):
        value = entry.get("bytes_per_s")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _store_bandwidth(cache_dir: Path, cpu_key: str, value: int) -> None:
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        data = _load_bandwidth_cache(cache_dir)
        data[cpu_key] = {"bytes_per_s": value, "measured_at": _utc_now()}
        # Write then rename, so a crash never leaves half a file behind.
        tmp = cache_dir / f"{_BANDWIDTH_CACHE_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        tmp.replace(cache_dir / _BANDWIDTH_CACHE_FILE)
    except OSError:
        pass  # no cache is fine; we measure again next time


def measure_ram_bandwidth(
    cache_dir: Path | None,
    cpu_key: str,
    *,
    budget_s: float = 0.8,
    refresh: bool = False,
    array_bytes: int = 128 * MIB,
    threads: int | None = None,
) -> int | None:
    """System RAM bandwidth in bytes/s, from a short copy benchmark, cached per CPU.

    Token generation on the CPU reads every weight once per token, so this
    number (not core count) predicts CPU speed. The benchmark copies one
    ``array_bytes`` NumPy array into another, split over ``threads`` threads
    (NumPy releases the GIL during the copy), and keeps the best of as many
    repetitions as fit in ``budget_s``. It counts read + write bytes, the
    STREAM "copy" convention. 128 MiB arrays are far larger than any desktop
    L3 cache, so the copy runs from RAM.

    A cached value (same ``cpu_key`` in ``cache_dir``) is returned without
    measuring unless ``refresh``. Returns None when it could not measure.
    """
    if cache_dir is not None and not refresh:
        cached = cached_ram_bandwidth(cache_dir, cpu_key)
        if cached is not None:
            return cached
    try:
        value = _copy_benchmark(budget_s, array_bytes, threads)
    except Exception:  # MemoryError, a NumPy without threads...: just "unknown"
        value = None
    if value is not None and cache_dir is not None:
        _store_bandwidth(cache_dir, cpu_key, value)
    return value


def _copy_benchmark(budget_s: float, array_bytes: int, threads: int | None) -> int | None:
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    with contextlib.suppress(Exception):
        import psutil

        # Two arrays must fit comfortably; never push a small machine into swap.
        available = int(psutil.virtual_memory().available)
        array_bytes = min(array_bytes, available // 8)
    if array_bytes < 16 * MIB:
        return None
    workers = max(1, threads if threads is not None else min(8, os.cpu_count() or 1))
    n = array_bytes // 8
    start = time.perf_counter()
    src = np.ones(n, dtype=np.float64)
    dst = np.empty_like(src)
    bounds = [(n * k // workers, n * (k + 1) // workers) for k in range(workers)]

    def copy_slice(lo_hi: tuple[int, int]) -> None:
        lo, hi = lo_hi
        np.copyto(dst[lo:hi], src[lo:hi])

    best = 0.0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(copy_slice, bounds))  # warm-up: touches (page-faults) dst
        for _ in range(20):
            t0 = time.perf_counter()
            list(pool.map(copy_slice, bounds))
            elapsed = time.perf_counter() - t0
            if elapsed > 0:
                best = max(best, 2 * n * 8 / elapsed)
            if time.perf_counter() - start >= budget_s:
                break
    return int(best) if best > 0 else None


# --------------------------------------------------------------------------
# NVIDIA (NVML)
# --------------------------------------------------------------------------


class NvmlLike(Protocol):
    """The part of ``pynvml`` (nvidia-ml-py) that probe_nvidia needs unconditionally.

    Per-device functions (nvmlDeviceGetName, ...GetMemoryInfo, ...GetMemoryBusWidth,
    ...GetMaxClockInfo, ...GetCudaComputeCapability, ...GetMax/CurrPcieLink*,
    nvmlSystemGetDriverVersion, nvmlSystemGetCudaDriverVersion[_v2]) are looked up
    by name, because older nvidia-ml-py releases lack some of them.
    """

    NVMLError: type[Exception]

    def nvmlInit(self) -> None: ...

    def nvmlShutdown(self) -> None: ...


# NVML return codes (nvml.h). Fixed by NVIDIA's ABI; written here so a fake
# NVML in tests only has to provide NVMLError.
_NVML_ERROR_UNINITIALIZED = 1
_NVML_ERROR_NOT_SUPPORTED = 3
_NVML_ERROR_NO_PERMISSION = 4
_NVML_ERROR_DRIVER_NOT_LOADED = 9
_NVML_ERROR_LIBRARY_NOT_FOUND = 12
_NVML_ERROR_FUNCTION_NOT_FOUND = 13
_NVML_ERROR_GPU_IS_LOST = 15
_NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
_NVML_CLOCK_MEM = 2
# nvml.h's NVML_VALUE_NOT_AVAILABLE: an unsigned -1 stands for "no value".
_NVML_NOT_AVAILABLE = {2**32 - 1, 2**64 - 1}


def _nvml_error_code(exc: BaseException) -> int | None:
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) else None


def _nvml_error_text(exc: BaseException) -> str:
    """A field-level NVML failure as a short phrase."""
    code = _nvml_error_code(exc)
    if code == _NVML_ERROR_NOT_SUPPORTED:
        return "not supported by this GPU or driver"
    if code == _NVML_ERROR_NO_PERMISSION:
        return "permission denied"
    if code == _NVML_ERROR_FUNCTION_NOT_FOUND:
        return "not available in this NVIDIA driver version"
    if code == _NVML_ERROR_GPU_IS_LOST:
        return "the GPU stopped responding; restart the computer"
    try:
        text = str(exc)
    except Exception:  # pynvml's __str__ asks the library, which may be gone
        text = ""
    return f"NVML error {code}: {text}" if text else f"NVML error {code}"


@dataclass
class _NvmlOutcome:
    gpus: list[GpuInfo]
    notes: list[str]
    # True when the failure proves an NVIDIA driver is installed (so a person
    # with an NVIDIA card needs to hear about it), False for "no NVML here".
    driver_present: bool


def _nvml_init_failure(exc: BaseException) -> tuple[str, bool]:
    """A failed nvmlInit as a sentence for a person, and whether a driver is present."""
    code = _nvml_error_code(exc)
    if code == _NVML_ERROR_LIBRARY_NOT_FOUND:
        return (
            "The NVIDIA driver library (NVML) was not found, so NVIDIA GPUs cannot be read. "
            "If this computer has an NVIDIA GPU, install the NVIDIA driver.",
            False,
        )
    if code == _NVML_ERROR_DRIVER_NOT_LOADED:
        return (
            "The NVIDIA driver is installed but not running, so the NVIDIA GPU cannot be used. "
            "Restart the computer; if that does not help, reinstall the NVIDIA driver.",
            True,
        )
    if code == _NVML_ERROR_LIB_RM_VERSION_MISMATCH:
        return (
            "The NVIDIA driver was updated but the old version is still loaded "
            "(driver/library version mismatch). Restart the computer to use the GPU.",
            True,
        )
    if code == _NVML_ERROR_NO_PERMISSION:
        return (
            "Not allowed to read the NVIDIA GPU (permission denied). "
            "Check that your user may access /dev/nvidia*.",
            True,
        )
    if code == _NVML_ERROR_UNINITIALIZED:
        return (
            "The NVIDIA management library (NVML) could not be initialised. "
            "Restart the computer or reinstall the NVIDIA driver.",
            True,
        )
    return (f"Reading NVIDIA GPUs failed ({_nvml_error_text(exc)}).", True)


def _nvml_call(nvml: Any, what: str, reasons: list[str], names: Sequence[str], *args: Any) -> Any:
    """Call the first NVML function in ``names`` that works; None plus a reason otherwise.

    This is the one place NVML failures are handled: a missing function (old
    nvidia-ml-py), an NVMLError (NotSupported, NoPermission, ...), a None
    (Windows WDDM reports some values as unavailable) and the NVML
    "not available" sentinel all become None, and one phrase is appended to
    ``reasons`` in the form "<what>: <why>".
    """
    error_type: type[BaseException] = getattr(nvml, "NVMLError", Exception)
    why = f"not available in this nvidia-ml-py version ({names[0]})"
    for name in names:
        func = getattr(nvml, name, None)
        if func is None:
            continue
        try:
            value = func(*args)
        except error_type as exc:
            why = _nvml_error_text(exc)
            continue
        except Exception as exc:  # ctypes trouble and the like: still never raise
            why = f"{type(exc).__name__}: {exc}"
            continue
        if value is None or (isinstance(value, int) and value in _NVML_NOT_AVAILABLE):
            why = "not reported by the driver"
            continue
        return value
    reasons.append(f"{what}: {why}")
    return None


def _as_text(value: Any) -> str | None:
    """NVML strings: bytes on older nvidia-ml-py, str on newer."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").strip("\x00 ")
    return str(value).strip()


def _as_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return None if number in _NVML_NOT_AVAILABLE else number


def _cuda_version_text(version: int | None) -> str | None:
    """NVML encodes CUDA 12.4 as 12040 (1000 * major + 10 * minor)."""
    if version is None or version <= 0:
        return None
    return f"{version // 1000}.{(version % 1000) // 10}"


def _nvml_bandwidth(bus_width_bits: int | None, max_memory_clock_mhz: int | None) -> int | None:
    """Theoretical peak VRAM bandwidth in bytes/s from NVML's bus width and memory clock.

    bandwidth = 2 * clock_MHz * 1e6 * bus_bits / 8

    The factor 2 is the double data rate: NVML's NVML_CLOCK_MEM (like CUDA's
    cudaDeviceProp.memoryClockRate) is reported so that two transfers happen
    per clock on every memory type, GDDR6X and HBM included. This is the
    formula in NVIDIA's "How to Implement Performance Metrics in CUDA C/C++"
    (theoretical bandwidth = memory clock * 2 * bus width / 8) and in NVIDIA's
    nvbench (device_info::get_global_memory_bandwidth, "ddr_factor = 2").
    Checks: RTX 4090 384-bit, 10501 MHz -> 1008 GB/s (spec 1008);
    RTX 3090 384-bit, 9751 MHz -> 936 GB/s (spec 936);
    A100 40GB 5120-bit, 1215 MHz -> 1555 GB/s (spec 1555).
    """
    if not bus_width_bits or not max_memory_clock_mhz:
        return None
    return 2 * max_memory_clock_mhz * 1_000_000 * bus_width_bits // 8


def probe_nvidia(nvml: NvmlLike | None = None) -> tuple[list[GpuInfo], list[str]]:
    """Every NVIDIA GPU through NVML, plus notes on why NVML could not be read.

    ``nvml`` defaults to the ``pynvml`` module (from nvidia-ml-py), imported
    here lazily. Returns ([], [note]) when there is no NVML at all; that is
    normal on a machine without an NVIDIA card. Never raises; always calls
    nvmlShutdown after a successful nvmlInit.
    """
    outcome = _probe_nvidia(nvml)
    return outcome.gpus, outcome.notes


def _probe_nvidia(nvml: NvmlLike | None) -> _NvmlOutcome:
    if nvml is None:
        try:
            import pynvml
        except ImportError:
            return _NvmlOutcome(
                [],
                [
                    "nvidia-ml-py is not installed, so NVIDIA GPUs cannot be read. "
                    "Reinstall LLM Workbench."
                ],
                False,
            )
        nvml = pynvml
    lib: Any = nvml
    error_type: type[BaseException] = getattr(lib, "NVMLError", Exception)
    try:
        lib.nvmlInit()
    except error_type as exc:
        note, driver_present = _nvml_init_failure(exc)
        return _NvmlOutcome([], [note], driver_present)
    except Exception as exc:  # e.g. OSError from ctypes on a half-removed driver
        return _NvmlOutcome(
            [], [f"Reading NVIDIA GPUs failed ({type(exc).__name__}: {exc})."], True
        )
    try:
        return _read_nvidia_devices(lib)
    finally:
        with contextlib.suppress(Exception):
            lib.nvmlShutdown()


def _read_nvidia_devices(lib: Any) -> _NvmlOutcome:
    system_reasons: list[str] = []
    count = _as_int(_nvml_call(lib, "GPU count", system_reasons, ["nvmlDeviceGetCount"]))
    if count is None:
        note = "NVML started but could not count the NVIDIA GPUs (" + system_reasons[0] + ")."
        return _NvmlOutcome([], [note], True)
    # Driver-wide facts: read once, shared by every card (and their reasons with them).
    driver = _as_text(
        _nvml_call(lib, "driver version", system_reasons, ["nvmlSystemGetDriverVersion"])
    )
    cuda = _cuda_version_text(
        _as_int(
            _nvml_call(
                lib,
                "CUDA version",
                system_reasons,
                ["nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"],
            )
        )
    )
    gpus = [_read_nvidia_device(lib, i, driver, cuda, system_reasons) for i in range(count)]
    return _NvmlOutcome(gpus, [], True)


def _read_nvidia_device(
    lib: Any, index: int, driver: str | None, cuda: str | None, system_reasons: list[str]
) -> GpuInfo:
    reasons = list(system_reasons)
    handle = _nvml_call(lib, "device", reasons, ["nvmlDeviceGetHandleByIndex"], index)
    if handle is None:
        return GpuInfo(
            index=index,
            vendor="nvidia",
            name=f"NVIDIA GPU {index}",
            driver_version=driver,
            cuda_version=cuda,
            unknown_reasons=tuple(reasons),
        )
    name = _as_text(_nvml_call(lib, "name", reasons, ["nvmlDeviceGetName"], handle))

    total, free, used = _nvml_memory(lib, handle, reasons)

    capability = _nvml_call(
        lib, "compute capability", reasons, ["nvmlDeviceGetCudaComputeCapability"], handle
    )
    compute_capability: str | None = None
    if isinstance(capability, tuple | list) and len(capability) == 2:
        compute_capability = f"{capability[0]}.{capability[1]}"

    bus = _as_int(
        _nvml_call(lib, "memory bus width", reasons, ["nvmlDeviceGetMemoryBusWidth"], handle)
    )
    clock = _as_int(
        _nvml_call(
            lib, "memory clock", reasons, ["nvmlDeviceGetMaxClockInfo"], handle, _NVML_CLOCK_MEM
        )
    )
    bandwidth = _nvml_bandwidth(bus, clock)
    if bandwidth is None:
        reasons.append("memory bandwidth: needs both the memory bus width and the memory clock")

    # "Max" is the best link this card and this slot can do together; the
    # current link drops to gen 1 at idle to save power, which would mislead.
    pcie_gen = _as_int(
        _nvml_call(
            lib,
            "PCIe generation",
            reasons,
            ["nvmlDeviceGetMaxPcieLinkGeneration", "nvmlDeviceGetCurrPcieLinkGeneration"],
            handle,
        )
    )
    pcie_width = _as_int(
        _nvml_call(
            lib,
            "PCIe width",
            reasons,
            ["nvmlDeviceGetMaxPcieLinkWidth", "nvmlDeviceGetCurrPcieLinkWidth"],
            handle,
        )
    )
    return GpuInfo(
        index=index,
        vendor="nvidia",
        name=name or f"NVIDIA GPU {index}",
        vram_total_bytes=total,
        vram_free_bytes=free,
        vram_used_bytes=used,
        unified_memory=False,
        driver_version=driver,
        cuda_version=cuda,
        compute_capability=compute_capability,
        memory_bus_width_bits=bus,
        max_memory_clock_mhz=clock,
        bandwidth_bytes_per_s=bandwidth,
        bandwidth_source=BANDWIDTH_NVML if bandwidth is not None else BANDWIDTH_UNKNOWN,
        pcie_generation=pcie_gen,
        pcie_width=pcie_width,
        unknown_reasons=tuple(reasons),
    )


def _nvml_memory(lib: Any, handle: Any, reasons: list[str]) -> tuple[int | None, ...]:
    """(total, free, used) VRAM bytes.

    Tries the v2 structure first, whose "used" leaves out the memory the driver
    reserves for itself (v1 counts it as used); old drivers and old
    nvidia-ml-py lack v2 (nvmlDeviceGetMemoryInfo_v2 absent, no ``version``
    argument), and then v1 is read. "free" is the same in both.
    """
    memory: Any = None
    version = getattr(lib, "nvmlMemory_v2", None)
    get_memory = getattr(lib, "nvmlDeviceGetMemoryInfo", None)
    if version is not None and get_memory is not None:
        with contextlib.suppress(Exception):  # falling back to v1 is the whole plan
            memory = get_memory(handle, version=version)
    if memory is None:
        memory = _nvml_call(lib, "VRAM", reasons, ["nvmlDeviceGetMemoryInfo"], handle)
    if memory is None:
        return None, None, None
    values: list[int | None] = []
    for attr, label in (("total", "VRAM total"), ("free", "VRAM free"), ("used", "VRAM used")):
        value = _as_int(getattr(memory, attr, None))
        if value is None:
            reasons.append(f"{label}: not reported by the driver")
        values.append(value)
    return tuple(values)


# --------------------------------------------------------------------------
# AMD and Intel (and driverless NVIDIA) through Linux sysfs
# --------------------------------------------------------------------------

_PCI_VENDOR_NAMES = {0x10DE: "nvidia", 0x1002: "amd", 0x8086: "intel"}
# An AMD "VRAM" smaller than this is an APU's BIOS carve-out: the GPU really
# works from system RAM (GTT), like an integrated GPU.
_APU_CARVE_OUT_LIMIT = 1 * GIB
# PCIe link speed per lane -> generation (sysfs gives "16.0 GT/s PCIe").
_PCIE_GT_TO_GEN = {2.5: 1, 5.0: 2, 8.0: 3, 16.0: 4, 32.0: 5, 64.0: 6}


def _intel_is_discrete(device_id: int) -> bool:
    """Intel's discrete cards by PCI id: DG1 (Iris Xe MAX), Arc A (DG2), Arc B (Battlemage)."""
    return (
        0x4905 <= device_id <= 0x4909
        or 0x5690 <= device_id <= 0x56FF
        or 0xE200 <= device_id <= 0xE2FF
    )


def _sysfs_gpu_devices(root: Path) -> list[tuple[Path, bool]]:
    """(PCI device folder, has a DRM card) for every display controller, in a stable order.

    DRM cards (class/drm/cardN) are where amdgpu publishes VRAM; the PCI bus
    listing adds GPUs that no graphics driver has claimed, such as an NVIDIA
    card whose driver is missing, which is exactly what a person must be told.
    Connector entries such as card0-DP-1 and render nodes are skipped.
    """
    found: list[tuple[Path, bool]] = []
    seen: set[Path] = set()

    def add(device: Path, has_drm: bool) -> None:
        try:
            real = device.resolve()
        except OSError:
            return
        if real not in seen:
            seen.add(real)
            found.append((device, has_drm))

    drm = root / "class" / "drm"
    cards: list[tuple[int, Path]] = []
    with contextlib.suppress(OSError):
        for entry in drm.iterdir():
            match = re.fullmatch(r"card(\d+)", entry.name)
            if match and (entry / "device").is_dir():
                cards.append((int(match.group(1)), entry / "device"))
    for _, device in sorted(cards):
        add(device, True)

    pci = root / "bus" / "pci" / "devices"
    with contextlib.suppress(OSError):
        for device in sorted(pci.iterdir()):
            device_class = _parse_int(_read_text(device / "class"), 16)
            # PCI class 0x03xxxx: VGA, XGA and "3D controller" (headless compute cards).
            if device_class is not None and device_class >> 16 == 0x03:
                add(device, False)
    return found


def probe_sysfs_gpus(root: Path = Path("/sys"), *, include_nvidia: bool = False) -> list[GpuInfo]:
    """AMD and Intel GPUs from Linux sysfs; NVIDIA ones only with ``include_nvidia``.

    NVML is the source for NVIDIA cards; pass ``include_nvidia=True`` when NVML
    found none, so a card without a working driver is still listed, with the
    reason. Other vendors (a server's ASPEED BMC, a VM's virtual VGA) are not
    GPUs anyone runs a model on and are left out. Never raises.
    """
    gpus: list[GpuInfo] = []
    for device, has_drm in _sysfs_gpu_devices(root):
        try:
            gpu = _sysfs_gpu(device, has_drm, include_nvidia)
        except Exception:  # one odd device must not hide the others
            continue
        if gpu is not None:
            gpus.append(dataclasses.replace(gpu, index=len(gpus)))
    return gpus


def _sysfs_gpu(device: Path, has_drm: bool, include_nvidia: bool) -> GpuInfo | None:
    vendor_id = _parse_int(_read_text(device / "vendor"), 16)
    device_id = _parse_int(_read_text(device / "device"), 16) or 0
    vendor = _PCI_VENDOR_NAMES.get(vendor_id or 0)
    if vendor is None or (vendor == "nvidia" and not include_nvidia):
        return None
    reasons: list[str] = []
    pci_name = f"PCI device {device_id:#06x}"
    driver: str | None = None
    with contextlib.suppress(OSError):
        driver = (device / "driver").resolve(strict=True).name
    if vendor == "nvidia":
        return GpuInfo(
            vendor="nvidia",
            name=f"NVIDIA GPU ({pci_name})",
            driver_version=driver,
            pcie_generation=_pcie_generation(device),
            pcie_width=_parse_int(_read_text(device / "current_link_width")),
            unknown_reasons=("NVIDIA driver/NVML not available",),
        )
    if not has_drm:
        reasons.append("no graphics driver is using this GPU, so it cannot run models")

    vram_total = _parse_int(_read_text(device / "mem_info_vram_total"))
    vram_used = _parse_int(_read_text(device / "mem_info_vram_used"))
    vram_free = vram_total - vram_used if vram_total is not None and vram_used is not None else None
    product = _read_text(device / "product_name")

    if vendor == "amd":
        name = product or f"AMD Radeon GPU ({pci_name})"
        unified = vram_total is not None and vram_total < _APU_CARVE_OUT_LIMIT
        if vram_total is None:
            reasons.append("VRAM: not reported by the driver (mem_info_vram_total missing)")
        if not product:
            reasons.append("model name: not reported by amdgpu; shown by PCI id")
        reasons.append("memory bandwidth: amdgpu does not report the memory bus width")
    else:  # intel
        name = (
            product
            or f"Intel {'Arc' if _intel_is_discrete(device_id) else 'integrated'} GPU ({pci_name})"
        )
        discrete = _intel_is_discrete(device_id) or (
            vram_total is not None and vram_total >= _APU_CARVE_OUT_LIMIT
        )
        unified = not discrete
        if vram_total is None:
            reasons.append(
                "VRAM: not reported by the Intel driver"
                if discrete
                else "VRAM: none of its own; it shares system RAM"
            )
        reasons.append("memory bandwidth: the Intel driver does not report it")
    return GpuInfo(
        vendor=vendor,
        name=name,
        vram_total_bytes=vram_total,
        vram_free_bytes=vram_free,
        vram_used_bytes=vram_used,
        unified_memory=unified,
        driver_version=driver,
        pcie_generation=None if unified else _pcie_generation(device),
        pcie_width=None if unified else _parse_int(_read_text(device / "current_link_width")),
        unknown_reasons=tuple(reasons),
    )


def _pcie_generation(device: Path) -> int | None:
    """PCIe generation from sysfs "current_link_speed" ("16.0 GT/s PCIe" -> 4)."""
    text = _read_text(device / "current_link_speed")
    match = re.match(r"\s*([\d.]+)\s*GT/s", text or "")
    if not match:
        return None
    return _PCIE_GT_TO_GEN.get(float(match.group(1)))


# --------------------------------------------------------------------------
# Apple Silicon
# --------------------------------------------------------------------------

# Machines at or above this much RAM get 3/4 of it for the GPU, smaller ones 2/3.
_APPLE_LARGE_RAM = 36 * GIB


def apple_recommended_working_set(memsize_bytes: int) -> int:
    """Approximate Metal's ``recommendedMaxWorkingSetSize`` from the RAM size.

    llama.cpp's Metal backend (ggml-metal) sizes its device memory from
    ``MTLDevice.recommendedMaxWorkingSetSize``, and so does ollama on macOS;
    that property needs the Metal API, which pure Python cannot call. The
    values people post from llama.cpp's start-up log ("recommendedMaxWorkingSetSize
    = ...") follow a simple rule: 2/3 of RAM on 8-32 GB Macs (16 GB -> 10.67 GiB,
    32 GB -> 21.33 GiB) and 3/4 from 36 GB up (36 -> 27 GiB, 64 -> 48 GiB,
    128 -> 96 GiB). The ``iogpu.wired_limit_mb`` sysctl overrides it (see
    probe_apple).
    """
    if memsize_bytes >= _APPLE_LARGE_RAM:
        return memsize_bytes * 3 // 4
    return memsize_bytes * 2 // 3


def probe_apple(sysctl: Sysctl) -> list[GpuInfo]:
    """The GPU of an Apple Silicon Mac: one GPU sharing RAM with the CPU. Never raises.

    ``vram_total_bytes`` is what Metal lets the GPU use: the
    ``iogpu.wired_limit_mb`` sysctl when someone raised it (macOS 14+; 0 means
    "default"; macOS 13 spelled it ``debug.iogpu.wired_limit`` in bytes),
    otherwise apple_recommended_working_set(RAM).
    """
    try:
        brand = sysctl("machdep.cpu.brand_string")
        if not brand or "apple" not in brand.lower():
            return []
        reasons: list[str] = []
        memsize = _parse_int(sysctl("hw.memsize"))
        wired_mb = _parse_int(sysctl("iogpu.wired_limit_mb"))
        wired_bytes = wired_mb * MIB if wired_mb else _parse_int(sysctl("debug.iogpu.wired_limit"))
        usable: int | None
        if wired_bytes:
            usable = min(wired_bytes, memsize) if memsize else wired_bytes
        elif memsize:
            usable = apple_recommended_working_set(memsize)
        else:
            usable = None
            reasons.append("GPU memory: hw.memsize could not be read")
        os_version = sysctl("kern.osproductversion")
        reasons.append("VRAM free: shared with system RAM; see available memory")
        reasons.append("memory bandwidth: not known for this chip yet (GPU spec table)")
        return [
            GpuInfo(
                index=0,
                vendor="apple",
                name=f"{brand} GPU",
                vram_total_bytes=usable,
                unified_memory=True,
                driver_version=f"Metal (macOS {os_version})" if os_version else "Metal",
                unknown_reasons=tuple(reasons),
            )
        ]
    except Exception:  # a probe never raises
        return []


# --------------------------------------------------------------------------
# llama.cpp backends, asked in a child process
# --------------------------------------------------------------------------

_BACKEND_MARKER = "LLMW-BACKENDS "

# Runs in a child Python. Importing llama_cpp there, not here, keeps this
# process alive when the build does not match the CPU (SIGILL) and keeps
# desktop.core free of llama_cpp. It lists ggml's backend registries and
# devices through the shared library's exported ggml_backend_* functions
# (llama-cpp-python does not wrap them all), and falls back to parsing
# llama_print_system_info().
_BACKEND_SCRIPT = r"""
import ctypes, json, sys
out = {}
try:
    import llama_cpp
    from llama_cpp import llama_cpp as low
except BaseException as exc:
    out["import_error"] = "%s: %s" % (type(exc).__name__, exc)
    print("LLMW-BACKENDS " + json.dumps(out), flush=True)
    sys.exit(0)
out["version"] = getattr(llama_cpp, "__version__", None)
try:
    low.llama_backend_init()
except Exception as exc:
    out["init_error"] = str(exc)
try:
    out["gpu_offload"] = bool(low.llama_supports_gpu_offload())
except Exception as exc:
    out["gpu_offload_error"] = str(exc)
try:
    info = low.llama_print_system_info()
    out["system_info"] = info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info)
except Exception as exc:
    out["system_info_error"] = str(exc)
try:
    # The ggml_backend_* symbols live in libggml / libggml-base. Linux finds
    # them through libllama too, Windows only in the DLL that defines them.
    libs = []
    try:
        from llama_cpp import _ggml
        libs.append(_ggml.libggml)
        libs.append(_ggml.ctypes_ext.load_shared_library("ggml-base", _ggml.libggml_base_path))
    except Exception:
        pass
    libs.append(low._lib)
    def sym(name, restype, argtypes):
        for lib in libs:
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype, fn.argtypes = restype, argtypes
                return fn
        raise AttributeError(name)
    P, S, T = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p
    reg_count = sym("ggml_backend_reg_count", S, [])
    reg_get = sym("ggml_backend_reg_get", P, [S])
    reg_name = sym("ggml_backend_reg_name", T, [P])
    out["registries"] = [
        (reg_name(reg_get(i)) or b"").decode("utf-8", "replace") for i in range(reg_count())
    ]
    dev_count = sym("ggml_backend_dev_count", S, [])
    dev_get = sym("ggml_backend_dev_get", P, [S])
    dev_name = sym("ggml_backend_dev_name", T, [P])
    dev_description = sym("ggml_backend_dev_description", T, [P])
    dev_type = sym("ggml_backend_dev_type", ctypes.c_int, [P])
    devices = []
    for i in range(dev_count()):
        dev = dev_get(i)
        devices.append({
            "name": (dev_name(dev) or b"").decode("utf-8", "replace"),
            "description": (dev_description(dev) or b"").decode("utf-8", "replace"),
            "type": int(dev_type(dev)),
        })
    out["devices"] = devices
except Exception as exc:
    out["devices_error"] = "%s: %s" % (type(exc).__name__, exc)
print("LLMW-BACKENDS " + json.dumps(out), flush=True)
"""

# ggml registry names -> ours. "ROCm" is ggml-cuda compiled for HIP.
_KNOWN_BACKENDS = {
    "cpu": "cpu",
    "cuda": "cuda",
    "rocm": "rocm",
    "hip": "rocm",
    "metal": "metal",
    "vulkan": "vulkan",
    "sycl": "sycl",
    "opencl": "opencl",
    "musa": "musa",
    "cann": "cann",
    "blas": "blas",
    "rpc": "rpc",
    "kompute": "kompute",
}
# Registries that are helpers, not a place to put model layers.
_NON_OFFLOAD_BACKENDS = frozenset({"cpu", "blas", "rpc"})
# Windows reports a crash as an NTSTATUS exit code rather than a signal.
_WINDOWS_ILLEGAL_INSTRUCTION = 0xC000001D
_WINDOWS_ACCESS_VIOLATION = 0xC0000005
_REINSTALL_HINT = "reinstall llama-cpp-python built for this computer"


def _parse_system_info_backends(text: str) -> list[str]:
    """Backend names from llama_print_system_info(): "CUDA : ARCHS = 890 | ... | CPU : SSE3 = 1"."""
    names = re.findall(r"(?:^|\|)\s*([A-Za-z][\w-]*)\s+:\s", text)
    return [_KNOWN_BACKENDS[n.lower()] for n in names if n.lower() in _KNOWN_BACKENDS]


def _describe_crash(returncode: int) -> str:
    code = returncode & 0xFFFFFFFF if returncode > 0 else returncode
    if code in (-signal.SIGILL, _WINDOWS_ILLEGAL_INSTRUCTION):
        return (
            "llama.cpp crashed while loading: this build uses CPU instructions this "
            f"processor does not have; {_REINSTALL_HINT}"
        )
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"llama.cpp crashed while loading ({name}); {_REINSTALL_HINT}"
    if code == _WINDOWS_ACCESS_VIOLATION:
        return f"llama.cpp crashed while loading (access violation); {_REINSTALL_HINT}"
    return f"checking llama.cpp failed (exit code {returncode})"


def probe_backends(
    python: str = sys.executable,
    timeout: float = 30,
    *,
    env: Mapping[str, str] | None = None,
) -> BackendInfo:
    """Ask the installed llama-cpp-python, in a child process, which backends it has.

    ``python`` is the interpreter whose llama_cpp is asked; ``env`` replaces the
    child's environment (tests point PYTHONPATH at a fake llama_cpp). A missing
    package, a crash, a hang past ``timeout`` seconds or a garbled answer
    become ``BackendInfo(error=...)``. Never raises.
    """
    try:
        done = subprocess.run(
            [python, "-c", _BACKEND_SCRIPT],
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            env=dict(env) if env is not None else None,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return BackendInfo(
            error=f"llama.cpp did not answer within {timeout:g} s; {_REINSTALL_HINT}", checked=True
        )
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return BackendInfo(error=f"could not start Python to check llama.cpp ({exc})", checked=True)
    answer: Any = None
    for line in done.stdout.splitlines():
        if line.startswith(_BACKEND_MARKER):
            with contextlib.suppress(json.JSONDecodeError):
                answer = json.loads(line[len(_BACKEND_MARKER) :])
    if done.returncode != 0 and answer is None:
        return BackendInfo(error=_describe_crash(done.returncode), checked=True)
    if not isinstance(answer, dict):
        return BackendInfo(error="llama.cpp check gave no readable answer", checked=True)
    return _backend_info_from_answer(answer)


def _backend_info_from_answer(answer: dict[str, Any]) -> BackendInfo:
    if "import_error" in answer:
        return BackendInfo(
            error=f"llama-cpp-python cannot be imported ({answer['import_error']}); "
            "install or reinstall it",
            checked=True,
        )
    version = answer.get("version")
    system_info = answer.get("system_info")
    system_info = system_info.strip() if isinstance(system_info, str) else None

    names: list[str] = ["cpu"]  # llama.cpp always has its CPU backend
    registries = answer.get("registries")
    if isinstance(registries, list) and registries:
        names += [
            _KNOWN_BACKENDS.get(str(r).lower(), str(r).lower())
            for r in registries
            if isinstance(r, str)
        ]
    elif system_info:
        names += _parse_system_info_backends(system_info)
    backends = tuple(dict.fromkeys(names))  # de-duplicated, order kept

    devices: list[str] = []
    raw_devices = answer.get("devices")
    if isinstance(raw_devices, list):
        for dev in raw_devices:
            if isinstance(dev, dict):
                label = str(dev.get("name", "?"))
                description = dev.get("description")
                devices.append(f"{label}: {description}" if description else label)

    offload = answer.get("gpu_offload")
    gpu_offload = (
        offload
        if isinstance(offload, bool)
        else any(b not in _NON_OFFLOAD_BACKENDS for b in backends)
    )
    return BackendInfo(
        backends=backends,
        llama_cpp_version=version if isinstance(version, str) else None,
        gpu_offload_supported=gpu_offload,
        devices=tuple(devices),
        system_info=system_info,
        error=None,
        checked=True,
    )


# --------------------------------------------------------------------------
# Putting it together
# --------------------------------------------------------------------------


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
        gpus += probe_apple(sysctl or _run_sysctl)
        if _parse_int((sysctl or _run_sysctl)("sysctl.proc_translated")) == 1:
            warnings.append(
                "This Python runs under Rosetta (Intel emulation) on an Apple Silicon Mac, "
                "so llama.cpp will be slow and cannot use the GPU. Install the Apple Silicon "
                "(arm64) version of LLM Workbench or Python."
            )
    else:
        nvidia = _probe_nvidia(nvml)
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
        created_at=_utc_now(),
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
    gpu_backends = sorted(have - _NON_OFFLOAD_BACKENDS)
    build = (
        "is CPU-only"
        if not gpu_backends
        else "only supports "
        + ", ".join(b.upper() if len(b) <= 4 else b.title() for b in gpu_backends)
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


# --------------------------------------------------------------------------
# Text for a person
# --------------------------------------------------------------------------

_AVX512_EXTRAS = (("avx512vnni", "VNNI"), ("avx512_bf16", "BF16"))
_ARM_SUMMARY = (("neon", "NEON"), ("dotprod", "DOTPROD"), ("i8mm", "I8MM"), ("sve", "SVE"))


def _feature_summary(cpu: CpuInfo) -> str:
    """The SIMD levels that decide llama.cpp's CPU speed, e.g. "AVX2 AVX-512 (VNNI, BF16)"."""
    have = set(cpu.features)
    if cpu.architecture.startswith("arm"):
        return " ".join(label for flag, label in _ARM_SUMMARY if flag in have)
    parts = ["AVX2" if "avx2" in have else "AVX"] if have & {"avx", "avx2"} else []
    if "avx512f" in have:
        extras = [label for flag, label in _AVX512_EXTRAS if flag in have]
        parts.append("AVX-512" + (f" ({', '.join(extras)})" if extras else ""))
    if "amx_int8" in have:
        parts.append("AMX")
    if not parts and cpu.features:
        parts = ["no AVX"]  # worth knowing: llama.cpp will be slow here
    return " ".join(parts)


def summary_lines(profile: HardwareProfile) -> list[str]:
    """The profile as a few lines of plain text (``llm-workbench hardware``)."""
    cpu, mem = profile.cpu, profile.memory
    cores = f"{cpu.physical_cores if cpu.physical_cores is not None else '?'} cores / "
    cores += f"{cpu.logical_cores if cpu.logical_cores is not None else '?'} threads"
    features = _feature_summary(cpu)
    lines = [f"CPU: {cpu.brand} ({cores}{', ' + features if features else ''})"]

    ram = (
        f"RAM: {format_bytes(mem.total_bytes)} total, {format_bytes(mem.available_bytes)} available"
    )
    if mem.bandwidth_bytes_per_s is not None:
        ram += f", {format_bandwidth(mem.bandwidth_bytes_per_s)} {mem.bandwidth_source}"
    else:
        ram += ", bandwidth unknown"
    if mem.swap_total_bytes:
        ram += f" (swap {format_bytes(mem.swap_total_bytes)})"
    lines.append(ram)

    if not profile.gpus:
        lines.append("GPU: none found (models will run on the CPU)")
    for gpu in profile.gpus:
        if gpu.unified_memory:
            memory_text = (
                f"{format_bytes(gpu.vram_total_bytes)} of shared RAM usable"
                if gpu.vram_total_bytes is not None
                else "shares system RAM"
            )
        else:
            memory_text = (
                f"{format_bytes(gpu.vram_total_bytes)} VRAM"
                if gpu.vram_total_bytes is not None
                else "VRAM unknown"
            )
        if gpu.vram_free_bytes is not None:
            memory_text += f" ({format_bytes(gpu.vram_free_bytes)} free)"
        bandwidth = (
            format_bandwidth(gpu.bandwidth_bytes_per_s)
            if gpu.bandwidth_bytes_per_s is not None
            else "bandwidth unknown"
        )
        lines.append(f"GPU {gpu.index}: {gpu.name}, {memory_text}, {bandwidth}")
        lines += [f"    unknown - {reason}" for reason in gpu.unknown_reasons]

    lines.append(_backend_line(profile.backends))
    lines += [f"Warning: {w}" for w in profile.warnings]
    return lines


def _backend_line(backends: BackendInfo) -> str:
    if not backends.checked:
        return "llama.cpp: not checked"
    if backends.error:
        return f"llama.cpp: not usable ({backends.error})"
    version = backends.llama_cpp_version or "unknown version"
    gpu_backends = [b for b in backends.backends if b not in _NON_OFFLOAD_BACKENDS]
    if not gpu_backends:
        return f"llama.cpp: {version}, CPU only"
    shown = " + ".join(["CPU", *(b.upper() if len(b) <= 4 else b.title() for b in gpu_backends)])
    return f"llama.cpp: {version}, {shown}"
