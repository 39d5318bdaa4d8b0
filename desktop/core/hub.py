"""Hugging Face Hub: which GGUF files a repository has, and their headers before any download.

Everything goes through ``huggingface_hub`` so the user's configuration applies: the token
(``HF_TOKEN`` or ``hf auth login``), ``HF_ENDPOINT`` (mirrors), ``HF_HUB_OFFLINE``, and the
proxies and certificates of its shared HTTP client (:func:`huggingface_hub.utils.get_session`).
Every function also takes ``endpoint=`` explicitly, because ``huggingface_hub`` reads
``HF_ENDPOINT`` once at import; tests point it at a local server that way.

* :func:`list_gguf_files` makes one request (``GET /api/models/{repo}?blobs=True``, what
  ``HfApi.model_info(files_metadata=True)`` sends) and groups the parts of split files
  (``name-00001-of-00003.gguf``) into one :class:`RemoteModelFile`.
* :func:`read_remote_header` asks for the file's size and final address with one ``HEAD``
  (``get_hf_file_metadata``), then reads only the header with HTTP Range requests through
  :class:`~desktop.core.gguf.CallbackRangeSource` (three requests, about 7 MB, for Gemma 3's
  6.5 MB header; the file is 253 MB). The bytes read are kept on disk, keyed by endpoint, repo,
  revision and file name, so asking again costs no request at all, even offline.

Every failure becomes a :class:`HubError` whose message is a sentence for a person: gated or
private models, missing repos and files, no network, a file that is not a valid GGUF.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import httpx2
from huggingface_hub import HfApi, constants, get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import (
    FileMetadataError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RevisionNotFoundError,
)

# Public API; huggingface_hub.utils re-exports it lazily, which mypy cannot follow.
from huggingface_hub.utils import (  # type: ignore[attr-defined]
    build_hf_headers,
    hf_raise_for_status,
    http_stream_backoff,
)

from desktop.core.gguf import CallbackRangeSource, GGUFError, GGUFHeader, TensorInfo, read_header

__all__ = [
    "DEFAULT_HEADER_BUDGET_BYTES",
    "GATED_MESSAGE",
    "RETRY_STATUS_CODES",
    "HubAccessError",
    "HubBadFileError",
    "HubError",
    "HubNotFoundError",
    "HubOfflineError",
    "RemoteFile",
    "RemoteModelFile",
    "ResolvedFile",
    "content_range_start",
    "default_header_cache_dir",
    "group_gguf_files",
    "guess_quant",
    "hub_errors",
    "is_projector_name",
    "list_gguf_files",
    "merge_split_headers",
    "read_remote_header",
    "resolve_file",
    "split_part_info",
    "to_hub_error",
]

#: Most a remote header read may transfer per file. Real headers are under 20 MB (a 256k-token
#: vocabulary is most of it); the reader asks for 1, 2, 4, 8, 8, ... MiB chunks up to this.
DEFAULT_HEADER_BUDGET_BYTES: Final = 32 * 1024 * 1024  # bytes

GATED_MESSAGE: Final = (
    "This model is gated: accept its license on the model page, then add a token in Settings "
    "(or set HF_TOKEN)."
)

_SPLIT_RE: Final = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.I)
# llama.cpp quantization names as they appear in file names: Q4_K_M, IQ3_XXS, Q8_0, BF16, ...
_QUANT_RE: Final = re.compile(
    r"(?<![A-Za-z0-9])(I?Q\d(?:_[A-Z0-9]+)*|TQ\d_\d|MXFP4(?:_MOE)?|BF16|F16|F32)(?![A-Za-z0-9])",
    re.I,
)
_RANGE_RE: Final = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")
_COMMIT_RE: Final = re.compile(r"^[0-9a-f]{40}$")
_SHA256_RE: Final = re.compile(r"^[0-9a-f]{64}$")
_READ_CHUNK: Final = 256 * 1024  # bytes per socket read while streaming a range
# Retried by huggingface_hub's backoff (rate limit, gateway hiccups); never 4xx errors.
RETRY_STATUS_CODES: Final = (408, 429, 500, 502, 503, 504)
_CACHE_FORMAT: Final = 1


# --------------------------------------------------------------------------
# Errors


class HubError(Exception):
    """Talking to Hugging Face failed; the message says what happened and what to do."""


class HubOfflineError(HubError):
    """No network, the Hub cannot be reached, or HF_HUB_OFFLINE is set."""


class HubAccessError(HubError):
    """401/403: the model is gated or private and this user (or token) may not read it."""


class HubNotFoundError(HubError):
    """404: the repository, the revision or the file does not exist."""


class HubBadFileError(HubError, GGUFError):
    """The remote file is not a valid GGUF file; the message is the GGUF reader's."""


