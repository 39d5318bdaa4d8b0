"""The window's "Serve to other apps" switch with the real worker: it starts the server inside
the worker, another app's request (the official openai client) shows in the request log and on
the tokens/s plot, the switch stops it and frees the port."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import openai
import pytest

from desktop.app import Workbench, assemble
from desktop.core.settings import UserSettings
from desktop.engine import protocol as p
from desktop.ui.api_log import ApiLog
from desktop.ui.serve_panel import ServePanel

pytestmark = pytest.mark.engine


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_from_the_window(qtbot: Any, parts: Workbench, gemma_path: Path) -> tuple[ServePanel, str]:
    """Load Gemma, turn the switch on; the panel and the address it shows."""
    engine = parts.engine
    with qtbot.waitSignal(engine.loaded, timeout=120_000):
        engine.load(p.Load(path=str(gemma_path), n_ctx=1024, n_threads=1))
    panel = parts.window.findChild(ServePanel)
    assert panel is not None
    assert panel.model_label.text() == gemma_path.stem  # beside the loaded model
    panel.port.setValue(free_port())
    with qtbot.waitSignal(panel.serving.serving, timeout=30_000):
        panel.switch.click()
    assert panel.switch.isChecked() and panel.copy_button.isEnabled()
    return panel, panel.address.text()


def test_the_switch_serves_and_the_request_shows_in_the_log_and_the_plot(
    qtbot: Any, gemma_path: Path, tmp_path: Path
) -> None:
    parts = assemble(UserSettings(n_ctx=1024), None, history_path=tmp_path / "history.sqlite3")
    window = parts.window
    qtbot.addWidget(window)
    try:
        panel, url = serve_from_the_window(qtbot, parts, gemma_path)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        log = window.findChild(ApiLog)
        assert log is not None

        answers: list[Any] = []

        def other_app() -> None:  # off the GUI thread, as another program would be
            client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=120)
            stream = client.chat.completions.create(
                model=gemma_path.stem,
                messages=[{"role": "user", "content": "Name three colours."}],
                max_tokens=24,
                stream=True,
            )
            answers.append(list(stream))

        app = threading.Thread(target=other_app)
        with qtbot.waitSignal(panel.serving.requestFinished, timeout=120_000) as finished:
            app.start()
        app.join(timeout=60)
        assert answers and answers[0]
        done = finished.args[0]
        assert done.status == 200 and done.generated_tokens > 0

        row = log.row_texts(0)
        assert row[1].startswith("127.0.0.1:") and row[2] == "/v1/chat/completions"
        assert row[3] == "200"
        assert row[4] == str(done.prompt_tokens) and row[5] == str(done.generated_tokens)
        assert row[6].endswith((" ms", " s")) and float(row[7]) > 0

        # On the tokens/s plot, as another app's (its own curve), not as the chat's.
        assert parts.monitor.api_tokens.total_tokens > 0
        assert len(parts.monitor.tokens.times) == 0
        parts.plots.refresh()
        x, _y = parts.plots.api_rate_curve.getData()
        assert x is not None and len(x) > 0

        port = int(url.rsplit(":", 1)[1].split("/")[0])
        with qtbot.waitSignal(panel.serving.stopped, timeout=30_000):
            panel.switch.click()
        assert not panel.switch.isChecked() and not panel.address.text()
        with socket.socket() as again:
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            again.bind(("127.0.0.1", port))
    finally:
        parts.downloads.shutdown()
        parts.monitor.stop()
        parts.engine.shutdown(wait_ms=5000)
        parts.history.close()


def test_a_taken_port_turns_the_switch_back_off(qtbot: Any, tmp_path: Path) -> None:
    parts = assemble(UserSettings(n_ctx=1024), None, history_path=tmp_path / "history.sqlite3")
    qtbot.addWidget(parts.window)
    try:
        panel = parts.window.findChild(ServePanel)
        assert panel is not None
        assert panel.model_label.text() == "No model loaded"
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            panel.port.setValue(taken.getsockname()[1])
            with qtbot.waitSignal(panel.serving.failed, timeout=60_000):
                panel.switch.click()
        assert not panel.switch.isChecked()
        assert "already in use" in panel.status.text()
        # Other computers: a key is made and the risk is said before anything listens.
        panel.network.click()
        assert panel.key.isVisibleTo(panel) and len(panel.key.text()) >= 20
    finally:
        parts.downloads.shutdown()
        parts.monitor.stop()
        parts.engine.shutdown(wait_ms=5000)
        parts.history.close()
