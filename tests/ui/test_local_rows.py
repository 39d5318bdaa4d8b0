"""The models table and detail pane over real local files: broken files get a red "Broken"
badge and their sentence once; copies of one model read apart by file name; one file reached
by two paths is one row, and "Other quantizations" lists each file once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import make_profile
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLabel
from synth import SynthModel, write_model

from desktop.core.estimate import Verdict
from desktop.core.library import scan
from desktop.core.rows import ModelRow, library_rows
from desktop.ui import theme
from desktop.ui.detail_pane import DetailPane
from desktop.ui.models_table import Column, ModelsTableModel
from desktop.ui.state import WorkbenchState
from desktop.ui.widgets import SECONDARY_ROLE, VERDICT_ROLE

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


def _rows(folder: Path) -> list[ModelRow]:
    return library_rows(scan([folder], include_hf_cache=False, include_lm_studio=False))


def _table(rows: list[ModelRow]) -> tuple[WorkbenchState, ModelsTableModel]:
    state = WorkbenchState(n_ctx=4096)
    state.set_real_profile(make_profile(gpu=None, backends=("cpu",)))
    return state, ModelsTableModel(state, rows)


def _cell(table: ModelsTableModel, row: ModelRow, column: Column, role: int) -> Any:
    index = table.index_of(row.location)
    assert index is not None
    return table.index(index, column).data(role)


def test_a_broken_file_shows_a_red_broken_badge_and_one_sentence(
    qtbot: Any, tmp_path: Path
) -> None:
    (tmp_path / "not-a-model.gguf").write_bytes(b"GGML" + bytes(4096))
    write_model(tmp_path / "fine.gguf", SynthModel())
    rows = _rows(tmp_path)
    broken = next(r for r in rows if r.file_name == "not-a-model.gguf")
    state, table = _table(rows)
    display = Qt.ItemDataRole.DisplayRole
    assert _cell(table, broken, Column.VERDICT, display) == "Broken"
    assert _cell(table, broken, Column.VERDICT, VERDICT_ROLE) == theme.BROKEN
    fine = next(r for r in rows if r.file_name == "fine.gguf")
    assert _cell(table, fine, Column.VERDICT, display) != "Broken"
    palette = QApplication.palette()
    red = theme.verdict_colors(theme.BROKEN, palette)
    assert red.fill == theme.verdict_colors(Verdict.TOO_LARGE, palette).fill  # the red badge

    pane = DetailPane(state, table)
    qtbot.addWidget(pane)
    pane.resize(480, 700)
    pane.show()
    pane.set_row(broken)
    assert pane.badge.text == "Broken"
    sentence = 'not-a-model.gguf is not a GGUF file: it starts with "GGML", not "GGUF".'
    shown = [
        label.text()
        for label in pane.findChildren(QLabel)
        if label.isVisible() and sentence in label.text()
    ]
    assert shown == [sentence]  # once, whole, not also squeezed into the memory bars
    assert not pane.bars.isVisible() and not pane.memory_title.isVisible()
    assert not pane.load_button.isEnabled()
    pane.set_row(fine)
    assert pane.bars.isVisible() and pane.badge.text != "Broken"
    _wait_for_the_check(qtbot, pane)


def _wait_for_the_check(qtbot: Any, pane: DetailPane) -> None:
    """llama.cpp's dry run of a local file answers in the background: wait for it, so no
    answer arrives after the pane is gone."""
    qtbot.waitUntil(
        lambda: not pane.check_label.text().startswith("Asking"), timeout=120_000
    )


def test_copies_read_apart_and_other_quantizations_list_each_file_once(
    qtbot: Any, tmp_path: Path
) -> None:
    first = write_model(tmp_path / "tiny-llama-gqa-q4_0.gguf", SynthModel())
    (tmp_path / "tiny-llama-gqa-q4_0-copy.gguf").write_bytes(first.read_bytes())
    (tmp_path / "tiny-llama-link.gguf").symlink_to(first)  # one file, two names
    rows = _rows(tmp_path)
    assert len(rows) == 2
    state, table = _table(rows)
    # The same file once more, through a folder that links to it (another path).
    linked = tmp_path / "linked"
    linked.symlink_to(tmp_path, target_is_directory=True)
    table.add_rows([ModelRow.local(linked / first.name, rows[0].spec)])
    assert table.rowCount() == 2
    names = {
        str(_cell(table, r, Column.NAME, Qt.ItemDataRole.DisplayRole)) for r in table.rows()
    }
    assert len(names) == 1  # the model's own name, the same in both copies ...
    secondary = sorted(str(_cell(table, r, Column.NAME, SECONDARY_ROLE)) for r in table.rows())
    assert len(set(secondary)) == 2  # ... and each row's file name tells them apart
    assert all(label.endswith(".gguf") for label in secondary)

    pane = DetailPane(state, table)
    qtbot.addWidget(pane)
    pane.show()
    pane.set_row(table.rows()[0])
    quants = [pane.siblings.item(i, 0).text() for i in range(pane.siblings.rowCount())]
    assert len(quants) == 2 and len(set(quants)) == 2, quants
    assert any("copy" in q for q in quants), quants
    _wait_for_the_check(qtbot, pane)
