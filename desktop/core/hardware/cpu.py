"""The processor: brand, core counts and the SIMD features llama.cpp's CPU kernels use.

Read from /proc/cpuinfo on Linux, sysctl on macOS and ``platform`` elsewhere;
each source is a parameter so tests can pretend to be another machine.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

from desktop.core.hardware.profile import CpuInfo
from desktop.core.hardware.readers import parse_int, read_text

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


def run_sysctl(name: str) -> str | None:
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
            info = _cpu_from_sysctl(sysctl or run_sysctl, arch)
            if info is not None:
                return info
        else:
            text = read_text(cpuinfo_path)
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
    if parse_int(sysctl("hw.optional.arm64")) == 1:
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
        found = [flag for name, flag in arm_sysctls.items() if parse_int(sysctl(name)) == 1]
    else:
        words: list[str] = []
        for name in ("machdep.cpu.features", "machdep.cpu.leaf7_features"):
            words += (sysctl(name) or "").lower().split()
        found = [_X86_FLAGS[w] for w in words if w in _X86_FLAGS]
    return CpuInfo(
        brand=brand,
        architecture=arch,
        physical_cores=parse_int(sysctl("hw.physicalcpu")),
        logical_cores=parse_int(sysctl("hw.logicalcpu")) or os.cpu_count(),
        features=_ordered_features(found),
    )


def cpu_cache_key(cpu: CpuInfo) -> str:
    """Key for per-CPU caches: brand plus core counts (the same model can ship in sizes)."""
    return f"{cpu.brand} ({cpu.physical_cores}C/{cpu.logical_cores}T, {cpu.architecture})"
