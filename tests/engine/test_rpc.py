"""Other computers' memory through llama.cpp's RPC backend, over real TCP on 127.0.0.1.

The servers are real ``share`` processes (desktop.engine.rpc_server, llama.cpp's own RPC
server), probed by the real probe child and loaded through by the real worker. The plan for
each case is compared with the buffers llama.cpp reported per device: weights and KV cache
within 1%, each device's total within 5%, the offloaded layer count exact (the per-device
weights pin where each layer went). Layer counts offloaded to two servers are odd, so that
no layer sits exactly on the 50% split point, where a few kilobytes of difference in the two
servers' free memory would move it.

Faults: nothing listening, a server of another protocol version (a tiny fake that answers
HELLO with 6.0.0), a server that accepts and never answers, and a real server killed during
the load and during an answer: each ends in one sentence, within a bounded time.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rpc_cases import CASES, Case, free_port, plan_and_load, share
from synth import ACCURACY_MODELS, write_model

from desktop.core import rpc
from desktop.core.children import engine_environment
from desktop.core.estimate import compare_by_device
from desktop.engine import protocol as p
from desktop.engine.runner import WorkerError, WorkerExited, WorkerRunner

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("cpu_only_build")]


@pytest.fixture(scope="module")
def servers() -> Iterator[list[rpc.ShareServer]]:
    started = [share(), share()]
    yield started
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def synth_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("rpc-synth")
    return {
        n: write_model(folder / f"{n}.gguf", ACCURACY_MODELS[n]) for n in ("llama-gqa", "qwen3")
    }


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
def test_plan_matches_llama_cpp_per_device(
    case: Case, servers: list[rpc.ShareServer], gemma_path: Path, synth_models: dict[str, Path]
) -> None:
    path = gemma_path if case.model == "gemma" else synth_models[case.model]
    endpoints = [s.endpoint for s in servers[: case.n_servers]]
    plan, loaded = plan_and_load(path, endpoints, case.n_gpu_layers, case.n_ctx)
    report = loaded.report()
    assert report.offloaded_layers == plan.gpu_layers
    rows = compare_by_device(plan, report)
    table = "\n".join(
        f"{r['device']:22} {r['component']:8} est {r['estimated_bytes'] / 2**20:9.2f} MiB "
        f"llama.cpp {r['reported_bytes'] / 2**20:9.2f} MiB {r['error_pct']:+6.2f}%"
        for r in rows
    )
    devices = {r["device"] for r in rows}
    used = [e for e in endpoints if any(d.endpoint == e and d.layers for d in plan.devices)]
    assert set(used) <= devices, table  # every server the plan gives layers has buffers there
    for r in rows:
        if r["component"] in ("weights", "kv") and r["reported_bytes"]:
            assert abs(r["error_pct"]) <= 1.0, table
        if r["component"] == "total":
            assert abs(r["error_pct"]) <= 5.0, table
    # Layers per device: the plan's remote devices hold exactly the weights llama.cpp put there.
    for d in plan.devices:
        if d.endpoint:
            reported = report.by_device_key().get(d.endpoint, {}).get("weights", 0)
            assert (reported > 0) == (d.layers > 0), table


# ------------------------------------------------------------------------------ faults


def test_nothing_listening_is_a_sentence() -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    (server,) = rpc.probe_servers([endpoint])
    assert server.error is not None and "nothing is listening" in server.error
    assert time.monotonic() - started < rpc.PROBE_TIMEOUT_S


def test_worker_refuses_a_server_where_nothing_listens(gemma_path: Path) -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    with WorkerRunner() as runner:
        with pytest.raises(WorkerError) as failed:
            runner.load(
                p.Load(path=str(gemma_path), n_gpu_layers=99, n_ctx=512, rpc_servers=[endpoint])
            )
        assert failed.value.error.kind == "remote_device"
        assert endpoint in failed.value.error.message
        assert runner.alive  # a sentence, not a dead worker


def _recv_exactly(client: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = client.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


class _FakeServer:
    """A plain TCP server on 127.0.0.1: ``stall`` accepts and never answers; ``old``
    answers llama.cpp's HELLO with protocol 6.0.0 (the reply's size is the v7 client's)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.endpoint = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.clients: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                client, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.clients.append(client)
            if self.mode == "old":
                client.settimeout(2)
                try:
                    head = _recv_exactly(client, 9)  # command byte, then the request's size
                    _recv_exactly(client, struct.unpack("<Q", head[1:])[0])
                    client.sendall(struct.pack("<Q", 28) + bytes([6, 0, 0, 0]) + bytes(24))
                except (OSError, EOFError):
                    pass  # the probe's reachability check connects and closes at once

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for client in self.clients:
            client.close()
        self.sock.close()


