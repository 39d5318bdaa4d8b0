"""What the window shows, written to a JSON file for an end-to-end test that drives it from
outside (``tests/e2e/test_app_xvfb.py``, through real X events).

Off unless ``LLMW_PROBE`` names a file. Then, every :data:`INTERVAL_MS`, the probe walks the
application's visible top-level windows and writes (atomically: a temporary file, then a
rename, so a reader never sees half of it) what a person would read on screen:

* ``title``, ``tab`` (the current tab of each tab widget), ``status`` (the status bar);
* ``widgets``: every visible widget with an accessible name: its ``name``, ``class``, the
  ``text`` it shows (label, button, line edit, text area, combo box), ``enabled``, ``rect``
  (x, y, width, height in screen pixels, for a click), ``shown`` (the part of ``rect`` not
  clipped by a scroll area or the window's edge), and ``texts`` (the visible labels
  inside it, for a pane such as "Model details" whose parts have no names of their own);
* item views also get ``rows`` (how many) and ``cells`` (the first rows' text, each with its
  screen ``rect`` and ``selected``); a pyqtgraph plot gets ``curves`` (points per curve).

The probe only reads; it never presses anything. It finds the widgets by their accessible
names, the same names a screen reader announces, so it does not depend on how a panel is
built inside. Install it with :func:`install_from_env` once the QApplication exists (the
window may come later); ``desktop.app.main`` does, when ``LLMW_PROBE`` is set.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QModelIndex, QObject, QPoint, Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSlider,
    QApplication,
    QComboBox,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPlainTextEdit,
    QProgressBar,
    QTabWidget,
    QTextEdit,
    QWidget,
)

__all__ = ["ENV_VAR", "INTERVAL_MS", "WindowProbe", "install_from_env", "snapshot"]

#: The environment variable naming the JSON file (unset: no probe).
ENV_VAR = "LLMW_PROBE"
#: How often the file is rewritten.
INTERVAL_MS = 200
#: Rows of an item view written out (the first ones, in the order shown).
MAX_ROWS = 60


def _rect(widget: QWidget) -> list[int]:
    top_left = widget.mapToGlobal(QPoint(0, 0))
    return [top_left.x(), top_left.y(), widget.width(), widget.height()]


def _shown_rect(widget: QWidget) -> list[int]:
    """The part of the widget on screen (not clipped by a scroll area, a splitter or the
    window's edge), in screen pixels; zero size when none is."""
    shown = widget.visibleRegion().boundingRect()
    top_left = widget.mapToGlobal(shown.topLeft())
    return [top_left.x(), top_left.y(), shown.width(), shown.height()]


def _text(widget: QWidget) -> str | None:
    if isinstance(widget, QLabel):
        return widget.text()
    if isinstance(widget, QAbstractButton):
        return widget.text()
    if isinstance(widget, QLineEdit):
        return widget.text()
    if isinstance(widget, QPlainTextEdit | QTextEdit):
        return widget.toPlainText()
    if isinstance(widget, QComboBox):
        return widget.currentText()
    if isinstance(widget, QProgressBar):
        return str(widget.value())
    if isinstance(widget, QAbstractSlider):
        return str(widget.value())
    return None


def _count(method: Any) -> int:
    """A model's rowCount/columnCount: table models take no argument, list models want the
    parent, and PySide6 hides a QListWidget model's columnCount (one column)."""
    for args in ((), (QModelIndex(),)):
        try:
            return int(method(*args))
        except TypeError:
            continue
    return 1


def _cells(view: QAbstractItemView) -> tuple[int, list[dict[str, Any]]]:
    model = view.model()
    if model is None:
        return 0, []
    selection = view.selectionModel()
    viewport = view.viewport()
    rows: list[dict[str, Any]] = []
    count, columns = _count(model.rowCount), _count(model.columnCount)
    for row in range(min(count, MAX_ROWS)):
        first = model.index(row, 0)
        area = view.visualRect(first)
        top_left = viewport.mapToGlobal(area.topLeft())
        rows.append(
            {
                "text": [
                    str(model.data(model.index(row, column)) or "") for column in range(columns)
                ],
                "rect": [top_left.x(), top_left.y(), viewport.width(), area.height()],
                "selected": bool(selection is not None and selection.isRowSelected(row)),
            }
        )
    return count, rows


def _curves(widget: QWidget) -> dict[str, int] | None:
    """Finite points per curve of a pyqtgraph PlotWidget (duck-typed: no pyqtgraph import)."""
    plot_item = getattr(widget, "getPlotItem", None)
    if plot_item is None:
        return None
    counts: dict[str, int] = {}
    for item in plot_item().listDataItems():
        _x, y = item.getData()
        name = str(item.name() or "")
        counts[name] = 0 if y is None else sum(1 for v in y if math.isfinite(float(v)))
    return counts


def _describe(widget: QWidget) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": widget.accessibleName(),
        "class": type(widget).__name__,
        "enabled": widget.isEnabled(),
        "rect": _rect(widget),
        "shown": _shown_rect(widget),
    }
    text = _text(widget)
    if text is not None:
        entry["text"] = text
    if isinstance(widget, QAbstractButton) and widget.isCheckable():
        entry["checked"] = widget.isChecked()
    if isinstance(widget, QAbstractItemView):
        entry["rows"], entry["cells"] = _cells(widget)
    curves = _curves(widget)
    if curves is not None:
        entry["curves"] = curves
    labels = [
        label.text()
        for label in widget.findChildren(QLabel)
        if label.isVisibleTo(widget) and label.text()
    ]
    if labels:
        entry["texts"] = labels
    return entry