def _host(endpoint: str | None) -> str:
    return urlsplit(endpoint or constants.ENDPOINT).netloc or "huggingface.co"


def _http_error(exc: HfHubHTTPError, repo_id: str, filename: str | None) -> HubError:
    response = exc.response
    status = response.status_code if response is not None else 0
    code = response.headers.get("X-Error-Code") if response is not None else None
    where = f"{repo_id}/{filename}" if filename else repo_id
    if isinstance(exc, GatedRepoError) or code == "GatedRepo" or status == 403:
        return HubAccessError(f"{GATED_MESSAGE} ({repo_id})")
    if status == 401:
        # The Hub answers 401 for gated and private repos, and for missing ones when the
        # request carries no token, so the message names both possibilities.
        return HubAccessError(
            f"Hugging Face would not show {repo_id}: it is gated or private, or it does not "
            "exist. Check the name; if it is gated, accept the licence on the model page, then "
            "add a token in Settings (or set HF_TOKEN)."
        )
    if isinstance(exc, RevisionNotFoundError) or code == "RevisionNotFound":
        return HubNotFoundError(
            f"{repo_id} has no such branch, tag or commit on Hugging Face; refresh its file list."
        )
    if isinstance(exc, RemoteEntryNotFoundError) or code == "EntryNotFound":
        return HubNotFoundError(
            f"{repo_id} has no file {filename!r} on Hugging Face (any more); refresh its file list."
        )
    if status == 404:
        if code == "RepoNotFound" or filename is None:
            return HubNotFoundError(
                f"There is no model {repo_id!r} on Hugging Face; check the name (owner/name)."
            )
        return HubNotFoundError(f"Hugging Face has no file {where} (HTTP 404).")
    if status == 429:
        return HubError(
            "Hugging Face is limiting requests from this computer; wait a minute and try "
            "again, or log in with a token."
        )
    if status >= 500:
        return HubError(
            f"Hugging Face had a server error (HTTP {status}) for {where}; try again later."
        )
    return HubError(f"Hugging Face refused the request for {where} (HTTP {status}).")


def to_hub_error(
    exc: BaseException, repo_id: str, filename: str | None = None, endpoint: str | None = None
) -> HubError | None:
    """The :class:`HubError` for an exception from ``huggingface_hub`` or httpx2, else None."""
    if isinstance(exc, HubError):
        return exc
    if isinstance(exc, OfflineModeIsEnabled):
        return HubOfflineError(
            "You are offline: HF_HUB_OFFLINE is set, so Hugging Face is not contacted. "
            "Unset it to look at or download models."
        )
    if isinstance(exc, httpx2.ProxyError):
        return HubOfflineError(
            f"You are offline, or the proxy refused the connection to {_host(endpoint)} "
            f"({exc}); check the proxy settings."
        )
    if isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout):
        return HubOfflineError(
            f"You are offline, or {_host(endpoint)} cannot be reached; check the internet "
            "connection (and any proxy), then try again."
        )
    if isinstance(exc, httpx2.TimeoutException):
        return HubError(f"{_host(endpoint)} stopped answering; try again in a moment.")
    if isinstance(exc, httpx2.TransportError):
        return HubError(f"The connection to {_host(endpoint)} failed ({exc}); try again.")
    if isinstance(exc, HfHubHTTPError):
        return _http_error(exc, repo_id, filename)
    if isinstance(exc, HFValidationError):
        return HubNotFoundError(
            f"{repo_id!r} is not a valid Hugging Face model name; it looks like owner/name."
        )
    if isinstance(exc, FileMetadataError):
        return HubError(
            f"{_host(endpoint)} did not answer like Hugging Face for {repo_id}/{filename} "
            "(no commit or ETag header). If HF_ENDPOINT is set, check that it points to a "
            "Hugging Face mirror."
        )
    if isinstance(exc, GGUFError):
        return HubBadFileError(str(exc))
    return None


