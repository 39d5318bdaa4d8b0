"""Other computers' devices and this computer's sharing, for the window (QtCore only).

:class:`RemoteDevices` keeps the servers the person added ("host:port"), asks them in the
background what they offer (desktop.core.rpc.probe_servers: a child process with a timeout,
so an unreachable or stalled server is a sentence, never a hang) and hands the devices that
answered to the :class:`~desktop.ui.state.WorkbenchState`-like ``on_devices`` callback, so
every plan spans them.

:class:`ShareService` runs this computer's RPC server (desktop.engine.rpc_server) in a
QProcess: what it offers, who is connected, and a clean stop (also when the app quits).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal

from desktop.core import rpc
from desktop.core.children import RPC_SERVER_MARKER, engine_environment
from desktop.services.signals import emit
from desktop.services.tasks import Task, run_in_thread

__all__ = ["RemoteDevices", "ShareService"]


class RemoteDevices(QObject):
    """The other computers added in the hardware bar, each asked what it offers."""

    changed = Signal()  # servers or what they said changed
    serversChanged = Signal(object)  # tuple of endpoints (to persist in the settings)

    def __init__(
        self,
        on_devices: Callable[[list[rpc.RemoteDevice]], None],
        servers: Sequence[str] = (),
        *,
        probe: Callable[[list[str]], list[rpc.RemoteServer]] = rpc.probe_servers,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._on_devices = on_devices
        self._probe = probe
        self._servers: list[str] = list(dict.fromkeys(servers))
        self._answers: dict[str, rpc.RemoteServer] = {}
        self._asking: set[str] = set()
        self._tasks: list[Task] = []

    @property
    def servers(self) -> tuple[str, ...]:
        return tuple(self._servers)

    def answer(self, endpoint: str) -> rpc.RemoteServer | None:
        """What the server said last (None: not asked yet, or being asked)."""
        return self._answers.get(endpoint)

    def asking(self, endpoint: str) -> bool:
        return endpoint in self._asking

    def add(self, text: str) -> str | None:
        """Add "host:port" and ask it; None, or a sentence when the address is unusable."""
        try:
            endpoint = rpc.parse_endpoint(text)
        except ValueError as exc:
            return str(exc)
        if endpoint not in self._servers:
            self._servers.append(endpoint)
            emit(self.serversChanged, self.servers)
        self.refresh([endpoint])
        return None

    def remove(self, endpoint: str) -> None:
        if endpoint not in self._servers:
            return
        self._servers.remove(endpoint)
        self._answers.pop(endpoint, None)
        emit(self.serversChanged, self.servers)
        self._publish()

    def refresh(self, endpoints: Sequence[str] | None = None) -> None:
        """Ask the servers again (all by default), in the background."""
        wanted = [e for e in (endpoints or self._servers) if e not in self._asking]
        if not wanted:
            return
        self._asking.update(wanted)
        emit(self.changed)

        def done(answers: list[rpc.RemoteServer]) -> None:
            for server in answers:
                self._asking.discard(server.endpoint)
                if server.endpoint in self._servers:
                    self._answers[server.endpoint] = server
            self._publish()

        def failed(exc: BaseException) -> None:
            for endpoint in wanted:
                self._asking.discard(endpoint)
                self._answers[endpoint] = rpc.RemoteServer(
                    endpoint, error=f"Asking {endpoint} failed: {exc}."
                )
            self._publish()

        self._tasks.append(run_in_thread(lambda: self._probe(wanted), done, failed, owner=self))

    def devices(self) -> list[rpc.RemoteDevice]:
        """The devices of every server that answered, in the order the servers were added."""
        out: list[rpc.RemoteDevice] = []
        for endpoint in self._servers:
            answer = self._answers.get(endpoint)
            if answer is not None and answer.ok:
                out.extend(answer.devices)
        return out

    def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()

    def _publish(self) -> None:
        self._on_devices(self.devices())
        emit(self.changed)


class ShareService(QObject):
    """This computer's device, shared with others through llama.cpp's RPC server."""

    started = Signal(object)  # dict: endpoint, name, description, free_bytes, total_bytes
    stopped = Signal(str)  # "" when asked to stop, else why it stopped (a sentence)
    clientsChanged = Signal(int)  # computers connected now

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._process: QProcess | None = None
        self._buffer = b""
        self._stopping = False
        self._failure = ""  # why the server refused to start, from its first line
        self.info: dict[str, Any] = {}
        self.warning: str | None = None
        self.clients = 0

    @property
    def running(self) -> bool:
        return self._process is not None

    def start(self, host: str, port: int, device: str | None = None) -> str | None:
        """Start sharing; None, or why not (a sentence). The address is checked first: never
        a public one, and a home-network one comes with :attr:`warning`."""
        if self._process is not None:
            return "This computer is already shared; stop sharing first."
        try:
            self.warning = rpc.check_share_address(host)
        except ValueError as exc:
            return str(exc)
        command = rpc.ShareServer(host, port, device).command()
        process = QProcess(self)
        environment = QProcessEnvironment()
        for key, value in engine_environment({"GGML_NO_BACKTRACE": "1"} | _env()).items():
            environment.insert(key, value)
        process.setProcessEnvironment(environment)
        process.readyReadStandardOutput.connect(self._on_output)
        process.finished.connect(self._on_finished)
        self._process, self._buffer, self._stopping, self._failure = process, b"", False, ""
        self.info, self.clients = {}, 0
        process.start(command[0], command[1:])
        return None

    def stop(self, wait_ms: int = 3000) -> None:
        """Stop the server (llama.cpp's has no other way out than ending its process)."""
        process = self._process
        if process is None:
            return
        self._stopping = True
        process.terminate()
        if not process.waitForFinished(wait_ms):
            process.kill()
            process.waitForFinished(wait_ms)

    def _on_output(self) -> None:
        if self._process is None:
            return
        data = self._buffer + bytes(self._process.readAllStandardOutput().data())
        *lines, self._buffer = data.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            if line.startswith(RPC_SERVER_MARKER):
                info = json.loads(line[len(RPC_SERVER_MARKER) :])
                if "error" in info:  # said when the process ends (it exits at once)
                    self._failure = f"Sharing could not start: {info['error']}."
                    continue
                self.info = info
                emit(self.started, info)
            elif "Accepted client connection" in line:
                self.clients += 1
                emit(self.clientsChanged, self.clients)
            elif "Client connection closed" in line:
                self.clients = max(self.clients - 1, 0)
                emit(self.clientsChanged, self.clients)

    def _on_finished(self, _code: int, _status: QProcess.ExitStatus) -> None:
        process, self._process = self._process, None
        said = ""
        if process is not None:
            said = bytes(process.readAllStandardError().data()).decode("utf-8", "replace")
            process.deleteLater()
        stopping, self._stopping = self._stopping, False
        failure, self._failure = self._failure, ""
        self.info, self.clients = {}, 0
        if failure:
            emit(self.stopped, failure)
            return
        if stopping:
            emit(self.stopped, "")
            return
        why = said.strip().splitlines()[-1] if said.strip() else "it ended"
        emit(
            self.stopped,
            f"Sharing stopped: {why}. If the port is taken by another program, choose "
            "another port.",
        )


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)
