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
import dataclasses
import logging
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

from desktop.core import crash, rpc
from desktop.core.dryrun import DryRun, dry_run, dry_run_request
from desktop.core.hardware import default_cache_dir
from desktop.core.hardware.backends import NON_OFFLOAD_BACKENDS
from desktop.core.units import format_bytes
from desktop.engine import protocol as p
from desktop.engine.runner import STDERR_TAIL_LINES, worker_command, worker_environment
from desktop.services.load_request import LoadRequest
from desktop.services.signals import emit
from desktop.services.tasks import Task, run_in_thread

DEFAULT_STOP_TIMEOUT_MS = 2000
log = logging.getLogger(__name__)

_PORTABLE_BUILD_FIX = (
    "Install the portable build of llama-cpp-python: "
    'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --force-reinstall --no-cache-dir '
    "llama-cpp-python."
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
    memory: crash.MemoryFacts | None = None,
    gpu_layers: int = 0,
    loading: bool = False,
    remote_servers: Sequence[str] = (),
) -> CrashExplanation:
    """Explain how the worker ended, from the facts the app has.

    ``crashed`` is QProcess's CrashExit: then ``exit_code`` is the signal number on
    POSIX. A shell wrapper turns a signal N into the exit status 128 + N, and Windows
    reports NTSTATUS codes; both are understood too. ``activity`` says what the
    worker was doing ("while loading model.gguf"), ``stderr_tail`` is its last output
    (llama.cpp's own reason is quoted, never a backtrace line: :func:`crash.llama_reason`).
    ``memory`` is the headroom a moment before (the monitor's samples), ``gpu_layers`` the
    layers on a GPU, ``loading`` whether it died reading a file: out-of-memory is said only
    when memory was short, GPU advice given only with GPU layers, and an abort that the file
    itself causes offers another file instead of the same reload.
    """
    cause = crash.exit_cause(exit_code, crashed=crashed)
    remote_gone = rpc.crash_sentence(stderr_tail, remote_servers)
    if remote_gone and cause.kind == crash.ABORTED:  # another computer's device went away
        sentence, _, fix = remote_gone.partition(" Reload")
        return CrashExplanation("remote_device", sentence, ("Reload" + fix) if fix else "")
    during = f" {activity}" if activity else ""
    said = crash.llama_reason(stderr_tail)
    quoted = f' It said: "{said}".' if said else ""
    facts = memory or crash.MemoryFacts()
    on_gpu = gpu_layers != 0
    ram_short = facts.ram_short
    vram_short = facts.vram_short if on_gpu else False
    short = bool(ram_short) or bool(vram_short)
    fewer_layers = "fewer GPU layers or " if on_gpu else ""

    if cause.kind == crash.ILLEGAL_INSTRUCTION:
        return CrashExplanation(
            "illegal_instruction",
            f"The model worker stopped on an illegal instruction{during}: this llama.cpp build "
            "uses CPU instructions your processor lacks.",
            _PORTABLE_BUILD_FIX,
        )
    if cause.kind == crash.KILLED:
        if short:
            return CrashExplanation(
                "killed",
                f"The model worker was killed{during}: the computer ran out of memory "
                f"({_headroom(facts, on_gpu)} a moment before), and the operating system "
                "ends the biggest program then.",
                f"Load the model with {fewer_layers}a smaller context or a smaller "
                "quantization, or close other programs that use a lot of memory.",
            )
        if ram_short is False:
            return CrashExplanation(
                "killed_from_outside",
                f"The model worker was killed{during} from outside the app (SIGKILL, as "
                f"`kill -9` or a task manager sends): {_headroom(facts, on_gpu)} a moment "
                "before, so it did not run out of memory.",
                "Load the model again.",
            )
        return CrashExplanation(
            "killed",
            f"The model worker was killed{during} (SIGKILL). The operating system does that "
            "when memory runs out, but how much was free is not known.",
            "Load the model again. If it happens again, use a smaller context or a smaller "
            "quantization, or close other programs that use a lot of memory.",
        )
    if cause.kind == crash.ABORTED:
        message = f"llama.cpp aborted the model worker{during}.{quoted}"
        if short:
            return CrashExplanation(
                "aborted",
                f"{message} Memory was short ({_headroom(facts, on_gpu)} a moment before).",
                f"Load the model with {fewer_layers}a smaller context, or close other "
                "programs that use a lot of memory.",
            )
        if loading and ram_short is False and vram_short is not None and not vram_short:
            return CrashExplanation(
                "aborted_by_file",
                f"{message} It stopped while reading the file with memory to spare, so the "
                "file itself is the likely cause: loading it again would abort the same way.",
                "Pick another file or another quantization of this model, or download this "
                "one again (it may be damaged or made for a newer llama.cpp).",
            )
        return CrashExplanation(
            "aborted",
            message,
            "Load the model again. If it aborts again, "
            + (
                "offload fewer GPU layers or use a smaller context (running out of GPU "
                "memory aborts llama.cpp), "
                if on_gpu
                else "use a smaller context or another quantization, "
            )
            + "or update llama-cpp-python.",
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


def _dry_run_request(planned: LoadRequest) -> dict[str, object]:
    """The dry run's request for a load: its plan's, else the worker request's own settings."""
    if planned.plan is not None:
        return dry_run_request(planned.plan)
    load = planned.load
    return {
        "n_ctx": load.n_ctx,
        "n_gpu_layers": load.n_gpu_layers,
        "kv_type": load.kv_type,
        "flash_attn": load.flash_attn,
        "n_batch": load.n_batch,
        "n_ubatch": load.n_ubatch,
        "swa_full": load.swa_full,
        "offload_kqv": True,
    }


def _headroom(facts: crash.MemoryFacts, on_gpu: bool) -> str:
    """ "12.5 GB of 23.5 GB RAM free" (and the VRAM, with GPU layers)."""
    parts = []
    if facts.ram_available_bytes is not None and facts.ram_total_bytes:
        parts.append(
            f"{format_bytes(facts.ram_available_bytes)} of "
            f"{format_bytes(facts.ram_total_bytes)} RAM free"
        )
    if on_gpu and facts.vram_free_bytes is not None and facts.vram_total_bytes:
        parts.append(
            f"{format_bytes(facts.vram_free_bytes)} of "
            f"{format_bytes(facts.vram_total_bytes)} VRAM free"
        )
    return " and ".join(parts) or "free memory unknown"


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
    # LoadRequest: a load failed (llama.cpp's check refused the file, or the load itself
    # failed and the model before it was loaded again) and this one is the model loaded now.
    modelKept = Signal(object)
    # Serving other apps (desktop.services.api_serving): a protocol Serving, ServingStopped,
    # ApiRequest, ApiStarted, ApiFinished, an Error of kind "serve_failed", or a Token of
    # another app's answer (never sent through ``token``, which is the window's chat).
    apiEvent = Signal(object)

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
        # What llama.cpp said, without the debugger backtrace that follows an abort (hundreds
        # of lines that would push its GGML_ASSERT line out of the tail above).
        self._said: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._memory_facts: Callable[[], crash.MemoryFacts | None] | None = None
        # A failed load keeps the working model: llama.cpp's dry run checks the file before
        # the worker frees anything (_checking), and a load that fails after all brings the
        # model before it back (_restore: that model's request; _restoring: its reload).
        self._loaded_request: LoadRequest | None = None  # the request of the model loaded
        self._checking: LoadRequest | None = None
        self._check_task: Task | None = None
        self._restore: LoadRequest | None = None
        self._restoring: str = ""
        self.check_before_load = True
        self._check_build = ""  # the llama.cpp build's key for the dry run's cache
        self._stderr_partial = b""
        self._state = "stopped"
        self._stop_timer = QTimer(self)
        self._stop_timer.setSingleShot(True)
        self._stop_timer.timeout.connect(self._on_stop_timeout)
        self._api_ids: set[str] = set()  # other apps' requests the worker is answering

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

    def set_check_build(self, build: str) -> None:
        """The llama.cpp build (core.dryrun.build_key) the check before a load caches under:
        the detail pane's dry runs of the same file and settings then answer it at once."""
        self._check_build = build

    def set_memory_facts(self, source: Callable[[], crash.MemoryFacts | None] | None) -> None:
        """Where the memory headroom before a crash comes from (the monitor's samples), so a
        death is explained by what the machine had (:func:`explain_exit`)."""
        self._memory_facts = source

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
        self._said.clear()
        self._stderr_partial = b""
        process.start(self._command[0], self._command[1:])
        self._update_state()

    def load(self, request: p.Load | LoadRequest) -> str:
        """Queue a model load (starting the worker if needed); return the request id.

        A bare :class:`~desktop.engine.protocol.Load` is a load without a plan. While a model
        is loaded, llama.cpp's dry run checks the new file first: a file it refuses is
        answered with ``error`` (kind "refused") and the loaded model stays (``modelKept``).
        If the load fails after the worker freed the model, that model is loaded again.
        """
        planned = request if isinstance(request, LoadRequest) else LoadRequest(request)
        working = self._loaded_request if self._model is not None else None
        if self._restoring != planned.load.id:
            self._restore = working
        self._current_load = planned
        self.start()
        emit(self.loadStarted, planned)
        if working is not None and self.check_before_load and self._restoring != planned.load.id:
            self._check_first(planned)
            return planned.load.id
        self._checking = None
        return self._enqueue(planned.load)

    def _check_first(self, planned: LoadRequest) -> None:
        """Ask llama.cpp's dry run about ``planned`` off the GUI thread, then load or refuse."""
        self._checking = planned
        request = _dry_run_request(planned)
        path = Path(planned.path)
        hello = self._hello
        build = self._check_build or (
            f"{hello.llama_cpp_version} {'/'.join(hello.backends)}" if hello else ""
        )
        cache = default_cache_dir() / "dry-runs"

        def ask() -> DryRun:
            return dry_run(path, request, build=build, cache_dir=cache)

        def failed(exc: BaseException) -> None:  # dry_run never raises; belt and braces
            answered(DryRun(ok=False, llama_cpp_version="unknown", seconds=0.0, reason=str(exc)))

        def answered(result: DryRun) -> None:
            if self._checking is not planned:
                return  # a newer load replaced this one
            self._checking = None
            self._check_task = None
            if result.ok:
                self.start()
                self._enqueue(planned.load)
                return
            kept = self._restore if self._model is not None else None
            self._restore = None
            self._current_load = kept
            reason = result.reason or "llama.cpp can't load this file."
            if kept is not None:
                reason += f" {kept.model_name} is still loaded."
            emit(self.error, p.Error(kind="bad_model", message=reason, id=planned.load.id))
            if kept is not None:
                emit(self.modelKept, kept)
            self._update_state()

        self._check_task = run_in_thread(ask, answered, failed, owner=self)
        self._update_state()

    def _restore_after_failure(self) -> LoadRequest | None:
        """Load the model that worked again after a failed load; the request, or None."""
        previous, self._restore = self._restore, None
        if previous is None:
            return None
        again = dataclasses.replace(
            previous, load=dataclasses.replace(previous.load, id=p.new_request_id())
        )
        self._restoring = again.load.id
        self.load(again)
        return again

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

    def send_now(self, request: p.Serve | p.StopServing) -> bool:
        """Write a request the worker answers at once, beside the queue (serving other apps);
        False when no worker is ready to read it."""
        if self._process is None or self._hello is None:
            return False
        self._write(request)
        return True

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
            if event.id in self._api_ids:
                emit(self.apiEvent, event)
            else:
                emit(self.token, event)
        elif isinstance(event, p.API_EVENT_TYPES) or (
            isinstance(event, p.Error) and event.kind == "serve_failed"
        ):
            if isinstance(event, p.ApiRequest):
                self._api_ids.add(event.id)
            elif isinstance(event, p.ApiFinished):
                self._api_ids.discard(event.id)
            emit(self.apiEvent, event)
        elif isinstance(event, p.LoadProgress):
            emit(self.loadProgress, event.fraction)
        elif isinstance(event, p.Hello):
            self._hello = event
            emit(self.hello, event)
            self._pump()
        elif isinstance(event, p.Loaded):
            self._model = event
            self._restore = None
            planned = self._current_load
            self._loaded_request = (
                planned if planned is not None and planned.load.id == event.id
                else LoadRequest(current) if isinstance(current, p.Load) else None
            )
            emit(self.loaded, event)
            if self._restoring and event.id == self._restoring:
                self._restoring = ""
                if self._current_load is not None:
                    emit(self.modelKept, self._current_load)
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
            failed_load = answers_current and isinstance(current, p.Load)
            if failed_load:
                self._model = None  # the worker frees the old model before loading
            previous = self._restore if failed_load and self._restoring != event.id else None
            if previous is not None:
                event = dataclasses.replace(
                    event, message=f"{event.message} Loading {previous.model_name} again…"
                )
            emit(self.error, event)
            if answers_current:
                self._finish_current()
            if previous is not None:
                self._restore_after_failure()
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
            text = line.decode("utf-8", "replace") + "\n"
            self._stderr.append(text)
            if not crash.is_backtrace_line(text):
                self._said.append(text)

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
        loading = isinstance(self._current, p.Load)
        gpu_layers = self._gpu_layers_in_use()
        self._teardown()
        if expected:
            return
        crashed = exit_status == QProcess.ExitStatus.CrashExit
        if not crashed and exit_code == 0 and activity == "":
            return  # it exited on its own while idle (its stdin closed): nothing was lost
        previous = self._restore if loading and self._restoring == "" else None
        memory = self._memory_facts() if self._memory_facts is not None else None
        explanation = explain_exit(
            exit_code,
            crashed,
            activity=activity,
            stderr_tail="".join(self._said),
            memory=memory,
            gpu_layers=gpu_layers,
            loading=loading,
            remote_servers=self._current_load.load.rpc_servers if self._current_load else (),
        )
        # The whole tail (the backtrace too) goes to the log file; the person reads the reason.
        log.warning(
            "the model worker ended (%s): %s\n%s", explanation.kind, explanation.message,
            self.stderr_tail(),
        )
        message = explanation.message
        if previous is not None:
            message += f" {previous.model_name}, the model loaded before, is being loaded again."
            self._current_load = previous  # what a fix button reloads, if it offers one
        self._restoring = ""
        emit(self.crashed, explanation.kind, message, explanation.suggestion)
        if previous is not None:
            self._restore_after_failure()

    def _gpu_layers_in_use(self) -> int:
        """Layers on a GPU when the worker died: the model's, or the load's request (0 on a
        build without a GPU backend, whatever was asked)."""
        current = self._current
        if isinstance(current, p.Load):
            hello = self._hello
            if hello is not None and all(
                b.lower() in NON_OFFLOAD_BACKENDS for b in hello.backends
            ):
                return 0
            return current.n_gpu_layers
        return self._model.n_gpu_layers if self._model is not None else 0

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
        if isinstance(current, p.Load) or self._checking is not None:
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