@contextmanager
def hub_errors(
    repo_id: str, filename: str | None = None, endpoint: str | None = None
) -> Iterator[None]:
    """Turn the exceptions of ``huggingface_hub`` and httpx2 inside the block into HubError."""
    try:
        yield
    except HubError:
        raise
    except Exception as exc:
        error = to_hub_error(exc, repo_id, filename, endpoint)
        if error is None:
            raise
        raise error from exc


def _check_online(endpoint: str | None) -> None:
    if constants.is_offline_mode():
        error = to_hub_error(OfflineModeIsEnabled(), "", None, endpoint)
        assert error is not None
        raise error


# --------------------------------------------------------------------------
# File lists


@dataclass(frozen=True)
class RemoteFile:
    """One file in a Hub repository, as the Hub lists it."""

    path: str  # path in the repository, e.g. "Q4_K_M/model-00001-of-00002.gguf"
    size_bytes: int | None
    sha256: str | None  # from the LFS pointer; None for files stored in plain git
    commit: str | None  # the commit the listing came from

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class RemoteModelFile:
    """A model as a person picks it: one GGUF file, or all parts of a split one."""

    repo_id: str
    name: str  # "model-Q4_K_M.gguf"; for split files the name without "-00001-of-00003"
    parts: tuple[RemoteFile, ...]  # in order; one for a plain file
    expected_parts: int  # what the part names promise ("-of-00003" -> 3)
    quant: str | None  # guessed from the file name, e.g. "Q4_K_M"
    is_projector: bool  # a vision projector (mmproj), not a model on its own
    commit: str | None

    @property
    def path(self) -> str:
        """The file to open: the only file, or the first part (llama.cpp finds the rest)."""
        return self.parts[0].path

    @property
    def filenames(self) -> tuple[str, ...]:
        return tuple(part.path for part in self.parts)

    @property
    def is_split(self) -> bool:
        return self.expected_parts > 1

    @property
    def is_complete(self) -> bool:
        return len(self.parts) == self.expected_parts

    @property
    def size_bytes(self) -> int | None:
        sizes = [part.size_bytes for part in self.parts]
        return None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)


def split_part_info(filename: str) -> tuple[str, int, int] | None:
    """``("dir/model", 2, 3)`` for ``dir/model-00002-of-00003.gguf``; None for other names."""
    match = _SPLIT_RE.match(filename)
    if match is None:
        return None
    index, count = int(match["index"]), int(match["count"])
    if not 1 <= index <= count:
        return None
    return match["stem"], index, count


def guess_quant(filename: str) -> str | None:
    """The quantization a file name states ("Q4_K_M", "IQ3_XXS", "BF16"), or None."""
    name = filename.rsplit("/", 1)[-1]
    matches = _QUANT_RE.findall(name.removesuffix(".gguf"))
    return matches[-1].upper() if matches else None


def is_projector_name(filename: str) -> bool:
    """Vision projectors ship beside the model as ``mmproj-*.gguf``; llama.cpp loads them extra."""
    return "mmproj" in filename.rsplit("/", 1)[-1].lower()


def group_gguf_files(
    repo_id: str, files: Sequence[RemoteFile], commit: str | None
) -> list[RemoteModelFile]:
    """Group split parts into one entry each; plain files stay one entry. Sorted by path."""
    singles: list[RemoteModelFile] = []
    splits: dict[tuple[str, int], dict[int, RemoteFile]] = {}
    for file in files:
        if not file.path.lower().endswith(".gguf"):
            continue
        info = split_part_info(file.path)
        if info is None:
            singles.append(
                RemoteModelFile(
                    repo_id=repo_id,
                    name=file.name,
                    parts=(file,),
                    expected_parts=1,
                    quant=guess_quant(file.path),
                    is_projector=is_projector_name(file.path),
                    commit=commit,
                )
            )
            continue
        stem, index, count = info
        splits.setdefault((stem, count), {})[index] = file
    for (stem, count), by_index in splits.items():
        parts = tuple(by_index[i] for i in sorted(by_index))
        singles.append(
            RemoteModelFile(
                repo_id=repo_id,
                name=stem.rsplit("/", 1)[-1] + ".gguf",
                parts=parts,
                expected_parts=count,
                quant=guess_quant(stem),
                is_projector=is_projector_name(stem),
                commit=commit,
            )
        )
    return sorted(singles, key=lambda m: m.path)


