"""Panels on their own and in the window: settings dialog, runtime theme change, icons, and
(one engine test) Load through the real llama.cpp worker with the estimate compared after."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import GIB, WindowFactory, find_row, make_profile
from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication
from test_main_window import dark_palette

from desktop.core.rows import ModelRow
from desktop.core.settings import UserSettings
from desktop.ui.icons import GLYPHS, glyph_icon
from desktop.ui.settings_dialog import SettingsDialog
from desktop.ui.widgets import HintLabel


def test_settings_dialog_edits_a_copy(qtbot: Any) -> None:
    settings = UserSettings(extra_folders=("/a",), last_model="x:y")
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    assert dialog.reserve.value() == pytest.approx(0.5)
    dialog.reserve.setValue(1.5)
    dialog.models_dir.setText("  /data/models ")
    dialog.folders.addItem("/b")
    dialog.folders.setCurrentRow(0)
    dialog.remove_button.click()
    result = dialog.result_settings()
    assert result.vram_reserve_bytes == int(1.5 * GIB)
    assert result.models_dir == "/data/models"
    assert result.extra_folders == ("/b",)
    assert result.last_model == "x:y"  # keys the dialog does not show are kept
    assert settings.extra_folders == ("/a",)


def test_theme_change_at_runtime_restyles_banner_and_hints(
    qtbot: Any, qapp: QApplication, make_window: WindowFactory
) -> None:
    warning = "An NVIDIA GPU is present but this llama.cpp build is CPU-only."
    window = make_window(make_profile(warnings=(warning,)))
    banner = window.hardware_panel.warning_banner
    hint = window.findChildren(HintLabel)[0]

    def banner_colors() -> tuple[int, int]:
        image = banner.grab().toImage()
        background = image.pixelColor(image.width() - 12, image.height() // 2)
        text = banner.label.palette().color(QPalette.ColorRole.WindowText)
        return background.lightness(), text.lightness()

    light_background, light_text = banner_colors()
    assert light_background > 200 > light_text
    light_hint = hint.palette().color(QPalette.ColorRole.WindowText)
    before = qapp.palette()
    try:
        qapp.setPalette(dark_palette())  # what a system switching to dark mode does
        # Qt hands the new palette down to the widgets from the event loop.
        qtbot.waitUntil(lambda: banner_colors()[0] < 100)
        dark_background, dark_text = banner_colors()
        assert dark_background < 100 < dark_text
        dark_hint = hint.palette().color(QPalette.ColorRole.WindowText)
        assert dark_hint.lightness() > light_hint.lightness()
        assert dark_hint.lightness() > 128
    finally:
        qapp.setPalette(before)
    qtbot.waitUntil(lambda: banner_colors() == (light_background, light_text))


def test_glyph_icons_follow_the_palette(qapp: QApplication) -> None:
    before = qapp.palette()
    try:
        for name in GLYPHS:
            icon = glyph_icon(name)
            assert not icon.pixmap(16, 16).isNull()
        image = glyph_icon("play").pixmap(32, 32).toImage()
        light_ink = _darkest_opaque(image)
        qapp.setPalette(dark_palette())
        image = glyph_icon("play").pixmap(32, 32).toImage()
        dark_ink = _lightest_opaque(image)
        assert dark_ink.lightness() > 180 > light_ink.lightness()
        disabled = glyph_icon("play").pixmap(32, 32, QIcon.Mode.Disabled).toImage()
        assert _lightest_opaque(disabled).lightness() < dark_ink.lightness()
    finally:
        qapp.setPalette(before)


def _opaque(image: Any) -> list[QColor]:
    return [
        image.pixelColor(x, y)
        for x in range(image.width())
        for y in range(image.height())
        if image.pixelColor(x, y).alpha() == 255
    ]


def _darkest_opaque(image: Any) -> QColor:
    return min(_opaque(image), key=lambda c: c.lightness())


def _lightest_opaque(image: Any) -> QColor:
    return max(_opaque(image), key=lambda c: c.lightness())


def test_rows_without_an_estimate_say_why(
    make_window: WindowFactory, catalog_model_rows: list[ModelRow]
) -> None:
    # Every catalog row has an estimate now (issue 12); a Hugging Face file whose header
    # could not be read is the row without one.
    assert all(r.spec is not None for r in catalog_model_rows)
    no_spec = [
        ModelRow.remote(
            "test/unreadable-GGUF",
            "model-Q4_K_M.gguf",
            None,
            4_000_000_000,
            note="Could not read its header: the file is not a GGUF file.",
        )
    ]
    window = make_window(make_profile())
    window.table.add_rows(no_spec)
    window.select_model(no_spec[0].location)
    pane = window.detail_pane
    assert pane.badge.text == "No estimate"
    assert pane.reason_label.text() == no_spec[0].note != ""
    assert not pane.load_button.isEnabled()


def test_set_source_rows_adds_local_files_and_marks_downloads(
    make_window: WindowFactory, catalog_model_rows: list[ModelRow], tmp_path: Path
) -> None:
    window = make_window(make_profile())
    catalog_row = find_row(catalog_model_rows, "gemma-3-1b-it", "Q4_K_M")
    assert not window.table.is_downloaded(catalog_row)
    file = tmp_path / catalog_row.file_name
    file.write_bytes(b"GGUF")
    window.table.set_source_rows("local", [ModelRow.local(file, catalog_row.spec)])
    assert window.table.rowCount() == len(catalog_model_rows) + 1
    assert window.table.is_downloaded(catalog_row)
    assert window.table.local_path(catalog_row) == file
    window.table.set_source_rows("local", [])
    assert window.table.rowCount() == len(catalog_model_rows)
    assert not window.table.is_downloaded(catalog_row)


# --------------------------------------------------------------------------- real engine


@pytest.fixture
def engine() -> Iterator[Any]:
    from desktop.services.engine_client import EngineClient

    client = EngineClient()
    yield client
    client.shutdown()


@pytest.mark.engine
def test_load_through_the_engine_compares_estimate_with_llama_cpp(
    qtbot: Any,
    gemma_path: Path,
    engine: Any,
    catalog_model_rows: list[ModelRow],
    gpu_specs: list[Any],
) -> None:
    from desktop.core.gguf import read_header_file
    from desktop.core.modelspec import spec_from_header
    from desktop.ui.main_window import MainWindow
    from desktop.ui.models_table import ModelsTableModel
    from desktop.ui.state import WorkbenchState

    row = ModelRow.local(gemma_path, spec_from_header(read_header_file(gemma_path)))
    state = WorkbenchState(n_ctx=2048)
    table = ModelsTableModel(state, [row])
    window = MainWindow(state, table, gpu_specs=gpu_specs, engine=engine)
    qtbot.addWidget(window)
    state.set_real_profile(make_profile(gpu=None))
    window.show()
    assert window.select_model(row.location)
    window.detail_pane.load_button.click()
    panel = window.load_panel
    panel.threads.setValue(1)
    assert panel.load_button.isEnabled()
    with qtbot.waitSignal(engine.loaded, timeout=120_000):
        panel.load_button.click()
    assert panel.status_label.text().startswith("Loaded in")
    assert panel.comparison.isVisibleTo(window)
    rows = panel.comparison.rowCount()
    total = panel.comparison.item(rows - 1, 3).text()  # e.g. "+1 MB (+0.4%)"
    percent = float(total.rsplit("(", 1)[1].rstrip("%)"))
    assert abs(percent) < 10, total


def test_library_files_become_local_rows_beside_the_catalog(
    make_window: WindowFactory, catalog_model_rows: list[ModelRow], gemma_path: Path
) -> None:
    from desktop.core.library import scan
    from desktop.core.rows import library_rows

    rows = library_rows(scan([gemma_path.parent], include_hf_cache=False, include_lm_studio=False))
    gemma = next(r for r in rows if r.path == gemma_path)
    assert gemma.source == "local"
    assert gemma.spec is not None and gemma.spec.source == "header"
    assert gemma.file_size_bytes == gemma_path.stat().st_size

    window = make_window(make_profile(), rows=[])
    window.table.set_source_rows("local", rows)  # the library can finish before the catalog
    window.table.set_source_rows("catalog", catalog_model_rows)
    assert window.table.rowCount() == len(catalog_model_rows) + len(rows)
    assert window.table.index_of(gemma.location) is not None
    window.select_model(gemma.location)
    assert window.detail_pane.badge.text == "Full GPU"
    assert window.detail_pane.load_button.isEnabled()
