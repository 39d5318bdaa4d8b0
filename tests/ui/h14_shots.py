"""Screenshots of issue 14 (other computers' memory through llama.cpp RPC), to look at.

    QT_QPA_PLATFORM=offscreen .venv/bin/python tests/ui/h14_shots.py OUT_DIR
    (or under Xvfb: xvfb-run -a .venv/bin/python tests/ui/h14_shots.py OUT_DIR)

The real window (``desktop.app.assemble``) with the real worker, this computer's real
hardware check and the real Gemma 3 270M. The window's own "Share this computer" switch
starts a real llama.cpp RPC server on 127.0.0.1; "Add a computer" adds it; the plan, the
load, the chat and the monitor then go through it over real TCP; last, the sharing is
stopped in the middle of an answer.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402 (after the platform is set)
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402


def settle(ms: int = 50) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def wait(what: str, condition: Callable[[], object], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        settle(100)


def save(widget: QWidget, out: Path, name: str) -> None:
    settle(200)
    path = out / f"{name}.png"
    widget.grab().save(str(path))
    print(path, flush=True)


def main() -> int:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication(sys.argv[:1])
    tmp = Path(tempfile.mkdtemp(prefix="h14-shots-"))
    os.environ["XDG_STATE_HOME"] = str(tmp / "state")
    os.environ["XDG_DATA_HOME"] = str(tmp / "data")

    from real_models import gemma_file
    from rpc_cases import free_port

    from desktop.app import _detect_hardware, _load_catalog_rows, _scan_library, assemble
    from desktop.core.settings import UserSettings
    from desktop.ui.remote_devices import RemoteDevicesBox
    from desktop.ui.remote_memory import RemoteMemoryPlot

    models = tmp / "models"
    models.mkdir()
    (models / "gemma-3-270m-Q4_K_M.gguf").symlink_to(gemma_file())
    parts = assemble(UserSettings(models_dir=str(models)), None, history_path=tmp / "h.sqlite")
    window, state, table, engine, chat = (
        parts.window, parts.state, parts.table, parts.engine, parts.chat,
    )  # fmt: skip
    window.resize(1320, 840)
    window.show()
    profile, _machine, figures = _detect_hardware()
    state.set_figures(figures)
    state.set_real_profile(profile)
    table.set_source_rows("catalog", _load_catalog_rows())
    table.set_source_rows("local", _scan_library([models]))
    parts.monitor.start()
    settle(300)
    box = window.findChild(RemoteDevicesBox)
    plot = window.findChild(RemoteMemoryPlot)
    assert box is not None and plot is not None
    row = next(
        r for r in table.rows()
        if r.source == "local" and r.path is not None and "smollm2" in r.path.name.lower()
    )  # fmt: skip  (the starter chat model; Gemma 3 270M is a base model)

    window.show_tab("models")
    window.select_model(row.location)  # type: ignore[attr-defined]
    save(window, out, "1-this-computer-only")

    port = free_port()
    box.share_port.setValue(port)
    box.share_switch.setChecked(True)
    wait("sharing", lambda: bool(box.share.info), 60)
    box.add_field.setText(f"127.0.0.1:{port}")
    box.add_button.click()
    wait("the added computer", lambda: bool(state.remote_devices), 60)
    window.select_model(row.location)  # type: ignore[attr-defined]
    save(window, out, "2-added-a-computer-plan")

    window.open_load_controls()
    settle(300)
    window.load_panel.load_button.click()
    wait("loaded", lambda: engine.state == "ready" and engine.model is not None, 180)
    save(window, out, "3-loaded-across-two")

    window.show_tab("chat")
    chat.input.setPlainText("What is the capital of France?")
    chat.send_button.click()
    wait("the answer", lambda: engine.state == "ready" and not chat.answering, 500)
    save(window, out, "4-chat-through-rpc")
    chat.input.setPlainText("Say hello.")
    chat.send_button.click()
    wait("the answer", lambda: engine.state == "ready" and not chat.answering, 500)

    window.show_tab("monitor")
    save(window, out, "5-monitor-remote-memory")

    window.show_tab("chat")
    chat.input.setPlainText("Write a long story about a fox and a river.")
    chat.send_button.click()
    wait("answering", lambda: chat.answering, 60)
    settle(1500)
    box.share_switch.setChecked(False)  # the sharing computer goes away mid-answer
    wait("the worker's end seen", lambda: not chat.answering, 60)
    settle(2000)
    save(window, out, "6-server-gone-mid-answer")
    wait("the gone computer asked again", lambda: not state.remote_devices, 60)
    window.show_tab("models")
    save(window, out, "7-after-sharing-stopped")
    box.share.stop()
    engine.shutdown(wait_ms=3000)
    app.processEvents()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
