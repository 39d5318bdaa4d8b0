"""A what-if machine is a whole machine (issue 15, item 5): picking a GPU picks a typical
desktop's CPU and RAM too (sourced bandwidth), and the person can pick another class."""

from __future__ import annotations

from typing import Any

from conftest import GIB, WindowFactory, find_row

from desktop.core.hardware import HardwareProfile
from desktop.core.machine_classes import DEFAULT_CLASS, MACHINE_CLASSES, THIS_COMPUTER, apply_class
from desktop.core.rows import ModelRow

#: This test machine: a 2-core VM with slow RAM and no GPU (as in the issue).
SMALL_VM = HardwareProfile.from_dict(
    {
        "cpu": {
            "brand": "AMD EPYC",
            "architecture": "x86_64",
            "physical_cores": 2,
            "logical_cores": 2,
            "features": ["avx2", "fma"],
        },
        "memory": {
            "total_bytes": 24 * GIB,
            "available_bytes": 22 * GIB,
            "bandwidth_bytes_per_s": 14_600_000_000,
            "bandwidth_source": "measured",
        },
        "gpus": [],
        "backends": {"backends": ["cpu"], "llama_cpp_version": "0.3.36", "checked": True},
    }
)


def test_the_classes_bandwidth_is_jedec_rate_times_channels_times_8_bytes() -> None:
    by_key = {c.key: c for c in MACHINE_CLASSES}
    assert by_key["laptop-ddr4"].bandwidth_bytes_per_s == 3200 * 10**6 * 2 * 8  # 51.2 GB/s
    assert by_key["desktop-ddr5"].bandwidth_bytes_per_s == 5200 * 10**6 * 2 * 8  # 83.2 GB/s
    assert by_key["workstation-ddr5"].bandwidth_bytes_per_s == 5200 * 10**6 * 8 * 8
    assert all(c.source.count("https://") == 1 and "JEDEC" in c.source for c in MACHINE_CLASSES)
    unified = {"gpus": [{"unified_memory": True}], "memory": {"bandwidth_bytes_per_s": 5}}
    assert apply_class(unified, DEFAULT_CLASS)["memory"]["bandwidth_bytes_per_s"] == 5
    assert apply_class(unified, THIS_COMPUTER) is unified


def speed(window: Any, row: ModelRow) -> float:
    table = window.table
    plan = table.plan_at(table.index_of(row.location))
    assert plan is not None and plan.predicted_tokens_per_s
    return float(plan.predicted_tokens_per_s)


def test_a_gpu_comes_in_a_typical_desktop_and_the_class_can_change(
    make_window: WindowFactory, catalog_model_rows: list[ModelRow]
) -> None:
    window = make_window(SMALL_VM)
    what_if, state = window.what_if, window.state
    llama = find_row(catalog_model_rows, "llama-3.1-8b-instruct", "Q8_0")
    assert what_if.cpu_combo.isHidden()

    what_if.choose("GeForce RTX 4060", 16 * GIB)
    assert not what_if.cpu_combo.isHidden()
    assert what_if.cpu_combo.currentData() == DEFAULT_CLASS
    profile = state.profile
    assert profile is not None
    assert profile.memory.bandwidth_bytes_per_s == 83_200_000_000
    assert profile.cpu.physical_cores == 8
    assert "83.2 GB/s" in what_if.cpu_combo.toolTip() and "amd.com" in what_if.cpu_combo.toolTip()
    assert "desktop (8 cores, 83.2 GB/s RAM)" in state.what_if_label
    assert "83.2 GB/s" in window.hardware_panel.summary_text()
    desktop = speed(window, llama)

    speeds = {}
    for key in ("laptop-ddr4", "workstation-ddr5", THIS_COMPUTER):
        what_if.choose("GeForce RTX 4060", 16 * GIB, cpu_class=key)
        speeds[key] = speed(window, llama)
    # Partial offload: the layers left in RAM run at the RAM's speed.
    assert speeds[THIS_COMPUTER] < speeds["laptop-ddr4"] < desktop < speeds["workstation-ddr5"]
    assert state.profile is not None
    assert state.profile.memory.bandwidth_bytes_per_s == 14_600_000_000  # this computer's
    assert state.profile.cpu.physical_cores == 2


def test_an_apple_chip_is_its_own_whole_machine(make_window: WindowFactory) -> None:
    window = make_window(SMALL_VM)
    window.what_if.choose("Apple M3 Max")
    assert window.what_if.cpu_combo.isHidden()
    profile = window.state.profile
    assert profile is not None and profile.gpus[0].unified_memory
    assert profile.memory.bandwidth_bytes_per_s == profile.gpus[0].bandwidth_bytes_per_s


def test_the_detail_pane_leads_with_the_fastest_change(
    make_window: WindowFactory, catalog_model_rows: list[ModelRow]
) -> None:
    window = make_window(SMALL_VM)
    window.what_if.choose("GeForce RTX 4060", 16 * GIB)
    llama = find_row(catalog_model_rows, "llama-3.1-8b-instruct", "Q8_0")
    assert window.select_model(llama.location)
    text = window.detail_pane.suggestion_label.text()
    assert text.startswith("<b>What to do:</b> Q6_K fits fully on the GPU at ~"), text
    assert "(as it is: ~" in text and "Also: the q8_0 KV cache" in text
