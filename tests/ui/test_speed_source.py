"""Where predicted speeds come from is said in the window, and can be measured from it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from conftest import make_profile

from desktop.core.calibration import DEFAULT_FIGURES
from desktop.ui.hardware_panel import HardwarePanel
from desktop.ui.state import WorkbenchState


def test_the_hardware_bar_says_where_speeds_come_from_and_measures(qtbot: Any) -> None:
    state = WorkbenchState()
    panel = HardwarePanel(state)
    qtbot.addWidget(panel)
    state.set_real_profile(make_profile(gpu=None))
    assert panel.speed_text() == "Speeds estimated · not measured here yet"
    assert panel.calibrate_button.text() == "Measure"
    assert not panel.calibrate_button.isHidden()
    with qtbot.waitSignal(panel.calibrateRequested):
        panel.calibrate_button.click()
    assert not panel.calibrate_button.isEnabled()
    assert "Measuring this computer" in panel.speed_text()
    panel.set_calibration_progress("Speed predictions are now calibrated.", running=False)
    assert panel.calibrate_button.isEnabled()

    calibrated = replace(DEFAULT_FIGURES, runs=3, per_token_seconds=0.002)
    estimates: list[None] = []
    state.estimatesChanged.connect(lambda: estimates.append(None))
    state.set_figures(calibrated)
    assert estimates, "new figures re-evaluate every verdict and speed"
    assert panel.speed_text() == "Speeds calibrated · from 3 runs on this computer"
    assert panel.speed_card.toolTip() == "calibrated from 3 runs on this computer"
    assert panel.calibrate_button.text() == "Measure again"
    assert state.devices()[-1].figures == calibrated

    state.set_what_if(make_profile(), "RTX 3060")
    assert state.devices()[-1].figures == DEFAULT_FIGURES  # another machine: not ours
    assert panel.speed_text() == "Speeds estimated · from bandwidth"
    assert panel.calibrate_button.isHidden()
