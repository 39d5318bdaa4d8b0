"""LibrarySync: one scan at a time, none missed, and a burst of changes is one scan (a real
QFileSystemWatcher on real folders; the scan runs on the real thread pool)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject

from desktop.services.library_sync import LibrarySync

SCAN_MS = 20_000


def test_a_change_during_a_scan_starts_one_more_when_it_ends(qtbot: Any) -> None:
    release = threading.Event()
    on_disk: list[str] = []  # what the scan finds (no folder: nothing is watched here)
    calls: list[int] = []

    def scan(_folders: list[Path], _files: list[Path]) -> list[str]:
        calls.append(len(calls))
        if len(calls) == 1 and not release.wait(10):
            raise TimeoutError("the test never released the first scan")
        return list(on_disk)

    parent = QObject()
    sync = LibrarySync(scan, parent, debounce_ms=50)
    sync.set_sources([])
    results: list[list[str]] = []
    sync.scanned.connect(results.append)
    first = sync.scan_now()
    on_disk.append("a.gguf")  # a file arrives while the first scan runs
    assert sync.scan_now() is first  # one at a time: this one waits for the first
    assert sync.scans == 1
    release.set()
    qtbot.waitUntil(lambda: len(results) == 2, timeout=SCAN_MS)
    assert sync.scans == 2 and results[-1] == ["a.gguf"]
    with qtbot.assertNotEmitted(sync.scanned, wait=200):
        pass  # and no third
    sync.cancel()


def test_a_burst_of_changes_is_one_scan(qtbot: Any, tmp_path: Path) -> None:
    parent = QObject()
    sync = LibrarySync(lambda folders, files: sorted(p.name for p in folders[1].iterdir()), parent)
    sync.set_sources([tmp_path / "not-yet", tmp_path])
    assert sync.watcher.directories() == [str(tmp_path)]  # a missing folder is no error
    with qtbot.waitSignal(sync.scanned, timeout=SCAN_MS) as scanned:
        for i in range(5):
            (tmp_path / f"part-{i}.gguf").write_bytes(b"GGUF")
    assert scanned.args[0] == [f"part-{i}.gguf" for i in range(5)]
    with qtbot.assertNotEmitted(sync.scanned, wait=1600):
        pass  # the debounce made the burst one scan
    assert sync.scans == 1
    sync.cancel()
    assert sync.watcher.directories() == [] and sync.watcher.files() == []