def list_gguf_files(
    repo_id: str,
    revision: str | None = None,
    token: str | bool | None = None,
    *,
    endpoint: str | None = None,
) -> list[RemoteModelFile]:
    """The GGUF models in a Hub repository, with sizes and LFS sha256, split parts grouped.

    One request: ``HfApi.model_info(files_metadata=True)``, which also gives the commit the
    listing belongs to (pass it as ``revision`` later to pin downloads and header reads).
    """
    _check_online(endpoint)
    with hub_errors(repo_id, None, endpoint):
        info = HfApi(endpoint=endpoint).model_info(
            repo_id, revision=revision, files_metadata=True, token=token
        )
    commit = info.sha
    files = [
        RemoteFile(
            path=sibling.rfilename,
            size_bytes=sibling.lfs.size if sibling.lfs is not None else sibling.size,
            sha256=sibling.lfs.sha256 if sibling.lfs is not None else None,
            commit=commit,
        )
        for sibling in info.siblings or ()
    ]
    return group_gguf_files(repo_id, files, commit)


# --------------------------------------------------------------------------
# One file's address, size and version


@dataclass(frozen=True)
class ResolvedFile:
    """Where a file's bytes are and which version they are, from one HEAD request."""

    repo_id: str
    filename: str
    url: str  # the /resolve/ address on the Hub
    download_url: str  # where the bytes are served (a CDN address after a redirect)
    size_bytes: int
    etag: str | None  # for LFS files the sha256 of the content
    commit: str | None
    headers: dict[str, str]  # for requests to download_url (no token when it is off the Hub)

    @property
    def sha256(self) -> str | None:
        """The content's sha256 when the ETag is one (LFS and Xet files), else None."""
        etag = (self.etag or "").lower()
        return etag if _SHA256_RE.match(etag) else None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def resolve_file(
    repo_id: str,
    filename: str,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    endpoint: str | None = None,
) -> ResolvedFile:
    """Size, ETag, commit and download address of one file (``get_hf_file_metadata``)."""
    _check_online(endpoint)
    with hub_errors(repo_id, filename, endpoint):
        url = hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint)
        meta = get_hf_file_metadata(url, token=token, endpoint=endpoint)
        headers = build_hf_headers(token=token)
    if meta.size is None:
        raise HubError(f"Hugging Face did not say how large {repo_id}/{filename} is.")
    headers["Accept-Encoding"] = "identity"  # byte ranges of the file itself, never gzip
    if _origin(meta.location) != _origin(url):
        # A signed CDN address: the token must not leave the Hub (as hf_hub_download does).
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    return ResolvedFile(
        repo_id=repo_id,
        filename=filename,
        url=url,
        download_url=meta.location,
        size_bytes=meta.size,
        etag=meta.etag,
        commit=meta.commit_hash,
        headers=headers,
    )


def content_range_start(value: str | None) -> int | None:
    """The first byte of a ``Content-Range: bytes 100-199/1000`` header, None if unparsable."""
    match = _RANGE_RE.match(value or "")
    return int(match.group(1)) if match else None


# --------------------------------------------------------------------------
# Remote headers


class _RangeFetcher:
    """``fetch(offset, length)`` for CallbackRangeSource: one HTTP Range request per call.

    A server that ignores Range answers 200 with the whole file; then only the bytes up to
    ``offset + length`` are read from the stream before the connection is dropped, so the
    transfer stays within the header budget instead of becoming a full download.
    """

    def __init__(self, resolved: ResolvedFile, endpoint: str | None) -> None:
        self.resolved = resolved
        self.endpoint = endpoint
        self.range_ignored = False
        self.prefix = bytearray()  # everything fetched, when it is one run from byte 0
        self.contiguous = True

    def __call__(self, offset: int, length: int) -> bytes:
        resolved = self.resolved
        headers = {**resolved.headers, "Range": f"bytes={offset}-{offset + length - 1}"}
        with (
            hub_errors(resolved.repo_id, resolved.filename, self.endpoint),
            http_stream_backoff(
                "GET",
                resolved.download_url,
                headers=headers,
                timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT,
                retry_on_exceptions=(),
                retry_on_status_codes=RETRY_STATUS_CODES,
                max_retries=2,
            ) as response,
        ):
            hf_raise_for_status(response)
            if response.status_code == 206:
                start = content_range_start(response.headers.get("Content-Range"))
                if start != offset:
                    raise HubError(
                        f"{_host(self.endpoint)} sent the wrong part of {resolved.filename} "
                        f"(asked for byte {offset}, got {start})."
                    )
                skip = 0
            elif response.status_code == 200:
                self.range_ignored = True
                skip = offset
            else:
                raise HubError(
                    f"{_host(self.endpoint)} answered HTTP {response.status_code} to a read "
                    f"of {resolved.filename}."
                )
            data = _read_body(response, skip, length)
        if self.contiguous and offset == len(self.prefix):
            self.prefix += data
        else:
            self.contiguous = False
        return data


