"""The main window: hardware bar, models table, context control, load controls, what-if, themes.

Most tests hand the window a fake machine (HardwareProfile.from_dict); one runs the real
hardware check on the thread pool and waits for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import GIB, WindowFactory, find_row, make_profile
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLabel, QWidget

from desktop.core.estimate import Verdict
from desktop.core.rows import ModelRow
from desktop.core.settings import UserSettings, load_settings
from desktop.services.tasks import run_in_thread
from desktop.ui import theme
from desktop.ui.main_window import MainWindow
from desktop.ui.models_table import ROW_ROLE, SORT_ROLE, Column
from desktop.ui.widgets import HintLabel


def verdict_label(window: MainWindow, row: ModelRow) -> str:
    index = window.table.index_of(row.location)
    assert index is not None
    plan = window.table.plan_at(index)
    assert plan is not None, f"no plan for {row.location}"
    return plan.verdict_label


def shown_verdict(window: MainWindow, row: ModelRow) -> str:
    """The verdict text as the table shows it (through the proxy)."""
    proxy = window.models_panel.proxy
    for i in range(proxy.rowCount()):
        if proxy.index(i, 0).data(ROW_ROLE).location == row.location:
            return str(proxy.index(i, Column.VERDICT).data())
    raise LookupError(row.location)


# --------------------------------------------------------------------------- hardware


def test_window_shows_the_hardware_summary(make_window: WindowFactory) -> None:
    window = make_window(make_profile())
    summary = window.hardware_panel.summary_text()
    assert "AMD Ryzen 7 7700X" in summary
    assert "8 cores, 16 threads" in summary
    assert "32.0 GB RAM" in summary
    assert "GeForce RTX 3060 · 12.0 GB VRAM" in summary
    assert "11.5 GB free of 12.0 GB" in summary
    assert "360 GB/s" in summary
    assert "llama.cpp · CUDA" in summary
    assert window.hardware_panel.warnings_text() == ""
    assert "this computer" in window.status_text.text()
    assert window.windowTitle() == "LLM Workbench"


def test_window_says_it_is_checking_before_the_profile_arrives(
    make_window: WindowFactory, catalog_model_rows: list[ModelRow]
) -> None:
    window = make_window(None)
    assert "Checking your hardware" in window.hardware_panel.summary_text()
    assert window.table.rowCount() == len(catalog_model_rows)
    assert shown_verdict(window, catalog_model_rows[0]) == "Checking…"


def test_warning_banner_when_the_build_cannot_use_the_gpu(
    make_window: WindowFactory, catalog_model_rows: list[ModelRow]
) -> None:
    warning = (
        "An NVIDIA GPU is present but this llama.cpp build is CPU-only: reinstall "
        "llama-cpp-python with CMAKE_ARGS=-DGGML_CUDA=on to use it."
    )
    window = make_window(make_profile(backends=("cpu",), warnings=(warning,)))
    assert window.hardware_panel.warnings_text() == warning
    assert "llama.cpp · CPU only" in window.hardware_panel.summary_text()
    # llama.cpp cannot use the card, so nothing is offloaded.
    row = find_row(catalog_model_rows, "qwen3-8b", "Q4_K_M")
    assert verdict_label(window, row) == "CPU only"


def test_real_hardware_detection_fills_the_bar_in_the_background(
    qtbot: Any, make_window: WindowFactory
) -> None:
    from desktop.core.hardware import detect

    window = make_window(None)
    with qtbot.waitSignal(window.state.profileChanged, timeout=120_000) as blocker:
        task = run_in_thread(detect, window.state.set_real_profile)
    assert task.finished
    profile = blocker.args[0]
    assert profile is window.state.real_profile
    assert profile.memory.total_bytes > 0
    assert "Checking your hardware" not in window.hardware_panel.summary_text()
    assert "RAM" in window.hardware_panel.summary_text()
    assert all(window.table.plan_at(i) is not None for i in range(10))


# --------------------------------------------------------------------------- table


def test_table_fills_from_the_catalog_and_sorts_by_a_column(
    make_window: WindowFactory, catalog_model_rows: list[ModelRow]
) -> None:
    window = make_window(make_profile())
    panel = window.models_panel
    assert panel.proxy.rowCount() == len(catalog_model_rows) > 50
    assert panel.count_label.text() == f"{len(catalog_model_rows)} files"

    panel.view.sortByColumn(Column.SIZE, Qt.SortOrder.AscendingOrder)
    sizes = [panel.proxy.index(i, Column.SIZE).data(SORT_ROLE) for i in range(40)]
    assert sizes == sorted(sizes)
    panel.view.sortByColumn(Column.SIZE, Qt.SortOrder.DescendingOrder)
    sizes = [panel.proxy.index(i, Column.SIZE).data(SORT_ROLE) for i in range(40)]
    assert sizes == sorted(sizes, reverse=True)
    assert panel.proxy.index(0, Column.SIZE).data().endswith("GB")

    # By verdict (the default): everything that runs fully on the GPU comes first.
    panel.view.sortByColumn(Column.VERDICT, Qt.SortOrder.AscendingOrder)
    verdicts = [panel.proxy.index(i, Column.VERDICT).data() for i in range(panel.proxy.rowCount())]
    first_other = next(i for i, v in enumerate(verdicts) if v != "Full GPU")
    assert "Full GPU" not in verdicts[first_other:]
    assert verdicts[-1] in ("Too large", "No estimate")


def test_search_box_and_hide_too_large_filter_the_rows(make_window: WindowFactory) -> None:
    window = make_window(make_profile(vram_gib=8, ram_gib=16))
    panel = window.models_panel
    total = panel.proxy.rowCount()
    panel.search_box.setText("qwen3 q4_k_m")
    shown = panel.visible_rows()
    assert shown
    assert all("Qwen3" in r.name and r.quant == "Q4_K_M" for r in shown)
    assert panel.count_label.text() == f"{len(shown)} of {total} files"
    panel.search_box.clear()
    panel.hide_too_large.setChecked(True)
    verdicts = {
        window.table.plan_at(window.table.index_of(r.location)).verdict
        for r in panel.visible_rows()
        if r.spec is not None
    }
    assert Verdict.TOO_LARGE not in verdicts
    assert panel.proxy.rowCount() < total


def test_ctrl_f_focuses_the_search_box(qtbot: Any, make_window: WindowFactory) -> None:
    window = make_window(make_profile())
    window.show_tab("chat")
    with qtbot.waitActive(window):
        window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert window.tabs.currentIndex() == 0
    assert window.models_panel.search_box.hasFocus()


def test_context_control_changes_verdicts(
    make_window: WindowFactory, catalog_model_rows: list[ModelRow]
) -> None:
    window = make_window(make_profile(vram_gib=12, ram_gib=64), n_ctx=4096)
    row = find_row(catalog_model_rows, "llama-3.1-8b-instruct", "Q4_K_M")
    assert shown_verdict(window, row) == "Full GPU"
    combo = window.models_panel.context_combo
    combo.setCurrentIndex(combo.findData(131072))
    assert window.state.n_ctx == 131072
    # A 128k f16 KV cache of an 8B model is 16 GB: it cannot all be on a 12 GB card.
    assert shown_verdict(window, row).startswith("Partial")
    index = window.table.index_of(row.location)
    assert window.table.plan_at(index).n_ctx == 131072
    combo.setCurrentIndex(combo.findData(4096))
    assert shown_verdict(window, row) == "Full GPU"


def test_whole_table_reevaluates_for_a_new_context(
    qtbot: Any, make_window: WindowFactory, catalog_model_rows: list[ModelRow]
) -> None:
    window = make_window(make_profile())
    with qtbot.waitSignal(window.table.rowsEvaluated) as blocker:
        window.state.set_n_ctx(16384)
    # How long it takes (< 100 ms on a desktop) is tests/bench/bench_quick_paths.py's figure.
    assert blocker.args[0] >= 0
    assert len(catalog_model_rows) > 50
    plans = [window.table.plan_at(i) for i in range(window.table.rowCount())]
    contexts = {plan.n_ctx for plan in plans if plan is not None}
    assert 16384 in contexts and max(contexts) <= 16384  # every row evaluated again


# --------------------------------------------------------------------------- details


def test_detail_pane_shows_bars_reason_and_other_quants(
    qtbot: Any, make_window: WindowFactory, catalog_model_rows: list[ModelRow]
) -> None:
    window = make_window(make_profile())
    row = find_row(catalog_model_rows, "llama-3.1-8b-instruct", "Q4_K_M")
    assert window.select_model(row.location)
    pane = window.detail_pane
    assert pane.row is not None and pane.row.location == row.location
    assert pane.name_label.text() == "Llama 3.1 8B Instruct"
    assert pane.badge.text == "Full GPU"
    assert "tok/s" in pane.speed_label.text()
    bars = pane.bars.bars
    assert [b.label for b in bars] == ["NVIDIA GeForce RTX 3060 (CUDA)", "System RAM (CPU)"]
    assert dict(bars[0].parts)["weights"] > 4 * GIB
    assert pane.reason_label.text()
    assert "What to do" in pane.suggestion_label.text()
    assert pane.siblings.rowCount() >= 5
    quants = [pane.siblings.item(i, 0).text() for i in range(pane.siblings.rowCount())]
    assert "Q8_0 · bartowski" in quants  # the same quant from two uploaders is told apart
    # Clicking another quant selects it in the table.
    target = quants.index("Q6_K")
    with qtbot.waitSignal(window.models_panel.currentRowChanged) as blocker:
        pane.siblings.cellClicked.emit(target, 0)
    assert blocker.args[0].quant == "Q6_K"
    assert pane.row.quant == "Q6_K"


def test_download_button_emits_the_row(
    qtbot: Any, make_window: WindowFactory, catalog_model_rows: list[ModelRow]
) -> None:
    window = make_window(make_profile())
    row = find_row(catalog_model_rows, "qwen3-4b", "Q4_K_M")
    window.select_model(row.location)
    with qtbot.waitSignal(window.downloadRequested) as blocker:
        window.detail_pane.download_button.click()
    assert blocker.args[0].location == row.location


# --------------------------------------------------------------------------- load controls


def test_layers_slider_changes_bars_and_prediction(
    make_window: WindowFactory, catalog_model_rows: list[ModelRow]
) -> None:
    window = make_window(make_profile(vram_gib=8))
    row = find_row(catalog_model_rows, "llama-3.1-8b-instruct", "Q8_0")
    window.select_model(row.location)
    window.detail_pane.load_button.click()
    panel = window.load_panel
    assert window.side.currentWidget() is panel
    assert panel.auto_layers.isChecked()
    offloadable = panel.layers_slider.maximum()
    assert offloadable == 33
    auto_layers = panel.layers_slider.value()
    assert 0 < auto_layers < offloadable  # an 8.5 GB file on an 8 GB card: partial
    gpu_auto = panel.device_plans[0].weights_bytes
    speed_auto = panel.predicted_tokens_per_s

    panel.layers_slider.setValue(0)
    assert not panel.auto_layers.isChecked()
    assert panel.layers_value.text() == f"0 / {offloadable}"
    assert panel.device_plans[0].weights_bytes == 0
    assert panel.bars.bars[0].total_bytes == 0
    assert panel.predicted_tokens_per_s is not None and speed_auto is not None
    assert panel.predicted_tokens_per_s < speed_auto
    assert panel.device_plans[-1].weights_bytes > gpu_auto

    panel.layers_slider.setValue(offloadable)  # everything: more than the card holds
    assert not panel.bars.bars[0].fits
    assert "Does not fit" in panel.fit_label.text()

    panel.auto_layers.setChecked(True)
    assert panel.layers_slider.value() == auto_layers
    assert panel.bars.bars[0].fits


def test_load_button_emits_path_and_settings(
    qtbot: Any, make_window: WindowFactory, catalog_model_rows: list[ModelRow], tmp_path: Path
) -> None:
    catalog_row = find_row(catalog_model_rows, "qwen3-0.6b", "Q4_K_M")
    file = tmp_path / catalog_row.file_name
    file.write_bytes(b"GGUF")
    local = ModelRow.local(file, catalog_row.spec)
    window = make_window(make_profile(), rows=[*catalog_model_rows, local])
    # The catalog row now knows its file is on this computer.
    assert window.table.is_downloaded(catalog_row)
    window.select_model(catalog_row.location)
    window.open_load_controls()
    panel = window.load_panel
    combo = panel.kv_combo
    combo.setCurrentIndex(combo.findData("q8_0"))
    assert panel.flash_attn.isChecked()  # a quantized V cache needs flash attention
    panel.threads.setValue(2)
    assert panel.load_button.isEnabled()
    with qtbot.waitSignal(panel.loadRequested) as blocker:
        panel.load_button.click()
    (chosen,) = blocker.args
    assert chosen.path == str(file)
    request = chosen.load  # the worker's request, made from the plan the panel shows
    assert chosen.plan is not None and chosen.plan.settings == chosen.settings
    assert chosen.row == panel.row and chosen.spec is catalog_row.spec
    assert request.kv_type == "q8_0"
    assert request.flash_attn
    assert request.n_threads == 2
    assert request.n_gpu_layers == panel.layers_slider.value() > 0
    assert request.n_ctx == 4096

    panel.set_load_progress(0.5)
    assert panel.progress.value() == 500
    by_device = {
        "CUDA0": {"weights": 350 * 1024**2, "kv": 120 * 1024**2, "compute": 300 * 1024**2},
        "CPU_Mapped": {"weights": 160 * 1024**2},
        "CPU": {"output": 600_000, "compute": 10 * 1024**2},
    }
    panel.set_loaded(by_device, n_gpu_layers=29, load_seconds=1.25)
    assert "Loaded in 1.2 s" in panel.status_label.text()
    names = [panel.comparison.item(i, 0).text() for i in range(panel.comparison.rowCount())]
    assert names[0] == "Model weights" and names[-1] == "Total"
    assert panel.comparison.item(0, 2).text() == "510 MB"


def test_catalog_row_can_be_planned_but_not_loaded_before_download(
    make_window: WindowFactory, catalog_model_rows: list[ModelRow]
) -> None:
    window = make_window(make_profile())
    row = find_row(catalog_model_rows, "qwen3-4b", "Q4_K_M")
    window.select_model(row.location)
    window.detail_pane.load_button.click()
    panel = window.load_panel
    assert panel.layers_slider.isEnabled()
    assert not panel.load_button.isEnabled()
    assert "Not downloaded" in panel.status_label.text()
    panel.back_button.click()
    assert window.side.currentWidget() is window.detail_pane


# --------------------------------------------------------------------------- what if


def test_what_if_hardware_flips_the_verdict(
    qtbot: Any, make_window: WindowFactory, catalog_model_rows: list[ModelRow]
) -> None:
    window = make_window(make_profile(gpu=None, ram_gib=32))
    row = find_row(catalog_model_rows, "qwen3-8b", "Q4_K_M")
    assert shown_verdict(window, row) == "CPU only"
    assert "No GPU found" in window.hardware_panel.summary_text()

    with qtbot.waitSignal(window.state.estimatesChanged):
        window.what_if.choose("GeForce RTX 4090", 32 * GIB)
    assert shown_verdict(window, row) == "Full GPU"
    assert window.state.is_what_if
    assert "GeForce RTX 4090" in window.hardware_panel.summary_text()
    assert "GeForce RTX 4090" in window.hardware_panel.info_banner.text()
    assert "GeForce RTX 4090" in window.status_text.text()

    window.what_if.choose(None)
    assert not window.state.is_what_if
    assert shown_verdict(window, row) == "CPU only"
    assert not window.hardware_panel.info_banner.isVisibleTo(window)


def test_what_if_apple_offers_its_memory_sizes(make_window: WindowFactory) -> None:
    window = make_window(make_profile(gpu=None))
    window.what_if.choose("Apple M3 Max")
    sizes = [window.what_if.ram_combo.itemData(i) for i in range(window.what_if.ram_combo.count())]
    assert sizes == [36 * GIB, 48 * GIB, 64 * GIB, 96 * GIB, 128 * GIB]
    assert window.state.profile is not None
    assert window.state.profile.gpus[0].unified_memory


# --------------------------------------------------------------------------- shell


def test_tabs_have_placeholders_that_can_be_replaced(make_window: WindowFactory) -> None:
    window = make_window(make_profile())
    titles = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert titles == ["Models", "Chat", "Monitor", "Downloads"]
    chat = QLabel("chat goes here")
    window.set_chat_widget(chat)
    assert window.tabs.widget(1) is chat
    assert window.tabs.tabText(1) == "Chat"
    assert window.tabs.currentIndex() == 0
    monitor, downloads = QWidget(), QWidget()
    window.set_monitor_widget(monitor)
    window.set_downloads_widget(downloads)
    window.show_tab("downloads")
    assert window.tabs.currentWidget() is downloads


def test_widgets_have_accessible_names(make_window: WindowFactory) -> None:
    window = make_window(make_profile())
    for widget in (
        window.models_panel.search_box,
        window.models_panel.context_combo,
        window.models_panel.view,
        window.what_if.gpu_combo,
        window.load_panel.layers_slider,
        window.load_panel.load_button,
        window.detail_pane.bars,
    ):
        assert widget.accessibleName(), widget


def test_geometry_and_last_model_persist_across_restarts(
    make_window: WindowFactory, catalog_model_rows: list[ModelRow], tmp_path: Path
) -> None:
    path = tmp_path / "settings.json"
    window = make_window(make_profile(), settings_path=path)
    window.resize(1100, 700)
    window.move(40, 30)
    row = find_row(catalog_model_rows, "gemma-3-4b-it", "Q4_0")
    window.select_model(row.location)
    window.models_panel.context_combo.setCurrentIndex(
        window.models_panel.context_combo.findData(16384)
    )
    window.close()
    saved = load_settings(path)
    assert saved.last_model == row.location
    assert saved.n_ctx == 16384
    assert saved.window_geometry

    again = make_window(make_profile(), settings=saved, settings_path=path)
    # The offscreen screen is 800 px wide, so Qt fits the width to it; the height is kept.
    assert again.size().height() == 700
    assert again.state.n_ctx == 16384
    assert again.models_panel.context_combo.currentData() == 16384
    current = again.models_panel.current_row()
    assert current is not None and current.location == row.location


def test_settings_reserve_changes_every_verdict(
    make_window: WindowFactory, catalog_model_rows: list[ModelRow], tmp_path: Path
) -> None:
    path = tmp_path / "settings.json"
    window = make_window(make_profile(vram_gib=12), settings_path=path)
    row = find_row(catalog_model_rows, "qwen3-14b", "Q4_K_M")
    assert verdict_label(window, row) == "Full GPU"
    window.apply_settings(UserSettings(vram_reserve_bytes=4 * GIB))
    assert window.state.reserve_bytes == 4 * GIB
    assert verdict_label(window, row).startswith("Partial")
    assert load_settings(path).vram_reserve_bytes == 4 * GIB


# --------------------------------------------------------------------------- themes


def _contrast(a: QColor, b: QColor) -> float:
    def lum(c: QColor) -> float:
        def ch(v: float) -> float:
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

        return 0.2126 * ch(c.redF()) + 0.7152 * ch(c.greenF()) + 0.0722 * ch(c.blueF())

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


# The app's own dark palette (Settings > Theme > Dark) stands in for a dark desktop theme;
# panel_screenshots, screenshots and test_monitor_panel import it from here.
dark_palette = theme.dark_palette


@pytest.fixture
def dark_theme(qapp: QApplication) -> Any:
    before = qapp.palette()
    qapp.setPalette(dark_palette())
    yield qapp.palette()
    qapp.setPalette(before)


def test_dark_palette_renders_readably(
    make_window: WindowFactory,
    catalog_model_rows: list[ModelRow],
    dark_theme: QPalette,
    tmp_path: Path,
) -> None:
    warning = "An NVIDIA GPU is present but this llama.cpp build is CPU-only."
    window = make_window(make_profile(warnings=(warning,)))
    window.select_model(find_row(catalog_model_rows, "llama-3.1-8b-instruct", "Q4_K_M").location)
    image = window.grab().toImage()
    assert not image.isNull()
    image.save(str(tmp_path / "dark.png"))
    # The window background follows the palette: mostly dark pixels.
    samples = [
        image.pixelColor(x, y).lightness()
        for x in range(0, image.width(), 17)
        for y in range(0, image.height(), 13)
    ]
    assert sum(samples) / len(samples) < 110
    assert max(samples) > 200  # light text is there

    window_color = dark_theme.color(QPalette.ColorRole.Window)
    # Text comes from palette roles, and hints stay readable on the dark background.
    title = window.detail_pane.name_label
    assert title.palette().color(QPalette.ColorRole.WindowText) == dark_theme.color(
        QPalette.ColorRole.WindowText
    )
    hints = window.findChildren(HintLabel)
    assert hints
    for hint in hints:
        color = hint.palette().color(QPalette.ColorRole.WindowText)
        assert _contrast(color, window_color) > 3.0, hint.text()
    banner = window.hardware_panel.warning_banner
    assert banner.isVisibleTo(window)
    banner_image = banner.grab().toImage()
    centre = banner_image.pixelColor(banner_image.width() - 20, banner_image.height() // 2)
    assert centre.lightness() < 128  # a dark banner in a dark theme, not a glaring one


def test_down_from_the_search_box_picks_the_first_result(make_window: WindowFactory) -> None:
    window = make_window(make_profile())
    panel = window.models_panel
    panel.search_box.setText("Qwen3 8B")
    panel.search_box.setFocus()
    QTest.keyClick(panel.search_box, Qt.Key.Key_Down)
    row = panel.current_row()
    assert row is not None and row.name == "Qwen3 8B"
    assert window.detail_pane.name_label.text().startswith("Qwen3 8B")
