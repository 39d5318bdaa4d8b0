"""A synchronous, Qt-free client of the worker, for headless use (``bench``) and tests.

::

    with WorkerRunner() as runner:
        loaded = runner.load(Load(path="model.gguf", n_ctx=2048))
        for event in runner.chat(Chat(messages=[{"role": "user", "content": "Hi"}])):
            ...  # Token events, then one Done

The worker is a child process (see :func:`worker_command`); a thread reads its
stdout into a queue and another keeps the last lines of its stderr, so neither
pipe can fill up and stall the worker.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import TypeVar

from desktop.core.children import engine_command, engine_environment
from desktop.engine import protocol as p

_E = TypeVar("_E")
STDERR_TAIL_LINES = 200


def worker_command() -> list[str]:
    """How to start the worker: the frozen app re-runs itself with ``--worker``."""
    return engine_command("desktop.engine.worker", "--worker")


def worker_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The worker's environment: ``base`` (default ``os.environ``) with this package findable
    from any current directory (desktop.core.children, as for the probe and the dry run)."""
    return engine_environment(base)


class WorkerError(RuntimeError):
    """The worker answered a request with an :class:`~desktop.engine.protocol.Error`."""

    def __init__(self, error: p.Error) -> None:
        super().__init__(error.message)
        self.error = error


class WorkerExited(RuntimeError):
    """The worker process ended while an answer was awaited."""

    def __init__(self, returncode: int | None, stderr_tail: str) -> None:
        super().__init__(f"the worker exited with status {returncode}")
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class WorkerRunner:
    """Starts one worker process and talks to it request by request."""

    def __init__(
        self,
        command: Sequence[str] | None = None,
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self._command = list(command) if command is not None else worker_command()
        self._env = env
        self._cwd = cwd
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._events: queue.Queue[p.Event | None] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._threads: list[threading.Thread] = []
        self.hello: p.Hello | None = None

    # ------------------------------------------------------------------ process

    def start(self) -> p.Hello:
        """Start the worker and wait for its Hello."""
        if self._proc is not None:
            raise RuntimeError("the worker is already started")
        self._proc = subprocess.Popen(
            self._command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=worker_environment(self._env),
            cwd=self._cwd,
        )
        self._threads = [
            threading.Thread(target=self._read_stdout, name="worker-stdout", daemon=True),
            threading.Thread(target=self._read_stderr, name="worker-stderr", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        event = self.next_event(timeout=self._start_timeout)
        if isinstance(event, p.Error):
            raise WorkerError(event)
        if not isinstance(event, p.Hello):
            raise p.ProtocolError(f"the worker's first message was {event!r}, not hello")
        self.hello = event
        return event

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def stderr_tail(self) -> str:
        """The last lines the worker wrote to stderr (llama.cpp's log, tracebacks)."""
        return "".join(self._stderr)

    def kill(self) -> None:
        """End the worker at once (SIGKILL / TerminateProcess) and reap it."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        self._reap(timeout=10)

    def close(self, timeout: float = 10.0) -> None:
        """Ask the worker to shut down, kill it if it does not, and release the pipes."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                self.send(p.Shutdown())
                proc.wait(timeout=timeout)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                proc.kill()
        self._reap(timeout=timeout)

    def _reap(self, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        proc.wait(timeout=timeout)
        for thread in self._threads:
            thread.join(timeout=timeout)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                # A broken pipe on stdin while flushing: the worker is gone anyway.
                with contextlib.suppress(OSError):
                    pipe.close()

    def __enter__(self) -> WorkerRunner:
        if self._proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ protocol

    def send(self, request: p.Request) -> str:
        """Write one request; return its id."""
        if self._proc is None or self._proc.stdin is None:
            raise RuntimeError("the worker is not started")
        self._proc.stdin.write((p.encode(request) + "\n").encode("utf-8"))
        self._proc.stdin.flush()
        return request.id

    def next_event(self, timeout: float | None = None) -> p.Event:
        """The next event; :class:`WorkerExited` once the worker is gone, TimeoutError on time."""
        try:
            event = self._events.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no event from the worker within {timeout} s") from None
        if event is None:
            self._events.put(None)  # later calls see the end too
            proc = self._proc
            code = proc.wait(timeout=10) if proc is not None else None
            for thread in self._threads:
                thread.join(timeout=10)  # the whole stderr tail, for the report
            raise WorkerExited(code, self.stderr_tail())
        return event

    def events_for(self, request_id: str, timeout: float | None = None) -> Iterator[p.Event]:
        """Events answering one request, until its terminal event (included).

        Terminal events: Loaded, Unloaded, Done, Error, Serving, ServingStopped. ``timeout``
        applies to each wait.
        """
        while True:
            event = self.next_event(timeout=timeout)
            if event.id and event.id != request_id:
                continue  # a late answer to an earlier request, or another app's request
            yield event
            if isinstance(
                event, p.Loaded | p.Unloaded | p.Done | p.Error | p.Serving | p.ServingStopped
            ):
                return

    def request(self, request: p.Request, timeout: float | None = 600.0) -> list[p.Event]:
        """Send a request and collect every event up to its terminal one."""
        self.send(request)
        return list(self.events_for(request.id, timeout=timeout))

    def load(self, request: p.Load, timeout: float | None = 600.0) -> p.Loaded:
        """Load a model; raise :class:`WorkerError` with the worker's explanation on failure."""
        return self._expect(self.request(request, timeout), p.Loaded)

    def unload(self, timeout: float | None = 60.0) -> p.Unloaded:
        return self._expect(self.request(p.Unload(), timeout), p.Unloaded)

    def chat(self, request: p.Chat, timeout: float | None = 600.0) -> Iterator[p.Token | p.Done]:
        """Send a chat and yield its Token events then its Done; raise on an Error."""
        self.send(request)
        for event in self.events_for(request.id, timeout=timeout):
            if isinstance(event, p.Error):
                raise WorkerError(event)
            if isinstance(event, p.Token | p.Done):
                yield event

    def stop(self) -> None:
        """Ask the running chat to stop; its Done (stop_reason "user") follows."""
        self.send(p.Stop())

    def serve(self, request: p.Serve, timeout: float | None = 30.0) -> p.Serving:
        """Serve the loaded model to other apps; raise :class:`WorkerError` with the reason."""
        return self._expect(self.request(request, timeout), p.Serving)

    def stop_serving(self, timeout: float | None = 30.0) -> p.ServingStopped:
        """Stop the HTTP server; its port is free when this returns."""
        return self._expect(self.request(p.StopServing(), timeout), p.ServingStopped)

    @staticmethod
    def _expect(events: list[p.Event], kind: type[_E]) -> _E:
        last = events[-1]
        if isinstance(last, p.Error):
            raise WorkerError(last)
        if not isinstance(last, kind):
            raise p.ProtocolError(f"expected {kind.__name__}, got {last!r}")
        return last

    # ------------------------------------------------------------------ reader threads

    def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            for line in self._proc.stdout:
                if not line.strip():
                    continue
                try:
                    message = p.decode(line)
                except p.ProtocolError as exc:
                    message = p.Error(kind="protocol", message=f"Unreadable worker output: {exc}.")
                self._events.put(message)  # type: ignore[arg-type]  # requests never come back
        finally:
            self._events.put(None)

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for raw in self._proc.stderr:
            self._stderr.append(raw.decode("utf-8", "replace"))


__all__ = [
    "WorkerError",
    "WorkerExited",
    "WorkerRunner",
    "worker_command",
    "worker_environment",
]
