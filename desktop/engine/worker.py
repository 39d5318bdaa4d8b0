"""The inference worker: ``python -m desktop.engine.worker`` (or ``<frozen exe> --worker``).

This is the only module of the app that imports ``llama_cpp``. It runs in its own
process because llama.cpp can abort the whole process (GPU out of memory, an
illegal instruction, a crafted file), and a Python ``try`` cannot catch that; the
app survives, explains, and offers the fix (see DESIGN.md, "Process model").

Channels:

* stdin: one JSON request per line (:mod:`desktop.engine.protocol`).
* stdout: one JSON event per line, flushed per line, and nothing else. At start
  the worker keeps a private duplicate of file descriptor 1 for the protocol and
  points fd 1 at stderr, so anything native code prints can never corrupt the
  stream.
* stderr: llama.cpp's log (captured through ``llama_log_set``, echoed here) and
  Python tracebacks, for a person or the app's crash report.

Threads: a reader thread parses stdin, answers ``Stop`` at once (it sets an event
the generation loop checks at every token) and hands the other requests to the
main thread, which runs them one at a time. While serving other apps (``Serve``), an
HTTP server runs in threads of its own (:mod:`desktop.engine.api_server`) and puts
their requests on the same queue: the window's chat waits its turn behind them.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import gc
import inspect
import os
import queue
import re
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from desktop.core.llama_log import parse_load_log
from desktop.core.threads import default_threads, usable_cpus
from desktop.engine import protocol as p
from desktop.engine.api_jobs import ApiJob, run_api_job, served_model
from desktop.engine.streaming import follow_stream

_GGUF_MAGIC = b"GGUF"
_GGUF_VERSIONS = (2, 3)
_ROLES = ("system", "user", "assistant")
_LOG_DEBUG, _LOG_ERROR, _LOG_CONT = 1, 4, 5  # enum ggml_log_level (llama.cpp >= b3900)

#: Chat format for a model without ``tokenizer.chat_template``, by architecture prefix.
_FALLBACK_FORMATS = (("gemma", "gemma"), ("qwen", "chatml"), ("phi3", "phi3"))
_DEFAULT_FALLBACK_FORMAT = "chatml"

_ALLOC_DEVICE_RE = re.compile(r"failed to allocate (?P<device>\S+) buffer of size (?P<size>\d+)")
_ALLOC_SIZE_RE = re.compile(r"failed to allocate buffer of size (?P<size>\d+)")
_ALLOC_MIB_RE = re.compile(r"allocating (?P<mib>[0-9.]+) MiB on device (?P<device>\d+)")
_NUMPY_ALLOC_RE = re.compile(r"Unable to allocate (?P<amount>[0-9.]+) (?P<unit>[KMGTPE]?i?B)")
_OOM_RE = re.compile(r"out of memory|failed to allocate|unable to allocate", re.IGNORECASE)


class _EventWriter:
    """Writes events to the private protocol descriptor, one ``write`` per line."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self.broken = False  # the app closed its end

    def send(self, event: p.Event) -> None:
        data = (p.encode(event) + "\n").encode("utf-8")
        with self._lock:
            if self.broken:
                return
            try:
                self._stream.write(data)
                self._stream.flush()
            except (BrokenPipeError, OSError):
                self.broken = True


@dataclass(frozen=True)
class _Captured:
    parts: list[str]  # log text pieces, as llama.cpp sent them
    errors: list[str]  # its ERROR-level lines, stripped

    def text(self) -> str:
        return "".join(self.parts)


