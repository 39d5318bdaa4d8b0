"""A queue of model downloads, run one at a time on a worker thread, reported through signals.

:class:`DownloadManager` wraps :func:`desktop.core.downloads.download` (resumable, verified,
cancellable) for the window: ``enqueue(...)`` returns an id at once; the bytes move on one
background thread, so two large files never fight over the connection and the event loop is
never blocked. Everything the thread learns travels back through queued signals, so every
public signal is emitted on the thread that owns the manager (the GUI thread), in this order
for one download::

    added(id) -> stateChanged(id, "queued") -> stateChanged(id, "downloading")
    -> progress(id, Progress)... -> stateChanged(id, "verifying")
    -> stateChanged(id, "verified") + finished(id, path)

or ``failed(id, message)`` (state "failed", or "checksum_mismatch" when the bytes arrived
damaged) or ``cancelled(id)`` (state "cancelled": the ``.part`` file stays, and
:meth:`DownloadManager.resume` continues where it stopped).

The thread exists only while there is work; :meth:`DownloadManager.shutdown` cancels what
runs and joins it (the app calls it when it quits; tests, after each test).

QtCore only (an import-linter contract): no widgets here.
"""

from __future__ import annotations

import collections
import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from PySide6.QtCore import QObject, Qt, Signal, Slot

from desktop.core.downloads import (
    CancelToken,
    ChecksumError,
    DownloadCancelled,
    Progress,
    download,
)
from desktop.core.hub import HubError
from desktop.services.signals import emit

__all__ = ["DownloadItem", "DownloadManager", "DownloadState"]

DownloadState = Literal[
    "queued",
    "checking",  # re-reading (hashing) a .part left by an earlier attempt before resuming
    "downloading",
    "verifying",  # every byte is in; the checksum is compared and the file renamed
    "verified",  # done: the file is in place under its final name, checksum matched
    "cancelled",  # paused by the person; the .part is kept for resume()
    "failed",  # network, disk space, access...; resume() tries again
    "checksum_mismatch",  # the bytes arrived damaged; the .part was deleted
]

#: States in which a download can be started again with :meth:`DownloadManager.resume`.
RESUMABLE: frozenset[str] = frozenset({"cancelled", "failed", "checksum_mismatch"})
#: States in which the download is waiting or moving (:meth:`DownloadManager.cancel` applies).
ACTIVE: frozenset[str] = frozenset({"queued", "checking", "downloading", "verifying"})

DEFAULT_JOIN_TIMEOUT_S = 15.0  # a stalled connection notices a cancel within its read timeout


@dataclass(frozen=True)
class DownloadItem:
    """One download as the manager knows it (a snapshot: ask again for the newest)."""

    id: str
    repo_id: str
    files: tuple[str, ...]  # one file, or every part of a split file, in order
    dest_dir: Path
    expected_sha256: tuple[str | None, ...] | None  # one per file; None: the Hub's LFS hash
    expected_size: int | None  # bytes, all parts together
    state: DownloadState = "queued"
    progress: Progress | None = None
    message: str = ""  # why it failed, for a person
    path: Path | None = None  # the downloaded file (first part), once verified

    @property
    def name(self) -> str:
        """The file name a person recognises (the first part of a split file)."""
        return Path(self.files[0]).name

    @property
    def resumable(self) -> bool:
        return self.state in RESUMABLE

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


@dataclass
class _Job:
    """What the worker thread needs; only the cancel token is shared with the GUI thread."""

    id: str
    repo_id: str
    files: tuple[str, ...]
    dest_dir: Path
    expected_sha256: tuple[str | None, ...] | None
    expected_size: int | None
    endpoint: str | None
    cancel: CancelToken = field(default_factory=CancelToken)


