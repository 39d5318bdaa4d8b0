"""Searching Hugging Face for GGUF models, with a verdict before anything is downloaded.

Three steps, each cheaper than the next is exact:

1. :func:`search` - one ``HfApi.list_models`` call (the ``gguf`` filter, the typed text, a
   sort, ``expand`` for downloads, likes, last modified, gated and the ``gguf`` summary the Hub
   computes: parameters, architecture, context length). Paging is huggingface_hub's own (the
   ``Link`` header). Each result is a :class:`HubRepo`.
2. :func:`repo_row` - a first "about" verdict for a repo: when the Hub's summary (architecture
   and parameter count) matches a catalog model (:func:`catalog_family`), the catalog's
   architecture numbers and the size a typical Q4_K_M file of that many parameters has give a
   catalog-grade estimate. A repo of a family the catalog does not know gets no verdict yet.
3. :func:`expand_repo` - the repo's GGUF files (``list_gguf_files``: quantizations, split sets
   grouped, vision projectors marked), each an "about" row from its real size; then
   :func:`exact_row` reads one file's header over HTTP Range requests (only header bytes,
   cached on disk by :func:`desktop.core.hub.read_remote_header`) for the exact verdict.

huggingface_hub retries rate limits (429), server errors and dropped connections itself, and
its HTTP client has no timeout, so every network step runs through :func:`with_deadline`: it
watches huggingface_hub's own retry log and answers with a sentence as soon as the outcome is
clear (a 429, a refused connection, a second dropped connection) or the deadline passes,
instead of sleeping through the retries. Every failure is a :class:`~desktop.core.hub.HubError`
whose message is one sentence for a person.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any, Final, Literal, TypeVar
from urllib.parse import urlsplit

from huggingface_hub import HfApi, constants
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

from desktop.core.catalog import Catalog, CatalogModel, CatalogVariant
from desktop.core.hub import (
    HubError,
    HubOfflineError,
    RemoteModelFile,
    list_gguf_files,
    to_hub_error,
)
from desktop.core.hub_lookup import read_file_row, skipped_files
from desktop.core.modelspec import ModelSpec, spec_from_catalog
from desktop.core.rows import ModelRow

__all__ = [
    "ABOUT_QUANT",
    "ABOUT_QUANT_BITS_PER_WEIGHT",
    "DEFAULT_TIMEOUT_S",
    "EXPAND",
    "SORTS",
    "HubRepo",
    "RepoFiles",
    "SearchPage",
    "SearchSort",
    "about_spec",
    "catalog_family",
    "exact_row",
    "expand_repo",
    "file_rows",
    "repo_row",
    "search",
    "with_deadline",
]

SearchSort = Literal["downloads", "trending", "updated", "likes"]
#: The command line's sort names -> list_models' ``sort`` values.
SORTS: Final[dict[str, str]] = {
    "downloads": "downloads",
    "trending": "trending_score",
    "updated": "last_modified",
    "likes": "likes",
}
#: What a search asks the Hub to include for each repo (list_models' ``expand``).
EXPAND: Final = [
    "author",
    "downloads",
    "likes",
    "lastModified",
    "gated",
    "gguf",
    "trendingScore",
    "private",
]
#: The quantization a repo's "about" verdict assumes before its files are listed: the one most
#: GGUF repos lead with and llama.cpp's quantize README recommends as the balanced choice.
ABOUT_QUANT: Final = "Q4_K_M"
#: Whole-file bits per weight of a Q4_K_M file: 4.8944, measured on Llama-3.1-8B in
#: github ggml-org/llama.cpp tools/quantize/README.md (via shared/catalog-research.json
#: quant_bpw; the catalog's estimated sizes use the same figure).
ABOUT_QUANT_BITS_PER_WEIGHT: Final = 4.8944
#: A Hub summary matches a catalog model when the parameter counts differ by at most this.
FAMILY_PARAMS_TOLERANCE: Final = 0.04
#: How long one search or file listing may take before the person is told.
DEFAULT_TIMEOUT_S: Final = 20.0
#: After this long without an answer, check whether the Hub's host can be reached at all.
_PROBE_AFTER_S: Final = 1.5
_PROBE_TIMEOUT_S: Final = 3.0
#: A rate limit whose retry huggingface_hub would wait longer than this for is reported at
#: once; a shorter one (a brief burst) is waited out, once.
_LONGEST_RETRY_WAIT_S: Final = 3.0
_WAIT_RE: Final = re.compile(r"Waiting (\d+(?:\.\d+)?)s")
_T = TypeVar("_T")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class HubRepo:
    """One search result: a repository and what the Hub says about it."""

    repo_id: str  # "bartowski/Qwen_Qwen3-8B-GGUF"
    author: str
    downloads: int | None  # last 30 days, as the Hub counts them
    likes: int | None
    trending_score: int | None
    last_modified: datetime | None
    gated: str | None  # None: open; "auto" or "manual": the licence must be accepted first
    private: bool
    params: int | None  # the Hub's gguf.total
    architecture: str | None  # the Hub's gguf.architecture (llama.cpp's name)
    context_length: int | None  # the Hub's gguf.context_length

    @property
    def name(self) -> str:
        return self.repo_id.rsplit("/", 1)[-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo_id,
            "uploader": self.author,
            "params": self.params,
            "architecture": self.architecture,
            "context_length": self.context_length,
            "downloads": self.downloads,
            "likes": self.likes,
            "trending_score": self.trending_score,
            "updated": self.last_modified.isoformat() if self.last_modified else None,
            "gated": self.gated,
            "private": self.private,
        }


@dataclass(frozen=True)
class SearchPage:
    """One page of results (``page`` counts from 0)."""

    text: str
    sort: str
    page: int
    limit: int
    repos: tuple[HubRepo, ...]
    has_more: bool  # the Hub has results past this page


@dataclass(frozen=True)
class RepoFiles:
    """A repo opened into its files."""

    repo: HubRepo | None
    files: tuple[RemoteModelFile, ...]  # every GGUF entry, projectors and split sets included
    rows: tuple[ModelRow, ...]  # one per model file ("about" verdicts where possible)
    projectors: tuple[str, ...]  # vision projector files (mmproj), not models of their own
    skipped: tuple[str, ...]  # projectors and incomplete split sets, with the reason


def _as_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _repo_from_info(info: Any) -> HubRepo:
    gguf = info.gguf if isinstance(getattr(info, "gguf", None), dict) else {}
    gated = getattr(info, "gated", None)
    likes = getattr(info, "likes", None)
    repo_id = str(info.id)
    return HubRepo(
        repo_id=repo_id,
        author=str(getattr(info, "author", None) or repo_id.split("/", 1)[0]),
        downloads=_as_int(getattr(info, "downloads", None)),
        likes=likes if isinstance(likes, int) and not isinstance(likes, bool) else None,
        trending_score=_as_int(getattr(info, "trending_score", None)),
        last_modified=getattr(info, "last_modified", None),
        gated=str(gated) if gated not in (None, False) else None,
        private=bool(getattr(info, "private", False)),
        params=_as_int(gguf.get("total")),
        architecture=str(gguf["architecture"]) if gguf.get("architecture") else None,
        context_length=_as_int(gguf.get("context_length")),
    )


# --------------------------------------------------------------------------- network


def _host(endpoint: str | None) -> tuple[str, int]:
    parts = urlsplit(endpoint or constants.ENDPOINT)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "huggingface.co", port


def _host_label(endpoint: str | None) -> str:
    return urlsplit(endpoint or constants.ENDPOINT).netloc or "huggingface.co"


class _RetryWatch(logging.Handler):
    """huggingface_hub's retry warnings ("HTTP Error 429 thrown while requesting ...",
    "'...' thrown while requesting ...") from one thread: what its backoff is waiting out."""

    def __init__(self, thread_id: int) -> None:
        super().__init__(logging.WARNING)
        self.thread_id = thread_id
        self.messages: list[str] = []
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread_id:
            self.messages.append(record.getMessage())
            self.event.set()


_OFFLINE_WORDS: Final = (
    "connection refused",
    "name or service not known",
    "temporary failure in name resolution",
    "network is unreachable",
    "no route to host",
    "nodename nor servname",
    "getaddrinfo failed",
)


def _verdict_from_retries(messages: Sequence[str], endpoint: str | None) -> HubError | None:
    """A sentence as soon as huggingface_hub's retries show how the call will end."""
    host = _host_label(endpoint)
    limited = [m for m in messages if "HTTP Error 429" in m]
    waits = [float(w) for m in messages for w in _WAIT_RE.findall(m) if "Rate limited" in m]
    if len(limited) >= 2 or any(w > _LONGEST_RETRY_WAIT_S for w in waits):
        return HubError(
            "Hugging Face is limiting requests from this computer; wait a minute and try "
            "again, or add a token in Settings."
        )
    for message in messages:
        lower = message.lower()
        if any(word in lower for word in _OFFLINE_WORDS):
            return HubOfflineError(
                f"You are offline, or {host} cannot be reached; the catalog and the files on "
                "this computer still work."
            )
    dropped = [m for m in messages if "thrown while requesting" in m and "HTTP Error" not in m]
    # Three: a dropped connection can leave a dead pooled one behind that fails once more.
    if len(dropped) >= 3:
        return HubError(f"The connection to {host} keeps dropping; try again in a moment.")
    servers = [m for m in messages if "HTTP Error 5" in m]
    if len(servers) >= 2:
        return HubError("Hugging Face is having trouble (server errors); try again later.")
    return None


