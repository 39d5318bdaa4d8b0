"""Messages between the app and the inference worker: frozen dataclasses, one JSON line each.

The app (``desktop.services.engine_client`` or the headless ``desktop.engine.runner``)
writes *requests* to the worker's stdin; the worker writes *events* to its stdout.
Every message is one JSON object on one line with a ``type`` field and an ``id``;
events echo the ``id`` of the request they answer, so the client can tell which
``Done`` ends which ``Chat``.

Requests: :class:`Load`, :class:`Chat`, :class:`Stop`, :class:`Unload`, :class:`Shutdown`,
:class:`Serve`, :class:`StopServing`.
Events: :class:`Hello` (once, at start), :class:`LoadProgress`, :class:`Loaded`,
:class:`Unloaded`, :class:`Token`, :class:`Done`, :class:`Error`; while serving other apps
(``desktop.engine.api_server``): :class:`Serving`, :class:`ServingStopped`,
:class:`ApiRequest`, :class:`ApiStarted`, :class:`ApiFinished` (an API request's tokens are
plain :class:`Token` events with the API request's id).

llama.cpp's own log lines never travel on this channel: the worker captures them
(and copies them to its stderr, which the app keeps a tail of for crash reports).

This module is imported by both sides, so it depends on nothing but the standard
library, :mod:`desktop.core.llama_log` and :mod:`desktop.core.sampling`.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Union

from desktop.core.llama_log import LlamaLoadReport
from desktop.core.sampling import DEFAULT_SAMPLING, Sampling

#: Bumped on any incompatible change; the worker says its version in :class:`Hello`.
PROTOCOL_VERSION = 1

KvType = Literal["f16", "q8_0", "q4_0"]
#: The ggml_type id of each KV cache type (ggml.h enum ggml_type), for llama.cpp's type_k/_v.
KV_GGML_TYPES: dict[str, int] = {"f16": 1, "q4_0": 2, "q8_0": 8}
StopReason = Literal["stop", "length", "user"]
ErrorKind = Literal[
    "file_not_found",
    "not_gguf",
    "bad_model",
    "bad_template",
    "bad_settings",
    "out_of_memory",
    "not_loaded",
    "busy",
    "internal",
    "protocol",
    "stop_timeout",
    "remote_device",
    "serve_failed",
]


class ProtocolError(ValueError):
    """A line that is not a valid protocol message (bad JSON, unknown type, wrong field)."""


def new_request_id() -> str:
    """A short random id; unique enough to pair requests with their events."""
    return uuid.uuid4().hex[:12]


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True, kw_only=True)
class Load:
    """Load a GGUF model. Any model already loaded is freed first, even if this one fails."""

    type: ClassVar[str] = "load"
    path: str
    n_gpu_layers: int = 0  # -1 offloads every layer
    n_ctx: int = 4096  # tokens
    n_threads: int | None = None  # None: the physical cores (desktop.core.threads)
    flash_attn: bool = False
    kv_type: KvType = "f16"  # a quantized V cache needs flash_attn
    use_mmap: bool = True
    n_batch: int = 512
    n_ubatch: int = 512
    # Full-size sliding-window cache, llama-cpp-python's default: its prompt-prefix reuse
    # rewinds the cache, which a window-sized SWA cache cannot do once cells were evicted.
    swa_full: bool = True
    # Other computers' llama.cpp RPC servers ("host:port"), registered before the load; their
    # devices come first in llama.cpp's device list (desktop.engine.rpc).
    rpc_servers: list[str] = field(default_factory=list)
    id: str = field(default_factory=new_request_id)

    @classmethod
    def from_settings(cls, path: str, settings: Any, n_threads: int | None = None) -> Load:
        """The load request for an estimator ``Settings`` (so the plan and the load agree).

        ``n_gpu_layers=None`` (auto) must be resolved by the caller to the plan's count.
        """
        layers = settings.n_gpu_layers
        return cls(
            path=path,
            n_gpu_layers=0 if layers is None else int(layers),
            n_ctx=int(settings.n_ctx),
            n_threads=n_threads if n_threads is not None else settings.n_threads,
            flash_attn=bool(settings.flash_attn),
            kv_type=settings.kv_type,
            use_mmap=bool(settings.use_mmap),
            n_batch=int(settings.n_batch),
            n_ubatch=int(settings.n_ubatch),
            swa_full=bool(settings.swa_full),
        )


@dataclass(frozen=True, kw_only=True)
class Chat:
    """Answer a conversation; the worker streams :class:`Token` events then one :class:`Done`."""

    type: ClassVar[str] = "chat"
    messages: list[dict[str, str]]  # [{"role": "user", "content": "..."}, ...]
    # What is left out is the chat panel's default (desktop.core.sampling).
    temperature: float = DEFAULT_SAMPLING.temperature
    top_p: float = DEFAULT_SAMPLING.top_p
    top_k: int = DEFAULT_SAMPLING.top_k
    min_p: float = DEFAULT_SAMPLING.min_p
    repeat_penalty: float = DEFAULT_SAMPLING.repeat_penalty
    seed: int | None = DEFAULT_SAMPLING.seed
    max_tokens: int | None = DEFAULT_SAMPLING.max_tokens  # None: until the context is full
    id: str = field(default_factory=new_request_id)

    @classmethod
    def from_sampling(cls, messages: list[dict[str, str]], sampling: Sampling) -> Chat:
        """The chat request for a conversation with these sampler settings."""
        return cls(messages=messages, **dataclasses.asdict(sampling))


@dataclass(frozen=True, kw_only=True)
class Stop:
    """Stop the running generation at the next token (answered by the chat's ``Done``)."""

    type: ClassVar[str] = "stop"
    id: str = field(default_factory=new_request_id)


@dataclass(frozen=True, kw_only=True)
class Unload:
    """Free the model and its context (answered by :class:`Unloaded`)."""

    type: ClassVar[str] = "unload"
    id: str = field(default_factory=new_request_id)


@dataclass(frozen=True, kw_only=True)
class Shutdown:
    """Stop whatever runs and exit with status 0."""

    type: ClassVar[str] = "shutdown"
    id: str = field(default_factory=new_request_id)


@dataclass(frozen=True, kw_only=True)
class Serve:
    """Serve the loaded model to other apps over an OpenAI-compatible HTTP API.

    Answered by :class:`Serving` or an :class:`Error` of kind ``serve_failed`` (the port is
    taken, the address cannot be used). Serving again replaces the running server.
    """

    type: ClassVar[str] = "serve"
    host: str = "127.0.0.1"  # loopback unless the person chose otherwise
    port: int = 8080  # 0: any free port
    api_key: str | None = None  # Bearer key every request must carry (None: no key)
    cors_origins: list[str] = field(default_factory=list)  # browser origins allowed (none)
    # Why there is no model, said by 503 answers until one loads ("" : no model loaded yet);
    # the app sets it when it serves again from a fresh worker after a crash.
    unavailable_reason: str = ""
    id: str = field(default_factory=new_request_id)


@dataclass(frozen=True, kw_only=True)
class StopServing:
    """Stop the HTTP server: the port is free once :class:`ServingStopped` arrives."""

    type: ClassVar[str] = "stop_serving"
    id: str = field(default_factory=new_request_id)


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, kw_only=True)
class Hello:
    """First line the worker writes once llama.cpp is imported."""

    type: ClassVar[str] = "hello"
    version: int  # PROTOCOL_VERSION of the worker
    pid: int
    llama_cpp_version: str
    backends: list[str]  # ggml backends the build registered, e.g. ["CPU"] or ["CUDA", "CPU"]
    system_info: str = ""  # llama_print_system_info(): CPU features the build uses
    id: str = ""


