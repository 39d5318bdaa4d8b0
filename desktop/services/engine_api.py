"""What the window needs from an engine: the typed interface :class:`EngineClient` implements.

Three layers, each the part one kind of user needs, so a test double implements only what
its panel touches:

* :class:`EngineEvents`: the signals; listeners such as the run recorder and the live
  monitor's wiring connect to them;
* :class:`ChatEngine`: the signals, the state and the requests of the chat panel
  (the chat tests' ``FakeEngine`` implements this; tests/unit/test_engine_api.py checks it);
* :class:`EngineLike`: everything the window and the app use (loading a model with its
  plan, the current load's request, quitting).

:class:`~desktop.services.engine_client.EngineClient` is checked against
:class:`EngineLike` by mypy (the assignment at the end of engine_client.py). A Qt signal is
a read-only property returning :class:`SignalInstance`, which ``name = Signal(...)`` on a
QObject satisfies; what each one carries is in its comment.

QtCore only: no widgets.
"""

from __future__ import annotations

from typing import Protocol

from PySide6.QtCore import SignalInstance

from desktop.engine import protocol as p
from desktop.services.load_request import LoadRequest


class EngineEvents(Protocol):
    """The engine's signals: every worker event, the state, a crash."""

    @property
    def hello(self) -> SignalInstance: ...  # (protocol.Hello) the worker started

    @property
    def loadProgress(self) -> SignalInstance: ...  # (float) 0.0 .. 1.0

    @property
    def loaded(self) -> SignalInstance: ...  # (protocol.Loaded)

    @property
    def unloaded(self) -> SignalInstance: ...  # ()

    @property
    def token(self) -> SignalInstance: ...  # (protocol.Token)

    @property
    def done(self) -> SignalInstance: ...  # (protocol.Done)

    @property
    def error(self) -> SignalInstance: ...  # (protocol.Error) a request failed

    @property
    def crashed(self) -> SignalInstance: ...  # (kind, message, suggestion) the worker died

    @property
    def stateChanged(self) -> SignalInstance: ...  # (str) see ChatEngine.state

    @property
    def loadStarted(self) -> SignalInstance: ...  # (LoadRequest) see EngineLike.current_load

    @property
    def modelKept(self) -> SignalInstance: ...  # (LoadRequest) a failed load kept this model

    @property
    def apiEvent(self) -> SignalInstance: ...  # (protocol event) other apps: api_serving.py


class ChatEngine(EngineEvents, Protocol):
    """What the chat panel uses: the signals, the state, chat, stop and the fix's reload."""

    @property
    def state(self) -> str:
        """The worker's state: "stopped", "starting", "idle", "loading", "ready", ..."""
        ...

    @property
    def model(self) -> p.Loaded | None:
        """What the worker said when the current model loaded; None without a model."""
        ...

    @property
    def last_load(self) -> p.Load | None:
        """The last load request (the fix buttons reload it with other settings)."""
        ...

    def chat(self, request: p.Chat) -> str:
        """Queue a chat; tokens arrive through ``token``, then ``done`` (or ``error``)."""
        ...

    def stop(self) -> None:
        """Stop the running answer at its next token."""
        ...

    def retry_with(self, n_gpu_layers: int) -> str:
        """Load the last model again with another GPU layer count."""
        ...

    def unload(self) -> str | None:
        """Free the model (answered by ``unloaded``); None when there is no worker to ask."""
        ...


class EngineLike(ChatEngine, Protocol):
    """Everything the window and the app use: the chat panel's part, loading and quitting."""

    @property
    def current_load(self) -> LoadRequest | None:
        """The last load request with the plan, spec and row it was made from."""
        ...

    def load(self, request: p.Load | LoadRequest) -> str:
        """Queue a model load (starting the worker if needed); return the request id."""
        ...

    def shutdown(self, wait_ms: int = 5000) -> None:
        """Ask the worker to exit and wait for it (blocking: when the app quits)."""
        ...
