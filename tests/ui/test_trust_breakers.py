"""Issue 15's trust breakers in the assembled window with the real worker and real files:
the starter chat model answers and a base model says what it is (1), a failed load keeps the
working model (2), loading while a what-if machine is shown plans for this computer (4)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import make_profile
from real_models import smollm2_file

from desktop.app import Workbench, assemble
from desktop.core.chat_kind import BASE_MODEL_SENTENCE
from desktop.core.library import scan
from desktop.core.rows import ModelRow, library_rows
from desktop.core.settings import UserSettings
from desktop.engine import protocol as p

pytestmark = pytest.mark.engine

LOAD_MS = 120_000
QUESTION = "What is the capital of France?"
# SmolLM2 135M is a very small model: greedy decoding with this one-line system prompt answers
# "The capital of France is Paris." (without it, it sometimes drifts into French lists).
SYSTEM = "You are a helpful assistant. Answer in English, in one sentence."


@pytest.fixture
def workbench(qtbot: Any, tmp_path: Path, gemma_path: Path) -> Iterator[Workbench]:
    """The window over a models folder with the starter chat model and Gemma 3 270M, on a
    CPU-only machine like the test machine."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "SmolLM2-135M-Instruct.Q4_1.gguf").symlink_to(smollm2_file())
    (models / gemma_path.name).symlink_to(gemma_path)
    parts = assemble(
        UserSettings(n_ctx=1024, models_dir=str(models)),
        None,
        history_path=tmp_path / "history.sqlite3",
    )
    qtbot.addWidget(parts.window)
    parts.state.set_real_profile(make_profile(gpu=None, backends=("cpu",)))
    parts.table.set_source_rows("local", library_rows(scan([models], include_hf_cache=False,
                                                            include_lm_studio=False)))
    parts.chat.sampling = replace(parts.chat.sampling, temperature=0.0, max_tokens=24, seed=1)
    parts.monitor.start()  # as main() does: a crash is explained by the memory it saw
    try:
        yield parts
    finally:
        parts.downloads.shutdown()
        parts.monitor.stop()
        parts.engine.shutdown(wait_ms=5000)
        parts.history.close()


def local(parts: Workbench, fragment: str) -> ModelRow:
    for row in parts.table.rows():
        if row.path is not None and fragment in row.path.name:
            return row
    raise LookupError(fragment)


def load_from_panel(qtbot: Any, parts: Workbench, row: ModelRow) -> None:
    window = parts.window
    assert window.select_model(row.location)
    window.open_load_controls(row)
    window.load_panel.threads.setValue(1)  # small shared test machines
    with qtbot.waitSignal(parts.engine.loaded, timeout=LOAD_MS):
        window.load_panel.load_button.click()


def ask(qtbot: Any, parts: Workbench, text: str) -> str:
    chat = parts.chat
    chat.input.setPlainText(text)
    with qtbot.waitSignal(chat.answerFinished, timeout=LOAD_MS):
        chat.send()
    conversation = parts.history.list_conversations()[0].id
    return parts.history.messages(conversation)[-1].content


def test_the_starter_chats_and_a_base_model_says_it_is_one(
    qtbot: Any, workbench: Workbench
) -> None:
    window, chat = workbench.window, workbench.chat
    smol, gemma = local(workbench, "SmolLM2"), local(workbench, "gemma")

    # Where it is picked: the detail pane and the load controls.
    window.select_model(gemma.location)
    pane_banner = window.detail_pane.base_banner
    assert not pane_banner.isHidden()
    assert BASE_MODEL_SENTENCE in pane_banner.text().lower()
    assert "no chat template" in pane_banner.text()
    window.open_load_controls(gemma)
    assert not window.load_panel.base_banner.isHidden()
    window.select_model(smol.location)
    assert pane_banner.isHidden()
    window.open_load_controls(smol)
    assert window.load_panel.base_banner.isHidden()

    # In the chat, while it is loaded: Gemma is flagged, SmolLM2 answers the question.
    load_from_panel(qtbot, workbench, gemma)
    assert not chat.base_banner.isHidden()
    assert BASE_MODEL_SENTENCE in chat.base_banner.text().lower()
    load_from_panel(qtbot, workbench, smol)
    assert chat.base_banner.isHidden()
    chat.system_prompt.setPlainText(SYSTEM)
    answer = ask(qtbot, workbench, QUESTION)
    assert "Paris" in answer, answer


