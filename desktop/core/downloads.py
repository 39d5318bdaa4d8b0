"""Download GGUF files from Hugging Face into the models folder: resumable, verified, cancellable.

A download writes ``name.gguf.part`` beside a small JSON sidecar (``name.gguf.part.json``: repo,
file, size, ETag, expected sha256). After an interruption, a cancel or an app restart, calling
:func:`download` again finds the ``.part``, re-hashes what is there and asks for the rest with a
Range request; a server that ignores the Range gets the file from byte 0 again (the ``.part`` is
truncated, never appended to). The file gets its final name only after its sha256 matched the
Hub's LFS hash (or the catalog's); a wrong checksum deletes the ``.part``. So a file under the
final name is always a complete, verified download. (Files kept in plain git rather than LFS
have no sha256 on the Hub; without a catalog hash only their size can be checked. GGUF files
on the Hub are always LFS or Xet.)

Requests go through ``huggingface_hub``'s shared HTTP client, so tokens, ``HF_ENDPOINT`` and
proxies apply; the token is sent to the Hub but not to the CDN the Hub redirects to.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Final, Literal

import httpx2
from huggingface_hub import constants

# Public API; huggingface_hub.utils re-exports it lazily, which mypy cannot follow.
from huggingface_hub.utils import (  # type: ignore[attr-defined]
    hf_raise_for_status,
    http_stream_backoff,
)

from desktop.core.hub import (
    RETRY_STATUS_CODES,
    HubError,
    ResolvedFile,
    content_range_start,
    hub_errors,
    resolve_file,
)
from desktop.core.units import format_bytes

__all__ = [
    "CancelToken",
    "ChecksumError",
    "DiskSpaceError",
    "DownloadCancelled",
    "DownloadError",
    "Progress",
    "download",
    "part_path",
    "sidecar_path",
]

CHUNK_BYTES: Final = 1024 * 1024  # bytes per read from the network
HASH_BLOCK_BYTES: Final = 4 * 1024 * 1024  # bytes per read when re-hashing a resumed .part
PROGRESS_INTERVAL_S: Final = 0.1  # at most ten progress reports a second
RATE_WINDOW_S: Final = 5.0  # the speed shown is the average over the last five seconds
_SIDECAR_FORMAT: Final = 1


class DownloadError(HubError):
    """A download failed; the message says how far it got and what to do."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not have the expected sha256; the .part was deleted."""


class DiskSpaceError(DownloadError):
    """Not enough free disk space for the rest of the download."""


class DownloadCancelled(Exception):  # not a HubError: a cancel is an outcome, not a failure
    """The user cancelled; the .part stays for a later resume."""


