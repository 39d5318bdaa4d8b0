"""Loading has one owner, the engine client: whoever asks (the load controls, the chat's
"reload with fewer layers"), the request carries its plan, and the load controls, the
prediction beside the live plots and the run recorder all read that one request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import WindowFactory, find_row, make_profile

from desktop.app import assemble
from desktop.core.estimate import Settings
from desktop.core.rows import ModelRow
from desktop.core.settings import UserSettings
from desktop.services.engine_client import EngineClient
from desktop.services.load_request import LoadRequest
from desktop.services.signals import emit
from desktop.ui.main_window import MainWindow

NO_WORKER = ["/nonexistent/llm-workbench-worker"]  # every load fails to start, at once


def local_row(catalog_model_rows: list[ModelRow], tmp_path: Path) -> ModelRow:
    catalog_row = find_row(catalog_model_rows, "qwen3-0.6b", "Q4_K_M")
    file = tmp_path / catalog_row.file_name
    file.write_bytes(b"GGUF")
    return ModelRow.local(file, catalog_row.spec)


def test_the_load_controls_follow_every_load_of_their_model(
    qtbot: Any,
    make_window: WindowFactory,
    catalog_model_rows: list[ModelRow],
    gpu_specs: list[Any],
    tmp_path: Path,
) -> None:
    row = local_row(catalog_model_rows, tmp_path)
    built = make_window(make_profile(), rows=[*catalog_model_rows, row])
    client = EngineClient(command=NO_WORKER)
    window = MainWindow(built.state, built.table, gpu_specs=gpu_specs, engine=client)
    qtbot.addWidget(window)
    assert window.select_model(row.location)
    window.open_load_controls()
    panel = window.load_panel
    panel.set_gpu_layers(12)
    with qtbot.waitSignal(client.crashed):
        panel.load_button.click()
    request = client.current_load
    assert request is not None and request is panel.requested
    assert request.plan is not None and request.plan.settings.n_gpu_layers == 12
    assert request.row == row and Path(request.path) == row.path
    assert "could not be started" in panel.status_label.text()

    # The chat's fix reloads through the same client: the controls show that load too.
    with qtbot.waitSignal(client.crashed):
        client.retry_with(5)
    assert panel.layers_slider.value() == 5 and not panel.auto_layers.isChecked()
    assert panel.requested is client.current_load
    assert panel.requested is not None and panel.requested.plan is not None
    assert panel.requested.plan.settings.n_gpu_layers == 5
    assert "could not be started" in panel.status_label.text()


def test_prediction_and_recorder_take_the_plan_of_the_load_not_the_selection(
    qtbot: Any, catalog_model_rows: list[ModelRow], tmp_path: Path
) -> None:
    parts = assemble(UserSettings(n_ctx=2048), None, history_path=tmp_path / "history.sqlite3")
    qtbot.addWidget(parts.window)
    try:
        parts.state.set_real_profile(make_profile())
        row = local_row(catalog_model_rows, tmp_path)
        other = find_row(catalog_model_rows, "qwen3-4b", "Q4_K_M")
        parts.table.set_source_rows("catalog", catalog_model_rows)
        parts.table.set_source_rows("local", [row])
        assert parts.window.select_model(other.location)  # the table shows another model
        assert row.spec is not None
        settings = Settings(n_ctx=2048, n_gpu_layers=7, n_threads=1)
        request = LoadRequest.planned(row.path, settings, row.spec, parts.state.devices(), row)
        emit(parts.engine.loadStarted, request)
        assert parts.plots._plan is request.plan
        assert parts.chat.model_label.text() == "No model loaded"  # until it has loaded
        assert parts.chat._model_name == request.model_name
        expected = parts.recorder._expected
        assert expected is not None
        assert expected.spec is row.spec and expected.settings == settings
        assert expected.model_file == Path(request.path).name
    finally:
        parts.downloads.shutdown()
        parts.monitor.stop()
        parts.engine.shutdown(wait_ms=1000)
        parts.history.close()
