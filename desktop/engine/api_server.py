"""The OpenAI-compatible HTTP server, running in a thread of the worker process.

Built on uvicorn (the ASGI server) and Starlette (routing, requests, responses), with the
bodies as pydantic models (:mod:`desktop.engine.api_schema`) and server-sent events from
``sse-starlette``. It lives in the worker because the worker holds the model: one copy in
memory, shared with the chat in the window, and the window's process never imports
llama_cpp. Each request becomes an :class:`~desktop.engine.api_jobs.ApiJob` on the worker's
own queue (``submit``); the worker's main thread answers the jobs one at a time, in turn
with the window's chats, and hands each piece back through a thread-safe callback.

Endpoints: ``GET /v1/models``, ``POST /v1/chat/completions`` and ``POST /v1/completions``
(streaming or not). Every error is OpenAI-shaped (``{"error": {"message", "type", "param",
"code"}}``), never a traceback. With an API key set, every request needs
``Authorization: Bearer <key>``. No CORS headers unless origins were given.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import uvicorn
from pydantic import BaseModel, ValidationError
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from desktop.engine import api_schema as s
from desktop.engine import protocol as p
from desktop.engine.api_jobs import (
    ApiJob,
    Failed,
    Finished,
    Outcome,
    Piece,
    ServedModel,
    model_matches,
    unknown_model,
)

MAX_BODY_BYTES = 4 * 2**20  # 4 MiB: far more text than any context holds
DISCONNECT_POLL_S = 0.05  # how often a waiting request checks that its client is still there
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
NO_MODEL = "No model is loaded in LLM Workbench. Load a model there, then send the request again."
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class ServeFailed(Exception):
    """The server could not start; the message is a sentence for a person."""


@dataclass(frozen=True)
class ModelState:
    """What the worker has right now: a model, a load in progress, or neither."""

    model: ServedModel | None
    loading: bool
    unavailable: str  # the 503's sentence when there is no model


class _ApiError(Exception):
    def __init__(self, failed: Failed) -> None:
        super().__init__(failed.message)
        self.failed = failed


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this computer only."""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def url_for(host: str, port: int) -> str:
    """The base URL another app is given."""
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/v1"


