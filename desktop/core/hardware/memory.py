"""System RAM and swap, and the RAM bandwidth benchmark (cached per CPU).

Token generation on the CPU reads every weight once per token, so the measured
bandwidth, not the core count, predicts CPU speed.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, Protocol

from desktop.core.hardware.profile import MemoryInfo
from desktop.core.hardware.readers import read_text, utc_now
from desktop.core.units import MIB


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
    text = read_text(cache_dir / _BANDWIDTH_CACHE_FILE)
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
        data[cpu_key] = {"bytes_per_s": value, "measured_at": utc_now()}
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
