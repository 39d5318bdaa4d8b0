"""Adding a model: File > Open model…, a .gguf dropped on the window, and the watched models
folder, in a real window with real files, a real QFileSystemWatcher and real drop events."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import WindowFactory, make_profile
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QLineEdit
from synth import SynthModel, write_model

from desktop.app import _wire_library
from desktop.core.added_models import scan_local
from desktop.core.rows import ModelRow, library_rows
from desktop.core.settings import UserSettings, load_settings
from desktop.ui.main_window import MainWindow
from desktop.ui.model_opener import GGUF_FILTER

SCAN_MS = 20_000
# The offscreen platform says this of every dialog it shows (the file dialog here).
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


def scan_here(folders: list[Path], files: list[Path]) -> list[ModelRow]:
    """The app's scan, without this machine's Hugging Face cache and LM Studio folders."""
    return library_rows(
        scan_local(folders, files, include_hf_cache=False, include_lm_studio=False)
    )


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    models = tmp_path / "models"
    elsewhere = tmp_path / "Downloads"
    models.mkdir()
    elsewhere.mkdir()
    return models, elsewhere


def window_over(
    make_window: WindowFactory, tmp_path: Path, models: Path
) -> tuple[MainWindow, Path]:
    settings_path = tmp_path / "settings.json"
    window = make_window(
        make_profile(),
        rows=[],
        settings=UserSettings(models_dir=str(models)),
        settings_path=settings_path,
    )
    return window, settings_path


def wire(qtbot: Any, window: MainWindow) -> Any:
    """The app's library wiring (scan, watch, select what was added) on this window."""
    library = _wire_library(
        window,
        lambda rows: window.table.set_source_rows("local", rows),
        lambda exc: pytest.fail(f"scan failed: {exc}"),
        scan=scan_here,
    )
    with qtbot.waitSignal(library.scanned, timeout=SCAN_MS):
        library.scan_now()
    return library


def locations(window: MainWindow) -> list[str]:
    return [row.location for row in window.table.rows()]


def drop(widget: Any, paths: list[Path]) -> QDropEvent:
    """A drag that enters ``widget`` and drops ``paths`` there, as the window system sends."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    point = QPointF(widget.width() / 2, widget.height() / 2)
    actions = Qt.DropAction.CopyAction
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(point.toPoint(), actions, mime, buttons, modifiers)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted(), "the window refused the drag"
    event = QDropEvent(point, actions, mime, buttons, modifiers)
    QApplication.sendEvent(widget, event)
    return event


def test_a_file_copied_into_the_models_folder_shows_up_without_a_restart(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path, folders: tuple[Path, Path]
) -> None:
    models, elsewhere = folders
    window, _ = window_over(make_window, tmp_path, models)
    library = wire(qtbot, window)
    assert locations(window) == []
    assert str(models) in library.watcher.directories()

    source = write_model(elsewhere / "tiny-q8_0.gguf", SynthModel())
    copied = models / "tiny-q8_0.gguf"
    with qtbot.waitSignal(library.scanned, timeout=SCAN_MS):
        shutil.copyfile(source, copied)  # as a file manager copies it in
    qtbot.waitUntil(lambda: str(copied) in locations(window), timeout=SCAN_MS)
    assert str(copied) in library.watcher.files()  # its growth is watched from now on

    # Deleting it takes the row away again; a subfolder made later is watched too.
    sub = models / "publisher" / "repo"
    sub.mkdir(parents=True)
    copied.unlink()
    qtbot.waitUntil(lambda: str(copied) not in locations(window), timeout=SCAN_MS)
    assert str(sub.parent) in library.watcher.directories()
    nested = sub / "nested-q8_0.gguf"
    qtbot.waitUntil(lambda: str(sub) in library.watcher.directories(), timeout=SCAN_MS)
    shutil.copyfile(source, nested)
    qtbot.waitUntil(lambda: str(nested) in locations(window), timeout=SCAN_MS)
    library.cancel()


def test_file_open_model_adds_a_file_from_elsewhere_and_remembers_it(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path, folders: tuple[Path, Path]
) -> None:
    models, elsewhere = folders
    window, settings_path = window_over(make_window, tmp_path, models)
    wire(qtbot, window)
    file_menu = window.menuBar().actions()[0].menu()
    assert file_menu is not None
    action = window.open_model_action
    assert action in file_menu.actions() and file_menu.actions()[0] is action
    assert action.text() == "&Open model…" and action.shortcut().toString() == "Ctrl+O"

    outside = write_model(elsewhere / "picked-q8_0.gguf", SynthModel())
    action.trigger()
    dialog = window.model_opener.dialog
    assert isinstance(dialog, QFileDialog) and dialog.isVisible()
    assert dialog.nameFilters() == GGUF_FILTER.split(";;")
    assert dialog.fileMode() == QFileDialog.FileMode.ExistingFiles
    with qtbot.waitSignal(window.model_opener.filesAdded) as added:
        dialog.selectFile(str(outside))
        dialog.accept()
    assert added.args == [[outside]]
    qtbot.waitUntil(lambda: str(outside) in locations(window), timeout=SCAN_MS)
    current = window.models_panel.current_row()
    assert current is not None and current.location == str(outside)  # selected for you
    assert json.loads(settings_path.read_text())["extra_files"] == [str(outside)]
    assert load_settings(settings_path).extra_files == (str(outside),)
    assert "picked-q8_0.gguf" in window.statusBar().currentMessage()


def test_dropping_a_gguf_lists_it_and_a_non_gguf_gets_a_sentence(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path, folders: tuple[Path, Path]
) -> None:
    models, elsewhere = folders
    window, settings_path = window_over(make_window, tmp_path, models)
    wire(qtbot, window)
    dropped = write_model(elsewhere / "dropped-q8_0.gguf", SynthModel(n_layer=2))
    target = window.models_panel  # anywhere on the window: the drop goes up to it
    with qtbot.waitSignal(window.model_opener.filesAdded):
        event = drop(target, [dropped])
    assert event.isAccepted()
    qtbot.waitUntil(lambda: str(dropped) in locations(window), timeout=SCAN_MS)
    current = window.models_panel.current_row()
    assert current is not None and current.location == str(dropped)
    assert load_settings(settings_path).extra_files == (str(dropped),)

    notes = elsewhere / "notes.txt"
    notes.write_text("not a model")
    with qtbot.assertNotEmitted(window.model_opener.filesAdded):
        drop(target, [notes])
    message = window.statusBar().currentMessage()
    assert message.startswith("notes.txt is not a GGUF model file.")
    assert load_settings(settings_path).extra_files == (str(dropped),)  # unchanged

    # Dropped on a text field of the window, a .gguf is a model, not its path as text.
    search = window.models_panel.findChild(QLineEdit)
    assert search is not None and search.acceptDrops()
    typed = search.text()
    other = write_model(elsewhere / "other-q8_0.gguf", SynthModel(n_layer=3))
    with qtbot.waitSignal(window.model_opener.filesAdded):
        drop(search, [other])
    assert search.text() == typed
    qtbot.waitUntil(lambda: str(other) in locations(window), timeout=SCAN_MS)

    # A file already in the models folder is listed by the scan: not remembered twice.
    inside = write_model(models / "inside-q8_0.gguf", SynthModel())
    with qtbot.waitSignal(window.model_opener.filesAdded):
        drop(target, [inside])
    qtbot.waitUntil(lambda: str(inside) in locations(window), timeout=SCAN_MS)
    assert load_settings(settings_path).extra_files == (str(dropped), str(other))