class ApiServer:
    """One uvicorn server in its own thread, answering through the worker's queue.

    ``submit(job)`` queues a job and returns how many jobs wait ahead of it; ``state()``
    says what the worker holds; ``send`` writes a protocol event to the app.
    """

    def __init__(
        self,
        *,
        submit: Callable[[ApiJob], int],
        state: Callable[[], ModelState],
        send: Callable[[p.Event], None],
    ) -> None:
        self._submit = submit
        self._state = state
        self._send = send
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._jobs: set[ApiJob] = set()
        self._jobs_lock = threading.Lock()
        self._api_key: str | None = None
        self.host = ""
        self.port = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ lifecycle

    def start(self, request: p.Serve) -> p.Serving:
        """Bind the port and start serving; raise :class:`ServeFailed` with the reason."""
        self.stop()
        if not is_loopback(request.host) and not request.api_key:
            raise ServeFailed(
                f"Listening on {request.host} would let other computers use the model, so it "
                "needs an API key. Set a key, or listen on 127.0.0.1 (this computer only)."
            )
        sock = _bind(request.host, request.port)
        self._api_key = request.api_key or None
        app = self._app(request.cors_origins)
        config = uvicorn.Config(
            app,
            log_config=None,  # the worker's stderr gets uvicorn's warnings as they are
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            ws="none",
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="api-server", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not server.started:
            server.should_exit = True
            thread.join(STOP_TIMEOUT_S)
            sock.close()
            raise ServeFailed(
                f"The API server could not start on {request.host}:{request.port}; "
                "the worker's log has the details."
            )
        self._server, self._thread = server, thread
        self.host, self.port = request.host, int(sock.getsockname()[1])
        return p.Serving(
            host=self.host,
            port=self.port,
            url=url_for(self.host, self.port),
            api_key_required=self._api_key is not None,
            id=request.id,
        )

    def stop(self) -> bool:
        """Stop serving (answering what waits with 503); True if a server was running.

        The listening socket is closed first, so the port is free as soon as this returns.
        """
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return False
        with self._jobs_lock:
            jobs = list(self._jobs)
        for job in jobs:
            job.deliver(Failed(503, "The API server is stopping.", code="server_stopping"))
            job.stop.set()
        server.should_exit = True
        thread.join(STOP_TIMEOUT_S)
        if thread.is_alive():  # a client that will not let go: drop its connection
            server.force_exit = True
            thread.join(STOP_TIMEOUT_S)
        return True

    # ------------------------------------------------------------------ the app

    def _app(self, cors_origins: list[str]) -> Starlette:
        middleware = []
        if cors_origins:
            middleware.append(
                Middleware(
                    CORSMiddleware,
                    allow_origins=cors_origins,
                    allow_methods=["GET", "POST", "OPTIONS"],
                    allow_headers=["Authorization", "Content-Type"],
                )
            )
        routes = [
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", self._model, methods=["GET"]),
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/completions", self._completions, methods=["POST"]),
        ]
        return Starlette(
            routes=routes,
            middleware=middleware,
            exception_handlers={
                _ApiError: self._api_error,
                HTTPException: self._http_error,
                Exception: self._internal_error,
            },
        )

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            message = f"There is no {request.url.path} here; the API is under /v1."
        elif status == 405:
            message = f"{request.method} is not allowed on {request.url.path}."
        else:
            message = str(getattr(exc, "detail", "")) or "The request failed."
        return _error_response(Failed(status, message, code=f"http_{status}"))

    async def _api_error(self, _request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _ApiError)
        return _error_response(exc.failed)

    async def _internal_error(self, _request: Request, exc: Exception) -> Response:
        return _error_response(
            Failed(500, f"The server hit an unexpected error: {exc!r}.", kind="server_error")
        )

    async def _models(self, request: Request) -> Response:
        self._authorize(request)
        model = self._state().model
        cards = [] if model is None else [s.ModelCard(id=model.id, created=model.created)]
        return _json(s.ModelList(data=cards))

    async def _model(self, request: Request) -> Response:
        try:
            self._authorize(request)
            model = self._available_model(str(request.path_params["model_id"]))
        except _ApiError as exc:
            return _error_response(exc.failed)
        return _json(s.ModelCard(id=model.id, created=model.created))

    async def _chat(self, request: Request) -> Response:
        return await self._generate(request, "chat")

    async def _completions(self, request: Request) -> Response:
        return await self._generate(request, "completion")

    async def _generate(self, request: Request, kind: Literal["chat", "completion"]) -> Response:
        endpoint = request.url.path
        client = _client(request)
        received = time.monotonic()
        prefix = "chatcmpl" if kind == "chat" else "cmpl"
        answer_id = f"{prefix}-{uuid.uuid4().hex[:24]}"
        try:
            self._authorize(request)
            data = await _read_json(request)
            body: s.ChatCompletionRequest | s.CompletionRequest
            if kind == "chat":
                body = _validate(s.ChatCompletionRequest, data)
            else:
                body = _validate(s.CompletionRequest, data)
            arguments = _arguments(body)
            state = self._state()
            if state.model is None and not state.loading:
                raise _ApiError(
                    Failed(503, state.unavailable, code="model_not_loaded", kind="server_error")
                )
            if state.model is not None:
                _check_fits(body, state.model)
        except _ApiError as exc:
            self._refused(answer_id, client, endpoint, exc.failed)
            return _error_response(exc.failed)

        loop = asyncio.get_running_loop()
        outcomes: asyncio.Queue[Outcome] = asyncio.Queue()

        def deliver(outcome: Outcome) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(outcomes.put_nowait, outcome)

        job = ApiJob(
            id=answer_id,
            kind=kind,
            model=body.model,
            arguments=arguments,
            client=client,
            endpoint=endpoint,
            received_t=received,
            deliver=deliver,
        )
        with self._jobs_lock:
            self._jobs.add(job)
        waiting = self._submit(job)
        self._send(
            p.ApiRequest(
                client=client, endpoint=endpoint, waiting=waiting, t=received, id=answer_id
            )
        )
        created = int(time.time())
        model_name = state.model.id if state.model is not None else body.model
        try:
            first = await _next(outcomes, request, job)
        except BaseException:
            self._forget(job)
            raise
        if first is None:
            self._forget(job)
            return Response(status_code=499)
        if isinstance(first, Failed):
            self._forget(job)
            return _error_response(first)
        if body.stream:
            return EventSourceResponse(
                self._events(job, first, outcomes, kind, created, model_name, body.include_usage),
                ping=10,
                client_close_handler_callable=_stopper(job),
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        try:
            return await self._collect(request, job, first, outcomes, kind, created, model_name)
        finally:
            self._forget(job)

    async def _collect(
        self,
        request: Request,
        job: ApiJob,
        first: Outcome,
        outcomes: asyncio.Queue[Outcome],
        kind: str,
        created: int,
        model: str,
    ) -> Response:
        pieces: list[str] = []
        outcome: Outcome | None = first
        while isinstance(outcome, Piece):
            pieces.append(outcome.text)
            outcome = await _next(outcomes, request, job)
        if outcome is None:
            return Response(status_code=499)
        if isinstance(outcome, Failed):
            return _error_response(outcome)
        text = "".join(pieces)
        usage = _usage(outcome)
        if kind == "chat":
            return _json(
                s.ChatCompletion(
                    id=job.id,
                    created=created,
                    model=model,
                    choices=[
                        s.ChatChoice(
                            message=s.AssistantMessage(content=text),
                            finish_reason=outcome.finish_reason,
                        )
                    ],
                    usage=usage,
                )
            )
        return _json(
            s.Completion(
                id=job.id,
                created=created,
                model=model,
                choices=[s.CompletionChoice(text=text, finish_reason=outcome.finish_reason)],
                usage=usage,
            )
        )

    async def _events(
        self,
        job: ApiJob,
        first: Outcome,
        outcomes: asyncio.Queue[Outcome],
        kind: str,
        created: int,
        model: str,
        include_usage: bool,
    ) -> AsyncIterator[dict[str, str]]:
        """The answer as server-sent events, OpenAI's chunks, then ``[DONE]``.

        The last chunk carries ``usage`` too (as llama.cpp's server does); with
        ``stream_options.include_usage`` OpenAI's own usage-only chunk follows.
        """
        try:
            if kind == "chat":
                opening = s.ChunkChoice(delta=s.Delta(role="assistant", content=""))
                yield _event(
                    s.ChatCompletionChunk(
                        id=job.id, created=created, model=model, choices=[opening]
                    )
                )
            outcome = first
            while True:
                if isinstance(outcome, Piece):
                    yield _event(_chunk(kind, job.id, created, model, text=outcome.text))
                elif isinstance(outcome, Finished):
                    usage = _usage(outcome)
                    yield _event(
                        _chunk(
                            kind, job.id, created, model, finish=outcome.finish_reason, usage=usage
                        )
                    )
                    if include_usage and kind == "chat":
                        yield _event(
                            s.ChatCompletionChunk(
                                id=job.id, created=created, model=model, choices=[], usage=usage
                            )
                        )
                    yield {"data": "[DONE]"}
                    return
                else:  # Failed after the stream began: OpenAI's clients read an error event
                    yield {"data": s.ErrorBody(error=_detail(outcome)).model_dump_json()}
                    return
                outcome = await outcomes.get()
        finally:
            job.stop.set()  # a client gone mid-stream cancels this generator: stop generating
            self._forget(job)

    # ------------------------------------------------------------------ checks

    def _authorize(self, request: Request) -> None:
        key = self._api_key
        if key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), key.encode()
        ):
            raise _ApiError(
                Failed(
                    401,
                    "This server needs an API key: send it as 'Authorization: Bearer <key>' "
                    "(the key LLM Workbench shows beside the address)."
                    if not header
                    else "The API key is not the one this server was given.",
                    code="invalid_api_key",
                )
            )

    def _available_model(self, asked: str) -> ServedModel:
        state = self._state()
        if state.model is None:
            raise _ApiError(
                Failed(503, state.unavailable, code="model_not_loaded", kind="server_error")
            )
        if not model_matches(asked, state.model):
            raise _ApiError(unknown_model(asked, state.model))
        return state.model

    def _refused(self, answer_id: str, client: str, endpoint: str, failed: Failed) -> None:
        self._send(
            p.ApiFinished(
                client=client,
                endpoint=endpoint,
                status=failed.status,
                message=failed.message,
                t=time.monotonic(),
                id=answer_id,
            )
        )

    def _forget(self, job: ApiJob) -> None:
        with self._jobs_lock:
            self._jobs.discard(job)