@dataclass(frozen=True, kw_only=True)
class LoadProgress:
    """llama.cpp's load progress callback, 0.0 to 1.0 (sent at most every 1%)."""

    type: ClassVar[str] = "load_progress"
    fraction: float
    id: str = ""


@dataclass(frozen=True, kw_only=True)
class Loaded:
    """The model is ready; ``buffers`` is what llama.cpp said it allocated."""

    type: ClassVar[str] = "loaded"
    n_ctx: int
    n_gpu_layers: int  # layers actually offloaded (from the log), else the requested number
    n_layers: int  # transformer blocks in the model
    chat_template: str  # "gguf" (the model's own Jinja), a built-in format name, or "fallback"
    chat_format: str  # the llama-cpp-python chat format in use ("chat_template.default", "gemma")
    buffers: dict[str, Any]  # LlamaLoadReport.to_dict()
    load_seconds: float
    n_threads: int = 0  # CPU threads llama.cpp decodes with (0: not reported)
    # Other computers' devices after the load: endpoint, index, free_bytes, total_bytes.
    remote_memory: list[dict[str, Any]] = field(default_factory=list)
    id: str = ""

    def report(self) -> LlamaLoadReport:
        """The buffer sizes as the parser's report object."""
        return LlamaLoadReport.from_dict(self.buffers)


