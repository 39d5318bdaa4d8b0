"""Hugging Face search rows on the Models tab: what the one search box finds online.

:class:`HubSearch` watches the panel's search box. The box keeps filtering the catalog and the
local files at once (the panel's proxy does that); a moment after typing stops, the same text
is searched on Hugging Face (:func:`desktop.core.hub_search.search`, on a pool thread) and the
repos become ``remote`` rows with a first "about" verdict. Text that is a repo id
(``owner/name``) is looked up directly by the repo box (:class:`~desktop.ui.hub_box.HubBox`).

In the background, a few at a time, the repos visible in the table are made exact: the file
list (one request), the best-fitting file by its "about" verdict (or the Q4_K_M one), and that
file's header over HTTP Range requests; the repo row becomes that file's row, its other
quantizations a double-click away (:meth:`HubSearch.open_repo`, which reads every file's
header). Remote rows are the lookup's rows, the search's rows and the opened repos' rows
together; the table gets them in one batch after a change, the selection kept. The GUI thread
never waits on the network: errors are sentences in the repo box's status label.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal

from desktop.core.hub import HubError, RemoteModelFile
from desktop.core.hub_lookup import MAX_HEADER_READS, parse_repo_id
from desktop.core.hub_search import (
    HubRepo,
    RepoFiles,
    exact_row,
    expand_repo,
    repo_row,
    search,
)
from desktop.core.rows import ModelRow, best_fit_key
from desktop.core.units import format_bytes
from desktop.services.signals import emit
from desktop.services.tasks import Task, run_in_thread

if TYPE_CHECKING:
    from desktop.core.catalog import Catalog
    from desktop.core.estimate import Plan
    from desktop.ui.models_table import ModelsPanel

__all__ = ["DEBOUNCE_MS", "PARALLEL_JOBS", "HubSearch", "hub_secondary"]

_log = logging.getLogger(__name__)

#: Typing pauses this long before the Hub is asked (one request per pause, not per key).
DEBOUNCE_MS = 350
#: Background jobs (file lists and header reads) at the same time.
PARALLEL_JOBS = 4
#: Search results per request.
SEARCH_LIMIT = 30
_MIN_CHARS = 2
#: Rows counted as visible while the table is not on screen.
_UNSEEN_ROWS = 40


def _count(n: int | None) -> str:
    if n is None:
        return "?"
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 1_000:
        return f"{n / 1_000:.1f}k"
    return str(n)


def hub_secondary(row: ModelRow) -> str:
    """The faint text after a search row's name: uploader, architecture, downloads (↓), likes
    (♥), last updated, gated."""
    repo = row.hub
    if repo is None:
        return ""
    parts = [repo.author]
    if repo.architecture:
        parts.append(repo.architecture)
    # Short: the name column shares its width with this text (downloads ↓, likes ♥).
    parts.append(f"{_count(repo.downloads)}↓")
    parts.append(f"{_count(repo.likes)}♥")
    if repo.last_modified is not None:
        parts.append(f"{repo.last_modified:%Y-%m-%d}")
    if repo.gated:
        parts.append("gated")
    return " · ".join(parts)


@dataclass
class _Repo:
    """What is known of one search result."""

    info: HubRepo
    row: ModelRow  # the repo row, or its best file's row once known
    files: RepoFiles | None = None
    opened: bool = False  # every file shown
    exact: dict[str, ModelRow] = field(default_factory=dict)  # by location
    busy: bool = False
    error: str = ""


class HubSearch(QObject):
    """The Hub side of the Models tab's search box (see the module docstring).

    ``resultsShown(str text, int count)`` after each search's rows are in the table;
    ``repoOpened(str repo_id)`` after an opened repo's exact rows are in; ``exactRowsChanged()``
    whenever header reads replaced rows.
    """

    resultsShown = Signal(str, int)
    repoOpened = Signal(str)
    exactRowsChanged = Signal()
    #: Whether typing searches Hugging Face (the window tests that are not about the search
    #: switch it off, so they never reach the real Hub).
    enabled = True

    def __init__(
        self,
        panel: ModelsPanel,
        *,
        endpoint: str | None = None,
        header_cache_dir: Path | None = None,
        catalog: Callable[[], Catalog | None] | None = None,
    ) -> None:
        super().__init__(panel)
        self._panel = panel
        self._endpoint = endpoint
        self._cache_dir = header_cache_dir
        self._catalog_getter = catalog or _load_catalog_once
        self._lookup_rows: tuple[ModelRow, ...] = ()
        self._repos: dict[str, _Repo] = {}  # in the Hub's order
        self._text = ""
        self._generation = 0
        self._search_task: Task | None = None
        self._queue: list[Callable[[], None]] = []
        self._running = 0
        self._sort = "downloads"
        self._warm = False
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._start_search)
        self._push_timer = QTimer(self)
        self._push_timer.setSingleShot(True)
        self._push_timer.setInterval(60)
        self._push_timer.timeout.connect(self._push)
        self._visible_timer = QTimer(self)
        self._visible_timer.setSingleShot(True)
        self._visible_timer.setInterval(150)
        self._visible_timer.timeout.connect(self._make_visible_exact)
        panel.search_box.textChanged.connect(self._on_text)
        panel.view.doubleClicked.connect(self._on_activated)
        panel.view.activated.connect(self._on_activated)  # Enter on a repo row opens it too
        panel.view.verticalScrollBar().valueChanged.connect(self._visible_timer.start)

    # ------------------------------------------------------------------ public

    @property
    def busy(self) -> bool:
        return self._running > 0 or self._debounce.isActive() or (
            self._search_task is not None and not self._search_task.finished
        )

    def set_lookup_rows(self, rows: tuple[ModelRow, ...]) -> None:
        """The repo box's rows (an ``owner/name`` lookup) join the search's remote rows."""
        self._lookup_rows = tuple(rows)
        self._push()

    def search_now(self, text: str) -> None:
        """Search at once (tests, the benchmark); the box's text is not changed."""
        self._text = text.strip()
        self._debounce.stop()
        self._start_search()

    def open_repo(self, repo_id: str) -> bool:
        """Show every file of a search result, each with its exact verdict once its header is
        read. False when the repo is not a search result."""
        repo = self._repos.get(repo_id)
        if repo is None:
            return False
        repo.opened = True
        self._box_status(f"Opening {repo_id}…")
        if repo.files is None:
            self._list_files(repo, then=lambda: self._read_all(repo))
        else:
            self._read_all(repo)
        self._schedule_push()
        return True

    def remote_rows(self) -> list[ModelRow]:
        rows = list(self._lookup_rows)
        for repo in self._repos.values():
            if repo.opened and repo.files is not None:
                rows += [repo.exact.get(r.location, r) for r in repo.files.rows]
            else:
                rows.append(repo.row)
        return rows

    # ------------------------------------------------------------------ search

    def _warm_up(self) -> None:
        """While the typing pause runs: huggingface_hub's HTTP client (its SSL set-up takes a
        moment the first time) and the catalog the "about" verdicts use."""
        self._warm = True

        def warm() -> None:
            from huggingface_hub.utils import get_session  # type: ignore[attr-defined]

            get_session()
            self._catalog_getter()

        run_in_thread(
            warm, on_error=lambda exc: _log.debug("warm-up failed: %s", exc), owner=self
        )

    def _on_text(self, text: str) -> None:
        text = text.strip()
        if text == self._text:
            return
        self._text = text
        if self.enabled and not self._warm:
            self._warm_up()
        if parse_repo_id(text) is not None and "/" in text:
            self._debounce.stop()
            box = self._panel.hub_box
            if box.repo_edit.text() != text and text != getattr(self._panel, "_hub_repo", ""):
                box.repo_edit.setText(text)
                box.look_up()
            return
        self._debounce.start()

    def _start_search(self) -> None:
        self._generation += 1
        generation = self._generation
        if self._search_task is not None:
            self._search_task.cancel()
            self._search_task = None
        text = self._text
        if not self.enabled or len(text) < _MIN_CHARS:
            self._repos = {}
            self._queue.clear()
            self._schedule_push()
            if not text:
                self._box_status("")
            return
        self._box_status(f"Searching Hugging Face for “{text}”…")
        endpoint, sort = self._endpoint, self._sort
        self._search_task = run_in_thread(
            lambda: search(text, sort, SEARCH_LIMIT, endpoint=endpoint),
            on_done=lambda page: self._on_results(generation, page),
            on_error=lambda exc: self._on_error(generation, exc),
            owner=self,  # the panel closed meanwhile: nothing to show the results in
        )

    def _on_results(self, generation: int, page: Any) -> None:
        if generation != self._generation:
            return
        catalog = self._catalog_getter()
        models = catalog.models if catalog is not None else ()
        self._queue.clear()
        self._repos = {r.repo_id: _Repo(r, repo_row(r, models)) for r in page.repos}
        self._push()
        count = len(page.repos)
        more = " (more on Hugging Face: type more words)" if page.has_more else ""
        if count:
            self._box_status(
                f"{count} GGUF repo{'s' if count != 1 else ''} on Hugging Face for "
                f"“{page.text}”{more}. Double-click one for all its files."
            )
        else:
            self._box_status(f"No GGUF repos on Hugging Face for “{page.text}”.")
        emit(self.resultsShown, page.text, count)
        self._visible_timer.start()

    def _on_error(self, generation: int, exc: BaseException) -> None:
        if generation != self._generation:
            return
        self._box_status(_message(exc))

    # ------------------------------------------------------------------ background jobs

    def _submit(self, job: Callable[[], None]) -> None:
        self._queue.append(job)
        self._drain()

    def _drain(self) -> None:
        while self._queue and self._running < PARALLEL_JOBS:
            self._running += 1
            self._queue.pop(0)()

    def _job_done(self) -> None:
        self._running -= 1
        self._drain()

    def _run(
        self, fn: Callable[[], Any], on_done: Callable[[Any], None], on_error: Callable[[Any], None]
    ) -> None:
        generation = self._generation

        def done(value: Any) -> None:
            self._job_done()
            if generation == self._generation:
                on_done(value)

        def failed(exc: BaseException) -> None:
            self._job_done()
            if generation == self._generation:
                on_error(exc)

        def start() -> None:
            run_in_thread(fn, on_done=done, on_error=failed, owner=self)

        self._submit(start)

    def _list_files(self, repo: _Repo, then: Callable[[], None]) -> None:
        if repo.busy:
            return
        repo.busy = True
        endpoint = self._endpoint
        catalog = self._catalog_getter()
        models = catalog.models if catalog is not None else ()

        def listed(files: RepoFiles) -> None:
            repo.busy = False
            repo.files = files
            then()

        def failed(exc: BaseException) -> None:
            repo.busy = False
            repo.error = _message(exc)
            repo.row = _with_note(repo.row, repo.error)
            if repo.opened:  # asked for: say it; a background read only notes it on the row
                self._box_status(repo.error)
            self._schedule_push()

        self._run(
            lambda: expand_repo(repo.info.repo_id, models, repo.info, endpoint=endpoint),
            listed,
            failed,
        )

    def _read(self, repo: _Repo, file: RemoteModelFile, then: Callable[[ModelRow], None]) -> None:
        endpoint, cache_dir, info = self._endpoint, self._cache_dir, repo.info

        def read(result: tuple[ModelRow, str]) -> None:
            row, _ = result
            repo.exact[row.location] = row
            then(row)
            self._schedule_push()
            emit(self.exactRowsChanged)

        self._run(
            lambda: exact_row(file, info, endpoint=endpoint, cache_dir=cache_dir),
            read,
            lambda exc: self._box_status(_message(exc)),
        )

    def _lead_file(self, repo: _Repo) -> RemoteModelFile | None:
        """The file to make exact first: the best fit by its "about" verdict, else Q4_K_M,
        else the middle-sized one."""
        assert repo.files is not None
        usable = [f for f in repo.files.files if not f.is_projector and f.is_complete]
        if not usable:
            return None
        by_location = {f"{repo.info.repo_id}:{f.path}": f for f in usable}
        state = self._panel._state
        planned: list[tuple[ModelRow, Plan | None]] = [
            (row, state.estimate(row.spec) if row.spec is not None else None)
            for row in repo.files.rows
            if row.location in by_location
        ]
        if any(plan is not None for _, plan in planned):
            best = min(planned, key=lambda item: best_fit_key(*item))
            return by_location[best[0].location]
        q4 = [f for f in usable if (f.quant or "").startswith("Q4_K")]
        if q4:
            return q4[0]
        usable.sort(key=lambda f: f.size_bytes or 0)
        return usable[len(usable) // 2]

    def _make_exact(self, repo: _Repo) -> None:
        """A collapsed repo's row becomes its best-fitting file's exact row."""
        if repo.exact or repo.error:
            return
        if repo.files is None:
            self._list_files(repo, then=lambda: self._make_exact(repo))
            return
        lead = self._lead_file(repo)
        if lead is None:
            repo.row = _with_note(repo.row, "This repo has no GGUF model file of its own.")
            self._schedule_push()
            return
        others = len(repo.files.rows) - 1

        def lead_read(row: ModelRow) -> None:
            if not repo.opened:
                note = row.note or ""
                if others > 0:
                    note = (
                        f"The best fit of its {others + 1} quantizations; double-click for "
                        f"the others. {note}"
                    ).strip()
                repo.row = _with_note(row, note)

        self._read(repo, lead, lead_read)

    def _read_all(self, repo: _Repo) -> None:
        assert repo.files is not None
        usable = [f for f in repo.files.files if not f.is_projector and f.is_complete]
        todo = [f for f in usable[:MAX_HEADER_READS] if self._location(repo, f) not in repo.exact]
        self._schedule_push()
        if not todo:
            self._opened(repo)
            return
        left = {self._location(repo, f) for f in todo}

        def one_done(row: ModelRow) -> None:
            left.discard(row.location)
            if not left:
                self._opened(repo)

        for file in todo:
            self._read(repo, file, one_done)

    def _opened(self, repo: _Repo) -> None:
        assert repo.files is not None
        count = len(repo.files.rows)
        text = f"{repo.info.repo_id}: {count} file{'s' if count != 1 else ''}"
        if repo.files.projectors:
            text += f", and the vision projector {', '.join(repo.files.projectors)}"
        sizes = [r.file_size_bytes for r in repo.files.rows if r.file_size_bytes]
        if sizes:
            text += f" ({format_bytes(min(sizes))} to {format_bytes(max(sizes))})"
        self._box_status(text + ".")
        self._push()
        emit(self.repoOpened, repo.info.repo_id)

    @staticmethod
    def _location(repo: _Repo, file: RemoteModelFile) -> str:
        return f"{repo.info.repo_id}:{file.path}"

    def _make_visible_exact(self) -> None:
        """Queue the repos whose rows are in view (a few jobs run at a time)."""
        view = self._panel.view
        proxy = self._panel.proxy
        if view.isVisible():
            top = view.rowAt(0)
            bottom = view.rowAt(view.viewport().height() - 1)
            if top < 0:
                return
            bottom = bottom if bottom >= 0 else proxy.rowCount() - 1
        else:  # not on screen (a test, the benchmark): the first rows as sorted
            top, bottom = 0, min(proxy.rowCount(), _UNSEEN_ROWS) - 1
        for proxy_row in range(top, bottom + 1):
            row = proxy.index(proxy_row, 0).data(_row_role())
            if isinstance(row, ModelRow) and row.hub is not None:
                repo = self._repos.get(row.hub.repo_id)
                if repo is not None and not repo.busy and not repo.exact and not repo.error:
                    self._make_exact(repo)

    # ------------------------------------------------------------------ table

    def _schedule_push(self) -> None:
        self._push_timer.start()

    def _push(self) -> None:
        """Give the table the remote rows, keeping the selection and the scroll position."""
        self._push_timer.stop()
        panel = self._panel
        current = panel.current_row()
        scroll = panel.view.verticalScrollBar().value()
        panel.table.set_source_rows("remote", self.remote_rows())
        if current is not None:
            location = current.location
            if current.hub is not None and current.file is None:
                repo = self._repos.get(current.hub.repo_id)
                location = repo.row.location if repo is not None else location
            if not panel.select_location(location) and current.hub is not None:
                repo = self._repos.get(current.hub.repo_id)
                if repo is not None and repo.files is not None and repo.files.rows:
                    panel.select_location(repo.files.rows[0].location)
        panel.view.verticalScrollBar().setValue(scroll)

    def _on_activated(self, index: Any) -> None:
        row = index.data(_row_role())
        if isinstance(row, ModelRow) and row.hub is not None:
            repo = self._repos.get(row.hub.repo_id)
            if repo is not None and not repo.opened:
                self.open_repo(row.hub.repo_id)

    def _box_status(self, text: str) -> None:
        self._panel.hub_box.show_status(text)


def _row_role() -> int:
    """The table's row role, imported late: models_table imports this module."""
    from desktop.ui.models_table import ROW_ROLE

    return int(ROW_ROLE)


def _with_note(row: ModelRow, note: str) -> ModelRow:
    from dataclasses import replace

    return replace(row, note=note)


def _message(exc: BaseException) -> str:
    if isinstance(exc, HubError):
        return str(exc)
    _log.error("Hugging Face search failed", exc_info=exc)
    return f"The search failed unexpectedly ({type(exc).__name__}: {exc}); try again."


_CATALOG: list[Catalog | None] = []


def _load_catalog_once() -> Catalog | None:
    """The shipped catalog, for the "about" verdicts (None when it cannot be read)."""
    if not _CATALOG:
        from desktop.core.catalog import CatalogError, load_catalog

        try:
            _CATALOG.append(load_catalog())
        except CatalogError:
            _CATALOG.append(None)
    return _CATALOG[0]