_REACHED: dict[tuple[str, int], float] = {}  # host -> when a connection last succeeded
_REACHED_FOR_S: Final = 30.0


def _reachable(endpoint: str | None, *, cached: bool = False) -> bool:
    """Whether a TCP connection to the endpoint's host opens (a success is trusted for 30 s
    when ``cached``)."""
    host, port = _host(endpoint)
    if cached and time.monotonic() - _REACHED.get((host, port), -_REACHED_FOR_S) < _REACHED_FOR_S:
        return True
    try:
        with socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S):
            _REACHED[(host, port)] = time.monotonic()
            return True
    except OSError:
        _REACHED.pop((host, port), None)
        return False


def with_deadline(
    fn: Callable[[], _T],
    *,
    endpoint: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    what: str = "the request",
    error_for: Callable[[BaseException], HubError | None] | None = None,
) -> _T:
    """Run ``fn`` (a huggingface_hub call) on a daemon thread and wait at most ``timeout_s``.

    Returns its result, or raises a :class:`HubError` the moment the outcome is clear: its own
    error (through ``error_for``, else :func:`to_hub_error`), a rate limit or a refused
    connection seen in huggingface_hub's retry log, a host that cannot be reached, or the
    deadline. The thread is left to finish on its own (its result is dropped).
    """
    if constants.is_offline_mode():
        raise to_hub_error(OfflineModeIsEnabled(), "", None, endpoint) or HubOfflineError(
            "You are offline."
        )
    # Checked first: against a host that refuses connections, huggingface_hub would retry
    # for half a minute, closing its shared HTTP client after each attempt (under any
    # download running at the time).
    if not _reachable(endpoint, cached=True):
        raise HubOfflineError(
            f"You are offline, or {_host_label(endpoint)} cannot be reached; the catalog and "
            "the files on this computer still work."
        )
    done = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the waiting thread
            box["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=run, name="hub-search", daemon=True)
    watch = _RetryWatch(0)
    hub_logger = logging.getLogger("huggingface_hub")
    thread.start()
    watch.thread_id = thread.ident or 0
    hub_logger.addHandler(watch)
    start = time.monotonic()
    probed = False
    try:
        while not done.wait(0.05):
            verdict = _verdict_from_retries(list(watch.messages), endpoint)
            if verdict is not None:
                raise verdict
            waited = time.monotonic() - start
            if not probed and waited >= _PROBE_AFTER_S:
                probed = True
                if not _reachable(endpoint):
                    raise HubOfflineError(
                        f"You are offline, or {_host_label(endpoint)} cannot be reached; the "
                        "catalog and the files on this computer still work."
                    )
            if waited >= timeout_s:
                raise HubError(
                    f"{_host_label(endpoint)} did not answer {what} within {timeout_s:.0f} s; "
                    "try again in a moment."
                )
    finally:
        hub_logger.removeHandler(watch)
    if "error" in box:
        exc = box["error"]
        error = (error_for(exc) if error_for is not None else None) or to_hub_error(
            exc, "", None, endpoint
        )
        if error is None:
            raise exc
        raise error from exc
    return box["value"]  # type: ignore[no-any-return]


def _search_error(exc: BaseException, endpoint: str | None) -> HubError | None:
    if not isinstance(exc, HfHubHTTPError):
        return None
    status = exc.response.status_code if exc.response is not None else 0
    host = _host_label(endpoint)
    if status in (401, 403):
        return HubError(
            "Hugging Face refused the search: the token in Settings (or HF_TOKEN) is not "
            "valid; replace it or remove it."
        )
    if status == 429:
        return HubError(
            "Hugging Face is limiting requests from this computer; wait a minute and try "
            "again, or add a token in Settings."
        )
    if status == 404:
        return HubError(
            f"{host} has no model search (HTTP 404); if HF_ENDPOINT is set, check that it "
            "points to Hugging Face or a mirror."
        )
    if status >= 500:
        return HubError(f"Hugging Face had a server error (HTTP {status}); try again later.")
    return HubError(f"Hugging Face refused the search (HTTP {status}).")


def search(
    text: str,
    sort: str = "downloads",
    limit: int = 20,
    page: int = 0,
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> SearchPage:
    """GGUF repositories on Hugging Face matching ``text``, best by ``sort`` first.

    ``sort`` is one of :data:`SORTS` (downloads, trending, updated, likes). Page ``page`` of
    ``limit`` results; huggingface_hub follows the Hub's ``Link`` header across its pages.
    """
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)} (got {sort!r})")
    if limit < 1 or page < 0:
        raise ValueError("limit must be at least 1 and page at least 0")
    words = " ".join(text.split())
    first = page * limit

    def call() -> list[Any]:
        api = HfApi(endpoint=endpoint, token=token)
        found = api.list_models(
            filter="gguf",
            search=words or None,
            sort=SORTS[sort],  # type: ignore[arg-type]
            limit=first + limit + 1,  # one more: is there a next page?
            expand=EXPAND,  # type: ignore[arg-type]
        )
        return list(islice(found, first, first + limit + 1))

    infos = with_deadline(
        call,
        endpoint=endpoint,
        timeout_s=timeout_s,
        what="the search",
        error_for=lambda exc: _search_error(exc, endpoint),
    )
    repos = tuple(_repo_from_info(info) for info in infos[:limit])
    return SearchPage(words, sort, page, limit, repos, has_more=len(infos) > limit)


