"""Serving the loaded model to other apps: the model behind the "Serve to other apps" switch.

The HTTP server runs inside the worker process (``desktop.engine.api_server``: the worker
holds the one copy of the model, and this process never imports llama_cpp). This object
asks the engine client to start and stop it, turns the worker's events about other apps'
requests into Qt signals for the request log and the live monitor, and keeps serving
through a crash: when the worker dies, a fresh worker serves again at once, answering 503
with what happened until the model is loaded again.

QtCore only: no widgets.
"""

from __future__ import annotations

from typing import Protocol

from PySide6.QtCore import QObject, QTimer, Signal, SignalInstance

from desktop.engine import protocol as p
from desktop.services.signals import emit

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


class ServingEngine(Protocol):
    """What serving needs from the engine client (EngineClient has it)."""

    @property
    def apiEvent(self) -> SignalInstance: ...  # (protocol event) see EngineClient.apiEvent

    @property
    def hello(self) -> SignalInstance: ...  # (protocol.Hello)

    @property
    def crashed(self) -> SignalInstance: ...  # (kind, message, suggestion)

    @property
    def error(self) -> SignalInstance: ...  # (protocol.Error)

    def start(self) -> None: ...

    def send_now(self, request: p.Serve | p.StopServing) -> bool: ...


class ApiServing(QObject):
    """Starts, stops and follows the worker's HTTP server.

    Signals: ``serving(protocol.Serving)``; ``stopped(str)`` (the reason, "" when asked);
    ``failed(str)`` (a sentence: the port is taken...); ``requestArrived(ApiRequest)``,
    ``requestStarted(ApiStarted)``, ``token(Token)``, ``requestFinished(ApiFinished)``;
    ``queueChanged(running, waiting)``.
    """

    serving = Signal(object)
    stopped = Signal(str)
    failed = Signal(str)
    requestArrived = Signal(object)
    requestStarted = Signal(object)
    token = Signal(object)
    requestFinished = Signal(object)
    queueChanged = Signal(int, int)

    def __init__(self, engine: ServingEngine, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._engine = engine
        self._wanted: p.Serve | None = None  # what the person asked for (None: off)
        self._active: p.Serving | None = None
        self._waiting: set[str] = set()
        self._running: set[str] = set()
        engine.apiEvent.connect(self._on_event)
        engine.hello.connect(self._on_hello)
        engine.crashed.connect(self._on_crashed)
        engine.error.connect(self._on_error)

    # ------------------------------------------------------------------ state

    @property
    def active(self) -> p.Serving | None:
        """The server as it listens now (None: not serving)."""
        return self._active

    @property
    def wanted(self) -> p.Serve | None:
        """The server the person asked for (it may be starting, or coming back)."""
        return self._wanted

    @property
    def running_count(self) -> int:
        return len(self._running)

    @property
    def waiting_count(self) -> int:
        return len(self._waiting)

    # ------------------------------------------------------------------ requests

    def start(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        api_key: str | None = None,
        cors_origins: list[str] | None = None,
    ) -> None:
        """Serve the engine's model at ``host:port`` (loopback unless asked otherwise)."""
        self._wanted = p.Serve(
            host=host, port=port, api_key=api_key or None, cors_origins=list(cors_origins or [])
        )
        self._engine.start()  # no model yet: it serves 503 "load a model" until one loads
        self._engine.send_now(self._wanted)  # else sent when the worker says hello

    def stop(self) -> None:
        """Stop serving; ``stopped("")`` follows once the port is free."""
        self._wanted = None
        if not self._engine.send_now(p.StopServing()):
            self._forget("")

    # ------------------------------------------------------------------ engine events

    def _on_hello(self, _hello: p.Hello) -> None:
        if self._wanted is not None and self._active is None:
            self._engine.send_now(self._wanted)

    def _on_crashed(self, _kind: str, message: str, suggestion: str) -> None:
        self._resume(f"{message} {suggestion}".strip())

    def _on_error(self, error: p.Error) -> None:
        if error.kind == "stop_timeout":  # the client ended the worker itself
            self._resume(error.message)

    def _resume(self, reason: str) -> None:
        """The worker is gone: serve again from a fresh one, saying why there is no model."""
        # The same port, also when any free one was asked for: the other apps know it.
        port = self._active.port if self._active is not None else None
        self._forget(reason)
        if self._wanted is None:
            return
        self._wanted = p.Serve(
            host=self._wanted.host,
            port=self._wanted.port if port is None else port,
            api_key=self._wanted.api_key,
            cors_origins=self._wanted.cors_origins,
            unavailable_reason=reason,
        )
        # After the engine client has finished with the dead worker.
        QTimer.singleShot(0, self, self._engine.start)

    def _forget(self, reason: str) -> None:
        was_active = self._active is not None
        self._active = None
        self._waiting.clear()
        self._running.clear()
        self._queue_changed()
        if was_active or not reason:
            emit(self.stopped, reason)

    def _on_event(self, event: object) -> None:
        if isinstance(event, p.Token):
            emit(self.token, event)
        elif isinstance(event, p.ApiRequest):
            self._waiting.add(event.id)
            self._queue_changed()
            emit(self.requestArrived, event)
        elif isinstance(event, p.ApiStarted):
            self._waiting.discard(event.id)
            self._running.add(event.id)
            self._queue_changed()
            emit(self.requestStarted, event)
        elif isinstance(event, p.ApiFinished):
            self._waiting.discard(event.id)
            self._running.discard(event.id)
            self._queue_changed()
            emit(self.requestFinished, event)
        elif isinstance(event, p.Serving):
            self._active = event
            emit(self.serving, event)
        elif isinstance(event, p.ServingStopped):
            self._forget(event.reason)
        elif isinstance(event, p.Error):  # serve_failed: the port is taken, ...
            self._wanted = None
            self._active = None
            emit(self.failed, event.message)

    def _queue_changed(self) -> None:
        emit(self.queueChanged, len(self._running), len(self._waiting))