def assert_labels_name(parts: Workbench, name: str) -> None:
    """Every label agrees with what is loaded: chat header, input placeholder, status bar."""
    chat = parts.chat
    assert parts.engine.model is not None and parts.engine.state == "ready"
    assert name in chat.model_label.text(), chat.model_label.text()
    assert chat.input.isEnabled()
    assert name in chat.input.placeholderText(), chat.input.placeholderText()
    current = parts.engine.current_load
    assert current is not None and name in current.model_name


def test_a_file_llama_cpp_refuses_never_unloads_the_working_model(
    qtbot: Any, workbench: Workbench, tmp_path: Path
) -> None:
    from synth import write_with_stray_tensor

    engine, window = workbench.engine, workbench.window
    smol = local(workbench, "SmolLM2")
    load_from_panel(qtbot, workbench, smol)
    working = engine.model
    pid = engine.pid
    name = f"{smol.name} {smol.quant}"
    assert_labels_name(workbench, name)

    broken = write_with_stray_tensor(Path(str(smol.path)).parent / "stray-tensor.gguf")
    workbench.table.set_source_rows(
        "local",
        library_rows(scan([broken.parent], include_hf_cache=False, include_lm_studio=False)),
    )
    row = local(workbench, "stray-tensor")
    assert window.select_model(row.location)
    window.open_load_controls(row)
    kept: list[object] = []
    engine.modelKept.connect(kept.append)
    with qtbot.waitSignal(engine.error, timeout=LOAD_MS) as refused:
        window.load_panel.load_button.click()
    error = refused.args[0]
    assert error.kind == "bad_model"
    assert "wrong number of tensors" in error.message
    assert f"{name} is still loaded." in error.message
    qtbot.waitUntil(lambda: engine.state == "ready", timeout=10_000)
    # The worker never saw the file: the same process holds the same model.
    assert engine.pid == pid and engine.model is working
    assert kept and kept[-1] is engine.current_load
    assert_labels_name(workbench, name)
    assert "still loaded" in window.load_panel.status_label.text()
    assert name in window.statusBar().currentMessage()


def test_a_load_that_fails_after_unloading_brings_the_working_model_back(
    qtbot: Any, workbench: Workbench, tmp_path: Path
) -> None:
    engine = workbench.engine
    smol = local(workbench, "SmolLM2")
    load_from_panel(qtbot, workbench, smol)
    before = engine.current_load
    assert before is not None
    name = before.model_name
    engine.check_before_load = False  # as if llama.cpp's check had passed the file

    missing = tmp_path / "gone.gguf"  # gone between the check and the load
    with qtbot.waitSignal(engine.modelKept, timeout=LOAD_MS) as kept:
        engine.load(replace(before.load, path=str(missing)))
    again = kept.args[0]
    assert again.load.path == before.load.path and again.load.n_ctx == before.load.n_ctx
    assert again.load.n_threads == before.load.n_threads
    qtbot.waitUntil(lambda: engine.state == "ready", timeout=10_000)
    assert engine.model is not None and engine.model.id == again.load.id
    assert_labels_name(workbench, name)


