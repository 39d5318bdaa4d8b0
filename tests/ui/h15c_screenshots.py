"""Screenshots of the chat features and of adding a model, from the real assembled window with
the real worker and Gemma 3 270M (not a test). Run under Xvfb, so menus and editors are real
X windows and the whole screen is captured:

    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python tests/ui/h15c_screenshots.py [OUT]

OUT defaults to test-artifacts/h15c/ (git-ignored). ``--size=1280x720`` renders the window at
that size instead of the default 1320x840 (the file names say the size then).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from PySide6.QtCore import QEventLoop, QMimeData, QPoint, QPointF, Qt, QTimer, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


def settle(ms: int = 150) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def wait_for(signal: Any, timeout_ms: int = 60_000) -> list[Any]:
    loop = QEventLoop()
    got: list[Any] = []

    def on(*args: Any) -> None:
        got.extend(args)
        loop.quit()

    signal.connect(on)
    QTimer.singleShot(timeout_ms, loop.quit)
    loop.exec()
    signal.disconnect(on)
    if not got:
        raise TimeoutError(f"no {signal} within {timeout_ms} ms")
    return got


def drop_on(widget: Any, path: Path) -> None:
    """Drag ``path`` onto ``widget`` and drop it, the events a file manager's drag sends."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    args = (Qt.DropAction.CopyAction, mime, buttons, modifiers)
    QApplication.sendEvent(widget, QDragEnterEvent(QPoint(200, 200), *args))
    QApplication.sendEvent(widget, QDropEvent(QPointF(200, 200), *args))


SUFFIX = [""]


def shoot(out: Path, name: str) -> None:
    settle()
    name = name.replace(".png", f"{SUFFIX[0]}.png")
    screen = QGuiApplication.primaryScreen()
    path = out / name
    screen.grabWindow(0).save(str(path))
    print(path)


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--size")]
    sizes = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--size=")]
    width, height = (int(v) for v in (sizes[0] if sizes else "1320x840").split("x"))
    suffix = f"-{width}x{height}" if sizes else ""
    out = Path(args[0]) if args else HERE.parent.parent / "test-artifacts/h15c"
    out.mkdir(parents=True, exist_ok=True)
    SUFFIX[0] = suffix
    app = QApplication.instance() or QApplication(sys.argv)
    from conftest import make_profile
    from real_models import gemma_file
    from synth import SynthModel, write_model

    from desktop.app import _wire_library, assemble
    from desktop.core.added_models import scan_local
    from desktop.core.rows import library_rows
    from desktop.core.settings import UserSettings
    from desktop.engine import protocol as p

    folder = Path(tempfile.mkdtemp(prefix="h15c-shots-"))
    models = folder / "models"
    models.mkdir()
    write_model(models / "tiny-llama-q8_0.gguf", SynthModel())
    settings = UserSettings(models_dir=str(models), n_ctx=1024)
    parts = assemble(settings, folder / "settings.json", history_path=folder / "h.sqlite3")
    window, chat, engine, history = parts.window, parts.chat, parts.engine, parts.history
    parts.state.set_real_profile(make_profile(gpu=None, backends=("cpu",)))
    library = _wire_library(
        window,
        lambda rows: parts.table.set_source_rows("local", rows),
        lambda exc: print("scan failed:", exc),
        scan=lambda f, files: library_rows(
            scan_local(f, files, include_hf_cache=False, include_lm_studio=False)
        ),
    )
    library.scan_now()
    for title, question, answer in (
        ("Plan a trip to Lisbon", "Plan three days in Lisbon.", "Day 1: Alfama and the castle…"),
        ("What is a KV cache?", "What is a KV cache?", "It keeps the keys and values…"),
        ("Sourdough starter tips", "My starter smells of acetone.", "Feed it more often…"),
    ):
        conv = history.create_conversation(title)
        history.add_message(conv, "user", question)
        history.add_message(conv, "assistant", answer, model="gemma-3-270m-Q4_K_M")
    chat.refresh_history()
    window.resize(width, height)
    window.move(20, 20)
    window.show()
    settle(600)

    # 1. The File menu with Open model…
    window.show_tab("models")
    file_menu = window.menuBar().actions()[0]
    window.menuBar().setActiveAction(file_menu)
    settle(400)
    shoot(out, "file-menu.png")
    menu = file_menu.menu()
    if menu is not None:
        menu.close()
    settle()

    # 2. A dropped text file gets a sentence; a dropped GGUF is listed and selected.
    notes = folder / "shopping-list.txt"
    notes.write_text("eggs")
    drop_on(window.models_panel, notes)
    shoot(out, "drop-not-gguf.png")
    dropped = write_model(folder / "dropped-llama-q8_0.gguf", SynthModel(n_layer=2))
    drop_on(window.models_panel, dropped)
    wait_for(library.scanned)
    settle(500)
    shoot(out, "drop-gguf-listed.png")

    # 3. The chat with the sampling panel, a real answer from Gemma.
    try:  # the starter chat model where it is installed (H15a), else Gemma (a base model)
        from real_models import smollm2_file

        chat_model = smollm2_file()
    except (ImportError, RuntimeError):
        chat_model = gemma_file()
    engine.load(p.Load(path=str(chat_model), n_ctx=1024, n_threads=2))
    wait_for(engine.loaded)
    window.show_tab("chat")
    chat.new_chat()
    chat.sampling_toggle.setChecked(True)
    chat.sampling_panel.preset.setCurrentText("Precise")
    chat.sampling_panel.max_tokens.setValue(48)
    chat.input.setPlainText("What is the capital of France?")
    chat.send()
    wait_for(chat.answerFinished)
    chat.input.setPlainText("And of Portugal?")
    settle(300)
    shoot(out, "chat-sampling.png")

    # 4. Editing a question (the edit bar) after clicking its Edit link.
    chat.input.clear()
    chat.edit_message(0)
    settle(300)
    shoot(out, "chat-editing.png")
    chat.cancel_edit()

    # 5. The chat list: a search, then a rename in place.
    chat.chat_list.search.setText("lisbon trip")
    settle(600)
    shoot(out, "chat-list-search.png")
    chat.chat_list.search.clear()
    settle(600)
    items = chat.history_list
    for i in range(items.count()):
        if items.item(i).text() == "What is a KV cache?":
            items.setCurrentRow(i)
            items.editItem(items.item(i))
    settle(300)
    from PySide6.QtWidgets import QLineEdit

    for editor in items.viewport().findChildren(QLineEdit):
        editor.setText("KV cache, explained")
    settle(300)
    shoot(out, "chat-list-rename.png")

    library.cancel()
    parts.downloads.shutdown()
    parts.monitor.stop()
    engine.shutdown(wait_ms=5000)
    history.close()
    window.close()
    app.processEvents()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