@pytest.fixture
def fake_server() -> Iterator[Callable[[str], _FakeServer]]:
    made: list[_FakeServer] = []

    def make(mode: str) -> _FakeServer:
        made.append(_FakeServer(mode))
        return made[-1]

    yield make
    for server in made:
        server.close()


def test_a_stalled_server_is_a_sentence_not_a_hang(
    fake_server: Callable[[str], _FakeServer],
) -> None:
    server = fake_server("stall")
    started = time.monotonic()
    (answer,) = rpc.probe_servers([server.endpoint], timeout=3.0)
    assert time.monotonic() - started < 10
    assert answer.error is not None and "did not answer within 3 s" in answer.error


def test_another_protocol_version_is_refused_with_llama_cpps_words(
    fake_server: Callable[[str], _FakeServer],
) -> None:
    server = fake_server("old")
    (answer,) = rpc.probe_servers([server.endpoint])
    assert answer.error is not None
    assert "protocol 6.0.0" in answer.error and "version mismatch" in answer.error


def test_server_killed_during_generation_ends_with_a_sentence(gemma_path: Path) -> None:
    server = share()
    try:
        with WorkerRunner() as runner:
            runner.load(
                p.Load(
                    path=str(gemma_path),
                    n_gpu_layers=99,
                    n_ctx=512,
                    n_threads=1,
                    rpc_servers=[server.endpoint],
                )
            )
            chat = p.Chat(
                messages=[{"role": "user", "content": "Count to a hundred."}],
                max_tokens=200,
                temperature=0.0,
                seed=1,
            )
            with pytest.raises(WorkerExited) as ended:
                for event in runner.chat(chat, timeout=60):
                    if isinstance(event, p.Token) and event.index == 2:
                        server.stop()
            sentence = rpc.crash_sentence(ended.value.stderr_tail, [server.endpoint])
            assert sentence is not None and "stopped answering" in sentence
            assert "Reload the model without that computer" in sentence
    finally:
        server.stop()


def test_server_killed_during_load_ends_with_a_sentence(gemma_path: Path) -> None:
    server = share()
    try:
        with WorkerRunner() as runner:
            runner.send(
                p.Load(
                    path=str(gemma_path),
                    n_gpu_layers=99,
                    n_ctx=512,
                    n_threads=1,
                    rpc_servers=[server.endpoint],
                )
            )
            with pytest.raises(WorkerExited) as ended:
                while True:
                    event = runner.next_event(timeout=60)
                    if isinstance(event, p.LoadProgress) and event.fraction > 0:
                        server.stop()
                    assert not isinstance(event, p.Loaded), "the load finished before the kill"
            sentence = rpc.crash_sentence(ended.value.stderr_tail, [server.endpoint])
            assert sentence is not None and server.endpoint in sentence
    finally:
        server.stop()


# ------------------------------------------------------------------------------ sharing


def test_sharing_refuses_a_public_address_and_warns_on_a_private_one() -> None:
    with pytest.raises(ValueError, match="public address"):
        rpc.check_share_address("8.8.8.8")
    with pytest.raises(ValueError, match="every network"):
        rpc.check_share_address("0.0.0.0")
    assert rpc.check_share_address("127.0.0.1") is None
    warning = rpc.check_share_address("192.168.1.20")
    assert warning is not None and "no password" in warning


def test_share_server_reports_its_device_and_stops(servers: list[rpc.ShareServer]) -> None:
    info = servers[0].info
    assert info["name"] == "CPU" and 0 < info["free_bytes"] <= info["total_bytes"]
    (probed,) = rpc.probe_servers([servers[0].endpoint])
    assert probed.ok and probed.devices[0].free_bytes > 0 and probed.devices[0].latency_s > 0
    extra = share()
    extra.stop()
    assert extra.process is not None and extra.process.poll() is not None