class _LogCapture:
    """llama.cpp's log callback: keeps the text while a load runs and echoes it to stderr."""

    def __init__(self, llama_cpp: Any) -> None:
        self._lock = threading.Lock()
        self._parts: list[str] = []
        self._errors: list[str] = []  # ERROR-level lines of the capture
        self._capturing = False
        self._last_level = 0
        # ctypes calls back into Python; keep the function object alive as long as we are.
        self._callback = llama_cpp.llama_log_callback(self._on_log)
        llama_cpp.llama_log_set(self._callback, ctypes.c_void_p(0))

    def _on_log(self, level: int, text: bytes, user_data: Any) -> None:
        if level == _LOG_CONT:
            level = self._last_level
        self._last_level = level
        if level == _LOG_DEBUG:
            return  # thousands of graph lines per load; nothing the app or a person needs
        piece = text.decode("utf-8", "replace")
        with self._lock:
            if self._capturing:
                self._parts.append(piece)
                if level == _LOG_ERROR:
                    self._errors.append(piece.strip())
        with contextlib.suppress(OSError, ValueError):  # stderr gone: the capture has the text
            sys.stderr.write(piece)

    @contextlib.contextmanager
    def capture(self) -> Iterator[_Captured]:
        """Collect log text (and its error lines) until the block ends."""
        with self._lock:
            self._parts = []
            self._errors = []
            self._capturing = True
        try:
            yield _Captured(self._parts, self._errors)
        finally:
            with self._lock:
                self._capturing = False


class _RequestFailed(Exception):
    """A request ends with this error event."""

    def __init__(self, kind: p.ErrorKind, message: str, **details: Any) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.details = details