def _read_body(response: httpx2.Response, skip: int, length: int) -> bytes:
    """Bytes ``skip .. skip + length`` of a streamed body; stops reading once it has them."""
    out = bytearray()
    for chunk in response.iter_bytes(chunk_size=_READ_CHUNK):
        if skip:
            dropped = min(skip, len(chunk))
            chunk = chunk[dropped:]
            skip -= dropped
        out += chunk[: length - len(out)]
        if len(out) >= length:
            break
    return bytes(out)


class _CacheMiss(Exception):
    """A header re-read from the cache needs bytes beyond the cached prefix."""


def default_header_cache_dir() -> Path:
    """Per-user cache folder for remote GGUF headers."""
    import platformdirs

    return platformdirs.user_cache_path("llm-workbench") / "gguf-headers"


def _cache_key(endpoint: str | None, repo_id: str, revision: str, filename: str) -> str:
    ident = "\n".join((endpoint or constants.ENDPOINT, repo_id, revision, filename))
    return hashlib.sha256(ident.encode()).hexdigest()[:40]


def _cache_identity(
    endpoint: str | None, repo_id: str, revision: str, filename: str
) -> dict[str, object]:
    return {
        "format": _CACHE_FORMAT,
        "endpoint": endpoint or constants.ENDPOINT,
        "repo_id": repo_id,
        "revision": revision,
        "filename": filename,
    }


