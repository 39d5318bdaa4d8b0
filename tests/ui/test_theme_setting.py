"""The light/dark theme setting: "system" by default, saved and read back, chosen in the
Settings dialog, and applied to the whole running window at once (widgets, painted badges and
the monitor's plots), and back to the system's palette."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import WindowFactory, find_row, make_profile
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication
from test_monitor_panel import Clock, feed, make_monitor

from desktop.core.rows import ModelRow
from desktop.core.settings import UserSettings, load_settings, save_settings
from desktop.ui.monitor_panel import MonitorPanel
from desktop.ui.settings_dialog import SettingsDialog
from desktop.ui.theme import dark_palette, is_dark, light_palette

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "h15b" / "after"


@pytest.fixture
def system_palette(qapp: QApplication) -> Iterator[QPalette]:
    """The palette the platform gives, restored after the test whatever it switched to."""
    qapp.setPalette(QPalette())
    yield QPalette(qapp.palette())
    qapp.setPalette(QPalette())


def test_the_theme_setting_defaults_to_the_system_and_is_saved(tmp_path: Path) -> None:
    assert UserSettings().theme == "system"
    assert UserSettings.from_dict({"theme": "dark"}).theme == "dark"
    assert UserSettings.from_dict({"theme": "light"}).theme == "light"
    assert UserSettings.from_dict({"theme": "purple"}).theme == "system"
    assert UserSettings.from_dict({"theme": 1}).theme == "system"
    path = tmp_path / "settings.json"
    save_settings(UserSettings(theme="dark"), path)
    assert load_settings(path).theme == "dark"


def test_the_settings_dialog_offers_the_theme(qtbot: Any) -> None:
    dialog = SettingsDialog(UserSettings(theme="light"))
    qtbot.addWidget(dialog)
    assert dialog.theme.currentData() == "light"
    labels = [dialog.theme.itemText(i) for i in range(dialog.theme.count())]
    assert labels == ["Follow the system", "Light", "Dark"]
    dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))
    assert dialog.result_settings().theme == "dark"
    dialog.theme.setCurrentIndex(dialog.theme.findData("system"))
    assert dialog.result_settings().theme == "system"


def _mean_lightness(window: Any) -> float:
    image = window.grab().toImage()
    samples = [
        image.pixelColor(x, y).lightness()
        for x in range(0, image.width(), 19)
        for y in range(0, image.height(), 17)
    ]
    return sum(samples) / len(samples)


def test_switching_the_theme_repaints_the_running_window(
    qapp: QApplication,
    qtbot: Any,
    make_window: WindowFactory,
    catalog_model_rows: list[ModelRow],
    system_palette: QPalette,
) -> None:
    window = make_window(make_profile())
    clock = Clock()
    monitor = make_monitor(clock, gpu=True)
    feed(monitor, clock, seconds=5, tokens_per_s=30)
    panel = MonitorPanel(monitor, clock=clock)
    window.set_monitor_widget(panel)
    window.resize(1320, 840)
    window.select_model(find_row(catalog_model_rows, "llama-3.1-8b-instruct", "Q4_K_M").location)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    window.apply_settings(window.settings.replace(theme="dark"))
    qtbot.wait(50)
    dark = dark_palette().color(QPalette.ColorRole.Window)
    assert qapp.palette().color(QPalette.ColorRole.Window) == dark
    assert window.palette().color(QPalette.ColorRole.Window) == dark
    assert window.detail_pane.palette().color(QPalette.ColorRole.WindowText) == dark_palette(
    ).color(QPalette.ColorRole.WindowText)
    assert _mean_lightness(window) < 110
    # The plots paint their own background: it follows the palette too.
    assert panel.ram_plot.backgroundBrush().color() == dark_palette().color(
        QPalette.ColorRole.Base
    )
    window.grab().save(str(ARTIFACTS / "theme-dark.png"))

    window.apply_settings(window.settings.replace(theme="light"))
    qtbot.wait(50)
    assert qapp.palette().color(QPalette.ColorRole.Window) == light_palette().color(
        QPalette.ColorRole.Window
    )
    assert not is_dark(window.palette())
    assert _mean_lightness(window) > 170
    assert panel.ram_plot.backgroundBrush().color() == light_palette().color(
        QPalette.ColorRole.Base
    )
    window.grab().save(str(ARTIFACTS / "theme-light.png"))

    window.apply_settings(window.settings.replace(theme="system"))
    qtbot.wait(50)
    for role in (QPalette.ColorRole.Window, QPalette.ColorRole.Text, QPalette.ColorRole.Base):
        assert qapp.palette().color(role) == system_palette.color(role)
    assert window.settings.theme == "system"
