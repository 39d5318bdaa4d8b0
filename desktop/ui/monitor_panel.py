"""The Monitor tab: live tokens per second and memory use, beside what the estimate predicted.

:class:`MonitorPanel` is handed a :class:`~desktop.services.monitor.Monitor` and reads its
NumPy ring buffers ten times a second (a QTimer that runs only while the tab is visible):

* **Tokens per second** - instantaneous (thin: one token after the other) and smoothed over
  the last second (thick), with the predicted decode rate as a dashed line.
* **GPU memory** - VRAM used per GPU (all programs, thick) and by the model's worker (thin,
  where the driver reports it), with the card's capacity (dashed) and the estimate for this
  model (dash-dot). Hidden, with "No GPU" in words, on a machine without an NVIDIA GPU.
* **System memory** - RAM used and the worker's resident memory, with the RAM capacity and
  the estimate for the part of the model kept in RAM.

The x axis is "seconds ago" (the last few minutes). Each curve is created once and updated
with ``setData`` from views into the ring buffers (clip to view, peak downsampling, no
finite check: unknown samples are NaN and break the line on purpose).
:meth:`MonitorPanel.set_prediction` takes the :class:`~desktop.core.estimate.Plan` of the
loaded model (or None).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QHideEvent, QPalette, QShowEvent
from PySide6.QtWidgets import QApplication, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from desktop.core.estimate import Plan
from desktop.core.memory_gap import memory_gap_sentence
from desktop.core.ringbuffer import RingBuffer
from desktop.core.units import GIB, format_bytes
from desktop.services.monitor import Monitor
from desktop.services.signals import emit
from desktop.ui import theme
from desktop.ui.widgets import HintLabel

__all__ = ["DEFAULT_FPS", "DEFAULT_WINDOW_S", "MonitorPanel"]

DEFAULT_WINDOW_S = 180.0  # seconds of history on screen
DEFAULT_FPS = 10

# Colours that keep their meaning in both themes: (light, dark).
_COLORS: dict[str, tuple[str, str]] = {
    "rate": ("#2f5fcf", "#7aa2ff"),
    "rate_thin": ("#9fb5e3", "#4a5f8f"),
    "predicted": ("#d9822b", "#ffb74d"),
    "ram": ("#607d8b", "#b0bec5"),
    "rss": ("#8e5bd0", "#c39ef5"),
    "api": ("#2e7d32", "#81c784"),  # another app's requests (desktop.services.api_serving)
}
_GPU_COLORS = (("#1b9aa0", "#4dd0d4"), ("#c2185b", "#f48fb1"), ("#5d8a00", "#aed581"))


def _color(key: str, palette: QPalette) -> QColor:
    light, dark = _COLORS[key]
    return QColor(dark if theme.is_dark(palette) else light)


def _gpu_color(index: int, palette: QPalette) -> QColor:
    light, dark = _GPU_COLORS[index % len(_GPU_COLORS)]
    return QColor(dark if theme.is_dark(palette) else light)


class _SecondsAgoAxis(pg.AxisItem):
    """An x axis relative to now in one unit: "165 s ago" ... "now" for the last few minutes,
    "10 min ago" ... "now" beyond ten (never "2 min ago" beside "165 s ago")."""

    _span = 0.0

    def tickSpacing(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, float]]:
        span = maxVal - minVal
        self._span = span
        if span > 600:
            return [(300.0, 0.0), (60.0, 0.0)]
        if span > 150:
            return [(60.0, 0.0), (15.0, 0.0)]
        if span > 40:
            return [(15.0, 0.0), (5.0, 0.0)]
        return [(5.0, 0.0), (1.0, 0.0)]

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        minutes = self._span > 600  # the ticks are whole minutes then
        out = []
        for value in values:
            ago = -round(value)
            if ago <= 0:
                out.append("now")
            elif minutes:
                out.append(f"{ago / 60:g} min ago")
            else:
                out.append(f"{ago} s ago")
        return out


class _GigabyteAxis(pg.AxisItem):
    """A y axis for byte values, labelled in GB (binary, as the rest of the app)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("left", **kwargs)
        self.setScale(1 / GIB)
        self.enableAutoSIPrefix(False)

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        step = spacing * scale
        decimals = 0 if step >= 1 else 1 if step >= 0.1 else 2
        return [f"{v * scale:.{decimals}f} GB" for v in values]