class Worker:
    """Holds at most one model and serves requests on the main thread."""

    def __init__(self, writer: _EventWriter, llama_cpp: Any) -> None:
        self._send = writer.send
        self._writer = writer
        self._llama_cpp = llama_cpp
        self._log = _LogCapture(llama_cpp)
        self._llama: Any = None
        self._prompt_length: _PromptLength | None = None
        self._requests: queue.Queue[p.Request | ApiJob | None] = queue.Queue()
        self._stop = threading.Event()
        self._busy = threading.Lock()  # guards _busy_flag
        self._busy_flag = False  # from accepting a request until just before its last event
        self._progress_callback: Any = None
        init = inspect.signature(llama_cpp.Llama.__init__).parameters
        self._llama_params = frozenset(init)
        # Serving other apps (desktop.engine.api_server, imported on the first Serve).
        self._api: Any = None
        self._running: p.Request | None = None  # what the main thread works on
        self._unavailable = ""  # why there is no model, for the API's 503 answers
        self._chat_lock = threading.Lock()  # guards the two below
        self._queued_chat: str | None = None  # a chat accepted but not started yet
        self._cancelled_chats: set[str] = set()  # stopped before they started

    # ------------------------------------------------------------------ lifecycle

    def hello(self) -> p.Hello:
        return p.Hello(
            version=p.PROTOCOL_VERSION,
            pid=os.getpid(),
            llama_cpp_version=str(getattr(self._llama_cpp, "__version__", "unknown")),
            backends=_backend_names(self._llama_cpp),
            system_info=self._llama_cpp.llama_print_system_info().decode("utf-8", "replace"),
        )

    def serve(self, stdin_fd: int) -> int:
        """Run until ``Shutdown`` or the end of stdin; return the exit status."""
        reader = threading.Thread(target=self._read, args=(stdin_fd,), name="stdin", daemon=True)
        reader.start()
        while not self._writer.broken:
            request = self._requests.get()
            if request is None or isinstance(request, p.Shutdown):
                break
            if isinstance(request, ApiJob):
                self._run_api_job(request)
                continue
            if isinstance(request, p.Chat) and not self._start_chat(request):
                continue  # stopped while it waited: its Done went out then
            self._running = request
            try:
                terminal = self._handle(request)
            except _RequestFailed as failed:
                terminal = p.Error(
                    kind=failed.kind, message=failed.message, details=failed.details, id=request.id
                )
            except Exception as exc:  # a bug here must not take the model down with it
                terminal = p.Error(
                    kind="internal",
                    message=f"The worker hit an unexpected error: {exc!r}. "
                    "Please report it with the log.",
                    id=request.id,
                )
                traceback.print_exc()
            self._running = None
            self._finish(terminal)
        self._stop_serving()
        self._free_model()
        return 0

    def _finish(self, event: p.Event) -> None:
        # Free the slot before the last event goes out: the client may answer it at once.
        with self._busy:
            self._busy_flag = False
        self._send(event)

    def _read(self, stdin_fd: int) -> None:
        for line in _lines(stdin_fd):
            if not line.strip():
                continue
            try:
                request = p.decode(line)
            except p.ProtocolError as exc:
                self._send(
                    p.Error(
                        kind="protocol",
                        message=f"The worker could not read a request: {exc}.",
                        id=p.request_id_of(line),
                    )
                )
                continue
            if isinstance(request, p.Stop):
                self._stop.set()
                self._cancel_queued_chat()
            elif isinstance(request, p.Serve | p.StopServing):
                self._serve_request(request)
            elif isinstance(request, p.Shutdown):
                self._stop.set()
                self._requests.put(request)
            elif isinstance(request, (p.Load, p.Chat, p.Unload)):
                with self._busy:
                    accepted = not self._busy_flag
                    self._busy_flag = True
                if not accepted:
                    self._send(
                        p.Error(
                            kind="busy",
                            message="The worker is still busy with the previous request; "
                            "send one request at a time.",
                            id=request.id,
                        )
                    )
                    continue
                if isinstance(request, p.Chat):
                    self._stop.clear()  # a Stop sent after this chat must reach it
                    with self._chat_lock:
                        self._queued_chat = request.id
                self._requests.put(request)
            else:
                self._send(
                    p.Error(
                        kind="protocol",
                        message=f"{type(request).__name__} is an event, not a request.",
                        id=request.id,
                    )
                )
        # The app is gone (or closed our stdin): stop generating and exit.
        self._stop.set()
        self._requests.put(None)

    def _handle(self, request: p.Request) -> p.Event:
        if isinstance(request, p.Load):
            return self._load(request)
        if isinstance(request, p.Chat):
            return self._chat(request)
        if isinstance(request, p.Unload):
            self._free_model()
            return p.Unloaded(id=request.id)
        raise AssertionError(f"unexpected request {request!r}")

    # ------------------------------------------------------------------ other apps

    def _serve_request(self, request: p.Serve | p.StopServing) -> None:
        """Start or stop the HTTP server (on the reader thread: it needs no model)."""
        if isinstance(request, p.StopServing):
            self._stop_serving()
            self._send(p.ServingStopped(id=request.id))
            return
        from desktop.engine.api_server import ApiServer, ServeFailed  # only when serving

        if self._api is None:
            self._api = ApiServer(
                submit=self._submit_api_job, state=self._api_state, send=self._send
            )
        self._unavailable = request.unavailable_reason
        try:
            self._send(self._api.start(request))
        except ServeFailed as exc:
            self._send(p.Error(kind="serve_failed", message=str(exc), id=request.id))

    def _stop_serving(self) -> None:
        if self._api is not None:
            self._api.stop()

    def _submit_api_job(self, job: ApiJob) -> int:
        waiting = self._requests.qsize() + (1 if self._running is not None else 0)
        self._requests.put(job)
        return waiting

    def _api_state(self) -> Any:
        from desktop.engine.api_server import NO_MODEL, ModelState

        model = served_model(self._llama)
        if model is not None:
            self._unavailable = ""  # a model is back: an earlier crash is history
        return ModelState(
            model=model,
            loading=isinstance(self._running, p.Load),
            unavailable=self._unavailable or NO_MODEL,
        )

    def _run_api_job(self, job: ApiJob) -> None:
        from desktop.engine.api_server import NO_MODEL

        prompt_length = self._prompt_length
        run_api_job(
            job,
            self._llama,
            self._llama_cpp,
            (lambda: prompt_length.last) if prompt_length is not None else (lambda: 0),
            self._send,
            self._unavailable or NO_MODEL,
        )

    def _start_chat(self, request: p.Chat) -> bool:
        """Mark the window's chat as started; False when it was stopped while it waited."""
        with self._chat_lock:
            if request.id in self._cancelled_chats:
                self._cancelled_chats.discard(request.id)
                return False
            self._queued_chat = None
            return True

    def _cancel_queued_chat(self) -> None:
        """A Stop for a chat still waiting behind other apps' requests answers it now.

        Only while serving: otherwise nothing queues ahead of a chat, and a Stop reaches it
        at its next token as before.
        """
        if self._api is None or not self._api.running:
            return
        with self._chat_lock:
            chat_id, self._queued_chat = self._queued_chat, None
            if chat_id is None:
                return
            self._cancelled_chats.add(chat_id)
        self._finish(
            p.Done(
                prompt_tokens=0,
                generated_tokens=0,
                ttft_s=0.0,
                prompt_tokens_per_s=0.0,
                gen_tokens_per_s=0.0,
                stop_reason="user",
                id=chat_id,
            )
        )

    # ------------------------------------------------------------------ load

    def _load(self, req: p.Load) -> p.Event:
        # A load replaces the model even when it fails, so the app always knows there is
        # none after an error; and two models at once would need twice the memory.
        self._free_model()
        path = Path(req.path)
        _check_gguf_file(path)
        kwargs = self._llama_kwargs(req)
        remote = _remote_device_list(req)  # other computers' devices (desktop.engine.rpc)
        started = time.monotonic()
        with self._log.capture() as log, self._progress_reported(req.id), _devices_for(remote):
            try:
                llama = self._llama_cpp.Llama(**kwargs)
            except Exception as exc:
                raise _load_failure(exc, log, req) from None
        load_seconds = time.monotonic() - started
        report = parse_load_log(log.text())
        template = "gguf"
        if "tokenizer.chat_template" not in llama.metadata:
            llama.chat_format = _fallback_chat_format(llama.metadata)
            template = "fallback"
        elif llama.chat_format != "chat_template.default":
            template = str(llama.chat_format)  # a built-in format that matches the model's template
        self._llama = llama
        self._prompt_length = _PromptLength(llama)
        offloaded = report.offloaded_layers
        # A build without a GPU backend prints no "offloaded N/M layers" line: nothing was.
        gpu_layers_without_log = (
            max(req.n_gpu_layers, 0) if self._llama_cpp.llama_supports_gpu_offload() else 0
        )
        return p.Loaded(
            n_ctx=int(llama.n_ctx()),
            n_gpu_layers=offloaded if offloaded is not None else gpu_layers_without_log,
            n_layers=int(self._llama_cpp.llama_model_n_layer(llama.model)),
            chat_template=template,
            chat_format=str(llama.chat_format),
            buffers=report.to_dict(),
            load_seconds=load_seconds,
            n_threads=int(kwargs["n_threads"]),
            remote_memory=_remote_memory(),
            id=req.id,
        )

    def _llama_kwargs(self, req: p.Load) -> dict[str, Any]:
        if req.kv_type != "f16" and not req.flash_attn:
            raise _RequestFailed(
                "bad_settings",
                f"A {req.kv_type} KV cache needs flash attention in llama.cpp. "
                "Turn flash attention on, or choose the f16 KV cache.",
            )
        if req.n_ctx < 0 or req.n_batch < 1 or req.n_ubatch < 1:
            raise _RequestFailed(
                "bad_settings",
                "The context size must be 0 (the model's own) or more, and the batch sizes "
                "at least 1.",
            )
        kwargs: dict[str, Any] = {
            "model_path": str(req.path),
            "n_gpu_layers": req.n_gpu_layers,
            "n_ctx": req.n_ctx,
            "n_batch": req.n_batch,
            "n_ubatch": req.n_ubatch,
            "use_mmap": req.use_mmap,
            "verbose": True,  # the log is captured; verbose also keeps native aborts on stderr
        }
        # llama-cpp-python's own default (logical CPUs / 2) leaves half of a 2-core machine
        # idle; the app's default is llama.cpp's: the physical cores (desktop.core.threads).
        threads = req.n_threads or _default_threads()
        kwargs["n_threads"] = threads
        kwargs["n_threads_batch"] = threads
        optional: dict[str, tuple[Any, Any]] = {  # name: (value, value that needs no support)
            "flash_attn": (req.flash_attn, False),
            "swa_full": (req.swa_full, False),
            "type_k": (p.KV_GGML_TYPES[req.kv_type], p.KV_GGML_TYPES["f16"]),
            "type_v": (p.KV_GGML_TYPES[req.kv_type], p.KV_GGML_TYPES["f16"]),
        }
        for name, (value, plain) in optional.items():
            if name in self._llama_params:
                kwargs[name] = value
            elif value != plain:
                raise _RequestFailed(
                    "bad_settings",
                    f"This llama-cpp-python ({self._llama_cpp.__version__}) has no {name} "
                    "setting. Turn it off, or update llama-cpp-python.",
                )
        return kwargs

    @contextlib.contextmanager
    def _progress_reported(self, request_id: str) -> Iterator[None]:
        """Send LoadProgress from llama.cpp's progress callback while the block runs.

        ``Llama()`` builds its model parameters from ``llama_model_default_params()``
        and takes no callback argument, so the defaults are wrapped for the load.
        """
        module: Any = sys.modules["llama_cpp.llama_cpp"]
        last = -1.0

        def on_progress(fraction: float, _user_data: Any) -> bool:
            nonlocal last
            try:
                if fraction >= 1.0 or fraction - last >= 0.01:
                    last = fraction
                    self._send(p.LoadProgress(fraction=min(max(fraction, 0.0), 1.0), id=request_id))
            except Exception:  # never let an exception abort the load (ctypes would return 0)
                pass
            return True

        callback = module.llama_progress_callback(on_progress)
        self._progress_callback = callback  # alive as long as the model may call it
        with _default_model_params(progress_callback=callback):
            yield

    def _free_model(self) -> None:
        llama, self._llama = self._llama, None
        self._prompt_length = None
        if llama is not None:
            llama.close()
            del llama
            gc.collect()

    # ------------------------------------------------------------------ chat

    def _chat(self, req: p.Chat) -> p.Event:
        llama = self._llama
        if llama is None:
            raise _RequestFailed("not_loaded", "No model is loaded. Load a model, then send again.")
        _check_messages(req.messages)
        started = time.monotonic()
        try:
            stream = llama.create_chat_completion(
                messages=req.messages,
                temperature=req.temperature,
                top_p=req.top_p,
                top_k=req.top_k,
                min_p=req.min_p,
                repeat_penalty=req.repeat_penalty,
                seed=req.seed,
                max_tokens=req.max_tokens,
                stream=True,
            )
        except Exception as exc:
            raise _chat_failure(exc) from None

        def on_text(text: str, t: float, index: int) -> None:
            self._send(p.Token(text=text, t=t, index=index, id=req.id))

        try:
            timing = follow_stream(
                stream, llama, chat=True, on_text=on_text, stop=self._stop, stopped_as="user"
            )
        except Exception as exc:
            raise _chat_failure(exc) from None
        finally:
            stream.close()
        ended = time.monotonic()
        finish = timing.finish
        prompt_tokens = self._prompt_length.last if self._prompt_length else 0
        # Every sampled token but the last is evaluated; the last one only when the model
        # itself ended the answer (its end-of-generation token is not part of it).
        generated = max(llama.n_tokens - prompt_tokens + (0 if finish == "stop" else 1), 0)
        ttft = timing.ttft_s(started, ended)
        return p.Done(
            prompt_tokens=prompt_tokens,
            generated_tokens=generated,
            ttft_s=ttft,
            prompt_tokens_per_s=prompt_tokens / ttft if ttft > 0 else 0.0,
            gen_tokens_per_s=timing.decode_tokens_per_s,
            stop_reason="user" if finish == "user" else "stop" if finish == "stop" else "length",
            remote_memory=_remote_memory(),
            id=req.id,
        )


