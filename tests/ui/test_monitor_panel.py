"""MonitorPanel: live curves from a Monitor fed by a fake machine, beside the prediction.

The Monitor takes its NVML and psutil as parameters, and its clock: here a fake GPU, a fake
psutil and a clock the test moves, so every number on the plots is known.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from desktop.core.estimate import DevicePlan, Plan, Settings, Verdict
from desktop.services.monitor import Monitor
from desktop.ui.monitor_panel import MonitorPanel

GIB = 1024**3
WORKER_PID = 4242
# A top-level panel whose height comes from its layout tells the window system its new
# size hints; the offscreen platform says it cannot (harmless here, never in the app).
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeNvml:
    """One GPU (or none), with the worker using part of its VRAM."""

    def __init__(self, *, total: int, used: int, worker: int) -> None:
        self.total, self.used, self.worker = total, used, worker

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return b"NVIDIA GeForce RTX 3060"

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(used=self.used, total=self.total, free=self.total - self.used)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=70, memory=30)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=WORKER_PID, usedGpuMemory=self.worker)]


class FakePsutil:
    """virtual_memory, cpu_percent and Process, as the monitor uses them."""

    def __init__(self, *, total: int, used: int, rss: int) -> None:
        self.total, self.used, self.rss = total, used, rss

    def virtual_memory(self) -> SimpleNamespace:
        return SimpleNamespace(total=self.total, available=self.total - self.used)

    def cpu_percent(self, interval: float | None = None) -> float:
        return 12.0

    def Process(self, pid: int) -> Any:
        machine = self

        class Process:
            def memory_info(self) -> SimpleNamespace:
                return SimpleNamespace(rss=machine.rss)

            def cpu_percent(self, interval: float | None = None) -> float:
                return 95.0

            def oneshot(self) -> contextlib.AbstractContextManager[None]:
                return contextlib.nullcontext()

        return Process()


def make_plan(*, tokens_per_s: float | None, gpu_bytes: int | None, cpu_bytes: int) -> Plan:
    """A plan as the estimator returns it: a GPU (if any) and the CPU."""

    def device(name: str, kind: str, total: int, capacity: int) -> DevicePlan:
        return DevicePlan(
            name=name,
            kind=kind,
            layers=0,
            weights_bytes=total,
            kv_bytes=0,
            compute_bytes=0,
            output_bytes=0,
            overhead_bytes=0,
            capacity_bytes=capacity,
        )

    devices = []
    if gpu_bytes is not None:
        devices.append(device("NVIDIA GeForce RTX 3060", "cuda", gpu_bytes, 11 * GIB))
    devices.append(device("CPU", "cpu", cpu_bytes, 24 * GIB))
    return Plan(
        model_name="test",
        estimate_kind="exact",
        settings=Settings(),
        n_ctx=4096,
        gpu_layers=19 if gpu_bytes else 0,
        offloadable_layers=19,
        devices=tuple(devices),
        buffers=(),
        verdict=Verdict.FULL_GPU if gpu_bytes else Verdict.CPU_ONLY,
        reason="",
        suggestion="",
        max_gpu_layers=19,
        max_ctx_full_gpu=None,
        predicted_tokens_per_s=tokens_per_s,
        predicted_prompt_tokens_per_s=None,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_monitor(clock: Clock, *, gpu: bool) -> Monitor:
    nvml = FakeNvml(total=12 * GIB, used=3 * GIB, worker=2 * GIB) if gpu else None
    psutil = FakePsutil(total=32 * GIB, used=10 * GIB, rss=700 * 1024**2)
    monitor = Monitor(nvml=nvml, psutil_module=psutil, clock=clock, history=400)
    monitor.set_worker_pid(WORKER_PID)
    return monitor


def feed(monitor: Monitor, clock: Clock, *, seconds: float, tokens_per_s: float) -> None:
    """Samples every 0.25 s and one answer's tokens at a steady rate, moving the clock."""
    monitor.start_generation()
    start = clock.now
    samples = 0
    for i in range(round(seconds * tokens_per_s)):
        t = start + i / tokens_per_s
        while start + samples * 0.25 <= t:
            clock.now = start + samples * 0.25
            monitor.sample_now()
            samples += 1
        monitor.add_token(t)
    clock.now = start + seconds


@pytest.fixture
def make_panel(qtbot: Any, clock: Clock) -> Iterator[Any]:
    def build(monitor: Monitor, **kwargs: Any) -> MonitorPanel:
        panel = MonitorPanel(monitor, clock=clock, **kwargs)
        qtbot.addWidget(panel)
        panel.resize(900, 640)
        return panel

    yield build


def data(curve: Any) -> tuple[np.ndarray, np.ndarray]:
    assert curve.xData is not None, "the curve has no data"
    return curve.xData, curve.yData