def _seconds_ago(times: RingBuffer, first: int, now: float) -> npt.NDArray[np.float64]:
    """The x values: each stored time from ``first`` on, relative to now (a new array)."""
    stamps = cast("npt.NDArray[np.float64]", times.values()[first:])
    return stamps - now


def _visible_from(times: RingBuffer, start: float) -> int:
    """Index of the first stored time at or after ``start`` (the buffers are in time order)."""
    return int(np.searchsorted(times.values(), start, side="left"))


def _window(buffer: RingBuffer, first: int) -> npt.NDArray[np.generic]:
    """The values from ``first`` on: a view, or a copy when it spans the whole buffer.

    A view stays right until the next append, which only overwrites the oldest slot; that
    slot is outside the window unless the window holds the whole buffer.
    """
    values = buffer.values()[first:]
    if first == 0 and len(buffer) == buffer.capacity:
        return np.array(values)
    return values


def _top(values: npt.NDArray[np.generic]) -> float:
    """The largest finite value, 0 for none (no warning on all-NaN windows)."""
    if values.size == 0:
        return 0.0
    return float(np.fmax.reduce(values, initial=0.0))


class _Plot(pg.PlotWidget):
    """A PlotWidget set up for live data: no mouse, no menu, clipped and downsampled."""

    def __init__(self, name: str, left: pg.AxisItem | None, parent: QWidget | None) -> None:
        axes: dict[str, pg.AxisItem] = {"bottom": _SecondsAgoAxis("bottom")}
        if left is not None:
            axes["left"] = left
        super().__init__(parent, axisItems=axes)
        self.setAccessibleName(name)
        item = self.getPlotItem()
        item.setMenuEnabled(False)
        item.hideButtons()
        item.setMouseEnabled(x=False, y=False)
        item.setClipToView(True)
        item.setDownsampling(auto=True, mode="peak")
        item.showGrid(x=True, y=True, alpha=0.12)
        item.getAxis("left").setWidth(64)
        self.setMinimumHeight(96)  # three plots and a log fit a 720-pixel screen
        self.legend = item.addLegend(offset=(8, 6), colCount=3)
        self.widths: dict[pg.PlotDataItem, float] = {}  # pen width of each curve
        self.styles: dict[pg.InfiniteLine, Qt.PenStyle] = {}  # dash style of each line

    def curve(self, name: str, *, width: float = 2.0) -> pg.PlotDataItem:
        """A curve created once (updated with setData each frame)."""
        curve = pg.PlotDataItem(
            name=name,
            connect="finite",  # NaN (unknown, or a new answer) breaks the line
            skipFiniteCheck=True,
            antialias=False,
        )
        curve.setClipToView(True)
        curve.setDownsampling(auto=True, method="peak")
        self.widths[curve] = width
        self.addItem(curve)
        return curve

    def level(self, style: Qt.PenStyle, position: float, *, below: bool = False) -> pg.InfiniteLine:
        """A horizontal line with a text label, hidden until given a value.

        The label sits at ``position`` (0 left .. 1 right), above the line or ``below`` it
        (for a capacity, which is near the top of the plot).
        """
        anchor = (1, 0) if below else (1, 1)
        line = pg.InfiniteLine(
            angle=0,
            movable=False,
            label="",
            labelOpts={"position": position, "anchors": [anchor, anchor]},
        )
        self.styles[line] = style
        line.setVisible(False)
        self.addItem(line, ignoreBounds=True)
        return line


