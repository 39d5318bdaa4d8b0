"""Other computers' devices through llama.cpp's RPC backend: addresses, probes, sentences.

llama.cpp's RPC server has no authentication and trusts its clients: whoever reaches the port
can run work on that machine and read what it holds. So this app shares on 127.0.0.1 unless
the person names another address, never on a public (non-private) one, and says so while a
network address is in use (:func:`check_share_address`).

A remote device is asked what it offers by a child process (desktop.engine.rpc_probe, through
:mod:`desktop.core.children`), because llama.cpp aborts the process it runs in when a server
fails the handshake or drops the connection; :func:`probe_servers` turns every way that can
end (nothing listening, no answer in time, another protocol version, a crash) into a sentence.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from desktop.core.children import RPC_PROBE_MARKER, run_engine
from desktop.core.crash import returncode_cause

__all__ = [
    "DEFAULT_PORT",
    "PROBE_TIMEOUT_S",
    "RemoteDevice",
    "RemoteServer",
    "ShareServer",
    "check_share_address",
    "crash_sentence",
    "parse_endpoint",
    "probe_servers",
]

#: llama.cpp's rpc-server default port.
DEFAULT_PORT = 50052
#: How long a probe of the servers may take before it counts as "not answering". A server
#: serves one client at a time, so one that is busy with another computer's model waits too.
PROBE_TIMEOUT_S = 8.0

_HOST_RE = re.compile(r"^[A-Za-z0-9.\-]+$")
_MISMATCH_RE = re.compile(r"RPC server version mismatch: (?P<version>[\d.]+)")


def parse_endpoint(text: str) -> str:
    """ "host:port" in llama.cpp's form (a bare host gets port 50052); ValueError with a
    sentence for anything else. IPv6 addresses are not supported by llama.cpp's client."""
    value = text.strip()
    if not value:
        raise ValueError("Type the other computer's address as host:port, e.g. 192.168.1.20:50052.")
    host, sep, port_text = value.rpartition(":")
    if not sep:
        host, port_text = value, str(DEFAULT_PORT)
    if not host or not _HOST_RE.match(host):
        raise ValueError(
            f"{value!r} is not a host:port address (llama.cpp's RPC client takes a name or an "
            "IPv4 address, e.g. 192.168.1.20:50052)."
        )
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"The port in {value!r} is not a number.") from None
    if not 0 < port < 65536:
        raise ValueError(f"The port in {value!r} must be between 1 and 65535.")
    return f"{host}:{port}"


