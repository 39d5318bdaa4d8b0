"""The app's side of the inference worker: a QProcess, the JSON-lines protocol, Qt signals.

:class:`EngineClient` starts ``python -m desktop.engine.worker`` (``<exe> --worker``
when frozen), sends one request at a time (later ones wait in a FIFO queue) and
turns every worker event into a signal. It never blocks the event loop, except in
:meth:`EngineClient.shutdown`, which the app calls when it quits.

The worker can die in many ways: llama.cpp aborts, the CPU meets an instruction it
lacks, the OS kills it for memory, a crafted file makes it crash. Each becomes
``crashed(kind, message, suggestion)`` with a plain explanation and the fix
(:func:`explain_exit`); the next :meth:`EngineClient.load` starts a fresh worker.

QtCore only: no widgets, no llama_cpp.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    QObject,
    QProcess,
    QProcessEnvironment,
    QTimer,
    Signal,
    SignalInstance,
)

from desktop.core import crash
from desktop.engine import protocol as p
from desktop.engine.runner import STDERR_TAIL_LINES, worker_command, worker_environment
from desktop.services.load_request import LoadRequest
from desktop.services.signals import emit

DEFAULT_STOP_TIMEOUT_MS = 2000

_PORTABLE_BUILD_FIX = (
    "Install the portable build of llama-cpp-python: "
    'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --force-reinstall --no-cache-dir '
    "llama-cpp-python."
)
_MEMORY_FIX = (
    "Load the model with fewer GPU layers or a smaller context, or close other programs "
    "that use a lot of memory."
)


@dataclass(frozen=True)
class CrashExplanation:
    """What ``crashed`` carries: a kind for code, two sentences for people."""

    kind: str  # "killed", "aborted", "illegal_instruction", "segfault", "exited", ...
    message: str  # what happened
    suggestion: str  # what to do about it


def explain_exit(
    exit_code: int,
    crashed: bool,
    *,
    activity: str = "",
    stderr_tail: str = "",
) -> CrashExplanation:
    """Explain how the worker ended.

    ``crashed`` is QProcess's CrashExit: then ``exit_code`` is the signal number on
    POSIX. A shell wrapper turns a signal N into the exit status 128 + N, and Windows
    reports NTSTATUS codes; both are understood too. ``activity`` says what the
    worker was doing ("while loading model.gguf"), ``stderr_tail`` is its last output.
    """
    cause = crash.exit_cause(exit_code, crashed=crashed)
    during = f" {activity}" if activity else ""
    said = _last_words(stderr_tail)
    quoted = f' It said: "{said}".' if said else ""

    if cause.kind == crash.ILLEGAL_INSTRUCTION:
        return CrashExplanation(
            "illegal_instruction",
            f"The model worker stopped on an illegal instruction{during}: this llama.cpp build "
            "uses CPU instructions your processor lacks.",
            _PORTABLE_BUILD_FIX,
        )
    if cause.kind == crash.KILLED:
        return CrashExplanation(
            "killed",
            f"The model worker was killed{during}, most likely by the operating system "
            "because the computer ran out of memory.",
            _MEMORY_FIX,
        )
    if cause.kind == crash.ABORTED:
        return CrashExplanation(
            "aborted",
            f"llama.cpp aborted the model worker{during}.{quoted}",
            "Load the model again. If it aborts again, offload fewer GPU layers or use a "
            "smaller context (running out of GPU memory aborts llama.cpp), or update "
            "llama-cpp-python.",
        )
    if cause.kind == crash.SEGFAULT:
        return CrashExplanation(
            "segfault",
            f"The model worker crashed with a memory access error{during}: a bug in "
            "llama.cpp, or a damaged or hostile model file.",
            "Load the model again. If it crashes again, download the file again from a "
            "source you trust, or update llama-cpp-python.",
        )
    if cause.kind == crash.BUS_ERROR:
        return CrashExplanation(
            "bus_error",
            f"The model worker crashed reading the model file{during}: the file was probably "
            "changed, moved or cut short while in use.",
            "Leave the file in place while it is loaded, then load it again.",
        )
    if cause.signal_number is not None:
        name = f"the signal {cause.signal_name or cause.signal_number}"
        return CrashExplanation(
            "signal",
            f"The model worker was ended by {name}{during}.",
            "Load the model again.",
        )
    return CrashExplanation(
        "exited",
        f"The model worker quit unexpectedly with status {exit_code}{during}.{quoted}",
        "Load the model again. If it keeps happening, the worker's log has the details.",
    )


def _last_words(stderr_tail: str) -> str:
    """The last line worth quoting: an assertion, an error, an exception."""
    lines = [line.strip() for line in stderr_tail.splitlines() if line.strip()]
    keys = ("GGML_ASSERT", "error", "Error", "failed", "abort", "terminate called", "what()")
    for line in reversed(lines):
        if line.startswith(
            ("Fatal Python error", "Current thread", "Thread 0x", "File ", "Extension modules")
        ):
            continue  # faulthandler's traceback, not the cause
        if any(key in line for key in keys):
            return line[:300]
    return ""


class EngineClient(QObject):
    """Drives one worker process; every protocol event arrives as a signal.

    The one owner of loading: every load (the load controls', the chat's "reload with fewer
    layers") goes through :meth:`load`, which remembers its :class:`LoadRequest` (the plan
    it was made from included) as :attr:`current_load` and announces it with
    ``loadStarted``.

    States (``stateChanged``): "stopped" (no worker), "starting", "idle" (no model),
    "loading", "ready", "generating", "stopping", "unloading".
    """

    hello = Signal(object)  # protocol.Hello
    loadProgress = Signal(float)  # 0.0 .. 1.0
    loaded = Signal(object)  # protocol.Loaded
    unloaded = Signal()
    token = Signal(object)  # protocol.Token
    done = Signal(object)  # protocol.Done
    error = Signal(object)  # protocol.Error: a request failed, the worker lives on
    crashed = Signal(str, str, str)  # kind, message, suggestion: the worker died
    stateChanged = Signal(str)
    loadStarted = Signal(object)  # LoadRequest: a load was queued (current_load)

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        command: Sequence[str] | None = None,
        stop_timeout_ms: int = DEFAULT_STOP_TIMEOUT_MS,
    ) -> None:
        super().__init__(parent)
        self._command = list(command) if command is not None else worker_command()
        self.stop_timeout_ms = stop_timeout_ms
        self._process: QProcess | None = None
        self._hello: p.Hello | None = None
        self._queue: collections.deque[p.Request] = collections.deque()
        self._current: p.Request | None = None
        self._stopping = False
        self._expected_exit = False
        self._model: p.Loaded | None = None
        self._current_load: LoadRequest | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._stderr_partial = b""
        self._state = "stopped"
        self._stop_timer = QTimer(self)
        self._stop_timer.setSingleShot(True)
        self._stop_timer.timeout.connect(self._on_stop_timeout)

    # ------------------------------------------------------------------ properties

    @property
    def state(self) -> str:
        return self._state

    @property
    def pid(self) -> int | None:
        """The worker's process id (for the monitor), None when there is no worker."""
        if self._process is None:
            return None
        pid = int(self._process.processId())
        return pid or None

    @property
    def model(self) -> p.Loaded | None:
        """What the worker said when the current model loaded; None without a model."""
        return self._model

    @property
    def last_load(self) -> p.Load | None:
        """The worker's request of the last load (the fix buttons reload it)."""
        return self._current_load.load if self._current_load is not None else None

    @property
    def current_load(self) -> LoadRequest | None:
        """The last load request with the plan, spec and row it was made from."""
        return self._current_load

    @property
    def worker_hello(self) -> p.Hello | None:
        return self._hello

    def pending_requests(self) -> int:
        """Requests sent or waiting (the running one included)."""
        return len(self._queue) + (1 if self._current is not None else 0)

    def stderr_tail(self) -> str:
        """The worker's last lines on stderr: llama.cpp's log, tracebacks."""
        return "".join(self._stderr)

    # ------------------------------------------------------------------ requests

    def start(self) -> None:
        """Start the worker if it is not running (load() does this by itself)."""
        if self._process is not None:
            return
        process = QProcess(self)
        env = QProcessEnvironment()
        for key, value in worker_environment().items():
            env.insert(key, value)
        process.setProcessEnvironment(env)
        for sig, slot in self._process_slots(process):
            sig.connect(slot)
        self._process = process
        self._hello = None
        self._expected_exit = False
        self._stderr.clear()
        self._stderr_partial = b""
        process.start(self._command[0], self._command[1:])
        self._update_state()

    def load(self, request: p.Load | LoadRequest) -> str:
        """Queue a model load (starting the worker if needed); return the request id.

        A bare :class:`~desktop.engine.protocol.Load` is a load without a plan.
        """
        planned = request if isinstance(request, LoadRequest) else LoadRequest(request)
        self._current_load = planned
        self.start()
        emit(self.loadStarted, planned)
        return self._enqueue(planned.load)

    def retry_with(self, n_gpu_layers: int) -> str:
        """Load the last model again with another GPU layer count (after out of memory)."""
        if self._current_load is None:
            raise RuntimeError("retry_with() needs an earlier load()")
        return self.load(self._current_load.with_gpu_layers(n_gpu_layers))

    def chat(self, request: p.Chat) -> str:
        """Queue a chat; tokens arrive through ``token``, then ``done`` (or ``error``)."""
        if self._process is None:
            self._fail_soon(
                p.Error(
                    kind="not_loaded",
                    message="No model is loaded. Load a model, then send again.",
                    id=request.id,
                )
            )
            return request.id
        return self._enqueue(request)

    def unload(self) -> str | None:
        """Queue freeing the model; None when there is no worker to ask."""
        if self._process is None:
            return None
        return self._enqueue(p.Unload())

    def stop(self) -> None:
        """Stop the running answer at its next token.

        If no ``done`` comes within ``stop_timeout_ms`` (llama.cpp cannot interrupt
        the processing of a long prompt), the worker is ended and ``error`` says the
        model must be loaded again. Requests still queued are kept.
        """
        if not isinstance(self._current, p.Chat) or self._stopping:
            return
        self._stopping = True
        self._write(p.Stop())
        self._stop_timer.start(self.stop_timeout_ms)
        self._update_state()

    def cancel_queued(self) -> int:
        """Drop the requests not sent yet; return how many."""
        count = len(self._queue)
        self._queue.clear()
        return count

    def kill(self) -> None:
        """End the worker at once (no crash report); the next load starts a new one."""
        process = self._process
        if process is None:
            return
        # Let go of it now, so a load() right after this starts a fresh worker instead of
        # queueing on the dying one; Qt reaps it and deletes the object when it has ended.
        for sig, slot in self._process_slots(process):
            sig.disconnect(slot)
        process.finished.connect(process.deleteLater)
        process.kill()
        self._process = None
        self._teardown()

    def shutdown(self, wait_ms: int = 5000) -> None:
        """Ask the worker to exit and wait for it (blocking: call it when the app quits)."""
        process = self._process
        if process is None:
            return
        self._expected_exit = True
        if process.state() == QProcess.ProcessState.Running:
            self._write(p.Shutdown())
            process.closeWriteChannel()
            if process.waitForFinished(wait_ms):
                return
        process.kill()
        process.waitForFinished(wait_ms)

    # ------------------------------------------------------------------ internals

    def _process_slots(self, process: QProcess) -> list[tuple[SignalInstance, Callable[..., None]]]:
        return [
            (process.readyReadStandardOutput, self._on_stdout),
            (process.readyReadStandardError, self._on_stderr),
            (process.finished, self._on_finished),
            (process.errorOccurred, self._on_process_error),
        ]

    def _enqueue(self, request: p.Request) -> str:
        self._queue.append(request)
        self._pump()
        return request.id

    def _pump(self) -> None:
        """Send the next queued request when the worker is ready and free."""
        if self._hello is None or self._current is not None or not self._queue:
            self._update_state()
            return
        self._current = self._queue.popleft()
        self._stopping = False
        self._write(self._current)
        self._update_state()

    def _write(self, request: p.Request) -> None:
        if self._process is not None:
            self._process.write((p.encode(request) + "\n").encode("utf-8"))

    def _finish_current(self) -> None:
        self._current = None
        self._stopping = False
        self._stop_timer.stop()
        self._pump()

    def _fail_soon(self, error: p.Error) -> None:
        # Emitted from the event loop, never from inside the caller's own call.
        QTimer.singleShot(0, self, lambda: emit(self.error, error))

    def _on_stdout(self) -> None:
        process = self._process
        if process is None:
            return
        while process.canReadLine():
            line = bytes(process.readLine().data())
            if line.strip():
                self._on_line(line)

    def _on_line(self, line: bytes) -> None:
        try:
            event = p.decode(line)
        except p.ProtocolError as exc:
            emit(
                self.error,
                p.Error(kind="protocol", message=f"The worker sent an unreadable line: {exc}."),
            )
            return
        current = self._current
        if isinstance(event, p.Token):
            emit(self.token, event)
        elif isinstance(event, p.LoadProgress):
            emit(self.loadProgress, event.fraction)
        elif isinstance(event, p.Hello):
            self._hello = event
            emit(self.hello, event)
            self._pump()
        elif isinstance(event, p.Loaded):
            self._model = event
            emit(self.loaded, event)
            self._finish_current()
        elif isinstance(event, p.Done):
            self._stop_timer.stop()
            emit(self.done, event)
            self._finish_current()
        elif isinstance(event, p.Unloaded):
            self._model = None
            emit(self.unloaded)
            self._finish_current()
        elif isinstance(event, p.Error):
            answers_current = current is not None and event.id == current.id
            if answers_current and isinstance(current, p.Load):
                self._model = None  # the worker frees the old model before loading
            emit(self.error, event)
            if answers_current:
                self._finish_current()
        else:
            emit(
                self.error,
                p.Error(kind="protocol", message=f"The worker sent a request: {event!r}."),
            )

    def _on_stderr(self) -> None:
        if self._process is None:
            return
        data = self._stderr_partial + bytes(self._process.readAllStandardError().data())
        *lines, self._stderr_partial = data.split(b"\n")
        for line in lines:
            self._stderr.append(line.decode("utf-8", "replace") + "\n")

    def _on_stop_timeout(self) -> None:
        chat = self._current
        if not isinstance(chat, p.Chat) or not self._stopping:
            return
        seconds = self.stop_timeout_ms / 1000
        self.kill()
        emit(
            self.error,
            p.Error(
                kind="stop_timeout",
                message=f"The model did not stop within {seconds:g} s (llama.cpp cannot "
                "interrupt the reading of a long prompt), so its worker was ended. "
                "Load the model again to continue.",
                id=chat.id,
            ),
        )

    def _on_process_error(self, error: QProcess.ProcessError) -> None:
        if error != QProcess.ProcessError.FailedToStart or self._process is None:
            return  # crashes and exits are handled in _on_finished
        reason = self._process.errorString()
        self._teardown()
        emit(
            self.crashed,
            "failed_to_start",
            f"The model worker could not be started ({reason}).",
            "Check that the app is installed completely; reinstall it if this persists.",
        )

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        self._on_stdout()  # events written just before the end still count
        self._on_stderr()
        if self._stderr_partial:
            self._stderr.append(self._stderr_partial.decode("utf-8", "replace"))
            self._stderr_partial = b""
        expected = self._expected_exit
        activity = self._activity()
        self._teardown()
        if expected:
            return
        crashed = exit_status == QProcess.ExitStatus.CrashExit
        if not crashed and exit_code == 0 and activity == "":
            return  # it exited on its own while idle (its stdin closed): nothing was lost
        explanation = explain_exit(
            exit_code, crashed, activity=activity, stderr_tail=self.stderr_tail()
        )
        emit(self.crashed, explanation.kind, explanation.message, explanation.suggestion)

    def _activity(self) -> str:
        current = self._current
        if isinstance(current, p.Load):
            return (
                f"while loading {Path(current.path).name} ({current.n_gpu_layers} GPU layers, "
                f"context {current.n_ctx})"
            )
        if isinstance(current, p.Chat):
            return "while answering"
        if isinstance(current, p.Unload):
            return "while unloading the model"
        return ""

    def _teardown(self) -> None:
        """Forget the dead worker and everything that was waiting for it."""
        process, self._process = self._process, None
        self._hello = None
        self._model = None
        self._current = None
        self._queue.clear()
        self._stopping = False
        self._stop_timer.stop()
        if process is not None:
            process.deleteLater()
        self._update_state()

    def _update_state(self) -> None:
        state = self._compute_state()
        if state != self._state:
            self._state = state
            emit(self.stateChanged, state)

    def _compute_state(self) -> str:
        if self._process is None:
            return "stopped"
        if self._hello is None:
            return "starting"
        current = self._current
        if isinstance(current, p.Load):
            return "loading"
        if isinstance(current, p.Chat):
            return "stopping" if self._stopping else "generating"
        if isinstance(current, p.Unload):
            return "unloading"
        return "ready" if self._model is not None else "idle"


if TYPE_CHECKING:
    from desktop.services.engine_api import EngineLike

    # mypy checks here that EngineClient has every member of EngineLike, with its types.
    _IMPLEMENTS: type[EngineLike] = EngineClient