# ---------------------------------------------------------------------- helpers


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so a taken port is a sentence, not a log line."""
    if not 0 <= port <= 65535:
        raise ServeFailed(f"{port} is not a port number; choose one from 1024 to 65535.")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeFailed(
            f"'{host}' is not an address of this computer ({exc.strerror})."
        ) from None
    family, _type, _proto, _name, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServeFailed(
                f"Port {port} on {host} is already in use by another program. "
                "Choose another port, or stop that program."
            ) from None
        if exc.errno == errno.EACCES:
            raise ServeFailed(
                f"This computer does not allow listening on port {port}; "
                "choose a port from 1024 to 65535."
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ServeFailed(f"'{host}' is not an address of this computer.") from None
        raise ServeFailed(f"Cannot listen on {host}:{port} ({exc.strerror}).") from None
    sock.setblocking(False)
    return sock


async def _read_json(request: Request) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _ApiError(_too_large())
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _ApiError(_too_large())
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _ApiError(
            Failed(400, f"The request body is not valid JSON ({exc}).", code="invalid_json")
        ) from None
    if not isinstance(data, dict):
        raise _ApiError(Failed(400, "The request body must be a JSON object.", code="invalid_json"))
    return data


def _too_large() -> Failed:
    return Failed(
        413,
        f"The request body is larger than {MAX_BODY_BYTES // 2**20} MiB, the most this "
        "server reads.",
        code="request_too_large",
    )


def _validate(model: type[Any], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise _ApiError(
            Failed(400, f"{where}: {first['msg']}.", code="invalid_value", param=where or None)
        ) from None


def _arguments(body: s.ChatCompletionRequest | s.CompletionRequest) -> dict[str, Any]:
    arguments = body.sampling_arguments()
    arguments["max_tokens"] = body.token_limit()
    if isinstance(body, s.ChatCompletionRequest):
        arguments["messages"] = [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            for m in body.messages
        ]
    else:
        text = body.prompt_text()
        if text is None:
            raise _ApiError(
                Failed(400, "Send one prompt per request.", code="invalid_value", param="prompt")
            )
        arguments["prompt"] = text
    return arguments


def _check_fits(body: s.ChatCompletionRequest | s.CompletionRequest, model: ServedModel) -> None:
    limit = body.token_limit()
    if limit is not None and model.n_ctx and limit > model.n_ctx:
        name = (
            "max_completion_tokens"
            if getattr(body, "max_completion_tokens", None)
            else "max_tokens"
        )
        raise _ApiError(
            Failed(
                400,
                f"{name} is {limit}, more than the model's context of {model.n_ctx} tokens "
                "(prompt and answer together). Ask for fewer tokens, or load the model with "
                "a larger context.",
                code="context_length_exceeded",
                param=name,
            )
        )
    if not model_matches(body.model, model):
        raise _ApiError(unknown_model(body.model, model))


async def _next(outcomes: asyncio.Queue[Outcome], request: Request, job: ApiJob) -> Outcome | None:
    """The job's next outcome; None (and the job stopped) when the client went away."""
    while True:
        try:
            return await asyncio.wait_for(outcomes.get(), DISCONNECT_POLL_S)
        except TimeoutError:
            if await request.is_disconnected():
                job.stop.set()
                return None


