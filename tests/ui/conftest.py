"""Fixtures for the window tests: fake machines (no real detection), catalog rows, windows.

Every window here is built with ``settings_path`` in a temporary folder (or none), so no
test reads or writes the person's own settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop.core.catalog import load_catalog
from desktop.core.gpu_specs import load_gpu_specs
from desktop.core.hardware import HardwareProfile
from desktop.core.rows import ModelRow, catalog_rows
from desktop.core.settings import UserSettings
from desktop.ui.main_window import MainWindow
from desktop.ui.models_table import ModelsTableModel
from desktop.ui.state import WorkbenchState

GIB = 1024**3

_CPU = {
    "brand": "AMD Ryzen 7 7700X 8-Core Processor",
    "architecture": "x86_64",
    "physical_cores": 8,
    "logical_cores": 16,
    "features": ["sse3", "avx", "avx2", "fma", "avx512f"],
}


def make_profile(
    *,
    gpu: str | None = "NVIDIA GeForce RTX 3060",
    vram_gib: float = 12,
    ram_gib: float = 32,
    backends: tuple[str, ...] = ("cpu", "cuda"),
    warnings: tuple[str, ...] = (),
) -> HardwareProfile:
    """A machine in the ``hardware --json`` shape, as a what-if file would describe it."""
    gpus = []
    if gpu is not None:
        vram = int(vram_gib * GIB)
        gpus.append(
            {
                "name": gpu,
                "vram_total_bytes": vram,
                "vram_free_bytes": vram - GIB // 2,
                "vram_used_bytes": GIB // 2,
                "bandwidth_bytes_per_s": 360_000_000_000,
            }
        )
    return HardwareProfile.from_dict(
        {
            "cpu": _CPU,
            "memory": {
                "total_bytes": int(ram_gib * GIB),
                "available_bytes": int(ram_gib * GIB * 0.75),
                "bandwidth_bytes_per_s": 60_000_000_000,
                "bandwidth_source": "measured",
            },
            "gpus": gpus,
            "backends": {
                "backends": list(backends),
                "llama_cpp_version": "0.3.16",
                "checked": True,
            },
            "warnings": list(warnings),
        }
    )


@pytest.fixture(scope="session")
def catalog_model_rows() -> list[ModelRow]:
    """Every catalog variant as a row (ModelRow is immutable: safe to share)."""
    return catalog_rows(load_catalog())


@pytest.fixture(scope="session")
def gpu_specs() -> list[Any]:
    return load_gpu_specs()


def find_row(rows: list[ModelRow], model_id: str, quant: str) -> ModelRow:
    """The first catalog row of a model id and quant."""
    for row in rows:
        if row.group == f"catalog:{model_id}" and row.quant == quant:
            return row
    raise LookupError(f"{model_id} {quant} is not in the catalog")


WindowFactory = Callable[..., MainWindow]


@pytest.fixture
def make_window(
    qtbot: Any, catalog_model_rows: list[ModelRow], gpu_specs: list[Any]
) -> Iterator[WindowFactory]:
    """Build a window over the catalog with a fake machine (or none: "still detecting")."""

    def build(
        profile: HardwareProfile | None = None,
        *,
        rows: list[ModelRow] | None = None,
        settings: UserSettings | None = None,
        settings_path: Path | None = None,
        n_ctx: int = 4096,
        show: bool = True,
    ) -> MainWindow:
        settings = settings or UserSettings(n_ctx=n_ctx)
        state = WorkbenchState(n_ctx=settings.n_ctx, reserve_bytes=settings.vram_reserve_bytes)
        table = ModelsTableModel(state)
        window = MainWindow(
            state,
            table,
            gpu_specs=gpu_specs,
            settings=settings,
            settings_path=settings_path,
        )
        qtbot.addWidget(window)
        table.set_rows(catalog_model_rows if rows is None else rows)
        if profile is not None:
            state.set_real_profile(profile)
        if show:
            window.show()
            qtbot.waitExposed(window)
        return window

    yield build


@pytest.fixture(autouse=True)
def _no_real_hub_search(monkeypatch: pytest.MonkeyPatch) -> None:
    """Typing in the Models tab's search box searches Hugging Face; a window test that is not
    about that (tests/ui/test_hub_search_ui.py switches it back on) never reaches the real Hub."""
    from desktop.ui.search_rows import HubSearch

    monkeypatch.setattr(HubSearch, "enabled", False)
