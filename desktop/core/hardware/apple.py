"""Apple Silicon: one GPU sharing RAM with the CPU, sized the way Metal sizes it."""

from __future__ import annotations

from desktop.core.hardware.cpu import Sysctl
from desktop.core.hardware.profile import GpuInfo
from desktop.core.hardware.readers import parse_int
from desktop.core.units import GIB, MIB

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
        memsize = parse_int(sysctl("hw.memsize"))
        wired_mb = parse_int(sysctl("iogpu.wired_limit_mb"))
        wired_bytes = wired_mb * MIB if wired_mb else parse_int(sysctl("debug.iogpu.wired_limit"))
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