# --------------------------------------------------------------------------- about verdicts


def _catalog_models(catalog: Catalog | Iterable[CatalogModel]) -> tuple[CatalogModel, ...]:
    return catalog.models if isinstance(catalog, Catalog) else tuple(catalog)


def catalog_family(
    architecture: str | None,
    params: int | None,
    catalog: Catalog | Iterable[CatalogModel],
) -> CatalogModel | None:
    """The catalog model of the same llama.cpp architecture whose parameter count is nearest
    (within 4%), or None: then the catalog knows no numbers for this shape."""
    if not architecture or not params:
        return None
    best: tuple[float, CatalogModel] | None = None
    for model in _catalog_models(catalog):
        arch = model.arch
        if arch.architecture != architecture or not arch.total_params:
            continue
        off = abs(arch.total_params - params) / params
        if off <= FAMILY_PARAMS_TOLERANCE and (best is None or off < best[0]):
            best = (off, model)
    return best[1] if best is not None else None


def about_spec(
    model: CatalogModel, size_bytes: int, quant: str, repo_id: str, file: str
) -> ModelSpec | None:
    """A catalog-grade spec: ``model``'s architecture numbers with this file's size."""
    variant = CatalogVariant(
        repo=repo_id,
        files=(file,),
        quant=quant,
        size_bytes=size_bytes,
        size_source="estimated",
        sha256=None,
        source="Hugging Face file list",
    )
    try:
        return spec_from_catalog(model, variant)
    except ValueError:
        return None