def _stopper(job: ApiJob) -> Callable[[Any], Awaitable[None]]:
    async def on_close(_message: Any) -> None:
        job.stop.set()

    return on_close


def _usage(finished: Finished) -> s.Usage:
    return s.Usage(
        prompt_tokens=finished.prompt_tokens,
        completion_tokens=finished.completion_tokens,
        total_tokens=finished.prompt_tokens + finished.completion_tokens,
    )


def _chunk(
    kind: str,
    answer_id: str,
    created: int,
    model: str,
    *,
    text: str | None = None,
    finish: Literal["stop", "length"] | None = None,
    usage: s.Usage | None = None,
) -> BaseModel:
    if kind == "chat":
        delta = s.Delta(content=text) if text is not None else s.Delta()
        choice = s.ChunkChoice(delta=delta, finish_reason=finish)
        return s.ChatCompletionChunk(
            id=answer_id, created=created, model=model, choices=[choice], usage=usage
        )
    return s.Completion(
        id=answer_id,
        created=created,
        model=model,
        choices=[s.CompletionChoice(text=text or "", finish_reason=finish)],
        usage=usage,
    )


def _event(body: BaseModel) -> dict[str, str]:
    return {"data": body.model_dump_json()}


def _json(body: BaseModel, status: int = 200) -> Response:
    return Response(body.model_dump_json(), status_code=status, media_type="application/json")


def _detail(failed: Failed) -> s.ErrorDetail:
    return s.ErrorDetail(
        message=failed.message, type=failed.kind, param=failed.param, code=failed.code
    )


def _error_response(failed: Failed) -> Response:
    return _json(s.ErrorBody(error=_detail(failed)), failed.status)


def _client(request: Request) -> str:
    client = request.client
    if client is None:
        return "unknown"
    return f"{client.host}:{client.port}"
