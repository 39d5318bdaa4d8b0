"""The "Hugging Face repo" box of the Models tab: a repo's GGUF files as rows, with exact verdicts.

A person types ``owner/name`` (or pastes the repo's huggingface.co address) and presses Enter
or "Look up". Two background tasks follow, so the GUI thread never waits on the network:

1. :func:`desktop.core.hub.list_gguf_files` - one request for the file list;
2. :func:`desktop.core.hub_lookup.read_remote_rows` - the header of each file over HTTP Range
   requests (only the header bytes, cached on disk), turned into ``remote`` rows with exact
   specs.

The box owns no table: it emits the rows it found (``rowsFound``) and the models panel puts
them into its table, replacing the remote rows of the lookup before; an empty box emits no
rows, which clears them. Every failure is a sentence in the status label beside the box,
never a traceback.

The Models tab has one search box: the panel's. A repo id typed there is handed to this box
(:class:`~desktop.ui.search_rows.HubSearch` does that), so the box's own line edit and button
stay hidden unless ``show_entry``; the status label is what a person sees. It is one line,
elided (the whole text in its tooltip), so a long message never grows the row above the
search box and moves the box while someone types into it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPainter, QPaintEvent
from PySide6.QtWidgets import QHBoxLayout, QLineEdit, QPushButton, QSizePolicy, QWidget

from desktop.core.hub import HubError, RemoteModelFile, list_gguf_files
from desktop.core.hub_lookup import (
    REPO_FORMAT_MESSAGE,
    RemoteLookup,
    header_reads,
    parse_repo_id,
    read_remote_rows,
    summary,
)
from desktop.services.signals import emit
from desktop.services.tasks import Task, run_in_thread
from desktop.ui.widgets import HintLabel

__all__ = ["HubBox", "OneLineHint"]

_log = logging.getLogger(__name__)


class OneLineHint(HintLabel):
    """A hint that always takes one line: longer text is elided, the whole of it in the
    tooltip, so its height never changes with what it says."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setWordWrap(False)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(self.fontMetrics().height() + 4)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        rect = self.contentsRect()
        metrics = self.fontMetrics()
        text = metrics.elidedText(self.text(), Qt.TextElideMode.ElideRight, rect.width())
        align = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        painter.drawText(rect, int(align), text)


class HubBox(QWidget):
    """The repo box, its "Look up" button and a status label.

    Signals:

    * ``rowsFound(str repo_id, tuple[ModelRow, ...] rows)`` - what a lookup found, to replace
      the remote rows with (``""`` and no rows: the box was cleared);
    * ``lookupFinished(str repo_id)`` - follows ``rowsFound`` once its receivers are done;
    * ``lookupFailed(str message)`` - the lookup failed; the message is also shown;
    * ``statusChanged(str text)`` - the status label's new text (progress, result, error).
    """

    rowsFound = Signal(str, object)
    lookupFinished = Signal(str)
    lookupFailed = Signal(str)
    statusChanged = Signal(str)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        endpoint: str | None = None,
        header_cache_dir: Path | None = None,
        show_entry: bool = False,
    ) -> None:
        super().__init__(parent)
        self._endpoint = endpoint
        self._cache_dir = header_cache_dir
        self._task: Task | None = None
        self._generation = 0  # which lookup the callbacks belong to; older ones are dropped

        self.repo_edit = QLineEdit(self)
        self.repo_edit.setPlaceholderText("Hugging Face repo, e.g. bartowski/Qwen_Qwen3-8B-GGUF")
        self.repo_edit.setAccessibleName("Hugging Face repo")
        self.repo_edit.setToolTip(
            "Type a Hugging Face repo (owner/name) and press Enter: its GGUF files appear in "
            "the table with exact estimates, read from their headers without downloading them."
        )
        self.repo_edit.setClearButtonEnabled(True)
        self.repo_edit.setMinimumWidth(300)
        self.repo_edit.returnPressed.connect(self.look_up)

        self.look_up_button = QPushButton("Look up", self)
        self.look_up_button.setAccessibleName("Look up Hugging Face repo")
        self.look_up_button.clicked.connect(self.look_up)

        self.status_label = OneLineHint("", self)
        self.status_label.setAccessibleName("Hugging Face status")
        self.repo_edit.setVisible(show_entry)
        self.look_up_button.setVisible(show_entry)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(self.repo_edit, 2)
        layout.addWidget(self.look_up_button)
        layout.addWidget(self.status_label, 3)

    # ------------------------------------------------------------------ public

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.finished

    def look_up(self) -> None:
        """Look up the repo in the box; an empty box clears the remote rows."""
        self._cancel()
        text = self.repo_edit.text().strip()
        if not text:
            self._show("")
            emit(self.rowsFound, "", ())
            emit(self.lookupFinished, "")
            return
        repo_id = parse_repo_id(text)
        if repo_id is None:
            self._fail(REPO_FORMAT_MESSAGE)
            return
        generation = self._generation
        self._show(f"Looking up {repo_id}…")
        endpoint = self._endpoint
        self._task = run_in_thread(
            lambda: list_gguf_files(repo_id, endpoint=endpoint),
            on_done=lambda models: self._on_listed(generation, repo_id, models),
            on_error=lambda exc: self._on_error(generation, exc),
            owner=self,  # the box closed meanwhile: the answer is dropped
        )

    # ------------------------------------------------------------------ steps

    def _on_listed(self, generation: int, repo_id: str, models: list[RemoteModelFile]) -> None:
        if generation != self._generation:
            return
        reads = header_reads(models)
        self._show(f"Reading {reads} header{'s' if reads != 1 else ''} from {repo_id}…")
        endpoint, cache_dir = self._endpoint, self._cache_dir
        self._task = run_in_thread(
            lambda: read_remote_rows(repo_id, models, endpoint=endpoint, cache_dir=cache_dir),
            on_done=lambda lookup: self._on_read(generation, lookup),
            on_error=lambda exc: self._on_error(generation, exc),
            owner=self,
        )

    def _on_read(self, generation: int, lookup: RemoteLookup) -> None:
        if generation != self._generation:
            return
        self._task = None
        emit(self.rowsFound, lookup.repo_id, lookup.rows)
        self._show(summary(lookup))
        emit(self.lookupFinished, lookup.repo_id)

    def _on_error(self, generation: int, exc: BaseException) -> None:
        if generation != self._generation:
            return
        self._task = None
        if isinstance(exc, HubError):
            message = str(exc)
        else:  # a bug, not a network answer: keep the details for the log
            _log.error("Hugging Face lookup failed", exc_info=exc)
            message = f"The lookup failed unexpectedly ({type(exc).__name__}: {exc}); try again."
        self._fail(message)

    def _fail(self, message: str) -> None:
        self._show(message)
        emit(self.lookupFailed, message)

    def _cancel(self) -> None:
        """Forget the lookup in flight (its thread runs to its end; its result is dropped)."""
        self._generation += 1
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def show_status(self, text: str) -> None:
        """Say something in the status label (the search's progress and results)."""
        self._show(text)

    def _show(self, text: str) -> None:
        self.status_label.setText(text)
        self.status_label.setToolTip(text)
        emit(self.statusChanged, text)
