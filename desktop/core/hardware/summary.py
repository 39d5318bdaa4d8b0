"""The profile as a few lines of plain text, for ``llm-workbench hardware``."""

from __future__ import annotations

from desktop.core.hardware.backends import NON_OFFLOAD_BACKENDS, backend_title
from desktop.core.hardware.profile import BackendInfo, CpuInfo, HardwareProfile
from desktop.core.units import format_bandwidth, format_bytes

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
    gpu_backends = [b for b in backends.backends if b not in NON_OFFLOAD_BACKENDS]
    if not gpu_backends:
        return f"llama.cpp: {version}, CPU only"
    shown = " + ".join(["CPU", *(backend_title(b) for b in gpu_backends)])
    return f"llama.cpp: {version}, {shown}"