def check_share_address(host: str) -> str | None:
    """None for the loopback address; a warning sentence for a private network address;
    ValueError for a public or unknown one (the RPC server must never face the internet)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            address = ipaddress.ip_address(socket.gethostbyname(host))
        except (OSError, ValueError):
            raise ValueError(f"{host!r} is not an address of this computer.") from None
    if address.version != 4:
        raise ValueError("llama.cpp's RPC server listens on IPv4 addresses only.")
    if address.is_loopback:
        return None
    if address.is_unspecified:
        raise ValueError(
            "0.0.0.0 would listen on every network, the internet included; name this "
            "computer's address on your home network instead (e.g. 192.168.1.20)."
        )
    if address.is_private and not address.is_link_local:
        return (
            f"Sharing on {host}: anyone on that network can use this computer's memory and "
            "processor through it, since llama.cpp's RPC server has no password. Stop sharing "
            "when you are done."
        )
    raise ValueError(
        f"{host} is a public address: llama.cpp's RPC server has no password, so it must "
        "never face the internet. Use 127.0.0.1 or a home-network address (192.168.x.x, "
        "10.x.x.x, 172.16-31.x.x)."
    )


@dataclass(frozen=True)
class RemoteDevice:
    """One device of another computer, as its RPC server reports it."""

    endpoint: str  # "host:port"
    index: int  # the device's number on that server
    free_bytes: int
    total_bytes: int
    alignment: int  # the server's buffer alignment, bytes (0: unknown)
    latency_s: float  # one round trip of a small request

    @property
    def label(self) -> str:
        return self.endpoint if self.index == 0 else f"{self.endpoint} #{self.index}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "rpc",
            "endpoint": self.endpoint,
            "index": self.index,
            "free_bytes": self.free_bytes,
            "total_bytes": self.total_bytes,
            "alignment": self.alignment,
            "latency_s": round(self.latency_s, 6),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RemoteDevice:
        return cls(
            endpoint=str(data["endpoint"]),
            index=int(data.get("index", 0)),
            free_bytes=int(data["free_bytes"]),
            total_bytes=int(data["total_bytes"]),
            alignment=int(data.get("alignment", 0)),
            latency_s=float(data.get("latency_s", 0.0)),
        )


@dataclass(frozen=True)
class RemoteServer:
    """What one server said: its devices, or why it could not be used (a sentence)."""

    endpoint: str
    devices: tuple[RemoteDevice, ...] = field(default=())
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "devices": [d.to_dict() for d in self.devices],
            "error": self.error,
        }


def _unreachable(endpoint: str, why: str) -> str:
    return (
        f"The computer at {endpoint} did not answer: {why}. Start sharing there "
        "(llm-workbench share, or the Share switch), check the address and that a firewall "
        "lets the port through."
    )


def _stalled(endpoint: str, seconds: float) -> str:
    return (
        f"The computer at {endpoint} accepted the connection but did not answer within "
        f"{seconds:g} s. Its RPC server may be serving another computer (it serves one at a "
        "time) or be stuck; try again, or restart sharing there."
    )


def _mismatch(endpoint: str, version: str) -> str:
    return (
        f"The RPC server at {endpoint} speaks protocol {version}, which this llama.cpp "
        'cannot use (llama.cpp: "RPC server version mismatch"). Install the same '
        "llama-cpp-python version on both computers."
    )


def probe_servers(
    endpoints: Sequence[str], *, timeout: float = PROBE_TIMEOUT_S, python: str | None = None
) -> list[RemoteServer]:
    """Ask each server for its devices, memory and latency (one child process for all).

    A server serves one client at a time and llama.cpp's client does not retry a refused
    connection, so a probe that found the port open and then could not connect (the server
    was still closing an earlier client) is asked once more.
    """
    first = _probe_once(endpoints, timeout, python)
    again = [s.endpoint for s in first if s.error and "Failed to connect" in s.error]
    if not again:
        return first
    retried = {s.endpoint: s for s in _probe_once(again, timeout, python)}
    return [retried.get(s.endpoint, s) for s in first]


def _probe_once(endpoints: Sequence[str], timeout: float, python: str | None) -> list[RemoteServer]:
    if not endpoints:
        return []
    kwargs: dict[str, Any] = {} if python is None else {"python": python}
    # An abort in llama.cpp would otherwise attach gdb for a backtrace (seconds, and noise).
    kwargs["env"] = {**os.environ, "GGML_NO_BACKTRACE": "1"}
    try:
        done = run_engine(
            "desktop.engine.rpc_probe",
            "--rpc-probe",
            list(endpoints),
            marker=RPC_PROBE_MARKER,
            timeout=timeout,
            **kwargs,
        )
    except subprocess.TimeoutExpired as expired:
        answered = _answered(expired.stdout)
        return [answered.get(e) or RemoteServer(e, error=_stalled(e, timeout)) for e in endpoints]
    except OSError as exc:
        return [RemoteServer(e, error=f"The probe could not start: {exc}.") for e in endpoints]
    answered = {}
    if done.answer is not None:
        answered = {s.endpoint: s for s in _servers(done.answer)}
    out = []
    for endpoint in endpoints:
        server = answered.get(endpoint)
        if server is None:
            server = RemoteServer(endpoint, error=_failure(endpoint, done.returncode, done.stderr))
        out.append(server)
    return out


def _answered(stdout: str | bytes | None) -> dict[str, RemoteServer]:
    import json

    text = stdout.decode("utf-8", "replace") if isinstance(stdout, bytes) else stdout or ""
    found: dict[str, RemoteServer] = {}
    for line in text.splitlines():
        if line.startswith(RPC_PROBE_MARKER):
            try:
                found = {s.endpoint: s for s in _servers(json.loads(line[len(RPC_PROBE_MARKER) :]))}
            except ValueError:
                continue
    return found


def _servers(answer: dict[str, Any]) -> list[RemoteServer]:
    out = []
    for raw in answer.get("servers", []):
        endpoint = str(raw["endpoint"])
        if raw.get("error"):
            out.append(RemoteServer(endpoint, error=_unreachable(endpoint, str(raw["error"]))))
            continue
        devices = tuple(
            RemoteDevice.from_dict({**d, "endpoint": endpoint, "index": i})
            for i, d in enumerate(raw.get("devices", []))
        )
        if not devices:
            error = f"The RPC server at {endpoint} offers no device."
            out.append(RemoteServer(endpoint, error=error))
        else:
            out.append(RemoteServer(endpoint, devices))
    return out


def _failure(endpoint: str, returncode: int, stderr: str) -> str:
    """The sentence for a probe that ended before answering about ``endpoint``."""
    mismatch = _MISMATCH_RE.search(stderr)
    if mismatch:
        return _mismatch(endpoint, mismatch["version"])
    cause = returncode_cause(returncode)
    last = _last_error_line(stderr)
    said = f" (llama.cpp: {last})" if last else ""
    return (
        f"Asking the computer at {endpoint} failed: the probe {cause.kind.replace('_', ' ')}"
        f"{said}. Check that both computers run the same llama-cpp-python version."
    )


def _last_error_line(stderr: str) -> str:
    for line in reversed(stderr.strip().splitlines()):
        line = line.strip()
        if line and not line.startswith(("Fatal Python", "Current thread", "File ", "  ")):
            return line.split(": ", 1)[-1] if "GGML_ASSERT" not in line else line
    return ""


def crash_sentence(stderr_tail: str, endpoints: Sequence[str]) -> str | None:
    """The sentence for a worker that died because a remote device went away; None when the
    log does not say so. llama.cpp aborts the process: the model is gone, the chat is not."""
    if not endpoints:
        return None
    mismatch = _MISMATCH_RE.search(stderr_tail)
    if mismatch:
        failed = re.search(r"RPC handshake failed for (\S+)", stderr_tail)
        return _mismatch(failed[1] if failed else ", ".join(endpoints), mismatch["version"])
    connect = re.search(r"Failed to connect to (\S+)", stderr_tail)
    if connect:
        return _unreachable(connect[1], "the connection was refused while loading")
    markers = ("Remote RPC server crashed", "recv failed", "send failed", "peer closed")
    if any(m in stderr_tail for m in markers):
        where = " or ".join(endpoints)
        return (
            f"The computer at {where} stopped answering (its RPC server was closed or the "
            "network dropped), so llama.cpp stopped and the model was unloaded; the chat is "
            "kept. Reload the model without that computer, or with fewer layers on it."
        )
    return None


class ShareServer:
    """This computer's device served to others: the engine child desktop.engine.rpc_server.

    ``start()`` returns what it offers (its first line) or raises RuntimeError with a
    sentence; :meth:`events` yields "connected" / "disconnected" as llama.cpp reports
    clients; :meth:`stop` ends the process (llama.cpp's server has no other way to stop).
    """

    def __init__(self, host: str, port: int, device: str | None = None) -> None:
        self.host, self.port, self.device = host, port, device
        self.endpoint = f"{host}:{port}"
        self.process: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    def command(self) -> list[str]:
        from desktop.core.children import engine_command

        args = ["--host", self.host, "--port", str(self.port)]
        if self.device:
            args += ["--device", self.device]
        return [*engine_command("desktop.engine.rpc_server", "--rpc-server"), *args]

    def start(self, timeout: float = 30.0) -> dict[str, Any]:
        import json
        import selectors

        from desktop.core.children import RPC_SERVER_MARKER, engine_environment

        env = engine_environment({**os.environ, "GGML_NO_BACKTRACE": "1"})
        self.process = subprocess.Popen(
            self.command(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=env,
        )
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                self.stop()
                raise RuntimeError(f"The sharing server did not start within {timeout:g} s.")
        line = self.process.stdout.readline()
        if not line.startswith(RPC_SERVER_MARKER):
            self.stop()
            said = line.strip() or "no answer"
            raise RuntimeError(f"The sharing server could not start: {said}.")
        info: dict[str, Any] = json.loads(line[len(RPC_SERVER_MARKER) :])
        if "error" in info:
            self.stop()
            raise RuntimeError(f"Sharing could not start: {info['error']}.")
        self.info = info
        return info

    def listening(self, timeout: float = 10.0) -> str | None:
        """Wait until the port accepts connections: None, or why sharing failed (a sentence)."""
        import time

        deadline = time.monotonic() + timeout
        host = self.host if self.host not in ("0.0.0.0", "") else "127.0.0.1"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                err = self.process.stderr.read() if self.process.stderr else ""
                why = _last_error_line(err) or "it ended"
                return (
                    f"Sharing on {self.endpoint} failed ({why}); the port may be taken by "
                    "another program: choose another port."
                )
            try:
                with socket.create_connection((host, self.port), timeout=0.5):
                    return None
            except OSError:
                time.sleep(0.1)
        return f"Sharing on {self.endpoint} did not start listening within {timeout:g} s."

    def events(self) -> Any:
        """ "connected" / "disconnected" for each client llama.cpp accepts and closes."""
        if self.process is None or self.process.stdout is None:
            return
        for line in self.process.stdout:
            if "Accepted client connection" in line:
                yield "connected"
            elif "Client connection closed" in line:
                yield "disconnected"

    def stop(self, timeout: float = 5.0) -> None:
        """End the server (if it runs) and release its pipes."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
