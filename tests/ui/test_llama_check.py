"""The detail pane asks llama.cpp about a local file before anyone presses Load: a good file
is "checked by llama.cpp" with the figures it confirmed, a file it refuses says why and
cannot be loaded. Real llama.cpp dry runs (child processes), a real widget tree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import make_profile
from synth import write_with_stray_tensor

from desktop.core.gguf import read_header_file
from desktop.core.modelspec import spec_from_header
from desktop.core.rows import ModelRow
from desktop.ui.detail_pane import DetailPane
from desktop.ui.models_table import ModelsTableModel
from desktop.ui.state import WorkbenchState

pytestmark = pytest.mark.engine


def _pane(qtbot: Any, row: ModelRow) -> DetailPane:
    state = WorkbenchState(n_ctx=2048)
    table = ModelsTableModel(state, [row])
    pane = DetailPane(state, table)
    qtbot.addWidget(pane)
    state.set_real_profile(make_profile(gpu=None))
    pane.set_row(row)
    return pane


def test_a_good_file_is_checked_by_llama_cpp(qtbot: Any, gemma_path: Path) -> None:
    row = ModelRow.local(gemma_path, spec_from_header(read_header_file(gemma_path)))
    pane = _pane(qtbot, row)
    assert pane.check_label.text() == "Asking llama.cpp to check this file…"
    qtbot.waitUntil(lambda: pane.check_label.text().startswith("✓"), timeout=60_000)
    text = pane.check_label.text()
    assert text.startswith("✓ Checked by llama.cpp 0.3.")
    assert "every layer on the CPU" in text and "compute buffer" in text and "KV cache" in text
    assert pane.load_button.isEnabled()
    assert "Speed: not yet measured here: estimated from bandwidth." in pane.note_label.text()


def test_a_file_llama_cpp_refuses_says_why_before_load(qtbot: Any, tmp_path: Path) -> None:
    path = write_with_stray_tensor(tmp_path / "stray.gguf")
    row = ModelRow.local(path, spec_from_header(read_header_file(path)))  # the header reads
    pane = _pane(qtbot, row)
    qtbot.waitUntil(lambda: "can't load" in pane.check_label.text(), timeout=60_000)
    assert "llama.cpp can't load this file: " in pane.check_label.text()
    assert "wrong number of tensors" in pane.check_label.text()
    assert not pane.load_button.isEnabled()
    assert "wrong number of tensors" in pane.load_button.toolTip()