def _load_cached_prefix(
    cache_dir: Path, key: str, identity: dict[str, object]
) -> tuple[bytes, dict[str, object]] | None:
    try:
        meta = json.loads((cache_dir / f"{key}.json").read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or any(meta.get(k) != v for k, v in identity.items()):
            return None
        digest = meta.get("prefix_sha256")
        if not isinstance(digest, str) or not _SHA256_RE.match(digest):
            return None
        prefix = (cache_dir / f"{digest}.bin").read_bytes()
    except (OSError, ValueError):
        return None
    if len(prefix) != meta.get("prefix_bytes") or hashlib.sha256(prefix).hexdigest() != digest:
        return None
    return prefix, meta


def _store_cached_prefix(
    cache_dir: Path, keys: Sequence[tuple[str, dict[str, object]]], prefix: bytes
) -> None:
    """Write the raw header bytes once (named by their sha256) and one small JSON per key.

    A failed write only loses the cache entry.
    """
    digest = hashlib.sha256(prefix).hexdigest()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        files = [(f"{digest}.bin", prefix)]
        files += [
            (f"{key}.json", json.dumps({**meta, "prefix_sha256": digest}, indent=1).encode())
            for key, meta in keys
        ]
        for name, data in files:
            target = cache_dir / name
            # Per thread too: parallel reads of two files with the same content write the
            # same blob at the same time.
            temp = target.with_name(f"{name}.{os.getpid()}.{threading.get_ident()}.tmp")
            temp.write_bytes(data)
            os.replace(temp, target)
    except OSError:
        pass


def _header_from_prefix(
    prefix: bytes, file_size: int, name: str, budget_bytes: int
) -> GGUFHeader | None:
    def fetch(offset: int, length: int) -> bytes:
        if offset + length > len(prefix):
            raise _CacheMiss
        return prefix[offset : offset + length]

    try:
        return read_header(
            CallbackRangeSource(file_size, fetch, name=name), max_header_bytes=budget_bytes
        )
    except (_CacheMiss, GGUFError):
        return None


def read_remote_header(
    repo_id: str,
    filename: str | Sequence[str],
    revision: str | None = None,
    *,
    budget_bytes: int = DEFAULT_HEADER_BUDGET_BYTES,
    cache_dir: Path | None = None,
    token: str | bool | None = None,
    endpoint: str | None = None,
    refresh: bool = False,
) -> GGUFHeader:
    """The GGUF header of a file on the Hub, read with Range requests, never the whole file.

    ``filename`` may be the parts of a split file; their headers are merged into one (see
    :func:`merge_split_headers`). At most ``budget_bytes`` are read per file. Headers are kept
    in ``cache_dir`` (default :func:`default_header_cache_dir`) under the revision as given:
    pass the commit from :func:`list_gguf_files` to pin the exact version; a branch name
    (default "main") is trusted until ``refresh=True``.
    """
    if not isinstance(filename, str):
        names = list(filename)
        if not names:
            raise ValueError("no file names given")
        if len(names) > 1:
            headers = [
                read_remote_header(
                    repo_id,
                    name,
                    revision,
                    budget_bytes=budget_bytes,
                    cache_dir=cache_dir,
                    token=token,
                    endpoint=endpoint,
                    refresh=refresh,
                )
                for name in names
            ]
            try:
                return merge_split_headers(headers)
            except GGUFError as exc:
                raise HubBadFileError(str(exc)) from exc
        filename = names[0]

    rev = revision or constants.DEFAULT_REVISION
    folder = cache_dir if cache_dir is not None else default_header_cache_dir()
    key = _cache_key(endpoint, repo_id, rev, filename)
    identity = _cache_identity(endpoint, repo_id, rev, filename)
    display_name = f"{repo_id}/{filename}"

    if not refresh:
        cached = _load_cached_prefix(folder, key, identity)
        if cached is not None:
            prefix, meta = cached
            file_size = meta.get("file_size")
            if isinstance(file_size, int):
                header = _header_from_prefix(prefix, file_size, display_name, budget_bytes)
                if header is not None:
                    return header

    resolved = resolve_file(repo_id, filename, revision=revision, token=token, endpoint=endpoint)
    fetcher = _RangeFetcher(resolved, endpoint)
    source = CallbackRangeSource(resolved.size_bytes, fetcher, name=display_name)
    try:
        header = read_header(source, max_header_bytes=budget_bytes)
    except GGUFError as exc:
        raise HubBadFileError(str(exc)) from exc
    if fetcher.contiguous:
        prefix = bytes(fetcher.prefix)
        meta = {
            **identity,
            "commit": resolved.commit,
            "etag": resolved.etag,
            "file_size": resolved.size_bytes,
            "prefix_bytes": len(prefix),
        }
        keys = [(key, meta)]
        commit = resolved.commit or ""
        if _COMMIT_RE.match(commit) and commit != rev:
            # Also file it under the commit, so a later read pinned to it is a hit too.
            pinned = {**meta, **_cache_identity(endpoint, repo_id, commit, filename)}
            keys.append((_cache_key(endpoint, repo_id, commit, filename), pinned))
        _store_cached_prefix(folder, keys, prefix)
    return header


# --------------------------------------------------------------------------
# Split files


def merge_split_headers(headers: Sequence[GGUFHeader]) -> GGUFHeader:
    """One header for all parts of a split GGUF, as if the parts were one file.

    The first part carries the metadata; each part carries some of the tensors. Tensor offsets
    are shifted as if the parts' data sections followed each other, so sizes, per-layer sums and
    spans stay right for the estimator. Raises GGUFError when the parts do not belong together.
    """
    if not headers:
        raise ValueError("no headers to merge")
    first = headers[0]
    if len(headers) == 1:
        return first
    count = first.get("split.count")
    if isinstance(count, int) and count != len(headers):
        raise GGUFError(
            f"The first part says the model has {count} parts, but {len(headers)} were given."
        )
    tensors: list[TensorInfo] = []
    seen: set[str] = set()
    base = 0  # where this part's data would start in one concatenated data section
    for index, part in enumerate(headers):
        number = part.get("split.no")
        if isinstance(number, int) and number != index:
            raise GGUFError(f"Part {index + 1} of the split model says it is part {number + 1}.")
        for tensor in part.tensors:
            if tensor.name in seen:
                raise GGUFError(f"Tensor {tensor.name!r} appears in two parts of the split model.")
            seen.add(tensor.name)
            tensors.append(dataclasses.replace(tensor, offset=base + tensor.offset))
        base += part.file_size - part.data_offset
    expected = first.get("split.tensors.count")
    if isinstance(expected, int) and expected != len(tensors):
        raise GGUFError(
            f"The parts of the split model hold {len(tensors)} tensors, but the first part "
            f"says there are {expected}."
        )
    return dataclasses.replace(
        first,
        tensors=tuple(tensors),
        file_size=sum(h.file_size for h in headers),  # bytes on disk, all parts
        bytes_read=sum(h.bytes_read for h in headers),
        read_requests=sum(h.read_requests for h in headers),
    )