class DownloadManager(QObject):
    """Downloads queued files one at a time on a worker thread; see the module docstring.

    ``endpoint`` overrides the Hugging Face address (tests point it at a local server).
    """

    added = Signal(str)  # id
    stateChanged = Signal(str, str)  # id, DownloadState
    progress = Signal(str, object)  # id, desktop.core.downloads.Progress
    finished = Signal(str, str)  # id, path of the verified file
    failed = Signal(str, str)  # id, a sentence for a person
    cancelled = Signal(str)  # id
    removed = Signal(str)  # id (clear_finished / remove)
    idle = Signal()  # the queue is empty and the worker thread has ended

    # Emitted on the worker thread, delivered (queued) to the slots below on the GUI thread.
    _started = Signal(str)
    _progressed = Signal(str, object)
    _ended = Signal(str, str, object)  # id, outcome, payload (path or message)

    def __init__(self, parent: QObject | None = None, *, endpoint: str | None = None) -> None:
        super().__init__(parent)
        self._endpoint = endpoint
        self._items: dict[str, DownloadItem] = {}
        self._jobs: dict[str, _Job] = {}  # queued or running
        self._queue: collections.deque[_Job] = collections.deque()
        self._lock = threading.Lock()  # guards _queue and _thread
        self._thread: threading.Thread | None = None
        self._finished_threads: list[threading.Thread] = []
        self._ids = itertools.count(1)
        self._closed = False
        queued = Qt.ConnectionType.QueuedConnection
        self._started.connect(self._on_started, queued)
        self._progressed.connect(self._on_progress, queued)
        self._ended.connect(self._on_ended, queued)

    # ------------------------------------------------------------------ queries

    def items(self) -> list[DownloadItem]:
        """Every download this session, oldest first."""
        return list(self._items.values())

    def item(self, download_id: str) -> DownloadItem:
        return self._items[download_id]

    def is_busy(self) -> bool:
        """True while any download is queued or running."""
        return any(item.active for item in self._items.values())

    # ------------------------------------------------------------------ commands

    def enqueue(
        self,
        repo_id: str,
        files: str | Sequence[str],
        dest_dir: Path | str,
        sha256: str | Sequence[str | None] | None = None,
        size: int | None = None,
    ) -> str:
        """Queue a download (all parts of a split file together); return its id at once.

        ``sha256`` is the expected hash (one per part) when the catalog knows it; otherwise
        the Hub's LFS hash is checked. ``size`` is the expected total in bytes, or None.
        """
        if self._closed:
            raise RuntimeError("the download manager was shut down")
        names = (files,) if isinstance(files, str) else tuple(files)
        if not names:
            raise ValueError("no file to download")
        hashes: tuple[str | None, ...] | None
        if sha256 is None:
            hashes = None
        elif isinstance(sha256, str):
            hashes = (sha256,)
        else:
            hashes = tuple(sha256)
        download_id = f"dl{next(self._ids)}"
        item = DownloadItem(
            id=download_id,
            repo_id=repo_id,
            files=names,
            dest_dir=Path(dest_dir),
            expected_sha256=hashes,
            expected_size=size,
        )
        self._items[download_id] = item
        emit(self.added, download_id)
        self._submit(item)
        return download_id

    def cancel(self, download_id: str) -> bool:
        """Stop a queued or running download (its .part is kept); False if it is not active.

        A queued one is cancelled at once; a running one stops at its next chunk and
        ``cancelled`` follows from the worker thread.
        """
        item = self._items.get(download_id)
        job = self._jobs.get(download_id)
        if item is None or job is None or not item.active:
            return False
        with self._lock:
            waiting = job in self._queue
            if waiting:
                self._queue.remove(job)
        job.cancel.cancel()
        if waiting:
            del self._jobs[download_id]
            self._set(download_id, state="cancelled", message="")
            emit(self.cancelled, download_id)
        return True

    def resume(self, download_id: str) -> bool:
        """Queue a cancelled or failed download again; False if it cannot be resumed.

        After a cancel or a dropped connection it continues from the bytes already on
        disk; after a checksum mismatch it starts over (the damaged .part was deleted).
        """
        item = self._items.get(download_id)
        if item is None or not item.resumable or self._closed:
            return False
        self._submit(replace(item, message=""))
        return True

    def remove(self, download_id: str) -> bool:
        """Forget a download that is not active (the list's "clear"); False otherwise."""
        item = self._items.get(download_id)
        if item is None or item.active:
            return False
        del self._items[download_id]
        emit(self.removed, download_id)
        return True

    def clear_finished(self) -> int:
        """Forget every verified download; return how many."""
        done = [i.id for i in self._items.values() if i.state == "verified"]
        for download_id in done:
            self.remove(download_id)
        return len(done)

    def shutdown(self, timeout_s: float = DEFAULT_JOIN_TIMEOUT_S) -> bool:
        """Cancel everything, join the worker thread; True when it ended within the timeout.

        Blocking: call it when the app quits (and after each test).
        """
        self._closed = True
        with self._lock:
            self._queue.clear()
            threads = [*self._finished_threads, *([self._thread] if self._thread else [])]
        for job in self._jobs.values():
            job.cancel.cancel()
        for thread in threads:
            thread.join(timeout_s)
        with self._lock:
            self._finished_threads = [t for t in self._finished_threads if t.is_alive()]
        return not any(t.is_alive() for t in threads)

    # ------------------------------------------------------------------ internals

    def _submit(self, item: DownloadItem) -> None:
        job = _Job(
            id=item.id,
            repo_id=item.repo_id,
            files=item.files,
            dest_dir=item.dest_dir,
            expected_sha256=item.expected_sha256,
            expected_size=item.expected_size,
            endpoint=self._endpoint,
        )
        self._jobs[item.id] = job
        self._items[item.id] = replace(item, state="queued", message="")
        emit(self.stateChanged, item.id, "queued")
        with self._lock:
            self._queue.append(job)
            if self._thread is None:
                # Keep the ended threads to join them in shutdown(); they are at most a few.
                self._finished_threads = [t for t in self._finished_threads if t.is_alive()]
                self._thread = threading.Thread(
                    target=self._run, name="llmw-downloads", daemon=False
                )
                self._thread.start()

    def _run(self) -> None:
        """The worker thread: take jobs until the queue is empty, then end."""
        while True:
            with self._lock:
                if not self._queue:
                    finished = self._thread
                    self._thread = None
                    if finished is not None:
                        self._finished_threads.append(finished)
                    break
                job = self._queue.popleft()
            self._download(job)
        emit(self._ended, "", "idle", None)

    def _download(self, job: _Job) -> None:
        emit(self._started, job.id)
        sha: str | Sequence[str | None] | None = job.expected_sha256
        if sha is not None and len(job.files) == 1:
            sha = sha[0]
        try:
            path = download(
                job.repo_id,
                job.files[0] if len(job.files) == 1 else job.files,
                job.dest_dir,
                expected_sha256=sha,
                expected_size=job.expected_size,
                progress=lambda p: emit(self._progressed, job.id, p),
                cancel=job.cancel,
                endpoint=job.endpoint,
            )
        except DownloadCancelled:
            emit(self._ended, job.id, "cancelled", None)
        except ChecksumError as exc:
            emit(self._ended, job.id, "checksum_mismatch", str(exc))
        except HubError as exc:  # DownloadError, DiskSpaceError, access, offline...
            emit(self._ended, job.id, "failed", str(exc))
        except OSError as exc:  # the models folder cannot be written, for one
            emit(self._ended, job.id, "failed", f"The file could not be written: {exc}.")
        except Exception as exc:  # a bug must not kill the thread and strand the queue
            emit(self._ended, job.id, "failed", f"The download failed unexpectedly: {exc!r}.")
        else:
            emit(self._ended, job.id, "verified", path)

    def _set(self, download_id: str, **changes: object) -> None:
        item = self._items.get(download_id)
        if item is None:
            return
        new = replace(item, **changes)  # type: ignore[arg-type]
        self._items[download_id] = new
        if new.state != item.state:
            emit(self.stateChanged, download_id, new.state)

    @Slot(str)
    def _on_started(self, download_id: str) -> None:
        item = self._items.get(download_id)
        if item is not None and item.state == "queued":
            self._set(download_id, state="downloading")

    @Slot(str, object)
    def _on_progress(self, download_id: str, progress: Progress) -> None:
        item = self._items.get(download_id)
        if item is None or not item.active:
            return  # a report that crossed a cancel
        if progress.phase == "checking":
            state: DownloadState = "checking"
        elif progress.bytes_total and progress.bytes_done >= progress.bytes_total:
            state = "verifying"  # all bytes in: the hash is compared, then the rename
        else:
            state = "downloading"
        self._set(download_id, state=state, progress=progress)
        emit(self.progress, download_id, progress)

    @Slot(str, str, object)
    def _on_ended(self, download_id: str, outcome: str, payload: object) -> None:
        if outcome == "idle":
            with self._lock:
                quiet = self._thread is None and not self._queue
            if quiet and not self.is_busy():
                emit(self.idle)
            return
        job = self._jobs.get(download_id)
        if job is not None and job.cancel.cancelled and outcome != "verified":
            outcome = "cancelled"  # whatever broke after a cancel, the person asked for it
        self._jobs.pop(download_id, None)
        if download_id not in self._items:
            return
        if outcome == "verified":
            assert isinstance(payload, Path)
            self._set(download_id, state="verified", path=payload, message="")
            emit(self.finished, download_id, str(payload))
        elif outcome == "cancelled":
            self._set(download_id, state="cancelled", message="")
            emit(self.cancelled, download_id)
        else:
            message = str(payload)
            self._set(download_id, state=outcome, message=message)
            emit(self.failed, download_id, message)