class MonitorPanel(QWidget):
    """Live plots of a :class:`Monitor`, with the prediction of :meth:`set_prediction`.

    ``refreshed`` is emitted after each frame (``frames`` counts them). ``clock`` must be
    the monitor's clock (``time.monotonic``, the worker's token clock too).
    """

    refreshed = Signal()

    def __init__(
        self,
        monitor: Monitor,
        parent: QWidget | None = None,
        *,
        window_s: float = DEFAULT_WINDOW_S,
        fps: int = DEFAULT_FPS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(parent)
        self._monitor = monitor
        self._clock = clock
        self.window_s = window_s
        self.frames = 0
        self._plan: Plan | None = None
        self._y_tops: dict[str, float] = {}
        self._theme_key: tuple[int, int] | None = None
        self.setAccessibleName("Live monitor")
        # Only a width: the height the plots and their words need comes from the layout, so
        # a splitter (the Monitor tab's request log below) cannot squeeze them into overlap.
        self.setMinimumWidth(480)

        # Tokens per second
        self.rate_title, self.rate_value = self._header("Tokens per second")
        self.rate_plot = _Plot("Tokens per second over time", None, self)
        self.instant_curve = self.rate_plot.curve("Each token", width=1.0)
        self.rate_curve = self.rate_plot.curve("Smoothed (1 s)", width=3.0)
        self.api_rate_curve = self.rate_plot.curve("Another app (API, 1 s)", width=3.0)
        self.predicted_line = self.rate_plot.level(Qt.PenStyle.DashLine, 0.98)

        # GPU memory: one set of curves per GPU, made when the monitor first sees it.
        self.vram_title, self.vram_value = self._header("GPU memory (VRAM)")
        self.no_gpu_label = HintLabel("", self)
        self.no_gpu_label.setAccessibleName("GPU status")
        self.vram_plot = _Plot("GPU memory over time", _GigabyteAxis(), self)
        self.vram_curves: list[pg.PlotDataItem] = []
        self.worker_vram_curves: list[pg.PlotDataItem] = []
        self.vram_capacity_lines: list[pg.InfiniteLine] = []
        self.vram_estimate_lines: list[pg.InfiniteLine] = []

        # System memory
        self.ram_title, self.ram_value = self._header("System memory (RAM)")
        self.ram_plot = _Plot("System memory over time", _GigabyteAxis(), self)
        self.ram_curve = self.ram_plot.curve("RAM used (all programs)", width=2.5)
        self.rss_curve = self.ram_plot.curve("Model worker", width=2.0)
        self.ram_capacity_line = self.ram_plot.level(Qt.PenStyle.DashLine, 0.98, below=True)
        self.ram_estimate_line = self.ram_plot.level(Qt.PenStyle.DashDotLine, 0.6)
        # The capacity in words when the plot is scaled to the model, below the whole RAM.
        self.ram_scale_note = pg.TextItem("", anchor=(1, 0))
        self.ram_scale_note.setVisible(False)
        self.ram_plot.addItem(self.ram_scale_note, ignoreBounds=True)
        # Why the worker holds more or less than the estimate, in a sentence.
        self.memory_note = HintLabel("", self)
        self.memory_note.setWordWrap(True)
        self.memory_note.setAccessibleName("Why measured and estimated memory differ")
        self.memory_note.setVisible(False)

        self.ram_plot.setXLink(self.rate_plot)
        self.vram_plot.setXLink(self.rate_plot)
        # A little room right of "now", so its tick label shows.
        self.rate_plot.setXRange(-window_s, window_s * 0.02, padding=0)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 10, 0, 0)
        layout.setSpacing(4)
        for position, (title, value, plot) in enumerate(
            (
                (self.rate_title, self.rate_value, self.rate_plot),
                (self.vram_title, self.vram_value, self.vram_plot),
                (self.ram_title, self.ram_value, self.ram_plot),
            )
        ):
            if position:
                layout.addSpacing(10)
            row = QHBoxLayout()
            row.addWidget(title)
            row.addSpacing(8)
            row.addWidget(value, 1)
            if plot is self.vram_plot:
                row.addWidget(self.no_gpu_label, 1)
            layout.addLayout(row)
            layout.addWidget(plot, 1)
        layout.addWidget(self.memory_note)

        self._timer = QTimer(self)
        self._timer.setInterval(max(1, round(1000 / fps)))
        self._timer.timeout.connect(self.refresh)
        monitor.sampled.connect(self._on_sampled)
        self._apply_theme()
        self._sync_gpus()
        self.refresh()

    # ------------------------------------------------------------------ public API

    @property
    def plan(self) -> Plan | None:
        return self._plan

    def set_prediction(self, plan: Plan | None) -> None:
        """Draw the estimate of the loaded model (None: no prediction lines)."""
        self._plan = plan
        self._update_levels()
        self.refresh()

    def start(self) -> None:
        """Redraw on the timer (done on show; the timer stops while the tab is hidden)."""
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    @property
    def running(self) -> bool:
        return self._timer.isActive()

    def refresh(self) -> None:
        """Draw one frame from the ring buffers."""
        now = self._clock()
        start = now - self.window_s
        self._draw_rates(now, start)
        self._draw_memory(now, start)
        self._update_text(now)
        self.frames += 1
        emit(self.refreshed)

    # ------------------------------------------------------------------ drawing

    def _draw_rates(self, now: float, start: float) -> None:
        tokens = self._monitor.tokens
        first = _visible_from(tokens.times, start)
        x = _seconds_ago(tokens.times, first, now)
        instant = _window(tokens.instantaneous, first)
        rolling = _window(tokens.rolling, first)
        self.instant_curve.setData(x, instant)
        self.rate_curve.setData(x, rolling)
        api = self._monitor.api_tokens
        api_first = _visible_from(api.times, start)
        api_rolling = _window(api.rolling, api_first)
        self.api_rate_curve.setData(_seconds_ago(api.times, api_first, now), api_rolling)
        predicted = self._predicted_rate() or 0.0
        # The thin line's single-token spikes may leave the top: the smoothed rate and the
        # prediction set the scale.
        top = max(_top(rolling), _top(api_rolling))
        self._set_top("rate", self.rate_plot, max(10.0, predicted * 1.3, top * 1.25))

    def _draw_memory(self, now: float, start: float) -> None:
        monitor = self._monitor
        self._sync_gpus()
        first = _visible_from(monitor.times, start)
        x = _seconds_ago(monitor.times, first, now)
        top = 0.0
        for index, series in enumerate(monitor.gpus):
            used = _window(series.vram_used, first)
            self.vram_curves[index].setData(x, used)
            self.worker_vram_curves[index].setData(x, _window(series.worker_vram, first))
            top = max(top, _top(used), _top(_window(series.vram_total, first)))
        top = max([top, *(line.value() for line in self._visible(self.vram_estimate_lines))])
        if monitor.gpus:
            # Room above the capacity line for the legend.
            self._set_top("vram", self.vram_plot, max(top * 1.15, GIB))

        ram = _window(monitor.ram_used, first)
        rss = _window(monitor.worker_rss, first)
        self.ram_curve.setData(x, ram)
        self.rss_curve.setData(x, rss)
        self._scale_ram(_top(ram), _top(rss))

    def _scale_ram(self, all_programs: float, worker: float) -> None:
        """Scale the RAM plot to the model: its worker and its estimate. The whole RAM (23 GB
        against a 400 MB worker) would flatten both; what is above the scale is said in words
        at the top of the plot instead."""
        capacity = self.ram_capacity_line.value() if self.ram_capacity_line.isVisible() else 0.0
        estimate = self.ram_estimate_line.value() if self.ram_estimate_line.isVisible() else 0.0
        model = max(worker, float(estimate))
        whole = max(all_programs, float(capacity))
        if model <= 0 or whole <= model * 1.5:
            top = max(whole * 1.15, GIB)  # no model yet, or the model is most of the RAM
        else:
            top = max(model * 1.4, 256 * 1024**2)
        self._set_top("ram", self.ram_plot, top)
        top = self._y_tops["ram"]
        used = format_bytes(round(all_programs))
        ram_size = format_bytes(round(float(capacity)))
        if all_programs > top and capacity > top:
            note = f"Above this scale: all programs use {used} of the {ram_size} of RAM"
        elif capacity > top:
            note = f"Above this scale: the {ram_size} of RAM"
        elif all_programs > top:
            note = f"Above this scale: all programs use {used}"
        else:
            note = ""
        if note != self.ram_scale_note.toPlainText():
            self.ram_scale_note.setText(note)
        self.ram_scale_note.setVisible(bool(note))
        self.ram_scale_note.setPos(self.window_s * 0.02, top)

    @staticmethod
    def _visible(lines: list[pg.InfiniteLine]) -> list[pg.InfiniteLine]:
        return [line for line in lines if line.isVisible()]

    def _set_top(self, key: str, plot: _Plot, top: float) -> None:
        """Move the y range only when the top changes by more than 5% (no jitter)."""
        old = self._y_tops.get(key)
        if old is not None and abs(top - old) <= 0.05 * old:
            return
        self._y_tops[key] = top
        plot.setYRange(0, top, padding=0)

    def _on_sampled(self, _sample: object) -> None:
        self._sync_gpus()
        self._update_levels()

    def _sync_gpus(self) -> None:
        """Curves and lines for every GPU the monitor has seen (each made once)."""
        monitor = self._monitor
        while len(self.vram_curves) < len(monitor.gpus):
            index = len(self.vram_curves)
            name = self._gpu_name(index)
            used = self.vram_plot.curve(f"{name} used (all programs)", width=2.5)
            worker = self.vram_plot.curve(f"{name} model worker", width=1.5)
            capacity = self.vram_plot.level(Qt.PenStyle.DashLine, 0.98, below=True)
            estimate = self.vram_plot.level(Qt.PenStyle.DashDotLine, 0.6 - 0.15 * index)
            self.vram_curves.append(used)
            self.worker_vram_curves.append(worker)
            self.vram_capacity_lines.append(capacity)
            self.vram_estimate_lines.append(estimate)
            self._color_gpu(index, QApplication.palette())
        has_gpu = bool(monitor.gpus)
        sampled = monitor.last_sample is not None
        self.vram_plot.setVisible(has_gpu)
        self.vram_value.setVisible(has_gpu)
        self.no_gpu_label.setVisible(not has_gpu)
        self.no_gpu_label.setText(
            "No GPU: no NVIDIA GPU was found, so the model runs from system RAM (below)."
            if sampled
            else "Waiting for the first memory sample…"
        )

    def _gpu_name(self, index: int) -> str:
        sample = self._monitor.last_sample
        name = None
        if sample is not None and index < len(sample.gpus):
            name = sample.gpus[index].name
        if name:
            name = name.removeprefix("NVIDIA ").removeprefix("GeForce ")
        count = len(self._monitor.gpus)
        if count > 1:
            return f"GPU {index}" + (f" ({name})" if name else "")
        return name or "GPU"

    def _gpu_plans(self) -> list[Any]:
        plan = self._plan
        return [] if plan is None else [d for d in plan.devices if d.kind != "cpu"]

    def _cpu_plan(self) -> Any:
        plan = self._plan
        if plan is None:
            return None
        return next((d for d in plan.devices if d.kind == "cpu"), None)

    def _predicted_rate(self) -> float | None:
        plan = self._plan
        rate = plan.predicted_tokens_per_s if plan is not None else None
        return rate if rate is not None and math.isfinite(rate) and rate > 0 else None

    def _update_levels(self) -> None:
        """Move the dashed lines to the prediction and the capacities."""
        predicted = self._predicted_rate()
        self._place(self.predicted_line, predicted, lambda v: f"Predicted ~{v:.0f} tok/s")

        sample = self._monitor.last_sample
        gpu_plans = self._gpu_plans()
        for index, (capacity, estimate) in enumerate(
            zip(self.vram_capacity_lines, self.vram_estimate_lines, strict=True)
        ):
            total = None
            if sample is not None and index < len(sample.gpus):
                total = sample.gpus[index].vram_total
            name = self._gpu_name(index)

            def capacity_label(value: float, name: str = name) -> str:
                return f"{name}: {format_bytes(round(value))}"

            self._place(capacity, total, capacity_label)
            planned = gpu_plans[index].total_bytes if index < len(gpu_plans) else None
            self._place(
                estimate, planned, lambda v: f"Estimate for this model: {format_bytes(round(v))}"
            )

        ram_total = sample.ram_total if sample is not None else None
        self._place(self.ram_capacity_line, ram_total, lambda v: f"RAM {format_bytes(round(v))}")
        cpu_plan = self._cpu_plan()
        self._place(
            self.ram_estimate_line,
            cpu_plan.total_bytes if cpu_plan is not None and cpu_plan.total_bytes else None,
            lambda v: f"Estimate in RAM: {format_bytes(round(v))}",
        )

    @staticmethod
    def _place(line: pg.InfiniteLine, value: float | None, label: Callable[[float], str]) -> None:
        if value is None or not math.isfinite(value) or value <= 0:
            line.setVisible(False)
            return
        if line.value() != value:
            line.setValue(value)
        line.setVisible(True)  # first: a hidden label ignores its new text
        line.label.setFormat(label(value).replace("{", "{{").replace("}", "}}"))

    # ------------------------------------------------------------------ words

    def _update_text(self, now: float) -> None:
        tokens = self._monitor.tokens
        rate = tokens.rolling_rate(now)
        predicted = self._predicted_rate()
        if not len(tokens.times):
            text = "Appears here while the model answers."
        elif rate > 0:
            text = f"{rate:.1f} tok/s now"
            if predicted:
                text += f" · predicted ~{predicted:.0f} ({100 * rate / predicted:.0f}%)"
        else:
            text = "Idle"
            if predicted:
                text += f" · predicted ~{predicted:.0f} tok/s"
        api_rate = self._monitor.api_tokens.rolling_rate(now)
        if api_rate > 0:  # another app's answer (the chat waits its turn meanwhile)
            text = f"Another app: {api_rate:.1f} tok/s now"
            if predicted:
                text += f" · predicted ~{predicted:.0f} ({100 * api_rate / predicted:.0f}%)"
        _set_text(self.rate_value, text)

        sample = self._monitor.last_sample
        if sample is None:
            _set_text(self.vram_value, "")
            _set_text(self.ram_value, "Waiting for the first sample…")
            return
        gpu_bits = []
        for gpu in sample.gpus:
            bit = f"{self._gpu_name(gpu.index)}: {_used_of(gpu.vram_used, gpu.vram_total)}"
            if gpu.worker_vram:
                bit += f", model worker {format_bytes(gpu.worker_vram)}"
            gpu_bits.append(bit)
        _set_text(self.vram_value, " · ".join(gpu_bits))
        ram = f"{_used_of(sample.ram_used, sample.ram_total)}"
        if sample.worker_rss is not None:
            ram += f" · model worker {format_bytes(sample.worker_rss)}"
        _set_text(self.ram_value, ram)
        self._explain_memory(sample)

    def _explain_memory(self, sample: Any) -> None:
        """Say why the worker holds more or less than the estimate, where it does."""
        notes = []
        cpu_plan = self._cpu_plan()
        if cpu_plan is not None and cpu_plan.total_bytes:
            what = "In RAM the model worker holds"
            notes.append(memory_gap_sentence(cpu_plan, sample.worker_rss, what=what))
        for gpu, plan in zip(sample.gpus, self._gpu_plans(), strict=False):
            what = f"On {self._gpu_name(gpu.index)} the model worker holds"
            notes.append(memory_gap_sentence(plan, gpu.worker_vram, what=what))
        text = " ".join(n for n in notes if n)
        _set_text(self.memory_note, text)
        self.memory_note.setVisible(bool(text))

    def _header(self, title: str) -> tuple[QLabel, HintLabel]:
        label = QLabel(title, self)
        font = QFont(label.font())
        font.setBold(True)
        label.setFont(font)
        value = HintLabel("", self)
        value.setAccessibleName(f"{title} now")
        return label, value

    # ------------------------------------------------------------------ theme

    def _apply_theme(self) -> None:
        palette = QApplication.palette()
        key = (
            palette.color(QPalette.ColorRole.Base).rgba(),
            palette.color(QPalette.ColorRole.WindowText).rgba(),
        )
        if key == self._theme_key:
            return
        self._theme_key = key
        background = palette.color(QPalette.ColorRole.Base)
        text = palette.color(QPalette.ColorRole.WindowText)
        faded = theme.secondary_text(palette)
        for plot in (self.rate_plot, self.vram_plot, self.ram_plot):
            plot.setBackground(background)
            for side in ("left", "bottom"):
                axis = plot.getPlotItem().getAxis(side)
                axis.setPen(pg.mkPen(faded))
                axis.setTextPen(pg.mkPen(text))
            plot.legend.setLabelTextColor(text)
            for _sample, label in plot.legend.items:
                label.setText(label.text)  # the colour applies at the next setText
        rate, ram = self.rate_plot, self.ram_plot
        _style(rate, self.instant_curve, _color("rate_thin", palette))
        _style(rate, self.rate_curve, _color("rate", palette))
        _style(rate, self.api_rate_curve, _color("api", palette))
        _style_level(rate, self.predicted_line, _color("predicted", palette))
        _style(ram, self.ram_curve, _color("ram", palette))
        _style(ram, self.rss_curve, _color("rss", palette))
        _style_level(ram, self.ram_capacity_line, _color("ram", palette))
        _style_level(ram, self.ram_estimate_line, _color("rss", palette))
        self.ram_scale_note.setColor(_color("ram", palette))
        for index in range(len(self.vram_curves)):
            self._color_gpu(index, palette)

    def _color_gpu(self, index: int, palette: QPalette) -> None:
        color = _gpu_color(index, palette)
        plot = self.vram_plot
        _style(plot, self.vram_curves[index], color)
        _style(plot, self.worker_vram_curves[index], theme.mix(color, QColor("#808080"), 0.35))
        _style_level(plot, self.vram_capacity_lines[index], color)
        _style_level(plot, self.vram_estimate_lines[index], color)

    # ------------------------------------------------------------------ Qt events

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh()
        self.start()

    def hideEvent(self, event: QHideEvent) -> None:
        self.stop()  # a hidden tab costs nothing
        super().hideEvent(event)

    def changeEvent(self, event: QEvent) -> None:
        # Qt 6 tells widgets of a new application palette with PaletteChange.
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._apply_theme()
        super().changeEvent(event)


def _style(plot: _Plot, curve: pg.PlotDataItem, color: QColor) -> None:
    curve.setPen(pg.mkPen(color, width=plot.widths.get(curve, 2.0)))


def _style_level(plot: _Plot, line: pg.InfiniteLine, color: QColor) -> None:
    style = plot.styles.get(line, Qt.PenStyle.DashLine)
    line.setPen(pg.mkPen(color, width=1.5, style=style))
    line.label.setColor(color)
    # A backing of the plot's colour keeps the label readable over a curve.
    backing = QColor(plot.backgroundBrush().color())
    backing.setAlpha(215)
    line.label.fill = pg.mkBrush(backing)
    line.label.update()


def _used_of(used: int | None, total: int | None) -> str:
    if used is None:
        return "unknown"
    if total:
        return f"{format_bytes(used)} of {format_bytes(total)} used"
    return f"{format_bytes(used)} used"


def _set_text(label: QLabel, text: str) -> None:
    if label.text() != text:
        label.setText(text)