def snapshot(app: QApplication) -> dict[str, Any]:
    """What the visible windows show now (see the module docstring)."""
    windows = [w for w in app.topLevelWidgets() if w.isVisible()]
    main = next((w for w in windows if isinstance(w, QMainWindow)), None)
    widgets: list[dict[str, Any]] = []
    tabs: list[str] = []
    for window in windows:
        for widget in [window, *window.findChildren(QWidget)]:
            if not widget.isVisible():
                continue
            if isinstance(widget, QTabWidget):
                tabs.append(widget.tabText(widget.currentIndex()))
            if widget.accessibleName():
                widgets.append(_describe(widget))
    return {
        "time": time.time(),
        "title": main.windowTitle() if main is not None else "",
        "dialogs": [w.windowTitle() for w in windows if w is not main],
        "tab": tabs,
        "status": main.statusBar().currentMessage() if main is not None else "",
        "widgets": widgets,
    }


class WindowProbe(QObject):
    """Rewrites ``path`` with :func:`snapshot` on a timer (see the module docstring)."""

    def __init__(self, path: Path, app: QApplication) -> None:
        super().__init__(app)
        self.path = path
        self.writes = 0
        self._app = app
        self._timer = QTimer(self)
        self._timer.setInterval(INTERVAL_MS)
        self._timer.setTimerType(Qt.TimerType.CoarseTimer)
        self._timer.timeout.connect(self.write)
        self._timer.start()

    def stop(self) -> None:
        """Stop rewriting the file (the last one written stays)."""
        self._timer.stop()

    def write(self) -> None:
        try:
            data = snapshot(self._app)
        except Exception as exc:  # the probe must never be what breaks the app
            data = {"time": time.time(), "error": f"{type(exc).__name__}: {exc}"}
        self.writes += 1
        data["writes"] = self.writes
        partial = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            partial.write_text(json.dumps(data), encoding="utf-8")
            os.replace(partial, self.path)
        except OSError:
            pass  # a full disk or a removed folder: the test reading it will say so


def install_from_env() -> WindowProbe | None:
    """Start the probe when ``LLMW_PROBE`` names a file and a QApplication exists (once: a
    second call returns the first probe)."""
    target = os.environ.get(ENV_VAR)
    app = QApplication.instance()
    if not target or not isinstance(app, QApplication):
        return None
    running = app.findChild(WindowProbe)
    if isinstance(running, WindowProbe):
        return running
    return WindowProbe(Path(target), app)