def test_an_abort_while_loading_brings_the_model_back_and_offers_another_file(
    qtbot: Any, workbench: Workbench, tmp_path: Path
) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
    from test_abort_guards import CASES

    engine, chat = workbench.engine, workbench.chat
    smol = local(workbench, "SmolLM2")
    load_from_panel(qtbot, workbench, smol)
    name = f"{smol.name} {smol.quant}"
    bad = CASES["0 experts used"][0](tmp_path / "zero-experts-used.gguf")

    # llama.cpp's check runs first: the file that aborts it never reaches the worker.
    pid = engine.pid
    with qtbot.waitSignal(engine.error, timeout=LOAD_MS) as refused:
        engine.load(p.Load(path=str(bad), n_ctx=512, n_threads=1))
    assert "GGML_ASSERT(n_expert_used_max > 0) failed" in refused.args[0].message
    qtbot.waitUntil(lambda: engine.state == "ready", timeout=10_000)
    assert engine.pid == pid
    assert_labels_name(workbench, name)

    # Without the check (as if it had passed): the worker aborts, the model comes back.
    engine.check_before_load = False
    with (
        qtbot.waitSignal(engine.modelKept, timeout=LOAD_MS),
        qtbot.waitSignal(engine.crashed, timeout=LOAD_MS) as crashed,
    ):
        engine.load(p.Load(path=str(bad), n_ctx=512, n_threads=1))
    kind, message, suggestion = crashed.args
    assert kind == "aborted_by_file"
    assert f"{name}, the model loaded before, is being loaded again." in message
    assert "another file" in suggestion
    qtbot.waitUntil(lambda: engine.state == "ready", timeout=10_000)
    assert engine.pid not in (None, pid)
    assert_labels_name(workbench, name)
    # The chat tells what happened and offers no reload of the file that aborts.
    assert "GGML_ASSERT(n_expert_used_max > 0) failed" in chat.transcript.toPlainText()
    assert chat.fix_button.isHidden() or "Reload" not in chat.fix_button.text()


def test_a_kill_9_from_outside_is_said_so_and_no_label_claims_a_model(
    qtbot: Any, workbench: Workbench
) -> None:
    import os
    import signal

    engine, chat, window = workbench.engine, workbench.chat, workbench.window
    smol = local(workbench, "SmolLM2")
    load_from_panel(qtbot, workbench, smol)
    qtbot.waitUntil(
        lambda: (facts := workbench.monitor.memory_facts()) is not None
        and facts.ram_short is False,
        timeout=10_000,
    )
    pid = engine.pid
    assert pid is not None
    with qtbot.waitSignal(engine.crashed, timeout=30_000) as crashed:
        os.kill(pid, signal.SIGKILL)
    kind, message, _suggestion = crashed.args
    assert kind == "killed_from_outside" and "RAM free" in message
    assert "from outside the app" in chat.transcript.toPlainText()
    assert chat.model_label.text() == "No model loaded"
    assert not chat.input.isEnabled()
    assert "Model loaded" not in window.statusBar().currentMessage()


def _table_texts(table: Any) -> list[list[str]]:
    return [
        [table.item(r, c).text() if table.item(r, c) else "" for c in range(table.columnCount())]
        for r in range(table.rowCount())
    ]


def test_loading_while_a_what_if_machine_is_shown_plans_for_this_computer(
    qtbot: Any, workbench: Workbench
) -> None:
    window, engine, state = workbench.window, workbench.engine, workbench.state
    panel = window.load_panel
    smol = local(workbench, "SmolLM2")
    window.what_if.choose("GeForce RTX 4060")
    assert state.is_what_if and any(d.is_gpu for d in state.devices())
    assert window.select_model(smol.location)
    window.open_load_controls(smol)
    # The load controls say so, and plan for this computer (no GPU here): no GPU bar.
    assert not panel.what_if_note.isHidden()
    assert "GeForce RTX 4060" in panel.what_if_note.text()
    assert "planned for this computer" in panel.what_if_note.text()
    assert [plan.kind for plan in panel.device_plans] == ["cpu"]
    panel.threads.setValue(1)
    with qtbot.waitSignal(engine.loaded, timeout=LOAD_MS) as loaded:
        panel.load_button.click()
    request = engine.current_load
    assert request is not None and request.plan is not None
    assert not any(d.is_gpu for d in request.devices)  # the real machine's plan
    assert request.plan.gpu_layers == 0 and loaded.args[0].n_gpu_layers == 0
    assert "on the GPU" not in panel.status_label.text()
    compared = _table_texts(panel.comparison)
    # Estimate vs. allocated is of that same plan: the weights agree to within 5%.
    weights = next(row for row in compared if row[0] == "Model weights")
    assert abs(float(weights[3].split("(")[1].rstrip("%)"))) < 5, compared

    # Back to this computer: nothing planned or compared changes, nothing is stale.
    window.what_if.choose(None)
    assert panel.what_if_note.isHidden()
    assert _table_texts(panel.comparison) == compared
    assert engine.current_load is request
    assert [plan.kind for plan in panel.device_plans] == ["cpu"]
