"""Background tasks (results come back on the GUI thread), the settings file, the excepthook."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox

from desktop.app import install_excepthook
from desktop.core.settings import (
    DEFAULT_VRAM_RESERVE_BYTES,
    UserSettings,
    load_settings,
    save_settings,
)
from desktop.services.tasks import run_in_thread


def test_run_in_thread_delivers_the_result_on_the_gui_thread(qtbot: Any) -> None:
    main = threading.get_ident()
    seen: dict[str, Any] = {}

    def work() -> int:
        seen["worker"] = threading.get_ident()
        return 42

    def done(value: int) -> None:
        seen["callback"] = threading.get_ident()
        seen["value"] = value

    with qtbot.waitSignal(run_in_thread(work, done).succeeded) as blocker:
        pass
    assert blocker.args == [42]
    assert seen["value"] == 42
    assert seen["worker"] != main
    assert seen["callback"] == main


def test_run_in_thread_reports_an_exception_without_raising(qtbot: Any) -> None:
    errors: list[BaseException] = []

    def broken() -> None:
        raise RuntimeError("no such GPU")

    task = run_in_thread(broken, on_error=errors.append)
    with qtbot.waitSignal(task.failed) as blocker:
        pass
    assert isinstance(blocker.args[0], RuntimeError)
    assert str(errors[0]) == "no such GPU"
    assert task.finished


def test_a_cancelled_task_drops_its_result(qtbot: Any) -> None:
    calls: list[object] = []
    gate = threading.Event()
    task = run_in_thread(lambda: gate.wait(5) and "late", calls.append)
    task.cancel()
    gate.set()
    qtbot.waitUntil(lambda: task.finished)
    assert calls == []


def test_settings_round_trip_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config" / "settings.json"
    assert load_settings(path) == UserSettings()
    assert UserSettings().vram_reserve_bytes == DEFAULT_VRAM_RESERVE_BYTES == 512 * 1024**2
    settings = UserSettings(
        vram_reserve_bytes=1024**3,
        models_dir="~/models",
        extra_folders=("/data/gguf", "/mnt/llm"),
        last_model="bartowski/X-GGUF:x.gguf",
        n_ctx=8192,
        window_geometry="AdnQyw==",
    )
    save_settings(settings, path)
    assert load_settings(path) == settings
    assert settings.models_path == Path("~/models").expanduser()
    # Atomic write: only the settings file is left in the folder.
    assert [p.name for p in path.parent.iterdir()] == ["settings.json"]


def test_a_broken_settings_file_falls_back_value_by_value(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text("{not json", encoding="utf-8")
    assert load_settings(path) == UserSettings()
    path.write_text(
        json.dumps(
            {
                "vram_reserve_bytes": "a lot",
                "n_ctx": 16384,
                "extra_folders": ["/ok", 3, "", "/ok"],
                "last_model": None,
                "unknown_key": 1,
            }
        ),
        encoding="utf-8",
    )
    settings = load_settings(path)
    assert settings.vram_reserve_bytes == DEFAULT_VRAM_RESERVE_BYTES
    assert settings.n_ctx == 16384
    assert settings.extra_folders == ("/ok",)
    assert settings.last_model == ""


# The offscreen platform cannot propagate a dialog's size hints; a real display can.
@pytest.mark.qt_log_ignore("propagateSizeHints")
def test_excepthook_logs_and_shows_a_dialog_and_the_app_stays_up(
    qtbot: Any, qapp: QApplication, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging

    log_file = tmp_path / "llm-workbench.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    logging.getLogger("desktop").addHandler(handler)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    try:
        hook = install_excepthook(log_file)
        assert sys.excepthook is hook
        try:
            raise ValueError("the table broke")
        except ValueError as exc:
            hook(type(exc), exc, exc.__traceback__)
        box = hook.dialog
        assert isinstance(box, QMessageBox)
        qtbot.waitUntil(box.isVisible)
        assert "the table broke" in box.text()
        assert str(log_file) in box.informativeText()
        # A second error while the dialog is open is logged, not stacked in another dialog.
        try:
            raise KeyError("again")
        except KeyError as exc:
            hook(type(exc), exc, exc.__traceback__)
        assert hook.dialog is box
        assert hook.count == 2
        box.done(0)
        qtbot.waitUntil(lambda: hook.dialog is None)
    finally:
        logging.getLogger("desktop").removeHandler(handler)
        handler.close()
    text = log_file.read_text(encoding="utf-8")
    assert "ValueError: the table broke" in text
    assert "KeyError: 'again'" in text
    assert QApplication.instance() is qapp
