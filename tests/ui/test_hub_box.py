"""The Models tab's Hugging Face repo box against the local Hub test server (real HTTP).

A repo with two synthetic GGUFs (plus a vision projector and half a split set) is looked up
through the box; the rows must carry exact verdicts from the headers, and the server's byte
counter must show that only the headers travelled. Errors (a missing repo, a malformed name)
end as one sentence in the status label. The tests wait for the box's signals, never sleep.
The lookup without Qt (repo names, header reads, the summary) is tested in
tests/unit/test_hub_lookup.py.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_profile
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))  # hub_server

from hub_server import (
    TWO_GGUF_LLAMA,
    TWO_GGUF_QWEN,
    TWO_GGUF_REPO,
    HubServer,
    serving_two_gguf,
    write_two_gguf_models,
)
from synth import ACCURACY_MODELS

from desktop.core.hub_lookup import REPO_FORMAT_MESSAGE
from desktop.core.rows import ModelRow
from desktop.ui.hub_box import HubBox
from desktop.ui.models_table import ModelsPanel, ModelsTableModel
from desktop.ui.state import WorkbenchState

REPO = TWO_GGUF_REPO
QWEN = TWO_GGUF_QWEN
LLAMA = TWO_GGUF_LLAMA
SIGNAL_MS = 30_000


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_two_gguf_models(tmp_path_factory.mktemp("hub-box-models"))


@pytest.fixture
def server(model_files: dict[str, Path]) -> Iterator[HubServer]:
    with serving_two_gguf(model_files) as running:
        yield running


@pytest.fixture
def state() -> WorkbenchState:
    workbench = WorkbenchState(n_ctx=4096)
    workbench.set_real_profile(make_profile())  # a 12 GB RTX 3060, 32 GB of RAM
    return workbench


@pytest.fixture
def table(state: WorkbenchState) -> ModelsTableModel:
    return ModelsTableModel(state)


@pytest.fixture
def panel(
    qtbot: Any, server: HubServer, state: WorkbenchState, table: ModelsTableModel, tmp_path: Path
) -> ModelsPanel:
    widget = ModelsPanel(
        state, table, endpoint=server.url, header_cache_dir=tmp_path / "header-cache"
    )
    qtbot.addWidget(widget)
    # Not shown: the offscreen platform warns about a top-level panel's size hints, and the
    # keys, the proxy and the selection work the same without a window on screen.
    return widget


def remote_rows(table: ModelsTableModel) -> list[ModelRow]:
    return [row for row in table.rows() if row.source == "remote"]


def look_up(qtbot: Any, panel: ModelsPanel, text: str, signal: str = "lookupFinished") -> Any:
    box = panel.hub_box
    box.repo_edit.setText(text)
    with qtbot.waitSignal(getattr(box, signal), timeout=SIGNAL_MS) as blocker:
        qtbot.keyClick(box.repo_edit, Qt.Key.Key_Return)
    return blocker


def test_lookup_adds_rows_with_exact_verdicts_from_headers_only(
    qtbot: Any,
    panel: ModelsPanel,
    table: ModelsTableModel,
    server: HubServer,
    model_files: dict[str, Path],
) -> None:
    statuses: list[str] = []
    panel.hub_box.statusChanged.connect(statuses.append)

    blocker = look_up(qtbot, panel, REPO)

    assert blocker.args == [REPO]
    rows = remote_rows(table)
    assert sorted(row.file for row in rows) == [LLAMA, QWEN]
    for row in rows:
        assert row.repo == REPO
        assert row.spec is not None and row.spec.source == "header"
        assert row.file_size_bytes == model_files[row.file or ""].stat().st_size
        index = table.index_of(row.location)
        assert index is not None
        assert table.plan_at(index) is not None, "no verdict for a remote row"
    qwen = next(row for row in rows if row.file == QWEN)
    assert qwen.spec is not None and qwen.spec.n_layer == ACCURACY_MODELS["qwen3"].n_layer

    # Only the headers crossed the wire: far less than the files themselves.
    total = sum(path.stat().st_size for path in model_files.values())
    assert 0 < server.bytes_sent < total / 4, (server.bytes_sent, total)

    # The rows are shown and one is selected; the left-out files are named.
    assert panel.search_box.text() == REPO
    assert {row.location for row in panel.visible_rows()} == {row.location for row in rows}
    current = panel.current_row()
    assert current is not None and current.source == "remote"
    assert statuses[:2] == [f"Looking up {REPO}…", f"Reading 2 headers from {REPO}…"]
    status = panel.hub_box.status_label.text()
    assert status == statuses[-1]
    assert "2 files from test/two-GGUF" in status
    assert "mmproj-qwen3-F16.gguf (vision projector)" in status
    assert "big-Q2_K.gguf (only 1 of 2 parts)" in status


def test_missing_repo_shows_a_sentence(
    qtbot: Any, panel: ModelsPanel, table: ModelsTableModel
) -> None:
    blocker = look_up(qtbot, panel, "test/nothing-here", "lookupFailed")

    message = blocker.args[0]
    assert "There is no model 'test/nothing-here' on Hugging Face" in message
    assert panel.hub_box.status_label.text() == message
    assert "Traceback" not in message
    assert remote_rows(table) == []


def test_gated_repo_shows_a_sentence(qtbot: Any, panel: ModelsPanel, server: HubServer) -> None:
    server.faults.status[REPO] = (403, "GatedRepo")
    blocker = look_up(qtbot, panel, REPO, "lookupFailed")
    assert "gated" in blocker.args[0]


def test_malformed_name_is_refused_without_a_request(
    qtbot: Any, panel: ModelsPanel, server: HubServer
) -> None:
    blocker = look_up(qtbot, panel, "notarepo", "lookupFailed")

    assert blocker.args == [REPO_FORMAT_MESSAGE]
    assert panel.hub_box.status_label.text() == REPO_FORMAT_MESSAGE
    assert server.requests == 0


def test_second_lookup_replaces_and_empty_box_clears(
    qtbot: Any, panel: ModelsPanel, table: ModelsTableModel, server: HubServer
) -> None:
    catalog_twin = ModelRow(
        name="Qwen3 (catalog)",
        params=None,
        quant="Q8_0",
        file_size_bytes=1,
        source="catalog",
        spec=None,
        location=f"{REPO}:{QWEN}",
        group="catalog:qwen3",
        repo=REPO,
        file=QWEN,
    )
    table.set_rows([catalog_twin])
    server.add_file("test/other-GGUF", QWEN, server.repos[REPO].files[QWEN].source)

    look_up(qtbot, panel, f"https://huggingface.co/{REPO}/tree/main")
    assert len(remote_rows(table)) == 2
    # The exact remote row stands in for the catalog row of the same file.
    assert [row.source for row in table.rows() if row.file == QWEN] == ["remote"]

    look_up(qtbot, panel, "test/other-GGUF")
    assert [(row.repo, row.file) for row in remote_rows(table)] == [("test/other-GGUF", QWEN)]
    assert panel.search_box.text() == "test/other-GGUF"

    blocker = look_up(qtbot, panel, "")
    assert blocker.args == [""]
    assert remote_rows(table) == []
    assert panel.search_box.text() == ""
    assert panel.hub_box.status_label.text() == ""
    # The catalog row the lookup had covered is back.
    assert [row.source for row in table.rows()] == ["catalog"]


def test_the_box_hands_its_rows_over_and_owns_no_table(
    qtbot: Any, server: HubServer, tmp_path: Path
) -> None:
    holder = QWidget()  # any parent will do: the box needs no models panel and no table
    qtbot.addWidget(holder)
    box = HubBox(holder, endpoint=server.url, header_cache_dir=tmp_path / "header-cache")
    found: list[tuple[str, tuple[ModelRow, ...]]] = []
    box.rowsFound.connect(lambda repo_id, rows: found.append((repo_id, rows)))

    box.repo_edit.setText(REPO)
    with qtbot.waitSignal(box.lookupFinished, timeout=SIGNAL_MS):
        box.look_up()
    [(repo_id, rows)] = found
    assert repo_id == REPO
    assert sorted(row.file for row in rows) == [LLAMA, QWEN]
    assert all(row.source == "remote" and row.spec is not None for row in rows)

    box.repo_edit.clear()
    with qtbot.waitSignal(box.lookupFinished, timeout=SIGNAL_MS):
        box.look_up()
    assert found[1:] == [("", ())]
