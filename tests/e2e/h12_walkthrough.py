"""A new user's path through the Hugging Face search, in the real window, to look at (not a test).

    xvfb-run -a -s "-screen 0 1440x900x24" .venv/bin/python tests/e2e/h12_walkthrough.py [OUT]

The window is the app's own (``desktop.app.assemble``: the real engine worker, downloads,
chat), on this computer's detected hardware, against the local test Hub (HF_ENDPOINT points
at it, as a mirror would). Steps, each saved as a PNG under OUT (default test-artifacts/h12):

1. the Models tab before anything is typed: the starter picks by size class;
2. "qwen" typed: the catalog's Qwen rows and the Hub's repos with verdicts, the visible repos
   made exact in the background;
3. the Qwen3 8B repo opened (double-click): its quantizations, each exact from its header;
4. sorted by "Fits?" with "Only full GPU" on, for a what-if 12 GB card;
5. a small Qwen3 file downloaded from the test Hub (the Downloads tab);
6. that file loaded by llama.cpp (the load status says so).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests"), str(REPO_ROOT / "tests" / "unit")]

from hub_server import (  # noqa: E402 - the path above first
    QWEN8B_REPO,
    QWEN_TINY_REPO,
    HubServer,
    add_search_world,
    write_search_models,
)

TINY_FILE = "qwen3-tiny-Q4_0.gguf"


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else REPO_ROOT / "test-artifacts" / "h12")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    scratch = Path(tempfile.mkdtemp(prefix="h12-walk-"))
    print("writing the test Hub's files...", flush=True)
    files = write_search_models(scratch / "hub-files")
    hub = HubServer()
    hub.start()
    os.environ["HF_ENDPOINT"] = hub.url  # before huggingface_hub is imported
    os.environ["XDG_CACHE_HOME"] = str(scratch / "cache")
    os.environ["XDG_DATA_HOME"] = str(scratch / "data")
    os.environ["XDG_CONFIG_HOME"] = str(scratch / "config")
    add_search_world(hub, files)
    try:
        return _walk(out, scratch)
    finally:
        import huggingface_hub

        huggingface_hub.close_session()
        hub.stop()


def _walk(out: Path, scratch: Path) -> int:
    from PySide6.QtCore import QEventLoop, Qt, QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QAbstractItemView, QApplication

    from desktop.app import _detect_hardware, _load_catalog_rows, _scan_library, assemble
    from desktop.core.settings import UserSettings
    from desktop.ui.models_table import Column

    app = QApplication(sys.argv[:1])  # noqa: F841 - kept alive for the walk
    models_dir = scratch / "models"
    models_dir.mkdir()
    settings = UserSettings(models_dir=str(models_dir))
    parts = assemble(settings, scratch / "settings.json", history_path=scratch / "history.db")
    window, table, state = parts.window, parts.table, parts.state
    panel = window.models_panel
    profile, _machine, figures = _detect_hardware()
    state.set_figures(figures)
    state.set_real_profile(profile)
    table.set_source_rows("catalog", _load_catalog_rows())
    window.resize(1440, 880)
    window.show()
    parts.monitor.start()

    def settle(ms: int = 300) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    def wait(what: str, done: Callable[[], bool], timeout_s: float = 60) -> None:
        end = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > end:
                raise SystemExit(f"timed out waiting for {what}")
            settle(100)

    def shot(name: str) -> None:
        settle(400)
        path = out / name
        window.grab().save(str(path))
        print(path, flush=True)

    def proxy_index(repo: str) -> Any:
        for i, row in enumerate(panel.visible_rows()):
            if row.hub is not None and row.hub.repo_id == repo:
                return panel.proxy.index(i, Column.NAME)
        raise SystemExit(f"{repo} is not shown")

    def rows_of(repo: str) -> list[Any]:
        return [r for r in table.rows() if r.hub is not None and r.hub.repo_id == repo]

    settle(800)
    shot("01-starter-picks.png")

    panel.search_box.setFocus()
    QTest.keyClicks(panel.search_box, "qwen")
    wait("Hub rows", lambda: bool([r for r in table.rows() if r.hub is not None]))
    panel.view.sortByColumn(Column.VERDICT, Qt.SortOrder.AscendingOrder)
    # The Hub's repos sort among the catalog's rows; scroll down to them as a person would.
    settle(200)
    panel.view.scrollTo(proxy_index(QWEN8B_REPO), QAbstractItemView.ScrollHint.PositionAtTop)
    wait(
        "the visible repos' exact verdicts",
        lambda: any(
            r.spec is not None and r.spec.source == "header" for r in rows_of(QWEN8B_REPO)
        ),
    )
    shot("02-typed-qwen.png")

    # Double-click the Qwen3 8B repo's row.

    index = proxy_index(QWEN8B_REPO)
    panel.view.scrollTo(index)
    rect = panel.view.visualRect(index)
    QTest.mouseClick(panel.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    QTest.mouseDClick(panel.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    wait(
        "the opened repo's exact rows",
        lambda: len(rows_of(QWEN8B_REPO)) == 2
        and all(r.spec is not None and r.spec.source == "header" for r in rows_of(QWEN8B_REPO)),
    )
    panel.select_location(f"{QWEN8B_REPO}:Qwen3-8B-Q4_K_M.gguf")
    shot("03-opened-qwen3-8b.png")

    # What if this computer had a 12 GB card: sort by fit, only what fits fully.
    sys.path.insert(0, str(REPO_ROOT / "tests" / "ui"))
    from conftest import make_profile

    state.set_what_if(make_profile(vram_gib=12), "RTX 3060 12 GB")
    panel.full_gpu_only.setChecked(True)
    panel.view.sortByColumn(Column.VERDICT, Qt.SortOrder.AscendingOrder)
    shot("04-only-full-gpu-what-if-12gb.png")
    panel.full_gpu_only.setChecked(False)
    state.set_what_if(None)

    # Open the tiny repo and download its Q4_0 file.
    index = proxy_index(QWEN_TINY_REPO)
    panel.view.scrollTo(index)
    rect = panel.view.visualRect(index)
    QTest.mouseClick(panel.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    QTest.mouseDClick(panel.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    location = f"{QWEN_TINY_REPO}:{TINY_FILE}"
    wait("the tiny repo's files", lambda: table.index_of(location) is not None)
    wait(
        "its exact verdicts",
        lambda: all(
            r.spec is not None and r.spec.source == "header" for r in rows_of(QWEN_TINY_REPO)
        ),
    )
    panel.select_location(location)
    settle(300)
    QTest.mouseClick(window.detail_pane.download_button, Qt.MouseButton.LeftButton)
    done: list[str] = []
    parts.downloads.finished.connect(lambda _id, path: done.append(path))
    parts.downloads.failed.connect(lambda _id, message: done.append("FAILED " + message))
    wait("the download", lambda: bool(done))
    if done[0].startswith("FAILED"):
        raise SystemExit(done[0])
    shot("05-downloaded.png")

    table.set_source_rows("local", _scan_library([models_dir]))  # as the app's rescan does
    local = next(r for r in table.rows() if r.source == "local" and r.file_name == TINY_FILE)
    window.show_tab("models")
    window.select_model(local.location)
    settle(300)
    QTest.mouseClick(window.detail_pane.load_button, Qt.MouseButton.LeftButton)
    settle(500)
    loaded: list[object] = []
    parts.engine.loaded.connect(loaded.append)
    load_panel = window.load_panel
    QTest.mouseClick(load_panel.load_button, Qt.MouseButton.LeftButton)
    wait("the model to load", lambda: bool(loaded), timeout_s=120)
    shot("06-loaded.png")
    parts.engine.shutdown(wait_ms=3000)
    parts.monitor.stop()
    parts.downloads.shutdown()
    parts.history.close()
    print("walkthrough done", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