class _PromptLength:
    """Remembers how many tokens the last prompt had.

    llama-cpp-python's chat handler renders the template and tokenizes the result
    with one ``Llama.tokenize`` call per chat; this wraps that method on the instance
    so the count is exact (the cached prefix included) without rendering twice.
    """

    def __init__(self, llama: Any) -> None:
        self.last = 0
        self._tokenize = llama.tokenize
        llama.tokenize = self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        tokens = self._tokenize(*args, **kwargs)
        self.last = len(tokens)
        return tokens


# ---------------------------------------------------------------------- helpers


def _remote_memory() -> list[dict[str, Any]]:
    """Free and total memory of every other computer's device this worker registered (an
    RPC request each, through llama.cpp's open connection); none without remote devices."""
    rpc = sys.modules.get("desktop.engine.rpc")
    if rpc is None:
        return []
    out = []
    for key, (free, total) in rpc.remote_memory().items():
        endpoint, _, index = key.rpartition("#")
        out.append(
            {"endpoint": endpoint, "index": int(index), "free_bytes": free, "total_bytes": total}
        )
    return out


#: How long registering the other computers' RPC servers may take before the load gives up.
RPC_REGISTER_TIMEOUT_S = 20.0


def _remote_device_list(req: p.Load) -> list[int] | None:
    """Register ``req.rpc_servers``; the devices the load uses (None: llama.cpp's own list).

    llama.cpp aborts the process when a server cannot be reached, so each one is checked
    first; registration lasts for the process, so once any server is registered every load
    names its devices: the chosen servers' devices, then this computer's GPUs.
    """
    from desktop.engine import rpc

    if not req.rpc_servers and not rpc.registered_devices():
        return None
    for endpoint in req.rpc_servers:
        why = rpc.check_reachable(endpoint)
        if why is not None:
            raise _RequestFailed(
                "remote_device",
                f"The computer at {endpoint} did not answer: {why}. Start sharing there, or "
                "load without it.",
                endpoint=endpoint,
            )
    done: dict[str, list[int]] = {}
    failed: list[BaseException] = []

    def register() -> None:
        try:
            done.update(rpc.register_servers(list(req.rpc_servers)))
        except BaseException as exc:  # reported below, as a sentence
            failed.append(exc)

    thread = threading.Thread(target=register, name="rpc-register", daemon=True)
    thread.start()
    thread.join(RPC_REGISTER_TIMEOUT_S)
    if thread.is_alive() or failed:
        where = ", ".join(req.rpc_servers)
        raise _RequestFailed(
            "remote_device",
            f"The RPC server at {where} accepted the connection but did not answer within "
            f"{RPC_REGISTER_TIMEOUT_S:g} s. It may be serving another computer; try again, "
            "or load without it."
            if not failed
            else f"The RPC server at {where} could not be used: {failed[0]}.",
        )
    return [d for endpoint in req.rpc_servers for d in done[endpoint]] + rpc.local_gpu_devices()