class CancelToken:
    """Set from any thread (the UI); the download checks it after every chunk."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


Phase = Literal["checking", "downloading"]


@dataclass(frozen=True)
class Progress:
    """How far a download is. Bytes count all parts of a split file together."""

    bytes_done: int  # bytes, including what an earlier attempt left in the .part
    bytes_total: int  # bytes
    rate_bytes_per_s: float | None  # network speed over the last few seconds; None at first
    eta_s: float | None  # seconds left at that speed
    part_index: int  # 0-based: the part being downloaded now
    parts: int
    phase: Phase = "downloading"  # "checking": re-reading a .part left by an earlier attempt

    @property
    def fraction(self) -> float:
        return self.bytes_done / self.bytes_total if self.bytes_total else 1.0


def part_path(final: Path) -> Path:
    """Where the bytes of ``final`` collect until they are verified."""
    return final.with_name(final.name + ".part")


def sidecar_path(part: Path) -> Path:
    """The JSON beside a ``.part`` that says which remote file it belongs to."""
    return part.with_name(part.name + ".json")


class _RateMeter:
    """Bytes per second over a sliding window, counting only bytes that came over the network."""

    def __init__(self) -> None:
        self.received = 0
        self._samples: deque[tuple[float, int]] = deque()

    def start(self) -> None:
        self._samples.append((time.monotonic(), self.received))

    def add(self, n: int) -> None:
        self.received += n
        now = time.monotonic()
        self._samples.append((now, self.received))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_S:
            self._samples.popleft()

    def rate(self) -> float | None:
        if len(self._samples) < 2:
            return None
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 - t0 > 0.05 else None


class _Reporter:
    """Turns byte counts into throttled Progress callbacks and checks for a cancel."""

    def __init__(
        self,
        callback: Callable[[Progress], None] | None,
        cancel: CancelToken | None,
        total: int,
        parts: int,
    ) -> None:
        self.callback = callback
        self.cancel = cancel
        self.total = total
        self.parts = parts
        self.part_index = 0
        self.done_before = 0  # bytes of the parts before this one
        self.meter = _RateMeter()
        self._last = 0.0

    def percent(self, part_bytes: int) -> int:
        return int(100 * (self.done_before + part_bytes) / self.total) if self.total else 100

    def report(self, part_bytes: int, phase: Phase = "downloading", force: bool = False) -> None:
        """Call back (at most every PROGRESS_INTERVAL_S unless forced); raise on a cancel."""
        if self.cancel is not None and self.cancel.cancelled:
            raise DownloadCancelled("Download cancelled; it will continue where it stopped.")
        if self.callback is None:
            return
        now = time.monotonic()
        if not force and now - self._last < PROGRESS_INTERVAL_S:
            return
        self._last = now
        done = self.done_before + part_bytes
        rate = self.meter.rate() if phase == "downloading" else None
        eta = (self.total - done) / rate if rate else None
        self.callback(
            Progress(done, self.total, rate, eta, self.part_index, self.parts, phase=phase)
        )


# --------------------------------------------------------------------------
# The download


def download(
    repo_id: str,
    filename_or_parts: str | Sequence[str],
    dest_dir: Path,
    *,
    expected_sha256: str | Sequence[str | None] | None = None,
    expected_size: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    cancel: CancelToken | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
    endpoint: str | None = None,
) -> Path:
    """Download one GGUF file, or every part of a split one, into ``dest_dir``; return its path.

    For split files the path of the first part is returned (llama.cpp opens the rest itself).
    ``expected_sha256`` (one hash, or one per part) comes from the catalog or
    :func:`desktop.core.hub.list_gguf_files`; without it the sha256 in the Hub's ETag is used.
    ``expected_size`` is the whole download in bytes, checked against the Hub before starting.

    Raises HubError subclasses with plain messages: DownloadError (connection dropped: call
    again to resume), ChecksumError, DiskSpaceError, HubAccessError, HubNotFoundError,
    HubOfflineError; and DownloadCancelled when ``cancel`` was set (the .part is kept).
    """
    names = [filename_or_parts] if isinstance(filename_or_parts, str) else list(filename_or_parts)
    if not names:
        raise ValueError("no file to download")
    hashes = _expected_hashes(expected_sha256, len(names))
    finals = [dest_dir / PurePosixPath(name).name for name in names]
    if len(set(finals)) != len(finals):
        raise ValueError(f"two parts have the same file name: {names}")

    # One HEAD per part. The first answer's commit pins the others, so all parts come from
    # the same version of the repository even if it changes meanwhile.
    resolved: list[ResolvedFile] = []
    pinned = revision
    for name in names:
        file = resolve_file(repo_id, name, revision=pinned, token=token, endpoint=endpoint)
        resolved.append(file)
        pinned = pinned or file.commit
    total = sum(file.size_bytes for file in resolved)
    if expected_size is not None and expected_size != total:
        raise DownloadError(
            f"{repo_id}/{names[0]} is {format_bytes(total)} ({total} bytes) on Hugging Face, "
            f"not {expected_size} bytes as expected; the file was probably replaced. "
            "Refresh the model list and try again."
        )

    dest_dir.mkdir(parents=True, exist_ok=True)
    done = [_already_downloaded(final, file) for final, file in zip(finals, resolved, strict=True)]
    resume = [
        0 if is_done else _resumable_bytes(final, file, sha)
        for final, file, sha, is_done in zip(finals, resolved, hashes, done, strict=True)
    ]
    remaining = sum(
        file.size_bytes - offset
        for file, offset, is_done in zip(resolved, resume, done, strict=True)
        if not is_done
    )
    _check_disk_space(dest_dir, remaining)

    reporter = _Reporter(progress, cancel, total, len(names))
    for index, (final, file, sha) in enumerate(zip(finals, resolved, hashes, strict=True)):
        reporter.part_index = index
        if not done[index]:
            with _claimed(final):
                _download_part(final, file, sha or file.sha256, reporter, endpoint)
        reporter.done_before += file.size_bytes
    reporter.cancel = None  # everything is verified and in place: too late to cancel
    reporter.report(0, force=True)
    return finals[0]


def _expected_hashes(given: str | Sequence[str | None] | None, parts: int) -> list[str | None]:
    if given is None:
        return [None] * parts
    if isinstance(given, str):
        if parts != 1:
            raise ValueError("give one sha256 per part for a split file")
        return [given.lower()]
    hashes = [h.lower() if h else None for h in given]
    if len(hashes) != parts:
        raise ValueError(f"{len(hashes)} sha256 values for {parts} parts")
    return hashes


def _already_downloaded(final: Path, file: ResolvedFile) -> bool:
    """A file under the final name was verified when it got that name; its size must match."""
    try:
        size = final.stat().st_size
    except FileNotFoundError:
        return False
    if size != file.size_bytes:
        raise DownloadError(
            f"{final} already exists but is {size} bytes, not {file.size_bytes} like "
            f"{file.filename} on Hugging Face. Move or delete it, then download again."
        )
    return True


def _sidecar_state(file: ResolvedFile, sha256: str | None) -> dict[str, object]:
    return {
        "format": _SIDECAR_FORMAT,
        "repo_id": file.repo_id,
        "filename": file.filename,
        "url": file.url,  # the Hub address (the CDN one expires); for people reading it
        "size": file.size_bytes,
        "etag": file.etag,
        "commit": file.commit if file.etag is None else None,  # ETag names the content
        "sha256": sha256 or file.sha256,
    }


def _resumable_bytes(final: Path, file: ResolvedFile, sha256: str | None) -> int:
    """Bytes of ``final``'s .part that belong to this very remote file (0: start over)."""
    part = part_path(final)
    try:
        size = part.stat().st_size
        saved = json.loads(sidecar_path(part).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    if not isinstance(saved, dict) or size > file.size_bytes:
        return 0
    wanted = _sidecar_state(file, sha256)
    same = all(saved.get(key) == wanted[key] for key in wanted if key != "url")
    return size if same else 0


def _check_disk_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DiskSpaceError(
            f"Not enough disk space in {folder}: the download needs {format_bytes(needed)} "
            f"more, but only {format_bytes(free)} is free. Free some space or choose another "
            "models folder."
        )


_ACTIVE: set[Path] = set()
_ACTIVE_LOCK = threading.Lock()


@contextmanager
def _claimed(final: Path) -> Iterator[None]:
    """One download per file at a time in this process (a second click must not interleave)."""
    key = final.resolve()
    with _ACTIVE_LOCK:
        if key in _ACTIVE:
            raise DownloadError(f"{final.name} is already being downloaded.")
        _ACTIVE.add(key)
    try:
        yield
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE.discard(key)


def _download_part(
    final: Path, file: ResolvedFile, sha256: str | None, reporter: _Reporter, endpoint: str | None
) -> None:
    part = part_path(final)
    sidecar = sidecar_path(part)
    offset = _resumable_bytes(final, file, sha256)
    if offset == 0:
        sidecar.write_text(json.dumps(_sidecar_state(file, sha256), indent=1), encoding="utf-8")
    hasher = hashlib.sha256()
    with part.open("r+b" if offset else "wb") as out:
        if offset:
            _rehash(out, offset, hasher, reporter)
        out.seek(offset)
        out.truncate()
        if offset < file.size_bytes:
            hasher = _receive(out, file, offset, hasher, reporter, endpoint)
        out.flush()
        os.fsync(out.fileno())
        written = out.tell()
    if written != file.size_bytes:
        raise DownloadError(
            f"The connection dropped at {reporter.percent(written)}%; press Resume to continue."
        )
    digest = hasher.hexdigest()
    if sha256 is not None and digest != sha256:
        part.unlink(missing_ok=True)
        sidecar.unlink(missing_ok=True)
        raise ChecksumError(
            f"{final.name} arrived damaged: its checksum (sha256 {digest[:12]}...) is not the "
            f"one Hugging Face lists ({sha256[:12]}...). The partial file was deleted; "
            "download it again."
        )
    os.replace(part, final)
    sidecar.unlink(missing_ok=True)


def _rehash(out: BinaryIO, length: int, hasher: hashlib._Hash, reporter: _Reporter) -> None:
    """Hash the bytes an earlier attempt left, so the final check covers the whole file."""
    out.seek(0)
    done = 0
    while done < length:
        block = out.read(min(HASH_BLOCK_BYTES, length - done))
        if not block:
            break
        hasher.update(block)
        done += len(block)
        reporter.report(done, phase="checking")


def _receive(
    out: BinaryIO,
    file: ResolvedFile,
    offset: int,
    hasher: hashlib._Hash,
    reporter: _Reporter,
    endpoint: str | None,
) -> hashlib._Hash:
    """Append the file's bytes from ``offset`` to ``out``; return the hasher of the whole file."""
    headers = dict(file.headers)
    if offset:
        headers["Range"] = f"bytes={offset}-"
    written = offset
    with (
        hub_errors(file.repo_id, file.filename, endpoint),
        http_stream_backoff(
            "GET",
            file.download_url,
            headers=headers,
            timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT,
            retry_on_exceptions=(),
            retry_on_status_codes=RETRY_STATUS_CODES,
            max_retries=3,
        ) as response,
    ):
        hf_raise_for_status(response)
        if offset and response.status_code == 200:
            # The server ignored the Range and sends the whole file: start over rather than
            # append a second copy of the beginning.
            out.seek(0)
            out.truncate()
            hasher = hashlib.sha256()
            written = 0
        elif response.status_code == 206:
            start = content_range_start(response.headers.get("Content-Range"))
            if start != offset:
                raise DownloadError(
                    f"The server sent the wrong part of {file.filename} (from byte {start}, "
                    f"not {offset}); press Resume to try again."
                )
        elif response.status_code != 200:
            raise DownloadError(
                f"The server answered HTTP {response.status_code} for {file.filename}."
            )
        reporter.meter.start()
        reporter.report(written, force=True)
        try:
            for chunk in response.iter_bytes(chunk_size=CHUNK_BYTES):
                chunk = chunk[: file.size_bytes - written]  # never more than the file
                out.write(chunk)
                hasher.update(chunk)
                written += len(chunk)
                reporter.meter.add(len(chunk))
                reporter.report(written)
                if written >= file.size_bytes:
                    break
        except httpx2.TransportError as exc:
            out.flush()
            raise DownloadError(
                f"The connection dropped at {reporter.percent(written)}%; press Resume to continue."
            ) from exc
    return hasher
