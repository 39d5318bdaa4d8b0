"""The assembled app remembers the model that loaded, loads it again at start only when the
setting is on, and the chat's Enter key follows the Settings dialog (real worker, Gemma)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer

from desktop.app import Workbench, assemble
from desktop.core.settings import UserSettings, load_settings
from desktop.engine import protocol as p
from desktop.services.signals import emit
from desktop.ui.settings_dialog import SettingsDialog

LOAD_MS = 120_000


def start(qtbot: Any, settings: UserSettings, tmp_path: Path) -> tuple[Workbench, Path]:
    path = tmp_path / "settings.json"
    parts = assemble(settings, path, history_path=tmp_path / "history.sqlite3")
    qtbot.addWidget(parts.window)
    return parts, path


def close(parts: Workbench) -> None:
    parts.downloads.shutdown()
    parts.monitor.stop()
    parts.engine.shutdown(wait_ms=5000)
    parts.history.close()


@pytest.mark.engine
def test_a_load_is_remembered_and_loaded_again_at_start_when_asked(
    qtbot: Any, gemma_path: Path, tmp_path: Path
) -> None:
    first, settings_path = start(qtbot, UserSettings(), tmp_path)
    try:
        with qtbot.waitSignal(first.engine.loaded, timeout=LOAD_MS):
            first.engine.load(p.Load(path=str(gemma_path), n_ctx=1024, n_threads=1))
        saved = json.loads(settings_path.read_text(encoding="utf-8"))["last_load"]
        assert saved["path"] == str(gemma_path) and saved["n_ctx"] == 1024
        assert saved["n_threads"] == 1 and "id" not in saved
    finally:
        close(first)

    # Off (the default): the next start loads nothing.
    remembered = load_settings(settings_path)
    assert not remembered.reload_last_model
    quiet, _ = start(qtbot, remembered, tmp_path)
    try:
        emit(quiet.window.firstShown)
        assert quiet.engine.state == "stopped" and quiet.engine.last_load is None
    finally:
        close(quiet)

    # On: the window's first show loads the same file with the same settings.
    again, _ = start(qtbot, remembered.replace(reload_last_model=True), tmp_path)
    try:
        with qtbot.waitSignal(again.engine.loaded, timeout=LOAD_MS) as loaded:
            emit(again.window.firstShown)
        assert loaded.args[0].n_ctx == 1024
        last = again.engine.last_load
        assert last is not None and (last.path, last.n_threads) == (str(gemma_path), 1)
        assert again.chat.input.isEnabled()
    finally:
        close(again)


def test_a_missing_last_model_is_said_not_loaded(qtbot: Any, tmp_path: Path) -> None:
    settings = UserSettings(
        reload_last_model=True, last_load={"path": str(tmp_path / "gone.gguf"), "n_ctx": 512}
    )
    parts, _ = start(qtbot, settings, tmp_path)
    try:
        emit(parts.window.firstShown)
        assert parts.engine.state == "stopped"
        message = parts.window.statusBar().currentMessage()
        assert message.startswith("The model loaded last (gone.gguf) is gone;")
    finally:
        close(parts)


@pytest.mark.qt_log_ignore("propagateSizeHints")
def test_the_settings_dialog_sets_the_enter_key_and_the_reload(
    qtbot: Any, tmp_path: Path
) -> None:
    parts, settings_path = start(qtbot, UserSettings(), tmp_path)
    window, chat = parts.window, parts.chat
    try:
        assert chat.enter_sends
        dialog_seen: list[SettingsDialog] = []

        def answer_dialog() -> None:
            dialog = window.findChild(SettingsDialog)
            assert dialog is not None and dialog.isVisible()
            assert dialog.enter_sends.isChecked() and not dialog.reload_last_model.isChecked()
            dialog.enter_sends.setChecked(False)
            dialog.reload_last_model.setChecked(True)
            dialog_seen.append(dialog)
            dialog.accept()

        QTimer.singleShot(0, answer_dialog)
        window.open_settings()  # modal: the timer above answers it
        assert dialog_seen
        assert not chat.enter_sends and "Ctrl+Enter sends" in chat.keys_hint.text()
        saved = load_settings(settings_path)
        assert not saved.enter_sends and saved.reload_last_model
    finally:
        close(parts)
