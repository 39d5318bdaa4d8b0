"""The window probe (desktop/ui/test_probe.py) reports what named widgets show, and never
breaks the app: the end-to-end test reads the window through it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyqtgraph as pg
import pytest
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QListWidget,
    QMainWindow,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.ui import test_probe

# The offscreen platform says so when a top-level window with a plot is shown; not our doing.
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


def _named(widget: Any, name: str) -> Any:
    widget.setAccessibleName(name)
    return widget


@pytest.fixture
def window(qtbot: Any) -> QMainWindow:
    main = QMainWindow()
    main.setWindowTitle("Probe test")
    body = QWidget(main)
    layout = QVBoxLayout(body)
    pane = _named(QWidget(body), "Pane")
    inner = QVBoxLayout(pane)
    inner.addWidget(QLabel("Gemma 3 270m", pane))  # no name of its own: in the pane's texts
    layout.addWidget(pane)
    layout.addWidget(_named(QPushButton("Load…", body), "Open"))
    disabled = _named(QPushButton("Stop", body), "Stop")
    disabled.setEnabled(False)
    layout.addWidget(disabled)
    table = _named(QTableWidget(2, 2, body), "Table")
    for row in range(2):
        for column in range(2):
            table.setItem(row, column, QTableWidgetItem(f"r{row}c{column}"))
    table.selectRow(1)
    layout.addWidget(table)
    chats = _named(QListWidget(body), "List")  # its model hides columnCount: one column
    chats.addItems(["first chat", "second chat"])
    layout.addWidget(chats)
    plot = _named(pg.PlotWidget(body), "Plot")
    plot.addItem(pg.PlotDataItem([0, 1, 2], [1.0, float("nan"), 3.0], name="Each token"))
    layout.addWidget(plot)
    hidden = _named(QLabel("not shown", body), "Hidden")
    hidden.hide()
    layout.addWidget(hidden)
    main.setCentralWidget(body)
    qtbot.addWidget(main)
    main.show()
    qtbot.waitExposed(main)
    return main


def _by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {w["name"]: w for w in data["widgets"]}


def test_snapshot_says_what_each_named_widget_shows(window: QMainWindow) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    data = test_probe.snapshot(app)
    assert data["title"] == "Probe test" and data["dialogs"] == []
    widgets = _by_name(data)
    assert "Hidden" not in widgets  # only what is on screen
    assert widgets["Pane"]["texts"] == ["Gemma 3 270m"]
    assert widgets["Open"]["text"] == "Load…" and widgets["Open"]["enabled"]
    assert widgets["Open"]["shown"][2:] == widgets["Open"]["rect"][2:]  # wholly on screen
    assert not widgets["Stop"]["enabled"]
    table = widgets["Table"]
    assert table["rows"] == 2
    assert [c["text"] for c in table["cells"]] == [["r0c0", "r0c1"], ["r1c0", "r1c1"]]
    assert [c["selected"] for c in table["cells"]] == [False, True]
    assert [c["text"] for c in widgets["List"]["cells"]] == [["first chat"], ["second chat"]]
    assert widgets["Plot"]["curves"] == {"Each token": 2}  # finite points only


def test_the_probe_writes_its_file_on_a_timer_and_survives_errors(
    qtbot: Any, window: QMainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "window.json"
    monkeypatch.setenv(test_probe.ENV_VAR, str(target))
    probe = test_probe.install_from_env()
    assert probe is not None
    assert test_probe.install_from_env() is probe  # one probe per app
    try:
        qtbot.waitUntil(target.exists, timeout=5000)
        assert json.loads(target.read_text())["title"] == "Probe test"

        def broken(_app: object) -> dict[str, Any]:
            raise RuntimeError("a widget went away")

        monkeypatch.setattr(test_probe, "snapshot", broken)
        qtbot.waitUntil(lambda: "error" in json.loads(target.read_text()), timeout=5000)
        assert "a widget went away" in json.loads(target.read_text())["error"]
    finally:
        probe.stop()
        probe.setParent(None)  # the next test's app gets a probe of its own


def test_without_the_variable_there_is_no_probe(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(test_probe.ENV_VAR, raising=False)
    assert test_probe.install_from_env() is None
