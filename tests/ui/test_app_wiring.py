"""The assembled app with the real worker: pick a local model, load it from the load panel,
chat, and see the live monitor and the chat follow (what a person does after install)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import make_profile

from desktop.app import assemble
from desktop.core.gguf import read_header_file
from desktop.core.modelspec import spec_from_header
from desktop.core.rows import ModelRow
from desktop.core.settings import UserSettings

pytestmark = pytest.mark.engine


def test_load_from_the_window_then_chat(qtbot: Any, gemma_path: Path, tmp_path: Path) -> None:
    parts = assemble(UserSettings(n_ctx=1024), None, history_path=tmp_path / "history.sqlite3")
    window, engine, chat = parts.window, parts.engine, parts.chat
    qtbot.addWidget(window)
    try:
        parts.state.set_real_profile(make_profile(gpu=None, backends=("cpu",)))
        row = ModelRow.local(gemma_path, spec_from_header(read_header_file(gemma_path)))
        parts.table.set_source_rows("local", [row])
        assert window.select_model(row.location)
        window.open_load_controls(row)
        panel = window.load_panel
        panel.threads.setValue(1)  # small shared test machines
        assert panel.load_button.isEnabled()
        with qtbot.waitSignal(engine.loaded, timeout=120_000) as loaded:
            panel.load_button.click()
        assert loaded.args[0].n_ctx == 1024
        # The prediction drawn beside the live plots is the plan for the chosen settings.
        plan = parts.plots._plan
        assert plan is not None and plan.predicted_tokens_per_s
        assert plan.settings.n_threads == 1 and plan.n_ctx == 1024

        chat.sampling = replace(chat.sampling, max_tokens=32)  # a short answer is enough here
        chat.input.setPlainText("Name three colours.")
        with qtbot.waitSignal(chat.answerFinished, timeout=120_000) as finished:
            chat.send()
        done = finished.args[0]
        assert done.generated_tokens > 0 and done.gen_tokens_per_s > 0
        assert parts.monitor.tokens is not None
        conversations = parts.history.list_conversations()
        assert len(conversations) == 1
        messages = parts.history.messages(conversations[0].id)
        assert [m.role for m in messages][-2:] == ["user", "assistant"]
        assert messages[-1].status == "complete" and messages[-1].content
    finally:
        parts.downloads.shutdown()
        parts.monitor.stop()
        engine.shutdown(wait_ms=5000)
        parts.history.close()
