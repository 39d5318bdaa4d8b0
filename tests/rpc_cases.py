"""Real RPC servers on 127.0.0.1 and the multi-device accuracy cases, for the tests and the
accuracy benchmark: each case plans with the servers as llama.cpp's client sees them (the
real probe) and loads through the real worker with the same settings."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from desktop.core import rpc
from desktop.core.estimate import Plan, Settings, devices_from_profile, estimate
from desktop.core.gguf import read_header_file
from desktop.core.hardware import detect
from desktop.core.modelspec import spec_from_header
from desktop.engine import protocol as p
from desktop.engine.runner import WorkerRunner

__all__ = ["CASES", "Case", "free_port", "plan_and_load", "share"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _ThreadedShare(rpc.ShareServer):
    """A share server with a fixed thread count (the test machines are small and shared)."""

    def __init__(self, port: int, threads: int) -> None:
        super().__init__("127.0.0.1", port)
        self.threads = threads

    def command(self) -> list[str]:
        return [*super().command(), "--threads", str(self.threads)]


def share(threads: int = 1) -> rpc.ShareServer:
    """A started, listening RPC server of this computer's CPU on a free loopback port."""
    server = _ThreadedShare(free_port(), threads)
    server.start()
    failed = server.listening()
    if failed:
        server.stop()
        raise RuntimeError(failed)
    return server


@dataclass(frozen=True)
class Case:
    model: str  # "gemma" or an ACCURACY_MODELS name
    n_servers: int
    n_gpu_layers: int
    n_ctx: int

    @property
    def label(self) -> str:
        return f"{self.model}-{self.n_servers}srv-ngl{self.n_gpu_layers}-ctx{self.n_ctx}"


#: Layer counts offloaded to two servers are odd: no layer sits on the 50% split point, where
#: a few kilobytes of difference in the servers' free memory would move it.
CASES = [
    Case("gemma", 1, 0, 1024),
    Case("gemma", 1, 5, 1024),
    Case("gemma", 1, 99, 2048),
    Case("gemma", 2, 7, 1024),
    Case("gemma", 2, 99, 1024),  # 19 layers: every one offloaded, llama.cpp pipelines
    Case("llama-gqa", 2, 3, 2048),
    Case("llama-gqa", 2, 99, 2048),  # 9 layers
    Case("qwen3", 1, 99, 512),
]


def plan_and_load(
    path: Path, endpoints: Sequence[str], n_gpu_layers: int, n_ctx: int
) -> tuple[Plan, p.Loaded]:
    """The plan for this load over these servers, and what llama.cpp did loading it."""
    probed = rpc.probe_servers(endpoints)
    failed = [s.error for s in probed if s.error]
    if failed:
        raise RuntimeError(failed[0])
    remote = [d for s in probed for d in s.devices]
    settings = Settings(n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, n_threads=1)
    profile = detect(measure_bandwidth=False)
    devices = devices_from_profile(profile, settings.reserve_bytes, None, remote)
    plan = estimate(spec_from_header(read_header_file(path)), settings, devices)
    load = p.Load(
        path=str(path),
        n_gpu_layers=plan.gpu_layers,
        n_ctx=n_ctx,
        n_threads=1,
        rpc_servers=list(endpoints),
    )
    with WorkerRunner() as runner:
        loaded = runner.load(load)
    return plan, loaded
