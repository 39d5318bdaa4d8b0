"""Render the Chat, Monitor and Downloads panels in a few states to PNG files (not a test).

    QT_QPA_PLATFORM=offscreen .venv/bin/python tests/ui/panel_screenshots.py [OUT_DIR]

OUT_DIR defaults to test-artifacts/ (git-ignored). The engine, the machine and the downloads
are fakes driven by this script, so the pictures are the same everywhere.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

ANSWER = """Sure! Here is a tiny Python function that **reverses a string**:

```python
def reverse(text: str) -> str:
    return text[::-1]
```

How it works:

1. `text[::-1]` walks the string backwards, one step at a time.
2. Strings are *immutable*, so you get a new string back.

> Tip: for lists, `reversed(items)` avoids a copy."""


def settle(ms: int = 80) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def save(widget: QWidget, out: Path, name: str) -> None:
    settle()
    path = out / name
    widget.grab().save(str(path))
    print(path)


def chat_scenes(out: Path, folder: Path, suffix: str) -> None:
    from test_chat_panel import FakeEngine

    from desktop.core.history import ChatHistory
    from desktop.ui.chat_panel import ChatPanel

    history = ChatHistory(folder / f"history{suffix}.sqlite3")
    for title in ("Plan a trip to Lisbon", "What is a KV cache?", "Dragons and knights"):
        history.create_conversation(title)
    engine = FakeEngine()
    panel = ChatPanel(engine, history)
    panel.resize(1100, 720)
    panel.show()
    if not suffix:
        save(panel, out, "chat-01-no-model.png")

    engine.finish_load(28)
    panel.set_model_name("Llama 3.1 8B Instruct Q4_K_M")
    if not suffix:
        save(panel, out, "chat-01b-ready.png")
    panel.system_toggle.setChecked(True)
    panel.system_prompt.setPlainText("You are a friendly Python tutor. Keep answers short.")
    panel.input.setPlainText("How do I reverse a string in Python?")
    panel.send()
    engine.stream([ANSWER[i : i + 6] for i in range(0, len(ANSWER), 6)])
    engine.finish(96)
    panel.input.setPlainText("And a list?")
    save(panel, out, f"chat-02-conversation{suffix}.png")

    panel.send()
    engine.stream(["For a list you can call ", "`items.reverse()` to reverse it in place, or"])
    settle(120)
    engine.crash(
        "killed",
        "The model worker was killed while answering, most likely by the operating system "
        "because the computer ran out of memory.",
        "Load the model with fewer GPU layers or a smaller context, or close other programs "
        "that use a lot of memory.",
    )
    save(panel, out, f"chat-03-crash{suffix}.png")
    panel.close()
    history.close()


def monitor_scenes(out: Path, suffix: str) -> None:
    from test_monitor_panel import Clock, feed, make_monitor, make_plan

    from desktop.ui.monitor_panel import MonitorPanel

    gib = 1024**3
    for gpu in (True, False):
        clock = Clock()
        monitor = make_monitor(clock, gpu=gpu)
        feed(monitor, clock, seconds=20, tokens_per_s=38)
        clock.now += 25
        feed(monitor, clock, seconds=30, tokens_per_s=41)
        clock.now += 10
        for _ in range(40):
            clock.now += 0.25
            monitor.sample_now()
        clock.now -= 0.1
        panel = MonitorPanel(monitor, clock=clock)
        panel.set_prediction(
            make_plan(
                tokens_per_s=45.0 if gpu else 12.0,
                gpu_bytes=int(2.4 * gib) if gpu else None,
                cpu_bytes=int(0.4 * gib) if gpu else int(4.6 * gib),
            )
        )
        panel.resize(1100, 720)
        panel.show()
        name = "monitor-01-gpu" if gpu else "monitor-02-no-gpu"
        if gpu or not suffix:
            save(panel, out, f"{name}{suffix}.png")
        panel.close()


def downloads_scenes(out: Path, suffix: str) -> None:
    from dataclasses import replace

    from desktop.core.downloads import Progress
    from desktop.services.download_manager import DownloadItem, DownloadManager
    from desktop.services.signals import emit
    from desktop.ui.downloads_panel import DownloadsPanel

    manager = DownloadManager()
    panel = DownloadsPanel(manager)
    panel.resize(1000, 560)
    panel.show()
    if not suffix:
        save(panel, out, "downloads-01-empty.png")
    mib = 1024**2
    dest = Path.home() / ".local/share/llm-workbench/models"
    states = [
        ("bartowski/Meta-Llama-3.1-8B-Instruct-GGUF", "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf",
         "downloading", Progress(1830 * mib, 4692 * mib, 23.4e6, 128.0, 0, 1), ""),
        ("unsloth/gemma-3-270m-it-GGUF", "gemma-3-270m-it-Q4_K_M.gguf",
         "verified", Progress(241 * mib, 241 * mib, None, None, 0, 1), ""),
        ("Qwen/Qwen3-8B-GGUF", "Qwen3-8B-Q4_K_M.gguf",
         "cancelled", Progress(1210 * mib, 4800 * mib, None, None, 0, 1), ""),
        ("bartowski/Mistral-Nemo-Instruct-2407-GGUF", "Mistral-Nemo-Instruct-2407-Q4_K_M.gguf",
         "checksum_mismatch", Progress(7000 * mib, 7000 * mib, None, None, 0, 1),
         "Mistral-Nemo-Instruct-2407-Q4_K_M.gguf arrived damaged: its checksum (sha256 "
         "3f1c0a9b2e77...) is not the one Hugging Face lists (9ab03c51d2e0...). The partial "
         "file was deleted; download it again."),
        ("bartowski/Qwen2.5-14B-Instruct-GGUF", "Qwen2.5-14B-Instruct-Q4_K_M.gguf",
         "queued", None, ""),
    ]  # fmt: skip
    for index, (repo, file, state, progress, message) in enumerate(states):
        item = DownloadItem(f"s{index}", repo, (file,), dest, None, 8 * 1024 * mib)
        item = replace(
            item,
            state=state,  # type: ignore[arg-type]
            progress=progress,
            message=message,
            path=dest / file if state == "verified" else None,
        )
        manager._items[item.id] = item  # a picture, not a download: no thread
        emit(manager.added, item.id)
    save(panel, out, f"downloads-02-states{suffix}.png")
    panel.close()


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "test-artifacts")
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication(sys.argv[:1])
    from test_main_window import dark_palette

    with tempfile.TemporaryDirectory() as folder:
        light = app.palette()
        for suffix, palette in (("", light), ("-dark", dark_palette())):
            app.setPalette(palette)
            settle()
            chat_scenes(out, Path(folder), suffix)
            monitor_scenes(out, suffix)
            downloads_scenes(out, suffix)
        app.setPalette(light)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
