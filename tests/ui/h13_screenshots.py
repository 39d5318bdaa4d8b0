"""Screenshots of serving other apps, from the real assembled window with the real worker and
Gemma 3 270M (not a test): the Monitor tab with the serve bar on, other apps' requests on the
tokens/s plot beside the prediction and in the request log, and the window's chat between them.
Run under Xvfb, so the whole screen is captured:

    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python tests/ui/h13_screenshots.py [OUT]

OUT defaults to test-artifacts/h13/ (git-ignored).
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtGui import QGuiApplication  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


def settle(ms: int = 150) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def wait_for(signal: Any, timeout_ms: int = 120_000) -> list[Any]:
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


def shoot(out: Path, name: str) -> None:
    settle(300)
    path = out / name
    QGuiApplication.primaryScreen().grabWindow(0).save(str(path))
    print(path)


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent.parent / "test-artifacts/h13"
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication(sys.argv[:1])

    import openai
    from conftest import make_profile
    from real_models import gemma_file

    from desktop.app import assemble
    from desktop.core.gguf import read_header_file
    from desktop.core.modelspec import spec_from_header
    from desktop.core.rows import ModelRow
    from desktop.core.settings import UserSettings
    from desktop.ui.api_log import ApiLog
    from desktop.ui.serve_panel import ServePanel

    gemma = gemma_file()
    folder = tempfile.TemporaryDirectory()
    parts = assemble(UserSettings(n_ctx=2048), None, history_path=Path(folder.name) / "h.sqlite3")
    window = parts.window
    window.resize(1320, 840)
    window.move(0, 0)
    window.show()
    parts.monitor.start()
    try:
        parts.state.set_real_profile(make_profile(gpu=None, backends=("cpu",)))
        row = ModelRow.local(gemma, spec_from_header(read_header_file(gemma)))
        parts.table.set_source_rows("local", [row])
        window.select_model(row.location)
        window.open_load_controls(row)
        window.load_panel.threads.setValue(1)
        window.load_panel.load_button.click()
        wait_for(parts.engine.loaded)

        panel = window.findChild(ServePanel)
        log = window.findChild(ApiLog)
        assert panel is not None and log is not None
        with socket.socket() as probe:  # 8080 may be taken on this machine
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        panel.port.setValue(port)
        window.show_tab("monitor")
        panel.switch.click()
        url = wait_for(panel.serving.serving)[0].url
        model = gemma.stem

        def other_app(number: int) -> None:
            client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=300)
            for i in range(3):
                stream = client.chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": f"Tell story {number}.{i}"}],
                    max_tokens=48,
                    stream=True,
                )
                list(stream)

        apps = [threading.Thread(target=other_app, args=(n,)) for n in range(3)]
        for thread in apps:
            thread.start()
        # The window's chat between them.
        wait_for(panel.serving.requestFinished)
        parts.chat.sampling = replace(parts.chat.sampling, max_tokens=48)
        parts.chat.input.setPlainText("Name three colours.")
        parts.chat.send()
        wait_for(parts.engine.done, 300_000)
        loop = QEventLoop()
        timer = QTimer()
        timer.timeout.connect(lambda: loop.quit() if not any(t.is_alive() for t in apps) else None)
        timer.start(100)
        loop.exec()
        timer.stop()
        for thread in apps:
            thread.join()
        # One more, captured while it streams.
        live = threading.Thread(target=other_app, args=(9,))
        live.start()
        wait_for(panel.serving.requestStarted)
        settle(2500)
        shoot(out, "monitor-serving.png")
        live.join()
        settle(500)
        shoot(out, "monitor-serving-log.png")
        panel.copy_address()
        shoot(out, "monitor-address-copied.png")
    finally:
        parts.monitor.stop()
        parts.downloads.shutdown()
        parts.engine.shutdown(wait_ms=5000)
        parts.history.close()
        window.close()
        folder.cleanup()
    del app
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