@contextlib.contextmanager
def _devices_for(devices: list[int] | None) -> Iterator[None]:
    """Load with exactly ``devices`` (llama_model_params.devices, NULL-terminated)."""
    if devices is None:
        yield
        return
    array = (ctypes.c_void_p * (len(devices) + 1))(*devices, None)  # alive until the block ends
    with _default_model_params(devices=ctypes.cast(array, ctypes.c_void_p)):
        yield


@contextlib.contextmanager
def _default_model_params(**fields: Any) -> Iterator[None]:
    """Load with these llama_model_params fields set. ``Llama()`` builds its model parameters
    from ``llama_model_default_params()`` and takes neither a progress callback nor a device
    list, so the defaults are wrapped while the block runs (the wrappers nest)."""
    module: Any = sys.modules["llama_cpp.llama_cpp"]
    original = module.llama_model_default_params

    def default_params() -> Any:
        params = original()
        for name, value in fields.items():
            setattr(params, name, value)
        return params

    module.llama_model_default_params = default_params
    try:
        yield
    finally:
        module.llama_model_default_params = original


def _default_threads() -> int:
    """The physical cores this process may use (the app's default thread count)."""
    import psutil

    try:
        physical = psutil.cpu_count(logical=False)
    except Exception:  # psutil cannot read the topology on some VMs: fall back to logical
        physical = None
    return default_threads(physical, os.cpu_count(), usable_cpus())