def test_curves_show_the_monitor_beside_the_prediction(make_panel: Any, clock: Clock) -> None:
    monitor = make_monitor(clock, gpu=True)
    feed(monitor, clock, seconds=6, tokens_per_s=50)
    clock.now += 2  # the answer ended two seconds ago
    panel = make_panel(monitor)
    panel.set_prediction(make_plan(tokens_per_s=45.0, gpu_bytes=2 * GIB, cpu_bytes=GIB // 2))

    x, smoothed = data(panel.rate_curve)
    assert len(x) == monitor.tokens.total_tokens == 300
    assert -8.5 <= x[0] < x[-1] <= -2
    assert np.nanmedian(smoothed) == pytest.approx(50, rel=0.05)
    _, each = data(panel.instant_curve)
    assert np.nanmedian(each) == pytest.approx(50, rel=0.05)

    assert panel.predicted_line.isVisible()
    assert panel.predicted_line.value() == 45.0
    assert panel.predicted_line.label.format == "Predicted ~45 tok/s"

    assert panel.vram_plot.isVisibleTo(panel) and not panel.no_gpu_label.isVisibleTo(panel)
    (vram,) = panel.vram_curves
    x_mem, used = data(vram)
    assert len(x_mem) == len(monitor.times) == 24
    assert set(used) == {3 * GIB}
    assert set(data(panel.worker_vram_curves[0])[1]) == {2 * GIB}
    assert panel.vram_capacity_lines[0].value() == 12 * GIB
    assert panel.vram_capacity_lines[0].label.format == "RTX 3060: 12.0 GB"
    assert panel.vram_estimate_lines[0].value() == 2 * GIB
    assert "2.0 GB" in panel.vram_estimate_lines[0].label.format

    assert set(data(panel.ram_curve)[1]) == {10 * GIB}
    assert set(data(panel.rss_curve)[1]) == {700 * 1024**2}
    assert panel.ram_capacity_line.value() == 32 * GIB
    assert panel.ram_estimate_line.value() == GIB // 2

    assert panel.rate_value.text() == "Idle · predicted ~45 tok/s"
    assert "RTX 3060: 3.0 GB of 12.0 GB used, model worker 2.0 GB" in panel.vram_value.text()
    assert "model worker 700 MB" in panel.ram_value.text()


def test_rate_now_is_compared_with_the_prediction(make_panel: Any, clock: Clock) -> None:
    monitor = make_monitor(clock, gpu=True)
    feed(monitor, clock, seconds=3, tokens_per_s=40)
    panel = make_panel(monitor)
    panel.set_prediction(make_plan(tokens_per_s=50.0, gpu_bytes=GIB, cpu_bytes=GIB))
    clock.now -= 0.1  # still answering
    panel.refresh()
    assert panel.rate_value.text() == "40.0 tok/s now · predicted ~50 (80%)"


def test_without_a_gpu_only_ram_is_shown(make_panel: Any, clock: Clock) -> None:
    monitor = make_monitor(clock, gpu=False)
    panel = make_panel(monitor)
    assert panel.no_gpu_label.text() == "Waiting for the first memory sample…"
    feed(monitor, clock, seconds=2, tokens_per_s=20)
    panel.set_prediction(make_plan(tokens_per_s=None, gpu_bytes=None, cpu_bytes=GIB))

    assert not panel.vram_plot.isVisibleTo(panel)
    assert panel.no_gpu_label.isVisibleTo(panel)
    assert panel.no_gpu_label.text().startswith("No GPU")
    assert panel.vram_curves == []
    assert len(data(panel.ram_curve)[0]) == len(monitor.times)
    assert not panel.predicted_line.isVisible()  # the plan predicts no speed
    assert panel.ram_estimate_line.value() == GIB

    panel.set_prediction(None)
    assert not panel.ram_estimate_line.isVisible()
    assert panel.ram_capacity_line.isVisible()  # the capacity comes from the samples


def test_the_window_scrolls_past_old_samples(make_panel: Any, clock: Clock) -> None:
    monitor = make_monitor(clock, gpu=True)
    feed(monitor, clock, seconds=4, tokens_per_s=30)
    panel = make_panel(monitor, window_s=60)
    clock.now += 54  # the window (60 s) now starts half way through the first answer
    feed(monitor, clock, seconds=4, tokens_per_s=30)
    panel.refresh()
    x, _ = data(panel.rate_curve)
    assert x.min() >= -60 and len(x) == 4 * 30 + 2 * 30  # the first answer is half gone
    x_mem, _ = data(panel.ram_curve)
    assert x_mem.min() >= -60


def test_the_timer_draws_while_shown_and_stops_when_hidden(
    qtbot: Any, make_panel: Any, clock: Clock
) -> None:
    panel = make_panel(make_monitor(clock, gpu=True))
    assert not panel.running
    panel.show()
    qtbot.waitExposed(panel)
    assert panel.running
    frames = panel.frames
    with qtbot.waitSignal(panel.refreshed, timeout=2000):
        pass
    assert panel.frames > frames
    panel.hide()
    assert not panel.running


def test_plots_follow_a_dark_theme(qtbot: Any, make_panel: Any, clock: Clock) -> None:
    from test_main_window import dark_palette

    panel = make_panel(make_monitor(clock, gpu=False))
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    before = app.palette()
    try:
        app.setPalette(dark_palette())  # the change event is posted: wait for it
        dark_base = dark_palette().color(QPalette.ColorRole.Base)
        qtbot.waitUntil(lambda: panel.rate_plot.backgroundBrush().color() == dark_base)
        axis = panel.rate_plot.getPlotItem().getAxis("left")
        assert axis.textPen().color().lightness() > 180  # light text on the dark plot
    finally:
        app.setPalette(before)
    light_base = before.color(QPalette.ColorRole.Base)
    qtbot.waitUntil(lambda: panel.rate_plot.backgroundBrush().color() == light_base)