@dataclass(frozen=True, kw_only=True)
class Unloaded:
    """The model was freed."""

    type: ClassVar[str] = "unloaded"
    id: str = ""


@dataclass(frozen=True, kw_only=True)
class Token:
    """One streamed piece of the answer (usually one token; a multi-byte character may join two)."""

    type: ClassVar[str] = "token"
    text: str
    t: float  # time.monotonic() in the worker when the piece was ready, seconds
    index: int  # 0, 1, 2, ... within one chat
    id: str = ""


@dataclass(frozen=True, kw_only=True)
class Done:
    """A chat finished; rates are from the worker's own clock."""

    type: ClassVar[str] = "done"
    prompt_tokens: int
    generated_tokens: int
    ttft_s: float  # from the Chat request to the first token, prompt processing included
    prompt_tokens_per_s: float  # prompt_tokens / ttft_s
    gen_tokens_per_s: float  # (generated - 1) / (time of last token - time of first token)
    stop_reason: StopReason
    # Other computers' devices when the answer ended (as in Loaded.remote_memory).
    remote_memory: list[dict[str, Any]] = field(default_factory=list)
    id: str = ""


@dataclass(frozen=True, kw_only=True)
class Error:
    """A request failed; ``message`` is a sentence for a person, with the fix."""

    type: ClassVar[str] = "error"
    kind: ErrorKind
    message: str
    details: dict[str, Any] = field(
        default_factory=dict
    )  # e.g. {"needed_bytes": ..., "device": ...}
    id: str = ""


@dataclass(frozen=True, kw_only=True)
class Serving:
    """The HTTP server listens; ``url`` is what another app is given (``.../v1``)."""

    type: ClassVar[str] = "serving"
    host: str
    port: int  # the port bound (the free one chosen when 0 was asked)
    url: str  # e.g. "http://127.0.0.1:8080/v1"
    api_key_required: bool
    id: str = ""


@dataclass(frozen=True, kw_only=True)
class ServingStopped:
    """The HTTP server stopped and released its port."""

    type: ClassVar[str] = "serving_stopped"
    reason: str = ""  # "" when asked to stop
    id: str = ""


@dataclass(frozen=True, kw_only=True)
class ApiRequest:
    """Another app's request was accepted and waits its turn; ``id`` is the API request's id.

    Its :class:`Token` events carry the same id, then one :class:`ApiFinished` ends it.
    """

    type: ClassVar[str] = "api_request"
    client: str  # "127.0.0.1:53422"
    endpoint: str  # "/v1/chat/completions"
    waiting: int  # jobs ahead of it in the worker's queue when it arrived
    t: float  # time.monotonic() in the worker
    id: str = ""