def about_size(params: int) -> int:
    """The bytes of a typical Q4_K_M file of ``params`` parameters (a rough figure)."""
    return int(params * ABOUT_QUANT_BITS_PER_WEIGHT / 8)


def repo_row(repo: HubRepo, catalog: Catalog | Iterable[CatalogModel]) -> ModelRow:
    """The row of a repo before its files are listed, with an "about" spec when it can."""
    family = catalog_family(repo.architecture, repo.params, catalog)
    spec = None
    note = ""
    size = about_size(repo.params) if repo.params else None
    if family is not None and size and repo.params:
        spec = about_spec(family, size, ABOUT_QUANT, repo.repo_id, "")
        note = (
            f"About: a typical {ABOUT_QUANT} file of {repo.params / 1e9:.1f}B parameters, with "
            f"the catalog's numbers for {family.name}. Open the repo for its files and exact "
            "verdicts."
        )
    elif repo.architecture:
        note = (
            f"The catalog has no numbers for a {repo.architecture} model of this size; open the "
            "repo to read its files' headers."
        )
    else:
        note = "Hugging Face gave no summary of this repo; open it to read its files' headers."
    if repo.gated:
        note += " Gated: accept its license on the model page, then add a token in Settings."
    row = ModelRow.remote(repo.repo_id, "", spec, size, note=note)
    return dataclasses.replace(
        row,
        name=repo.name,
        params=repo.params,
        quant=f"~{ABOUT_QUANT}" if spec is not None else "?",
        location=f"hub:{repo.repo_id}",
        file=None,
        size_exact=False,
        hub=repo,
    )


