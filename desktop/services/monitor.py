"""Live resource samples for the charts: VRAM, RAM, CPU, the worker's own share.

:class:`Monitor` samples on a QTimer (4 Hz by default), independent of generation:
per GPU the VRAM used/total and utilisation, and the worker process's own VRAM
where NVML reports it; the worker's resident memory; system RAM and CPU use.
Each sample is a frozen :class:`Sample`, emitted with ``sampled`` and written
into fixed-size NumPy ring buffers that the charts read with ``setData``.
Token timestamps from the engine client feed a :class:`TokenRateTracker`.

Anything that cannot be measured is ``None`` (NaN in the ring buffers), never an
exception: no NVIDIA driver, a driver/library mismatch, NotSupported on a laptop
GPU, a worker that has just exited. NVML is read through the app's one NVML
wrapper (:class:`desktop.core.hardware.Nvml`). NVML and psutil are passed in
(``nvml=``, ``psutil_module=``) so tests can hand the monitor a fake machine.

It is meant to be cheap: well under 1% of one core at 4 Hz
(``python tests/bench/bench_monitor.py`` measures it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import psutil
from PySide6.QtCore import QObject, QTimer, Signal

from desktop.core.crash import MemoryFacts
from desktop.core.hardware.nvidia import Nvml, as_int, load_pynvml
from desktop.core.ringbuffer import RingBuffer
from desktop.core.token_rate import TokenRateTracker
from desktop.services.signals import emit

DEFAULT_INTERVAL_MS = 250  # 4 Hz
DEFAULT_HISTORY = 4 * 60 * 10  # ten minutes of samples at 4 Hz

_AUTO = object()  # "import pynvml yourself" marker for the nvml argument


@dataclass(frozen=True)
class GpuSample:
    index: int
    name: str | None
    vram_used: int | None  # bytes, all processes
    vram_total: int | None  # bytes
    utilization: float | None  # percent of time a kernel ran, 0..100
    worker_vram: int | None  # bytes used by the worker process (None: not reported)


@dataclass(frozen=True)
class Sample:
    t: float  # time.monotonic(), seconds: the same clock as the worker's token stamps
    gpus: tuple[GpuSample, ...]
    worker_rss: int | None  # bytes resident in the worker process
    worker_cpu_percent: float | None  # of one core (can exceed 100 with several threads)
    ram_used: int | None  # bytes: total - available
    ram_available: int | None  # bytes
    ram_total: int | None  # bytes
    cpu_percent: float | None  # whole machine, 0..100, since the previous sample


class GpuSeries:
    """Ring buffers of one GPU's samples (bytes and percent, NaN where unknown)."""

    def __init__(self, capacity: int) -> None:
        self.vram_used = RingBuffer(capacity)
        self.vram_total = RingBuffer(capacity)
        self.utilization = RingBuffer(capacity)
        self.worker_vram = RingBuffer(capacity)