def test_worker_gives_up_on_a_stalled_server_with_a_sentence(
    gemma_path: Path, fake_server: Callable[[str], _FakeServer]
) -> None:
    server = fake_server("stall")
    started = time.monotonic()
    with WorkerRunner() as runner:
        with pytest.raises(WorkerError) as failed:
            runner.load(
                p.Load(
                    path=str(gemma_path), n_gpu_layers=99, n_ctx=512, rpc_servers=[server.endpoint]
                ),
                timeout=60,
            )
        assert failed.value.error.kind == "remote_device"
        assert "did not answer within" in failed.value.error.message
        assert runner.alive  # the worker answers: the window and the chat stay up
    assert time.monotonic() - started < 60


# ------------------------------------------------------------------------------ the CLI


def _cli(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "desktop.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=engine_environment(),
        check=False,
    )


def test_cli_estimate_hardware_and_bench_through_two_servers(
    servers: list[rpc.ShareServer], gemma_path: Path
) -> None:
    flags = [x for s in servers for x in ("--rpc", s.endpoint)]
    done = _cli(["estimate", str(gemma_path), "--ctx", "1024", "--gpu-layers", "7", *flags,
                 "--threads", "1", "--json"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["checked_by_llama_cpp"] is True and plan["llama_cpp_check"]["layers_agree"]
    remote = [d for d in plan["devices"] if d["kind"] == "rpc"]
    assert [d["endpoint"] for d in remote] == [s.endpoint for s in servers]
    assert all(d["latency_s"] > 0 for d in remote)
    assert plan["reason"].startswith("Fits across 3 computers")
    assert {r["endpoint"] for r in plan["remote_devices"]} == {s.endpoint for s in servers}

    done = _cli(["hardware", "--no-bandwidth", "--json", *flags])
    assert done.returncode == 0, done.stderr
    devices = json.loads(done.stdout)["remote_devices"]
    assert all(d["kind"] == "rpc" and d["free_bytes"] > 0 for d in devices)

    done = _cli(["bench", str(gemma_path), "--ctx", "1024", "--gpu-layers", "99", "--tokens",
                 "8", "--prompt-tokens", "16", "--threads", "1", "--no-store", "--json",
                 "--rpc", servers[0].endpoint])  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["generated_tokens"] > 0
    assert any(b.get("endpoint") == servers[0].endpoint for b in result["llama_cpp_buffers"])
    rows = {(r["device"], r["component"]): r for r in result["comparison_by_device"]}
    assert abs(rows[(servers[0].endpoint, "weights")]["error_pct"]) <= 1.0
    assert abs(rows[(servers[0].endpoint, "total")]["error_pct"]) <= 5.0


def test_cli_share_refuses_a_public_address_and_unreachable_rpc_is_a_sentence(
    gemma_path: Path,
) -> None:
    done = _cli(["share", "--host", "8.8.8.8"], timeout=60)
    assert done.returncode == 1 and "public address" in done.stderr
    assert "Traceback" not in done.stderr
    endpoint = f"127.0.0.1:{free_port()}"
    done = _cli(["estimate", str(gemma_path), "--rpc", endpoint], timeout=60)
    assert done.returncode == 1, done.stdout
    assert f"{endpoint} did not answer: nothing is listening there" in done.stderr
    assert "Traceback" not in done.stderr


def test_reload_without_the_server_uses_this_computer_only(
    servers: list[rpc.ShareServer], gemma_path: Path
) -> None:
    """Registration lasts for the worker's life; a load without servers names no device."""
    with WorkerRunner() as runner:
        first = runner.load(
            p.Load(path=str(gemma_path), n_gpu_layers=99, n_ctx=512, n_threads=1,
                   rpc_servers=[servers[0].endpoint])
        )  # fmt: skip
        assert servers[0].endpoint in first.report().by_device_key()
        again = runner.load(p.Load(path=str(gemma_path), n_gpu_layers=99, n_ctx=512, n_threads=1))
        assert set(again.report().by_device_key()) == {"CPU"}
        assert again.remote_memory  # still registered, so still reported