def _backend_names(llama_cpp: Any) -> list[str]:
    """The ggml backends this build registered ("CPU", "CUDA", "Metal", "Vulkan", ...)."""
    try:
        lib = llama_cpp.llama_cpp._lib
        lib.ggml_backend_reg_count.restype = ctypes.c_size_t
        lib.ggml_backend_reg_get.argtypes = [ctypes.c_size_t]
        lib.ggml_backend_reg_get.restype = ctypes.c_void_p
        lib.ggml_backend_reg_name.argtypes = [ctypes.c_void_p]
        lib.ggml_backend_reg_name.restype = ctypes.c_char_p
        count = lib.ggml_backend_reg_count()
        return [
            lib.ggml_backend_reg_name(lib.ggml_backend_reg_get(i)).decode("utf-8", "replace")
            for i in range(count)
        ]
    except (AttributeError, OSError):  # symbols not exported by this build
        return ["CPU", "GPU"] if llama_cpp.llama_supports_gpu_offload() else ["CPU"]


def _check_gguf_file(path: Path) -> None:
    """Plain errors for the common mistakes, before llama.cpp sees the file."""
    if not path.is_file():
        raise _RequestFailed(
            "file_not_found",
            f"There is no model file at {path}. Check the path, or pick the model again.",
        )
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise _RequestFailed(
            "file_not_found",
            f"The model file {path.name} cannot be read ({exc.strerror}). Check its permissions.",
        ) from None
    if head[:4] != _GGUF_MAGIC:
        raise _RequestFailed(
            "not_gguf",
            f"{path.name} is not a GGUF model file (it does not start with 'GGUF'). "
            "Pick a .gguf file; other formats must be converted with llama.cpp's tools first.",
        )
    if len(head) < 8:
        raise _RequestFailed(
            "bad_model",
            f"{path.name} ends right after its first bytes, so it is incomplete. "
            "Download it again.",
        )
    version = int.from_bytes(head[4:8], "little")
    if version not in _GGUF_VERSIONS:
        raise _RequestFailed(
            "bad_model",
            f"{path.name} is GGUF version {version}, which this llama.cpp cannot read. "
            "Download the file again, or update llama-cpp-python.",
        )


