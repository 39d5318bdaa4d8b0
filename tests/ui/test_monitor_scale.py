"""The Monitor's RAM plot scaled to the model, its capacity in words, one style of time label,
and a sentence saying why the worker holds less (or more) than the estimate.

The numbers are the ones a hobbyist met on a 23.5 GB machine with no GPU: Gemma 3 270M's
worker at 418 MB against an estimate of 873 MB, 514 MB of it llama.cpp's compute buffer.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from test_monitor_panel import WORKER_PID, Clock, FakePsutil, feed, make_plan

from desktop.core.estimate import DevicePlan
from desktop.core.memory_gap import memory_gap_sentence
from desktop.services.monitor import Monitor
from desktop.ui.monitor_panel import MonitorPanel, _SecondsAgoAxis

# A top-level panel whose height comes from its layout tells the window system its new
# size hints; the offscreen platform says it cannot (harmless here, never in the app).
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
MB = 1000**2
MIB = 1024**2
GIB = 1024**3
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "h15b" / "after"


def _cpu_plan(compute: int = 514 * MIB) -> DevicePlan:
    return DevicePlan(
        name="CPU",
        kind="cpu",
        layers=19,
        weights_bytes=248 * MIB,
        kv_bytes=72 * MIB,
        compute_bytes=compute,
        output_bytes=1 * MIB,
        overhead_bytes=38 * MIB,
        capacity_bytes=22 * GIB,
    )


def test_the_gap_sentence_names_the_compute_buffer_a_short_prompt_leaves_untouched() -> None:
    plan = _cpu_plan()
    assert plan.total_bytes == 873 * MIB
    sentence = memory_gap_sentence(plan, 418 * MIB, what="In RAM the model worker holds")
    assert sentence.startswith("In RAM the model worker holds 418 MB, 455 MB less than estimated")
    assert "514 MB compute buffer" in sentence and "short prompt" in sentence
    # Close enough: nothing to explain.
    assert memory_gap_sentence(plan, 850 * MIB, what="x") == ""
    assert memory_gap_sentence(plan, None, what="x") == ""
    # Much less than the compute buffer can explain: the general reason, no compute figure.
    small = _cpu_plan(compute=50 * MIB)
    general = memory_gap_sentence(small, 100 * MIB, what="In RAM the model worker holds")
    assert "every buffer llama.cpp reserves" in general and "50 MB" not in general
    # More than estimated, in RAM and on a GPU: what the buffers do not include.
    more = memory_gap_sentence(plan, 1200 * MIB, what="In RAM the model worker holds")
    assert "more than estimated" in more and "worker process itself" in more
    gpu = replace(plan, kind="cuda", name="RTX 3060")
    assert "GPU runtime" in memory_gap_sentence(gpu, 1200 * MIB, what="On the GPU it holds")
    # Less VRAM than estimated is never put down to untouched pages (VRAM has none).
    fewer = memory_gap_sentence(gpu, 418 * MIB, what="On the GPU it holds")
    assert "allocated less" in fewer and "touch" not in fewer and "compute buffer" not in fewer


def test_time_labels_use_one_unit_across_the_axis(qtbot: Any) -> None:
    axis = _SecondsAgoAxis("bottom")
    values = [-165.0, -150.0, -120.0, -60.0, -15.0, 0.0]
    axis.tickSpacing(-180.0, 3.6, 900)
    labels = axis.tickStrings(values, 1.0, 15.0)
    assert labels == ["165 s ago", "150 s ago", "120 s ago", "60 s ago", "15 s ago", "now"]
    axis.tickSpacing(-1800.0, 36.0, 900)
    assert axis.tickStrings([-1200.0, -300.0, 0.0], 1.0, 300.0) == [
        "20 min ago",
        "5 min ago",
        "now",
    ]


def _no_gpu_monitor(clock: Clock) -> Monitor:
    psutil = FakePsutil(total=int(23.5 * GIB), used=int(4.2 * GIB), rss=418 * MIB)
    monitor = Monitor(nvml=None, psutil_module=psutil, clock=clock, history=400)
    monitor.set_worker_pid(WORKER_PID)
    return monitor


def test_the_ram_plot_scales_to_the_worker_and_estimate_and_names_the_capacity(
    qtbot: Any,
) -> None:
    clock = Clock()
    monitor = _no_gpu_monitor(clock)
    feed(monitor, clock, seconds=20, tokens_per_s=40)
    panel = MonitorPanel(monitor, clock=clock)
    qtbot.addWidget(panel)
    panel.resize(1290, 660)
    panel.show()
    qtbot.waitExposed(panel)
    plan = make_plan(tokens_per_s=40.0, gpu_bytes=None, cpu_bytes=0)
    plan = replace(plan, devices=(_cpu_plan(),))
    panel.set_prediction(plan)
    panel.refresh()
    low, high = panel.ram_plot.getPlotItem().viewRange()[1]
    assert low == 0
    # The estimate (873 MB) and the worker (418 MB) fill the plot: not 23.5 GB of scale.
    assert 873 * MIB < high <= 1.5 * 873 * MIB, high / MIB
    note = panel.ram_scale_note.toPlainText()
    assert panel.ram_scale_note.isVisible()
    assert note == "Above this scale: all programs use 4.2 GB of the 23.5 GB of RAM", note
    why = panel.memory_note.text()
    assert panel.memory_note.isVisible()
    assert "418 MB, 455 MB less than estimated" in why and "514 MB compute buffer" in why
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    panel.grab().save(str(ARTIFACTS / "monitor-no-gpu-scaled.png"))

    # Without a model, the plot shows the whole RAM with its capacity line.
    panel.set_prediction(None)
    monitor.set_worker_pid(None)
    for _ in range(4):
        clock.now += 0.25
        monitor.sample_now()
    clock.now += 200  # the worker's samples have left the window
    for _ in range(4):
        clock.now += 0.25
        monitor.sample_now()
    panel.refresh()
    high = panel.ram_plot.getPlotItem().viewRange()[1][1]
    assert high >= 23.5 * GIB
    assert not panel.ram_scale_note.isVisible()
    assert not panel.memory_note.isVisible()