class Monitor(QObject):
    """Samples the machine and the worker on a timer; keeps the series for the charts."""

    sampled = Signal(object)  # Sample

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        interval_ms: int = DEFAULT_INTERVAL_MS,
        history: int = DEFAULT_HISTORY,
        nvml: Any = _AUTO,
        psutil_module: Any = psutil,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(parent)
        self._nvml = Nvml(load_pynvml() if nvml is _AUTO else nvml)
        self._gpu_names: list[str | None] | None = None  # read once, with the handles
        self._psutil = psutil_module
        self._clock = clock
        self._history = history
        self._worker_pid: int | None = None
        self._worker: Any = None  # psutil.Process, kept so cpu_percent has a reference point
        self._cpu_primed = False

        self.times = RingBuffer(history)
        self.ram_used = RingBuffer(history)
        self.ram_available = RingBuffer(history)
        self.worker_rss = RingBuffer(history)
        self.worker_cpu_percent = RingBuffer(history)
        self.cpu_percent = RingBuffer(history)
        self.gpus: list[GpuSeries] = []
        self.tokens = TokenRateTracker(capacity=history * 16)
        # Other apps' requests (desktop.services.api_serving): their own series, so the plot
        # can mark them as another app's and neither rate counts the other's tokens.
        self.api_tokens = TokenRateTracker(capacity=history * 16)
        self.last_sample: Sample | None = None

        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.sample_now)

    # ------------------------------------------------------------------ control

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    @property
    def running(self) -> bool:
        return self._timer.isActive()

    @property
    def interval_ms(self) -> int:
        return int(self._timer.interval())

    def set_worker_pid(self, pid: int | None) -> None:
        """Follow this worker process (None: no worker)."""
        if pid == self._worker_pid:
            return
        self._worker_pid = pid
        self._worker = None

    def add_token(self, token: Any) -> None:
        """Slot for ``EngineClient.token``: takes a protocol Token (or its timestamp)."""
        t = token if isinstance(token, float | int) else token.t
        self.tokens.add(float(t))

    def start_generation(self) -> None:
        """Call when a new answer starts, so the pause before it is not a slow token."""
        self.tokens.start_generation()

    def add_api_token(self, token: Any) -> None:
        """Slot for ``ApiServing.token``: a token of another app's answer."""
        self.api_tokens.add(float(token.t))

    def start_api_generation(self, _started: object = None) -> None:
        """Slot for ``ApiServing.requestStarted``: another app's answer begins."""
        self.api_tokens.start_generation()

    def memory_facts(self, window_s: float = 5.0) -> MemoryFacts | None:
        """The least RAM (and VRAM) free over the last ``window_s`` seconds of samples: the
        headroom a moment before a crash (a sample taken just after an out-of-memory kill
        already sees the memory back). None before the first sample."""
        last = self.last_sample
        if last is None:
            return None
        times = np.asarray(self.times.values(), dtype=np.float64)
        recent = times >= last.t - window_s
        ram = np.asarray(self.ram_available.values(), dtype=np.float64)[recent]
        ram = ram[~np.isnan(ram)]
        vram_free: float | None = None
        vram_total: int | None = None
        for gpu, series in zip(last.gpus, self.gpus, strict=False):
            total = np.asarray(series.vram_total.values(), dtype=np.float64)
            free = (total - np.asarray(series.vram_used.values(), dtype=np.float64))[recent]
            free = free[~np.isnan(free)]
            if free.size and (vram_free is None or float(free.min()) < vram_free):
                vram_free, vram_total = float(free.min()), gpu.vram_total
        return MemoryFacts(
            ram_available_bytes=int(ram.min()) if ram.size else None,
            ram_total_bytes=last.ram_total,
            vram_free_bytes=int(vram_free) if vram_free is not None else None,
            vram_total_bytes=vram_total,
        )

    # ------------------------------------------------------------------ sampling

    def sample_now(self) -> Sample:
        """Take one sample, store it in the series and emit ``sampled``."""
        t = self._clock()
        gpus = self._sample_gpus()
        cpu = self._sample_cpu()
        rss, worker_cpu = self._sample_worker()
        total, available = self._sample_ram()
        sample = Sample(
            t=t,
            gpus=gpus,
            worker_rss=rss,
            worker_cpu_percent=worker_cpu,
            ram_used=total - available if total is not None and available is not None else None,
            ram_available=available,
            ram_total=total,
            cpu_percent=cpu,
        )
        self._store(sample)
        self.last_sample = sample
        emit(self.sampled, sample)
        return sample

    def _sample_gpus(self) -> tuple[GpuSample, ...]:
        nvml = self._nvml
        handles = nvml.handles()
        if self._gpu_names is None:
            self._gpu_names = [nvml.name(handle) for handle in handles]
        out = []
        for index, handle in enumerate(handles):
            memory = nvml.call("nvmlDeviceGetMemoryInfo", handle)
            rates = nvml.call("nvmlDeviceGetUtilizationRates", handle)
            out.append(
                GpuSample(
                    index=index,
                    name=self._gpu_names[index],
                    vram_used=as_int(getattr(memory, "used", None)),
                    vram_total=as_int(getattr(memory, "total", None)),
                    utilization=_float_or_none(getattr(rates, "gpu", None)),
                    worker_vram=self._worker_vram(handle),
                )
            )
        return tuple(out)

    def _worker_vram(self, handle: Any) -> int | None:
        pid = self._worker_pid
        return None if pid is None else self._nvml.process_vram(handle, pid)

    def _sample_worker(self) -> tuple[int | None, float | None]:
        pid = self._worker_pid
        if pid is None:
            return None, None
        try:
            if self._worker is None:
                self._worker = self._psutil.Process(pid)
                self._worker.cpu_percent(None)  # first call only sets the reference point
                return int(self._worker.memory_info().rss), None
            with self._worker.oneshot():
                return int(self._worker.memory_info().rss), float(self._worker.cpu_percent(None))
        except Exception:  # NoSuchProcess, AccessDenied, ZombieProcess: it just exited
            self._worker = None
            return None, None

    def _sample_ram(self) -> tuple[int | None, int | None]:
        try:
            memory = self._psutil.virtual_memory()
            return int(memory.total), int(memory.available)
        except Exception:
            return None, None

    def _sample_cpu(self) -> float | None:
        try:
            value = float(self._psutil.cpu_percent(None))
        except Exception:
            return None
        if not self._cpu_primed:  # psutil's first reading has no interval: meaningless
            self._cpu_primed = True
            return None
        return value

    def _store(self, sample: Sample) -> None:
        self.times.append(sample.t)
        self.ram_used.append(_nan(sample.ram_used))
        self.ram_available.append(_nan(sample.ram_available))
        self.worker_rss.append(_nan(sample.worker_rss))
        self.worker_cpu_percent.append(_nan(sample.worker_cpu_percent))
        self.cpu_percent.append(_nan(sample.cpu_percent))
        while len(self.gpus) < len(sample.gpus):
            series = GpuSeries(self._history)
            for _ in range(len(self.times) - 1):  # keep the GPU series aligned with times
                for ring in (
                    series.vram_used,
                    series.vram_total,
                    series.utilization,
                    series.worker_vram,
                ):
                    ring.append(math.nan)
            self.gpus.append(series)
        for index, series in enumerate(self.gpus):
            gpu = sample.gpus[index] if index < len(sample.gpus) else None
            series.vram_used.append(_nan(gpu.vram_used if gpu else None))
            series.vram_total.append(_nan(gpu.vram_total if gpu else None))
            series.utilization.append(_nan(gpu.utilization if gpu else None))
            series.worker_vram.append(_nan(gpu.worker_vram if gpu else None))


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _float_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None
