"""The monitor's other computers: each remote device's memory in use over time.

llama.cpp's RPC server reports its device's free memory; the worker asks it after each load
and each answer (protocol Loaded/Done ``remote_memory``), and this plot draws one line per
remote device, in GB in use, beside a line of text per device. Hidden while no model uses
another computer.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from desktop.core.ringbuffer import RingBuffer
from desktop.core.units import GIB, format_bytes
from desktop.ui import theme

__all__ = ["RemoteMemoryPlot", "install_remote_memory_plot"]

#: Samples kept per device (one per load or answer).
HISTORY = 512


class RemoteMemoryPlot(QWidget):
    """GB in use on each other computer's device, one point per load and per answer."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("<b>Other computers (RPC)</b>: memory in use")
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.plot = pg.PlotWidget()
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setMinimumHeight(80)
        self.plot.setMaximumHeight(160)
        self.plot.setLabel("left", "GB in use")
        self.plot.setLabel("bottom", "seconds since the load")
        self.plot.addLegend(offset=(10, 5))
        self.plot.setBackground(self.palette().color(QPalette.ColorRole.Base))
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.plot)
        layout.addWidget(self.detail)
        self._start = 0.0
        self._top = 1.0  # GB: the y axis reaches the largest device's total
        self._series: dict[str, tuple[RingBuffer, RingBuffer, pg.PlotDataItem]] = {}
        self.setVisible(False)

    @property
    def devices(self) -> list[str]:
        return list(self._series)

    def reset(self) -> None:
        """A new load: start the lines again."""
        for _, _, curve in self._series.values():
            self.plot.removeItem(curve)
        self._series.clear()
        self._start = time.monotonic()
        self._top = 1.0

    def add_sample(self, remote_memory: list[dict[str, Any]]) -> None:
        """One report of every remote device (endpoint, index, free_bytes, total_bytes)."""
        if not remote_memory:
            return
        now = time.monotonic() - self._start
        lines = []
        for device in remote_memory:
            key = str(device["endpoint"]) + (f" #{device['index']}" if device["index"] else "")
            total, free = int(device["total_bytes"]), int(device["free_bytes"])
            series = self._series.get(key)
            if series is None:
                palette = self.palette()
                colour = theme.mix(
                    palette.color(QPalette.ColorRole.Highlight),
                    palette.color(QPalette.ColorRole.WindowText),
                    min(0.3 * len(self._series), 0.9),
                )
                curve = self.plot.plot(
                    name=key, pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=6,
                    symbolBrush=colour,
                )  # fmt: skip
                series = (RingBuffer(HISTORY), RingBuffer(HISTORY), curve)
                self._series[key] = series
            xs, ys, curve = series
            xs.append(now)
            ys.append((total - free) / GIB)
            curve.setData(np.asarray(xs.values()), np.asarray(ys.values()), skipFiniteCheck=True)
            self._top = max(self._top, total / GIB)
            lines.append(
                f"{key}: {format_bytes(total - free)} in use, {format_bytes(free)} free "
                f"of {format_bytes(total)}"
            )
        self.plot.setYRange(0, self._top)
        text = "; ".join(lines) + "."
        if all(int(d["free_bytes"]) == int(d["total_bytes"]) for d in remote_memory):
            text += " A shared CPU reports all its RAM as free (llama.cpp does not count its use)."
        self.detail.setText(text)
        self.setVisible(True)


def install_remote_memory_plot(panel: QWidget, engine: Any) -> RemoteMemoryPlot:
    """Add the plot under the monitor's charts, fed by the engine's Loaded and Done events."""
    plot = RemoteMemoryPlot(panel)
    layout = panel.layout()
    if layout is not None:
        layout.addWidget(plot)

    def on_loaded(loaded: Any) -> None:
        plot.reset()
        plot.setVisible(bool(loaded.remote_memory))
        plot.add_sample(loaded.remote_memory)

    engine.loaded.connect(on_loaded)
    engine.done.connect(lambda done: plot.add_sample(done.remote_memory))
    return plot
