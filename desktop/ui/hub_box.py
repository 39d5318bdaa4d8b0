"""The "Hugging Face repo" box of the Models tab: a repo's GGUF files as rows, with exact verdicts.

A person types ``owner/name`` (or pastes the repo's huggingface.co address) and presses Enter
or "Look up". Two background tasks follow, so the GUI thread never waits on the network:

1. :func:`desktop.core.hub.list_gguf_files` - one request for the file list;
2. :func:`read_remote_rows` - the header of each file over HTTP Range requests (only the
   header bytes, cached on disk), turned into :meth:`ModelRow.remote` rows with exact specs.

The rows replace the table's ``remote`` rows (``ModelsTableModel.set_source_rows``); a new
lookup replaces them again and an empty box clears them. Every failure is a sentence in the
status label beside the box, never a traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLineEdit, QPushButton, QSizePolicy, QWidget

from desktop.core.gguf import GGUFError
from desktop.core.hub import HubError, RemoteModelFile, list_gguf_files, read_remote_header
from desktop.core.modelspec import spec_from_header
from desktop.services.signals import emit
from desktop.services.tasks import Task, run_in_thread
from desktop.ui.rows import ModelRow
from desktop.ui.widgets import HintLabel

if TYPE_CHECKING:  # models_table embeds this box, so the import only serves the type checker
    from desktop.ui.models_table import ModelsTableModel

__all__ = [
    "MAX_HEADER_READS",
    "HubBox",
    "RemoteLookup",
    "parse_repo_id",
    "read_remote_rows",
    "skipped_files",
    "summary",
]

_log = logging.getLogger(__name__)

#: Headers read per lookup; files past this still get a row, without an estimate.
MAX_HEADER_READS: Final = 16
#: Headers read at the same time (each is a HEAD and one to three Range requests).
_PARALLEL_READS: Final = 4

# The Hub's rule for repo ids: letters, digits, "-", "_", "."; no "--" or ".." anywhere.
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_HUB_HOSTS: Final = frozenset({"huggingface.co", "www.huggingface.co", "hf.co"})

REPO_FORMAT_MESSAGE: Final = (
    "Type a Hugging Face repo as owner/name, for example bartowski/Qwen_Qwen3-8B-GGUF."
)


def parse_repo_id(text: str) -> str | None:
    """``owner/name`` from what a person typed or pasted, or None if it is not one.

    Accepts the repo's address too (``https://huggingface.co/owner/name/tree/main``).
    """
    text = text.strip()
    if "://" in text or text.lower().startswith(tuple(f"{h}/" for h in _HUB_HOSTS)):
        parts = urlsplit(text if "://" in text else f"https://{text}")
        if (parts.hostname or "").lower() not in _HUB_HOSTS:
            return None
        segments = [s for s in parts.path.split("/") if s]
        if len(segments) < 2:
            return None
        text = "/".join(segments[:2])
    owner, slash, name = text.partition("/")
    if not slash or not all(_NAME_RE.match(part) for part in (owner, name)):
        return None
    if any(bad in text for bad in ("--", "..")) or name.endswith("."):
        return None
    return f"{owner}/{name}"


@dataclass(frozen=True)
class RemoteLookup:
    """What one lookup found: rows for the table and the notes to show beside the box."""

    repo_id: str
    rows: tuple[ModelRow, ...]
    skipped: tuple[str, ...]  # "mmproj-F16.gguf (vision projector)", ...
    unread: int  # files past MAX_HEADER_READS: rows without an estimate
    failed: tuple[str, ...]  # the messages of the header reads that failed


def skipped_files(models: Sequence[RemoteModelFile]) -> list[str]:
    """The files that are no model of their own, each with the reason in brackets."""
    notes = []
    for model in models:
        if model.is_projector:
            notes.append(f"{model.name} (vision projector)")
        elif not model.is_complete:
            notes.append(f"{model.name} (only {len(model.parts)} of {model.expected_parts} parts)")
    return notes


def _read_row(
    model: RemoteModelFile, endpoint: str | None, cache_dir: Path | None
) -> tuple[ModelRow, str]:
    """The row of one file from its header; spec None and the reason when it cannot be read."""
    try:
        header = read_remote_header(
            model.repo_id,
            model.filenames,
            model.commit,  # the listing's commit: the headers of exactly these files
            cache_dir=cache_dir,
            endpoint=endpoint,
        )
        spec = spec_from_header(header)
    except (HubError, GGUFError) as exc:
        note = f"Could not read its header: {exc}"
        row = ModelRow.remote(
            model.repo_id, model.path, None, model.size_bytes, note=note, parts=_parts(model)
        )
        return row, str(exc)
    return ModelRow.remote(
        model.repo_id, model.path, spec, model.size_bytes, parts=_parts(model)
    ), ""


def read_remote_rows(
    repo_id: str,
    models: Sequence[RemoteModelFile],
    *,
    endpoint: str | None = None,
    cache_dir: Path | None = None,
    max_reads: int = MAX_HEADER_READS,
) -> RemoteLookup:
    """Rows for a repo's files (projectors and incomplete split sets left out), each with an
    exact spec from its header; the first ``max_reads`` files only. Runs on a pool thread."""
    usable = [m for m in models if not m.is_projector and m.is_complete]
    to_read, rest = usable[:max_reads], usable[max_reads:]
    with ThreadPoolExecutor(max_workers=_PARALLEL_READS, thread_name_prefix="hub-header") as pool:
        results = list(pool.map(lambda m: _read_row(m, endpoint, cache_dir), to_read))
    unread_note = (
        f"Its header was not read: a lookup reads the first {max_reads} files of a repo. "
        "Download it for an exact estimate."
    )
    rows = [row for row, _ in results]
    rows += [
        ModelRow.remote(m.repo_id, m.path, None, m.size_bytes, note=unread_note, parts=_parts(m))
        for m in rest
    ]
    return RemoteLookup(
        repo_id=repo_id,
        rows=tuple(rows),
        skipped=tuple(skipped_files(models)),
        unread=len(rest),
        failed=tuple(message for _, message in results if message),
    )


def summary(lookup: RemoteLookup) -> str:
    """One or two sentences for the status label about a finished lookup."""
    count = len(lookup.rows)
    if count == 0:
        text = f"{lookup.repo_id} has no GGUF model files."
    else:
        text = f"{count} file{'s' if count != 1 else ''} from {lookup.repo_id}."
    read = count - lookup.unread
    if lookup.unread:
        headers = "header" if read == 1 else f"{read} headers"
        text += f" Read the first {headers}; {lookup.unread} more have no estimate."
    if lookup.failed:
        failed = len(lookup.failed)
        if failed == read:
            text += f" No header could be read: {lookup.failed[0]}"
        else:
            were = "header was" if failed == 1 else "headers were"
            text += f" {failed} {were} unreadable (see the Fits? column)."
    if lookup.skipped:
        text += " Left out: " + ", ".join(lookup.skipped) + "."
    return text


class HubBox(QWidget):
    """The repo box, its "Look up" button and a status label; writes the table's remote rows.

    Signals:

    * ``lookupFinished(str repo_id)`` - the remote rows were replaced (``""``: cleared);
    * ``lookupFailed(str message)`` - the lookup failed; the message is also shown;
    * ``statusChanged(str text)`` - the status label's new text (progress, result, error).
    """

    lookupFinished = Signal(str)
    lookupFailed = Signal(str)
    statusChanged = Signal(str)

    def __init__(
        self,
        table: ModelsTableModel,
        parent: QWidget | None = None,
        *,
        endpoint: str | None = None,
        header_cache_dir: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self._table = table
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

        self.status_label = HintLabel("", self)
        self.status_label.setAccessibleName("Hugging Face lookup status")
        self.status_label.setWordWrap(True)  # an error is a sentence or two; it may wrap
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

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
            self._table.set_source_rows("remote", [])
            self._show("")
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
        )

    # ------------------------------------------------------------------ steps

    def _on_listed(self, generation: int, repo_id: str, models: list[RemoteModelFile]) -> None:
        if generation != self._generation:
            return
        usable = sum(1 for m in models if not m.is_projector and m.is_complete)
        reads = min(usable, MAX_HEADER_READS)
        self._show(f"Reading {reads} header{'s' if reads != 1 else ''} from {repo_id}…")
        endpoint, cache_dir = self._endpoint, self._cache_dir
        self._task = run_in_thread(
            lambda: read_remote_rows(repo_id, models, endpoint=endpoint, cache_dir=cache_dir),
            on_done=lambda lookup: self._on_read(generation, lookup),
            on_error=lambda exc: self._on_error(generation, exc),
        )

    def _on_read(self, generation: int, lookup: RemoteLookup) -> None:
        if generation != self._generation:
            return
        self._task = None
        self._table.set_source_rows("remote", lookup.rows)
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

    def _show(self, text: str) -> None:
        self.status_label.setText(text)
        self.status_label.setToolTip(text)
        emit(self.statusChanged, text)


def _parts(model: RemoteModelFile) -> tuple[str, ...]:
    """Every part of a split file, in order (empty for a single file)."""
    return tuple(model.filenames) if model.is_split else ()