def _load_failure(exc: Exception, captured: _Captured, req: p.Load) -> _RequestFailed:
    """Turn what ``Llama()`` raised, and what llama.cpp logged, into a plain error."""
    name = Path(req.path).name
    exc_text = str(exc)
    log = captured.text()
    if type(exc).__module__.startswith("jinja2"):
        return _RequestFailed(
            "bad_template",
            f"The chat template inside {name} is broken ({exc_text}). "
            "Use another file of this model.",
        )
    if isinstance(exc, MemoryError) or _OOM_RE.search(log) or _OOM_RE.search(exc_text):
        device, needed = _allocation_failure(log + "\n" + exc_text)
        where = f" on {device}" if device else ""
        amount = f" {needed / 2**30:.2f} GiB" if needed else " enough memory"
        on_gpu = device is not None and not device.startswith("CPU")
        if on_gpu or (device is None and req.n_gpu_layers != 0):
            fix = "Offload fewer layers to the GPU, or use a smaller context."
        else:
            fix = "Use a smaller context or a smaller quantization, or close other programs."
        return _RequestFailed(
            "out_of_memory",
            f"llama.cpp could not allocate{amount}{where} for {name} "
            f"({req.n_gpu_layers} GPU layers, context {req.n_ctx}). {fix}",
            needed_bytes=needed,
            device=device,
            n_gpu_layers=req.n_gpu_layers,
            n_ctx=req.n_ctx,
            log_errors=captured.errors,
        )
    # The first error line is the cause ("gguf_init_from_reader: failed to read key-value
    # pairs"); the later ones only say that loading failed.
    said = _without_function(captured.errors[0]) if captured.errors else exc_text
    return _RequestFailed(
        "bad_model",
        f"llama.cpp could not load {name}: {said.rstrip('.')}. The file may be incomplete, "
        "damaged or made for a newer llama.cpp; download it again or update llama-cpp-python.",
        log_errors=captured.errors,
    )


