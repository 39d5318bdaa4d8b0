"""Widgets closed and deleted while their background tasks run: the late results are dropped,
nothing touches the deleted Qt objects, nothing crashes.

A Models panel with its Hugging Face search and header reads in flight, the repo box in a
lookup, the token row in a save; and the task machinery itself (desktop.services.tasks): a
task whose owner is gone calls nothing, a delivered task lets go of its callbacks. Python's
cycle collector may run on any thread (the pool's, the test server's), so the tests collect
on another thread too: no Qt object may be deleted there.
"""

from __future__ import annotations

import gc
import sys
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))  # hub_server

from hub_server import QWEN8B_REPO, HubServer, serving_search_world, write_search_models
from PySide6.QtCore import QCoreApplication, QObject, QThreadPool

from desktop.core.catalog import load_catalog
from desktop.core.rows import catalog_rows
from desktop.services import tasks
from desktop.services.tasks import run_in_thread
from desktop.ui import hf_token
from desktop.ui.hf_token import HfTokenBox
from desktop.ui.hub_box import HubBox
from desktop.ui.models_table import ModelsPanel, ModelsTableModel
from desktop.ui.state import WorkbenchState

SIGNAL_MS = 30_000


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_search_models(tmp_path_factory.mktemp("search-teardown-models"))


@pytest.fixture
def hub(files: dict[str, Path]) -> Iterator[HubServer]:
    with serving_search_world(files) as running:
        yield running


def _collect_on_another_thread() -> None:
    thread = threading.Thread(target=gc.collect, name="gc-elsewhere")
    thread.start()
    thread.join()


def _panel(hub: HubServer, cache: Path) -> ModelsPanel:
    state = WorkbenchState(n_ctx=4096)
    state.set_real_profile(make_profile(vram_gib=8))
    table = ModelsTableModel(state, catalog_rows(load_catalog()))
    panel = ModelsPanel(state, table, endpoint=hub.url, header_cache_dir=cache)
    panel.hub_search.enabled = True
    return panel


@pytest.mark.parametrize("stage", ["search", "headers", "opened"])
def test_deleting_the_panel_mid_search_drops_the_results(
    qtbot: Any, hub: HubServer, tmp_path: Path, stage: str
) -> None:
    hub.faults.chunk_delay_s = 0.2  # header reads take a while: still running at the close
    if stage == "search":
        hub.faults.search_delay_s = 0.3
    panel = _panel(hub, tmp_path / "cache")
    if stage == "search":
        panel.search_box.setText("qwen")
        status = panel.hub_box.status_label
        qtbot.waitUntil(lambda: status.text().startswith("Searching"), timeout=SIGNAL_MS)
        del status
    else:
        with qtbot.waitSignal(panel.hub_search.resultsShown, timeout=SIGNAL_MS):
            panel.search_box.setText("qwen")
        if stage == "opened":
            assert panel.hub_search.open_repo(QWEN8B_REPO)
        else:  # the visible repos' file lists and header reads start
            search = panel.hub_search
            qtbot.waitUntil(lambda: search.busy, timeout=SIGNAL_MS)
            del search
    assert tasks._PENDING, "something must be in flight when the panel goes"
    panel.close()
    panel.deleteLater()
    del panel
    qtbot.wait(20)  # the deferred delete runs
    _collect_on_another_thread()
    _settle(qtbot)  # a late result's callbacks would raise on the deleted widgets (a failure)


def _settle(qtbot: Any) -> None:
    """Every task delivered (or dropped), the pool idle, late events and timers run."""
    qtbot.waitUntil(lambda: not tasks._PENDING, timeout=SIGNAL_MS)
    assert QThreadPool.globalInstance().waitForDone(SIGNAL_MS)
    qtbot.wait(100)
    _collect_on_another_thread()
    qtbot.wait(50)


def test_deleting_the_repo_box_mid_lookup_drops_the_answer(
    qtbot: Any, hub: HubServer, tmp_path: Path
) -> None:
    hub.faults.chunk_delay_s = 0.2
    box = HubBox(endpoint=hub.url, header_cache_dir=tmp_path / "cache", show_entry=True)
    seen: list[str] = []
    box.statusChanged.connect(seen.append)
    box.repo_edit.setText(QWEN8B_REPO)
    box.look_up()
    qtbot.waitUntil(lambda: any(s.startswith("Reading") for s in seen), timeout=SIGNAL_MS)
    assert box.busy  # the header reads run
    box.close()
    box.deleteLater()
    del box
    qtbot.wait(20)
    _settle(qtbot)  # the answer's callbacks would raise on the deleted labels (a failure here)


def test_deleting_the_token_row_mid_save_drops_the_answer(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    monkeypatch.setattr(hf_token, "_remove", lambda: release.wait(SIGNAL_MS / 1000))
    box = HfTokenBox()
    said: list[str] = []
    box.finished.connect(said.append)
    box.remove()  # on a pool thread, waiting for `release`
    box.close()
    box.deleteLater()
    del box
    qtbot.wait(20)
    release.set()
    _settle(qtbot)  # re-enabling the deleted buttons would raise (a failure here)
    assert said == []


def test_a_task_whose_owner_is_gone_calls_nothing(qtbot: Any) -> None:
    release = threading.Event()
    called: list[object] = []
    owner = QObject()
    task = run_in_thread(
        lambda: release.wait(SIGNAL_MS / 1000),
        on_done=called.append,
        on_error=called.append,
        owner=owner,
    )
    owner.deleteLater()
    del owner
    qtbot.wait(20)
    release.set()
    qtbot.waitUntil(lambda: task.finished, timeout=SIGNAL_MS)
    assert called == [] and task.dropped
    _settle(qtbot)


def test_a_task_with_its_owner_delivers_and_lets_go_of_its_callbacks(qtbot: Any) -> None:
    class Callback:
        def __init__(self) -> None:
            self.values: list[object] = []

        def __call__(self, value: object) -> None:
            self.values.append(value)

    owner = QObject()
    callback = Callback()
    gone = weakref.ref(callback)
    task = run_in_thread(lambda: 42, on_done=callback, owner=owner)
    with qtbot.waitSignal(task.succeeded, timeout=SIGNAL_MS) as blocker:
        pass
    assert blocker.args == [42] and callback.values == [42] and not task.dropped
    del callback
    assert gone() is None  # the task holds no callback (and nothing it refers to) any more


def test_a_task_nobody_holds_is_not_freed_inside_its_own_delivery(qtbot: Any) -> None:
    """The last reference to a fire-and-forget task was _PENDING's; dropping it inside the
    delivery deleted the task's QObject inside its own queued call (PySide's qt_metacall
    under QObject::event): a use-after-free, and a segfault in a later event loop."""
    delivered: list[object] = []

    def start() -> weakref.ref[tasks.Task]:
        return weakref.ref(run_in_thread(lambda: 42, on_done=delivered.append))

    task = start()
    assert QThreadPool.globalInstance().waitForDone(SIGNAL_MS)  # its result is posted
    QCoreApplication.sendPostedEvents()  # delivers it; timers do not run here
    assert delivered == [42]
    assert task() is not None, "the task was freed (its QObject deleted) inside its own call"
    qtbot.waitUntil(lambda: task() is None, timeout=SIGNAL_MS)  # released a moment later
