"""Monitor: samples from a fake NVML and the real psutil, into ring buffers, on a timer."""

from __future__ import annotations

import math
import os
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from desktop.core.units import GIB
from desktop.engine.protocol import Token
from desktop.services.monitor import Monitor


class NvmlNotSupported(Exception):
    pass


class FakeNvml:
    """The few pynvml functions the monitor uses, over a list of fake GPUs."""

    def __init__(self, gpus: list[dict[str, Any]], *, broken: bool = False) -> None:
        self.gpus = gpus
        self.broken = broken
        self.calls = 0

    def nvmlInit(self) -> None:
        if self.broken:
            raise RuntimeError("Driver/library version mismatch")

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return self.gpus[handle]["name"].encode()

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        self.calls += 1
        gpu = self.gpus[handle]
        return SimpleNamespace(
            used=gpu["used"], total=gpu["total"], free=gpu["total"] - gpu["used"]
        )

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        util = self.gpus[handle].get("util")
        if util is None:
            raise NvmlNotSupported("Not Supported")
        return SimpleNamespace(gpu=util, memory=0)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[SimpleNamespace]:
        return [
            SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in self.gpus[handle]["procs"]
        ]


def gpu(
    name: str, used: int, total: int, util: float | None, procs: list[tuple[int, int | None]]
) -> dict[str, Any]:
    return {"name": name, "used": used, "total": total, "util": util, "procs": procs}


def test_no_nvidia_driver_means_no_gpus() -> None:
    monitor = Monitor(nvml=None)
    sample = monitor.sample_now()
    assert sample.gpus == ()
    assert sample.ram_total and sample.ram_available and sample.ram_used
    assert sample.ram_used == sample.ram_total - sample.ram_available
    assert sample.worker_rss is None  # no worker yet
    assert sample.cpu_percent is None  # psutil's first reading means nothing


def test_broken_driver_is_unknown_not_an_exception() -> None:
    monitor = Monitor(nvml=FakeNvml([gpu("A", 1, 2, 3, [])], broken=True))
    assert monitor.sample_now().gpus == ()


def test_one_gpu_with_the_worker_on_it() -> None:
    me = os.getpid()
    nvml = FakeNvml([gpu("RTX 4060", 3 * GIB, 8 * GIB, 57, [(me, 2 * GIB), (1, 1 * GIB)])])
    monitor = Monitor(nvml=nvml)
    monitor.set_worker_pid(me)
    monitor.sample_now()
    sample = monitor.sample_now()
    (card,) = sample.gpus
    assert (card.name, card.vram_used, card.vram_total) == ("RTX 4060", 3 * GIB, 8 * GIB)
    assert card.utilization == 57
    assert card.worker_vram == 2 * GIB
    assert sample.worker_rss is not None and sample.worker_rss > 10 * 2**20
    assert sample.worker_cpu_percent is not None
    assert sample.cpu_percent is not None
    assert monitor.gpus[0].worker_vram.values().tolist() == [2 * GIB, 2 * GIB]


def test_two_gpus_unsupported_utilisation_and_wddm() -> None:
    me = os.getpid()
    nvml = FakeNvml(
        [
            gpu("A", 1 * GIB, 24 * GIB, None, [(me, None)]),  # Windows WDDM: no per-process figure
            gpu("B", 2 * GIB, 24 * GIB, 10, []),  # NVML does not list the worker here
        ]
    )
    monitor = Monitor(nvml=nvml)
    monitor.set_worker_pid(me)
    first, second = monitor.sample_now().gpus
    assert first.utilization is None and first.worker_vram is None
    assert second.worker_vram is None  # not in B's list: unknown, as everywhere (not 0)
    assert math.isnan(monitor.gpus[0].utilization.last())


def test_worker_that_exited_is_unknown() -> None:
    monitor = Monitor(nvml=None)
    monitor.set_worker_pid(2**22 + 12345)  # no such process
    sample = monitor.sample_now()
    assert sample.worker_rss is None and sample.worker_cpu_percent is None
    assert math.isnan(monitor.worker_rss.last())


def test_series_have_one_entry_per_sample_and_a_fixed_size() -> None:
    monitor = Monitor(nvml=FakeNvml([gpu("A", 1, 2, 3, [])]), history=5)
    for _ in range(8):
        monitor.sample_now()
    assert len(monitor.times) == len(monitor.ram_used) == len(monitor.gpus[0].vram_used) == 5
    times = monitor.times.values()
    assert bool(np.all(np.diff(times) >= 0))


def test_tokens_feed_the_rate_tracker() -> None:
    monitor = Monitor(nvml=None)
    monitor.start_generation()
    for i in range(11):
        monitor.add_token(Token(text="x", t=100.0 + i * 0.05, index=i))
    assert monitor.tokens.rolling.last() == pytest.approx(20)


def test_timer_samples_at_its_interval(qtbot: Any) -> None:
    monitor = Monitor(nvml=None, interval_ms=20)
    monitor.start()
    try:
        for _ in range(3):
            with qtbot.waitSignal(monitor.sampled, timeout=2000) as blocker:
                pass
        assert blocker.args[0].ram_total > 0
        assert len(monitor.times) >= 3
        assert monitor.running
    finally:
        monitor.stop()
    assert not monitor.running
