"""Render the window in a few states to PNG files, to look at (not a test).

    QT_QPA_PLATFORM=offscreen .venv/bin/python tests/ui/screenshots.py [OUT_DIR]

OUT_DIR defaults to test-artifacts/ (git-ignored). The machine is a fake one (RTX 3060 12 GB,
32 GB RAM) so the pictures are the same everywhere.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication, QWidget


def settle(app: QApplication, ms: int = 50) -> None:
    """Let layouts and paints finish (a script, not a test: a short event loop is fine)."""
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def save(widget: QWidget, out: Path, name: str) -> None:
    path = out / name
    widget.grab().save(str(path))
    print(path)


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "test-artifacts")
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication(sys.argv[:1])

    from conftest import GIB, find_row, make_profile
    from test_main_window import dark_palette

    from desktop.core.catalog import load_catalog
    from desktop.core.gpu_specs import load_gpu_specs
    from desktop.core.rows import catalog_rows
    from desktop.ui.main_window import MainWindow
    from desktop.ui.models_table import ModelsTableModel
    from desktop.ui.state import WorkbenchState

    rows = catalog_rows(load_catalog())
    specs = load_gpu_specs()

    def window(profile: object | None, n_ctx: int = 8192) -> MainWindow:
        state = WorkbenchState(n_ctx=n_ctx)
        table = ModelsTableModel(state, rows)
        win = MainWindow(state, table, gpu_specs=specs)
        win.resize(1320, 840)
        win.show()
        if profile is not None:
            state.set_real_profile(profile)  # type: ignore[arg-type]
        settle(app)
        return win

    detecting = window(None)
    save(detecting, out, "01-detecting.png")
    detecting.close()

    win = window(make_profile())
    win.select_model(find_row(rows, "llama-3.1-8b-instruct", "Q4_K_M").location)
    settle(app)
    save(win, out, "02-main-light.png")

    win.select_model(find_row(rows, "qwen3-14b", "Q4_K_M").location)
    win.open_load_controls()
    win.load_panel.set_gpu_layers(30)
    settle(app)
    save(win, out, "03-load-partial.png")
    win.load_panel.set_gpu_layers(41)
    settle(app)
    save(win, out, "04-load-too-many-layers.png")
    win.show_details()

    win.models_panel.context_combo.setCurrentIndex(win.models_panel.context_combo.findData(131072))
    win.select_model(find_row(rows, "gemma-3-27b-it", "Q4_K_M").location)
    settle(app)
    save(win, out, "05-context-128k.png")
    win.close()

    warning = (
        "An NVIDIA GPU is present but this llama.cpp build is CPU-only: reinstall "
        "llama-cpp-python with CMAKE_ARGS=-DGGML_CUDA=on to use it."
    )
    cpu_build = window(make_profile(backends=("cpu",), warnings=(warning,)))
    cpu_build.select_model(find_row(rows, "qwen3-8b", "Q4_K_M").location)
    settle(app)
    save(cpu_build, out, "06-cpu-only-build-warning.png")
    cpu_build.what_if.choose("GeForce RTX 4090", 64 * GIB)
    settle(app)
    save(cpu_build, out, "07-what-if-4090.png")
    cpu_build.close()

    before = app.palette()
    app.setPalette(dark_palette())
    dark = window(make_profile(warnings=(warning,)))
    dark.select_model(find_row(rows, "gemma-3-12b-it", "Q4_K_M").location)
    settle(app)
    save(dark, out, "08-main-dark.png")
    dark.open_load_controls()
    dark.load_panel.set_gpu_layers(20)
    settle(app)
    save(dark, out, "09-load-dark.png")
    dark.close()
    app.setPalette(before)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