def file_rows(
    repo_id: str,
    files: Sequence[RemoteModelFile],
    catalog: Catalog | Iterable[CatalogModel],
    repo: HubRepo | None = None,
) -> RepoFiles:
    """The repo's model files as rows with "about" specs (their real sizes and the catalog's
    numbers for the family, when the Hub's summary names one); projectors marked, left out."""
    family = catalog_family(repo.architecture, repo.params, catalog) if repo else None
    projectors = tuple(f.name for f in files if f.is_projector)
    rows: list[ModelRow] = []
    for file in files:
        if file.is_projector:
            continue
        parts = file.filenames if file.is_split else ()
        quant = file.quant or "?"
        if not file.is_complete:
            note = f"Only {len(file.parts)} of its {file.expected_parts} parts are in the repo."
            row = ModelRow.remote(repo_id, file.path, None, file.size_bytes, note=note, parts=parts)
        else:
            spec = None
            if family is not None and file.size_bytes and file.quant:
                spec = about_spec(family, file.size_bytes, quant, repo_id, file.path)
            note = "Its header has not been read yet."
            if spec is not None and family is not None:
                note = (
                    f"About: the catalog's numbers for {family.name} with this file's size; "
                    "its header makes it exact."
                )
            if projectors:
                note += f" Vision projector beside it: {', '.join(projectors)}."
            row = ModelRow.remote(repo_id, file.path, spec, file.size_bytes, note=note, parts=parts)
        rows.append(
            dataclasses.replace(
                row,
                name=repo.name if repo else row.name,
                params=row.params or (repo.params if repo else None),
                quant=quant,
                hub=repo,
            )
        )
    return RepoFiles(repo, tuple(files), tuple(rows), projectors, tuple(skipped_files(files)))


def expand_repo(
    repo_id: str,
    catalog: Catalog | Iterable[CatalogModel],
    repo: HubRepo | None = None,
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> RepoFiles:
    """List a repo's GGUF files (one request) and make them "about" rows."""
    files = with_deadline(
        lambda: list_gguf_files(repo_id, token=token, endpoint=endpoint),
        endpoint=endpoint,
        timeout_s=timeout_s,
        what=f"the file list of {repo_id}",
        error_for=lambda exc: to_hub_error(exc, repo_id, None, endpoint),
    )
    return file_rows(repo_id, files, catalog, repo)


def exact_row(
    file: RemoteModelFile,
    repo: HubRepo | None = None,
    *,
    endpoint: str | None = None,
    cache_dir: Path | None = None,
) -> tuple[ModelRow, str]:
    """The file's row with an exact spec from its header (read over HTTP Range, only header
    bytes, cached on disk); spec None and the reason when it cannot be read."""
    row, message = read_file_row(file, endpoint, cache_dir)
    return (
        dataclasses.replace(
            row,
            name=repo.name if repo else row.name,
            # The file name's quantization, as the Hub lists it; else the header's own label.
            quant=file.quant or row.quant,
            hub=repo,
        ),
        message,
    )
