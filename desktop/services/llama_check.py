"""llama.cpp's dry run of a local file, asked in the background for the row a person looks at.

:meth:`LlamaChecker.result` answers at once from memory (and the dry run's own disk cache
answers a second start), or starts the dry run on the thread pool and emits ``checked``
when llama.cpp has answered; the view then asks again. One dry run at a time: a newer
request replaces a waiting one, so clicking through ten rows costs at most two runs.

QtCore only (an import-linter contract).
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from desktop.core.dryrun import DryRun, dry_run, dry_run_request
from desktop.core.estimate import Plan
from desktop.core.hardware import default_cache_dir
from desktop.services.signals import emit
from desktop.services.tasks import Task, run_in_thread

__all__ = ["LlamaChecker", "check_key"]


def check_key(path: Path, plan: Plan) -> str:
    """What a dry run's answer depends on: the file and the load's settings."""
    return json.dumps([str(path), dry_run_request(plan)], sort_keys=True)


class LlamaChecker(QObject):
    """Dry runs of local files for the detail pane, cached for the session."""

    checked = Signal(str)  # the key of the answer that arrived

    def __init__(self, build: str = "", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._build = build
        self._results: dict[str, DryRun] = {}
        self._running: str | None = None
        self._waiting: tuple[str, Path, dict[str, object]] | None = None
        self._task: Task | None = None

    def set_build(self, build: str) -> None:
        """The llama.cpp build (version and backends): answers of another build are stale."""
        if build != self._build:
            self._build = build
            self._results.clear()

    def result(self, path: Path, plan: Plan) -> DryRun | None:
        """llama.cpp's answer for this load, or None while it is being asked."""
        key = check_key(path, plan)
        found = self._results.get(key)
        if found is not None:
            return found
        if key != self._running:
            self._waiting = (key, path, dry_run_request(plan))
            self._start_next()
        return None

    def _start_next(self) -> None:
        if self._running is not None or self._waiting is None:
            return
        key, path, request = self._waiting
        self._waiting = None
        self._running = key
        build = self._build
        cache = default_cache_dir() / "dry-runs"

        def ask() -> DryRun:
            return dry_run(path, request, build=build, cache_dir=cache)

        self._task = run_in_thread(
            ask, lambda result: self._done(key, result), self._failed, owner=self
        )

    def _done(self, key: str, result: DryRun) -> None:
        self._results[key] = result
        self._running = None
        self._task = None
        emit(self.checked, key)
        self._start_next()

    def _failed(self, exc: BaseException) -> None:  # dry_run never raises; belt and braces
        key = self._running or ""
        self._results[key] = DryRun(
            ok=False,
            llama_cpp_version="unknown",
            seconds=0.0,
            reason=f"llama.cpp's check could not run ({exc}).",
        )
        self._running = None
        self._task = None
        emit(self.checked, key)
        self._start_next()
