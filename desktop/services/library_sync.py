"""Keeps the local models current: a scan on request, and whenever a watched folder changes.

:class:`LibrarySync` watches the models folders with a :class:`QFileSystemWatcher` (the
folders, their subfolders two levels down, and every ``.gguf`` in them, so a file being
copied in keeps it waiting until the copy has ended), waits ``debounce_ms`` after the last
change, and runs the scan it was given on the thread pool. One scan at a time: a change
that comes while one runs starts another when it ends, so no file is missed.

QtCore only: the scan function and the rows are the caller's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal

from desktop.services.signals import emit
from desktop.services.tasks import Task, run_in_thread

__all__ = ["DEFAULT_DEBOUNCE_MS", "LibrarySync"]

log = logging.getLogger(__name__)

#: Wait this long after the last change in a folder before scanning (a copy writes often).
DEFAULT_DEBOUNCE_MS = 800
#: Subfolders watched below each folder (LM Studio and downloads use publisher/repo/file).
WATCH_DEPTH = 2
#: At most this many paths watched (inotify watches are a limited resource).
MAX_WATCHED = 400

ScanFunction = Callable[[list[Path], list[Path]], Any]


class LibrarySync(QObject):
    """Scans the folders and added files on request and when a watched folder changes.

    Signals: ``scanned(result)`` with what ``scan(folders, files)`` returned;
    ``failed(exception)`` when it raised.
    """

    scanned = Signal(object)
    failed = Signal(object)

    def __init__(
        self,
        scan: ScanFunction,
        parent: QObject | None = None,
        *,
        debounce_ms: int = DEFAULT_DEBOUNCE_MS,
    ) -> None:
        super().__init__(parent)
        self._scan = scan
        self._folders: list[Path] = []
        self._files: list[Path] = []
        self._task: Task | None = None
        self._again = False
        self.scans = 0  # scans started (tests and the log read it)
        self.watcher = QFileSystemWatcher(self)
        self.watcher.directoryChanged.connect(self._on_changed)
        self.watcher.fileChanged.connect(self._on_changed)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self.scan_now)

    @property
    def folders(self) -> list[Path]:
        return list(self._folders)

    def set_sources(self, folders: Sequence[Path], files: Sequence[Path] = ()) -> None:
        """What to scan, and which folders to watch (a missing folder is watched once it
        exists: the next scan looks for it again)."""
        self._folders = [Path(f) for f in folders]
        self._files = [Path(f) for f in files]
        self._rewatch()

    def rescan(self) -> None:
        """Scan soon (after ``debounce_ms`` without another change)."""
        self._timer.start()

    def scan_now(self) -> Task:
        """Scan now, or, when a scan is running, once it ends; return the running scan."""
        self._timer.stop()
        if self._task is not None and not self._task.finished:
            self._again = True
            return self._task
        self._again = False
        self.scans += 1
        folders, files = list(self._folders), list(self._files)
        # Its window closed meanwhile: no answer.
        task = run_in_thread(
            lambda: self._scan(folders, files), self._done, self._error, owner=self
        )
        self._task = task
        return task

    def cancel(self) -> None:
        """Drop a running scan's result and stop watching (the app is quitting)."""
        self._timer.stop()
        if self._task is not None:
            self._task.cancel()
        paths = self.watcher.files() + self.watcher.directories()
        if paths:
            self.watcher.removePaths(paths)

    # ------------------------------------------------------------------ internals

    def _on_changed(self, _path: str) -> None:
        self._rewatch()  # a new subfolder or file: watch it too
        self.rescan()

    def _done(self, result: object) -> None:
        self._rewatch()
        emit(self.scanned, result)
        self._follow_up()

    def _error(self, exc: BaseException) -> None:
        log.error("scanning for local models failed", exc_info=exc)
        emit(self.failed, exc)
        self._follow_up()

    def _follow_up(self) -> None:
        if self._again:
            self.scan_now()

    def _rewatch(self) -> None:
        wanted: list[str] = []
        for folder in self._folders:
            wanted += _watch_paths(folder, WATCH_DEPTH)
        wanted = list(dict.fromkeys(wanted))[:MAX_WATCHED]
        current = set(self.watcher.files()) | set(self.watcher.directories())
        gone = [path for path in current if path not in wanted]
        new = [path for path in wanted if path not in current]
        if gone:
            self.watcher.removePaths(gone)
        if new:
            self.watcher.addPaths(new)


def _watch_paths(folder: Path, depth: int) -> list[str]:
    """The folder, its subfolders ``depth`` levels down and the .gguf files in them."""
    if not folder.is_dir():
        return []
    paths = [str(folder)]
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return paths
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir():
                if depth > 0:
                    paths += _watch_paths(entry, depth - 1)
            elif entry.name.lower().endswith(".gguf"):  # not .part: downloads say when done
                paths.append(str(entry))
        except OSError:
            continue
    return paths
