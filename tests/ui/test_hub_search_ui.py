"""The Models tab's one search box searching Hugging Face (desktop.ui.search_rows.HubSearch).

A real panel against the local test Hub: typing "qwen" filters the catalog and shows the Hub's
repos with "about" verdicts; the visible repos become exact in the background (their best file's
header); double-clicking one shows every quantization with an exact verdict; "Only full GPU"
filters across catalog and Hub rows; a gated repo says what to do; the status line never moves
the search box.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))  # hub_server

from hub_server import (
    GATED_REPO,
    QWEN8B_REPO,
    HubServer,
    serving_search_world,
    write_search_models,
)

from desktop.core.catalog import load_catalog
from desktop.core.estimate import Verdict
from desktop.core.rows import ModelRow, catalog_rows
from desktop.ui.models_table import PLAN_ROLE, ModelsPanel, ModelsTableModel
from desktop.ui.state import WorkbenchState
from desktop.ui.widgets import SECONDARY_ROLE

SIGNAL_MS = 30_000


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_search_models(tmp_path_factory.mktemp("search-ui-models"))


@pytest.fixture
def hub(files: dict[str, Path]) -> Iterator[HubServer]:
    with serving_search_world(files) as running:
        yield running


@pytest.fixture
def panel(qtbot: Any, hub: HubServer, tmp_path: Path) -> ModelsPanel:
    state = WorkbenchState(n_ctx=4096)
    state.set_real_profile(make_profile(vram_gib=8))  # an 8 GB card, 32 GB of RAM
    table = ModelsTableModel(state, catalog_rows(load_catalog()))
    widget = ModelsPanel(state, table, endpoint=hub.url, header_cache_dir=tmp_path / "cache")
    qtbot.addWidget(widget)
    widget.hub_search.enabled = True  # conftest switches the search off for other tests
    # Not shown (the offscreen platform warns about a top-level panel's size hints): the
    # first rows as sorted count as the visible ones.
    return widget


def _hub_rows(panel: ModelsPanel) -> list[ModelRow]:
    return [r for r in panel.table.rows() if r.hub is not None]


def _plan(panel: ModelsPanel, row: ModelRow) -> Any:
    index = panel.table.index_of(row.location)
    assert index is not None
    return panel.table.plan_at(index)


def test_typing_shows_hub_repos_then_exact_verdicts(qtbot: Any, panel: ModelsPanel) -> None:
    with qtbot.waitSignal(panel.hub_search.resultsShown, timeout=SIGNAL_MS) as shown:
        qtbot.keyClicks(panel.search_box, "qwen")
    assert shown.args == ["qwen", 4]
    rows = {r.hub.repo_id: r for r in _hub_rows(panel) if r.hub is not None}
    assert set(rows) >= {QWEN8B_REPO, GATED_REPO}
    visible = panel.visible_rows()
    assert any(r.source == "catalog" for r in visible)  # the catalog's Qwen rows stay
    assert any(r.hub is not None for r in visible)
    # Waiting for the background header reads of the visible repos.
    qtbot.waitUntil(
        lambda: any(
            r.hub is not None
            and r.hub.repo_id == QWEN8B_REPO
            and r.spec is not None
            and r.spec.source == "header"
            for r in panel.table.rows()
        ),
        timeout=SIGNAL_MS,
    )
    lead = next(r for r in _hub_rows(panel) if r.hub and r.hub.repo_id == QWEN8B_REPO)
    assert lead.file == "Qwen3-8B-Q4_K_M.gguf"  # the best fit for 8 GB, read first
    assert _plan(panel, lead).verdict is Verdict.FULL_GPU
    assert "double-click for the others" in lead.note
    index = panel.table.index(panel.table.index_of(lead.location) or 0, 0)
    assert panel.table.data(index, SECONDARY_ROLE) == "test · qwen3 · 52.0k↓ · 310♥ · 2025-05-02"

    # Double-click: every quantization, each exact.
    with qtbot.waitSignal(panel.hub_search.repoOpened, timeout=SIGNAL_MS):
        assert panel.hub_search.open_repo(QWEN8B_REPO)
    opened = [r for r in _hub_rows(panel) if r.hub and r.hub.repo_id == QWEN8B_REPO]
    assert sorted(r.quant for r in opened) == ["Q4_K_M", "Q8_0"]
    assert all(r.spec is not None and r.spec.source == "header" for r in opened)
    assert "vision projector mmproj-Qwen3-8B-F16.gguf" in panel.hub_box.status_label.text()

    # "Only full GPU" filters catalog, local and Hub rows alike.
    panel.full_gpu_only.setChecked(True)
    shown_rows = panel.visible_rows()
    assert shown_rows
    for proxy_row in range(panel.proxy.rowCount()):
        plan = panel.proxy.index(proxy_row, 0).data(PLAN_ROLE)
        assert plan is not None and plan.verdict is Verdict.FULL_GPU
    qwen8b = [r.quant for r in shown_rows if r.hub is not None and r.hub.repo_id == QWEN8B_REPO]
    assert qwen8b == ["Q4_K_M"]  # its Q8_0 (8.7 GB) does not fit fully on 8 GB


def test_a_gated_repo_says_what_to_do(qtbot: Any, panel: ModelsPanel) -> None:
    with qtbot.waitSignal(panel.hub_search.resultsShown, timeout=SIGNAL_MS):
        panel.search_box.setText("qwen3-gated")
    with qtbot.waitSignal(panel.hub_box.statusChanged, timeout=SIGNAL_MS):
        panel.hub_search.open_repo(GATED_REPO)
    qtbot.waitUntil(
        lambda: "add a token in Settings" in panel.hub_box.status_label.text(), timeout=SIGNAL_MS
    )
    row = next(r for r in _hub_rows(panel) if r.hub and r.hub.repo_id == GATED_REPO)
    assert "accept its license on the model page" in row.note


def test_offline_search_is_a_sentence_and_the_catalog_stays(qtbot: Any, hub: HubServer) -> None:
    from hub_server import free_port_url

    state = WorkbenchState(n_ctx=4096)
    state.set_real_profile(make_profile())
    table = ModelsTableModel(state, catalog_rows(load_catalog()))
    panel = ModelsPanel(state, table, endpoint=free_port_url())
    qtbot.addWidget(panel)
    panel.hub_search.enabled = True
    panel.search_box.setText("qwen")
    qtbot.waitUntil(
        lambda: "You are offline" in panel.hub_box.status_label.text(), timeout=SIGNAL_MS
    )
    assert panel.visible_rows() and all(r.source == "catalog" for r in panel.visible_rows())


def test_the_status_line_never_moves_the_search_box(qtbot: Any, panel: ModelsPanel) -> None:
    before = panel.search_box.mapTo(panel, panel.search_box.rect().topLeft())
    height = panel.hub_box.status_label.height()
    panel.hub_box.show_status("A long sentence about Hugging Face. " * 20)
    qtbot.wait(50)  # let the layout settle, as it would after a real status change
    after = panel.search_box.mapTo(panel, panel.search_box.rect().topLeft())
    assert after == before and panel.hub_box.status_label.height() == height
    assert panel.hub_box.status_label.toolTip().startswith("A long sentence")
