"""The whole window at the sizes people use: nothing cut off, no pane scrolling sideways.

At the default 1320x840, a small laptop's 1280x720 and a 1920x1080 screen, each tab is shown
with real panels (a fake engine and a fake machine behind them) and :func:`layout_faults`
must find no label, button or pane that does not fit: the Downloads tab's empty state whole,
the load controls without a horizontal scroll bar, their layer count ("12 / 41") and Load
button whole and in view without scrolling, before and after a load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import WindowFactory, make_profile
from layout_faults import layout_faults
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QLineEdit,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)
from real_models import gemma_file
from test_chat_panel import FakeEngine
from test_monitor_panel import Clock, feed, make_monitor

from desktop.core.history import ChatHistory
from desktop.core.library import scan
from desktop.core.rows import ModelRow, library_rows
from desktop.services.download_manager import DownloadManager
from desktop.ui.chat_panel import ChatPanel
from desktop.ui.downloads_panel import DownloadsPanel
from desktop.ui.main_window import MainWindow
from desktop.ui.monitor_panel import MonitorPanel

SIZES = ((1320, 840), (1280, 720), (1920, 1080))
MIB = 1024**2


def _settle(qtbot: Any) -> None:
    """Let the layouts run (a queued relayout happens on the next event loop turn)."""
    qtbot.wait(300)
    QApplication.processEvents()


def _local_rows(folder: Path) -> list[ModelRow]:
    (folder / "gemma-3-270m-it-Q4_K_M.gguf").symlink_to(gemma_file())
    return library_rows(scan([folder], include_hf_cache=False, include_lm_studio=False))


def _window(
    make_window: WindowFactory,
    qtbot: Any,
    rows: list[ModelRow],
    catalog: list[ModelRow],
    tmp_path: Path,
    gpu: bool,
) -> MainWindow:
    profile = make_profile() if gpu else make_profile(gpu=None, backends=("cpu",))
    window = make_window(profile, rows=[*catalog, *rows])
    engine = FakeEngine()
    history = ChatHistory(tmp_path / f"history-{gpu}.sqlite3")
    window.set_chat_widget(ChatPanel(engine, history))
    clock = Clock()
    monitor = make_monitor(clock, gpu=gpu)
    feed(monitor, clock, seconds=20, tokens_per_s=38)
    # As the Monitor tab holds it: a bar above, the plots over a request log in a splitter.
    page = QWidget()
    splitter = QSplitter(Qt.Orientation.Vertical, page)
    splitter.setChildrenCollapsible(False)
    splitter.addWidget(MonitorPanel(monitor, clock=clock))
    splitter.addWidget(QTableWidget(3, 8))
    splitter.setStretchFactor(0, 4)
    splitter.setStretchFactor(1, 1)
    page_layout = QVBoxLayout(page)
    page_layout.addWidget(QLabel("A bar above the plots"))
    page_layout.addWidget(QLineEdit("and a second line of it"))
    page_layout.addWidget(splitter, 1)
    window.set_monitor_widget(page)
    window.set_downloads_widget(DownloadsPanel(DownloadManager()))
    return window


@pytest.mark.parametrize("gpu", [True, False], ids=["gpu", "no-gpu"])
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_nothing_is_cut_off_at_common_window_sizes(
    make_window: WindowFactory,
    qtbot: Any,
    tmp_path: Path,
    catalog_model_rows: list[ModelRow],
    size: tuple[int, int],
    gpu: bool,
) -> None:
    local = _local_rows(tmp_path)
    window = _window(make_window, qtbot, local, catalog_model_rows, tmp_path, gpu)
    window.resize(*size)
    _settle(qtbot)
    seen: dict[str, list[str]] = {}

    def check(what: str) -> None:
        _settle(qtbot)
        seen[what] = layout_faults(window)

    assert window.select_model(local[0].location)
    # llama.cpp's dry run of the file answers in the background; its sentence must fit too.
    check_label = window.detail_pane.check_label
    qtbot.waitUntil(lambda: not check_label.text().startswith("Asking"), timeout=120_000)
    check("models, details of a local file")
    catalog = next(r for r in catalog_model_rows if r.quant == "Q4_K_M" and r.params)
    assert window.select_model(catalog.location)
    check("models, details of a catalog file")
    window.open_load_controls()
    check("load controls of a catalog file")
    assert window.select_model(local[0].location)
    window.open_load_controls()
    check("load controls of a local file")
    scroll = window.load_panel.findChild(QScrollArea)
    assert scroll is not None
    assert not scroll.horizontalScrollBar().isVisible()
    # The Load button in view without scrolling, whole, at every size.
    button = window.load_panel.load_button
    assert button.visibleRegion().boundingRect().size() == button.size()
    layers = window.load_panel.layers_value
    assert layers.text().endswith(f"/ {local[0].spec.offloadable_layers}")  # type: ignore[union-attr]
    by_device = {"CPU": {"weights": 248 * MIB, "kv": 72 * MIB, "compute": 514 * MIB}}
    window.load_panel.set_loaded(by_device, n_gpu_layers=0, load_seconds=1.7)
    check("load controls after a load")
    for tab in ("chat", "monitor", "downloads"):
        window.show_tab(tab)
        check(f"{tab} tab")
    faults = {what: found for what, found in seen.items() if found}
    assert not faults, faults
