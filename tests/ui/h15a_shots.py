"""Screenshots of issue 15's trust breakers (items 1-6), to look at (not a test).

    QT_QPA_PLATFORM=offscreen .venv/bin/python tests/ui/h15a_shots.py OUT_DIR [SCENE...]

The real window (``desktop.app.assemble``) with the real model worker, this computer's real
hardware check, the real Gemma 3 270M and SmolLM2 135M files and files llama.cpp refuses or
aborts on. Scenes: starter, failed-load, crash, kill, what-if-load, what-if-machine.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent / "unit")]

from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

QUESTION = "What is the capital of France?"
SYSTEM = "You are a helpful assistant. Answer in English, in one sentence."


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
    settle(150)
    path = out / f"{name}.png"
    widget.grab().save(str(path))
    print(path, flush=True)


def main() -> int:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    scenes = set(sys.argv[2:]) or {
        "starter",
        "failed-load",
        "crash",
        "kill",
        "what-if-load",
        "what-if-machine",
    }
    app = QApplication(sys.argv[:1])
    tmp = Path(tempfile.mkdtemp(prefix="h15a-shots-"))
    os.environ["XDG_STATE_HOME"] = str(tmp / "state")
    os.environ["XDG_DATA_HOME"] = str(tmp / "data")

    from real_models import gemma_file
    from synth import write_with_stray_tensor
    from test_abort_guards import CASES

    from desktop.app import _detect_hardware, _load_catalog_rows, _scan_library, assemble
    from desktop.core.settings import UserSettings

    models = tmp / "models"
    models.mkdir()
    (models / "gemma-3-270m-Q4_K_M.gguf").symlink_to(gemma_file())
    try:  # the starter chat model, where this checkout has it (after issue 15, item 1)
        from real_models import smollm2_file

        (models / "SmolLM2-135M-Instruct.Q4_1.gguf").symlink_to(smollm2_file())
    except (ImportError, RuntimeError):
        pass
    settings = UserSettings(models_dir=str(models))
    parts = assemble(settings, None, history_path=tmp / "history.sqlite")
    window, state, table, engine, chat = (
        parts.window,
        parts.state,
        parts.table,
        parts.engine,
        parts.chat,
    )
    window.resize(1320, 840)
    window.show()
    profile, _machine, figures = _detect_hardware()
    state.set_figures(figures)
    state.set_real_profile(profile)
    table.set_source_rows("catalog", _load_catalog_rows())
    table.set_source_rows("local", _scan_library([models]))
    parts.monitor.start()
    settle(300)

    def local_row(name: str) -> object:
        for row in table.rows():
            if row.source == "local" and row.path is not None and row.path.name == name:
                return row
        raise SystemExit(f"no local row {name}: {[r.file_name for r in table.rows()]}")

    def starter_row() -> object:
        for row in table.rows():
            path = row.path
            if row.source == "local" and path is not None and "smollm2" in path.name.lower():
                return row
        return local_row("gemma-3-270m-Q4_K_M.gguf")

    def load(row: object) -> None:
        window.select_model(row.location)  # type: ignore[attr-defined]
        window.open_load_controls()
        settle(200)
        window.load_panel.load_button.click()

    def loaded_named(fragment: str) -> Callable[[], bool]:
        return lambda: (
            engine.state == "ready"
            and engine.model is not None
            and engine.last_load is not None
            and fragment in engine.last_load.path
        )

    def ask(question: str) -> None:
        window.show_tab("chat")
        chat.input.setPlainText(question)
        settle(100)
        chat.send_button.click()
        wait("the answer", lambda: engine.state == "ready" and not chat.answering, 400)

    def gguf_name(row: object) -> str:
        return Path(str(row.path)).name  # type: ignore[attr-defined]

    if "starter" in scenes:
        row = starter_row()
        window.show_tab("models")
        window.select_model(row.location)  # type: ignore[attr-defined]
        save(window, out, "1-starter-details")
        gemma = local_row("gemma-3-270m-Q4_K_M.gguf")
        if gemma is not row:
            window.select_model(gemma.location)  # type: ignore[attr-defined]
            save(window, out, "1-gemma-details")
            load(gemma)
            wait("gemma loaded", loaded_named("gemma"))
            from dataclasses import replace as changed

            chat.sampling = changed(chat.sampling, max_tokens=120)  # enough to see it ramble
            ask(QUESTION)
            save(window, out, "1-gemma-chat")
        load(row)
        wait("starter loaded", loaded_named(gguf_name(row)))
        chat.new_chat()
        chat.system_prompt.setPlainText(SYSTEM)
        chat.system_toggle.setChecked(True)
        from dataclasses import replace

        chat.sampling = replace(chat.sampling, temperature=0.0, max_tokens=48)
        ask(QUESTION)
        save(window, out, "1-starter-chat")
        chat.system_toggle.setChecked(False)

    if "failed-load" in scenes:
        good = starter_row()
        load(good)
        wait("good model loaded", loaded_named(gguf_name(good)))
        broken = write_with_stray_tensor(models / "stray-tensor.gguf")
        table.set_source_rows("local", _scan_library([models]))
        settle(300)
        load(local_row(broken.name))
        wait("the broken load answered", lambda: engine.state in ("ready", "idle", "stopped"), 60)
        settle(1500)
        wait("settled", lambda: engine.state in ("ready", "idle", "stopped"), 120)
        save(window, out, "2-failed-load-panel")
        window.show_tab("chat")
        save(window, out, "2-failed-load-chat")

    if "crash" in scenes:
        from desktop.engine import protocol as proto

        good = starter_row()
        load(good)
        wait("good model loaded", loaded_named(gguf_name(good)))
        make, _words = CASES["0 experts used"]
        aborting = make(models / "zero-experts-used.gguf")
        # The file reaches llama.cpp as a bare load (the load controls refuse it: no estimate).
        engine.load(proto.Load(path=str(aborting), n_ctx=512))
        settle(1500)
        wait("settled", lambda: engine.state in ("ready", "idle", "stopped"), 120)
        window.show_tab("chat")
        save(window, out, "3-abort-checked-chat")
        if hasattr(engine, "check_before_load"):  # after: without the check, a real abort
            engine.check_before_load = False
            engine.load(proto.Load(path=str(aborting), n_ctx=512))
            settle(1500)
            wait("settled", lambda: engine.state in ("ready", "idle", "stopped"), 120)
            settle(1500)
            wait("restored", lambda: engine.state in ("ready", "idle", "stopped"), 120)
            engine.check_before_load = True
        save(window, out, "3-abort-chat")

    if "kill" in scenes:
        good = starter_row()
        load(good)
        wait("good model loaded", loaded_named(gguf_name(good)))
        window.show_tab("chat")
        pid = engine.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait("the worker's death seen", lambda: engine.state == "stopped", 30)
        save(window, out, "3-kill-chat")
        window.show_tab("models")
        settle(300)

    if "what-if-load" in scenes:
        chat.new_chat()
        engine.unload()
        window.show_tab("models")
        window.what_if.choose("GeForce RTX 4060")
        settle(500)
        row = starter_row()
        window.select_model(row.location)  # type: ignore[attr-defined]
        window.open_load_controls()
        save(window, out, "4-what-if-load-panel")
        window.load_panel.load_button.click()
        wait("loaded", loaded_named(gguf_name(row)))
        save(window, out, "4-what-if-loaded")
        window.what_if.choose(None)
        settle(500)
        save(window, out, "4-back-to-this-computer")

    if "what-if-machine" in scenes:
        from conftest import find_row

        window.show_tab("models")
        if hasattr(window.what_if, "cpu_combo"):
            window.what_if.choose("GeForce RTX 4060", 16 * 1024**3, cpu_class="desktop-ddr5")
        else:
            window.what_if.choose("GeForce RTX 4060", 16 * 1024**3)
        settle(500)
        rows = [r for r in table.rows() if r.source == "catalog"]
        llama = find_row(rows, "llama-3.1-8b-instruct", "Q8_0")
        window.select_model(llama.location)
        window.show_details()
        save(window, out, "5-what-if-machine")
        pane = window.detail_pane
        scroll = getattr(pane, "_scroll", None)
        if scroll is not None:
            scroll.verticalScrollBar().setValue(scroll.verticalScrollBar().maximum())
        save(window, out, "6-suggestions")

    engine.shutdown()
    parts.monitor.stop()
    window.close()
    app.quit()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