@dataclass(frozen=True, kw_only=True)
class ApiStarted:
    """Another app's request leaves the queue and starts generating."""

    type: ClassVar[str] = "api_started"
    t: float  # time.monotonic() in the worker
    id: str = ""


@dataclass(frozen=True, kw_only=True)
class ApiFinished:
    """Another app's request was answered (or refused: ``status`` is its HTTP status)."""

    type: ClassVar[str] = "api_finished"
    client: str
    endpoint: str
    status: int  # HTTP status: 200, or the error's (400, 401, 404, 413, 503, ...)
    prompt_tokens: int = 0
    generated_tokens: int = 0
    ttft_s: float = 0.0  # from the request's arrival to its first token, waiting included
    gen_tokens_per_s: float = 0.0
    stop_reason: str = ""  # "stop", "length", "disconnected"; "" for a refused request
    message: str = ""  # the error's sentence for a refused request
    t: float = 0.0  # time.monotonic() in the worker
    id: str = ""


Request = Union[Load, Chat, Stop, Unload, Shutdown, Serve, StopServing]  # noqa: UP007
Event = Union[  # noqa: UP007 (used at runtime)
    Hello,
    LoadProgress,
    Loaded,
    Unloaded,
    Token,
    Done,
    Error,
    Serving,
    ServingStopped,
    ApiRequest,
    ApiStarted,
    ApiFinished,
]
Message = Union[Request, Event]  # noqa: UP007

#: Every request and event class, from the unions above (one list to keep).
REQUEST_TYPES: tuple[type[Any], ...] = typing.get_args(Request)
EVENT_TYPES: tuple[type[Any], ...] = typing.get_args(Event)
#: The events about serving other apps (desktop.services.api_serving takes them).
API_EVENT_TYPES: tuple[type[Any], ...] = (
    Serving,
    ServingStopped,
    ApiRequest,
    ApiStarted,
    ApiFinished,
)
_TYPES: dict[str, type[Any]] = {cls.type: cls for cls in (*REQUEST_TYPES, *EVENT_TYPES)}
_HINTS: dict[type[Any], dict[str, Any]] = {
    cls: typing.get_type_hints(cls) for cls in _TYPES.values()
}


def encode(msg: Message) -> str:
    """One JSON line (no trailing newline) with ``type`` first."""
    body: dict[str, Any] = {"type": msg.type}
    for f in dataclasses.fields(msg):
        body[f.name] = getattr(msg, f.name)
    # ensure_ascii keeps the line free of U+2028 and friends, which some line readers split on.
    return json.dumps(body, separators=(",", ":"), allow_nan=False)


def decode(line: str | bytes) -> Message:
    """Parse one line back into its message; raise :class:`ProtocolError` on anything wrong."""
    try:
        data = json.loads(line, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not a JSON line: {_preview(line)} ({exc})") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"expected a JSON object, got {type(data).__name__}: {_preview(line)}")
    kind = data.pop("type", None)
    cls = _TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message type {kind!r}")
    hints = _HINTS[cls]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ProtocolError(f"{kind}: unknown field(s) {', '.join(unknown)}")
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in data
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ProtocolError(f"{kind}: missing field(s) {', '.join(missing)}")
    for name, value in data.items():
        if not _matches(value, hints[name]):
            raise ProtocolError(f"{kind}.{name}: {value!r} is not {_describe(hints[name])}")
    return typing.cast(Message, cls(**data))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def request_id_of(line: str | bytes) -> str:
    """Best effort: the ``id`` of a line that failed to decode, so the error can echo it."""
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return ""
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else ""


def _matches(value: Any, hint: Any) -> bool:
    """Shallow check of a JSON value against the annotation of its field."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin is Literal:
        return value in typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(hint)
        return isinstance(value, dict) and all(
            _matches(k, key) and _matches(v, item) for k, v in value.items()
        )
    raise TypeError(f"protocol field type {hint!r} is not supported")  # a bug in this module


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    return getattr(hint, "__name__", str(hint))


def _preview(line: str | bytes, limit: int = 80) -> str:
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")