def _without_function(line: str) -> str:
    """'gguf_init_from_reader: failed to read' -> 'failed to read'."""
    head, sep, rest = line.partition(": ")
    return rest if sep and re.fullmatch(r"[A-Za-z_~][\w:~]*", head) else line


def _allocation_failure(log: str) -> tuple[str | None, int | None]:
    """(device, bytes) of the allocation llama.cpp says failed, where it says so."""
    match = _ALLOC_DEVICE_RE.search(log)
    if match:
        return match["device"], int(match["size"])
    match = _ALLOC_MIB_RE.search(log)
    if match:
        return f"GPU {match['device']}", round(float(match["mib"]) * 2**20)
    match = _ALLOC_SIZE_RE.search(log)
    if match:
        return "CPU", int(match["size"])
    match = _NUMPY_ALLOC_RE.search(log)  # llama-cpp-python's own arrays (logits: n_batch x n_vocab)
    if match:
        unit = match["unit"].replace("i", "")
        power = "BKMGTPE".index(unit[0]) if unit != "B" else 0
        return "CPU", round(float(match["amount"]) * 1024**power)
    return None, None


def _check_messages(messages: list[dict[str, str]]) -> None:
    if not messages:
        raise _RequestFailed("bad_settings", "The conversation is empty. Write a message first.")
    for message in messages:
        if message.get("role") not in _ROLES or not isinstance(message.get("content"), str):
            raise _RequestFailed(
                "protocol",
                "Each message needs a role (system, user or assistant) and a text content.",
            )


def _chat_failure(exc: Exception) -> _RequestFailed:
    text = str(exc)
    if type(exc).__module__.startswith("jinja2"):
        # The sandbox (ImmutableSandboxedEnvironment) refuses unsafe attribute access.
        return _RequestFailed(
            "bad_template",
            f"The model's chat template could not be used ({text}). "
            "It may try something unsafe; use another file of this model.",
        )
    if "exceed context window" in text:
        return _RequestFailed(
            "bad_settings",
            f"The conversation no longer fits in the context ({text}). "
            "Start a new chat, or load the model with a larger context.",
        )
    return _RequestFailed(
        "internal", f"llama.cpp failed while answering: {text}. Load the model again."
    )


def _fallback_chat_format(metadata: dict[str, str]) -> str:
    arch = metadata.get("general.architecture", "")
    for prefix, chat_format in _FALLBACK_FORMATS:
        if arch.startswith(prefix):
            return chat_format
    return _DEFAULT_FALLBACK_FORMAT


def _lines(fd: int) -> Iterator[bytes]:
    """Lines from a file descriptor, read with ``os.read``.

    Not ``sys.stdin``: a daemon thread blocked inside a buffered reader holds its lock,
    and the interpreter aborts at exit when it cannot take that lock.
    """
    pending = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError:
            chunk = b""
        if not chunk:
            if pending:
                yield pending
            return
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from complete


def _claim_stdout() -> BinaryIO:
    """Keep a private duplicate of fd 1 for the protocol; point fd 1 (and sys.stdout) at stderr."""
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "wb", buffering=0)


def main() -> int:
    """Entry point of the worker process."""
    stream = _claim_stdout()
    faulthandler.enable()  # a native crash still leaves a Python traceback on stderr
    writer = _EventWriter(stream)
    try:
        import llama_cpp
    except Exception as exc:  # ImportError, or OSError from a broken shared library
        writer.send(
            p.Error(
                kind="internal",
                message=f"llama-cpp-python could not be loaded ({exc}). "
                "Install it into the app's environment: pip install llama-cpp-python.",
            )
        )
        return 1
    worker = Worker(writer, llama_cpp)
    writer.send(worker.hello())
    return worker.serve(sys.stdin.fileno())


if __name__ == "__main__":
    sys.exit(main())
