"""A real llama.cpp abort and a real ``kill -9`` of the worker, explained by what happened
(issue 15, item 3): llama.cpp's own reason quoted, the backtrace kept in the log, advice that
follows from the machine's memory headroom (a real Monitor's samples) and the load."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_abort_guards import CASES

from desktop.engine import protocol as p
from desktop.services.engine_client import EngineClient
from desktop.services.monitor import Monitor

pytestmark = pytest.mark.engine
LOAD_MS = 120_000


@pytest.fixture
def watched() -> Iterator[tuple[EngineClient, Monitor]]:
    """An engine client whose crashes read a real monitor's samples (as the app wires it)."""
    monitor = Monitor(interval_ms=100)
    client = EngineClient()
    client.set_memory_facts(monitor.memory_facts)
    client.hello.connect(lambda hello: monitor.set_worker_pid(hello.pid))
    monitor.start()
    yield client, monitor
    monitor.stop()
    client.shutdown()


def _free_ram_is_plenty(monitor: Monitor) -> bool:
    facts = monitor.memory_facts()
    return facts is not None and facts.ram_short is False


def test_a_real_abort_quotes_llama_cpp_and_offers_another_file(
    qtbot: Any,
    watched: tuple[EngineClient, Monitor],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, monitor = watched
    make, _words = CASES["0 experts used"]
    bad = make(tmp_path / "zero-experts-used.gguf")
    qtbot.waitUntil(lambda: _free_ram_is_plenty(monitor), timeout=10_000)
    with caplog.at_level(logging.WARNING), qtbot.waitSignal(
        client.crashed, timeout=LOAD_MS
    ) as blocker:
        client.load(p.Load(path=str(bad), n_ctx=512, n_threads=1))
    kind, message, suggestion = blocker.args
    assert kind == "aborted_by_file", (kind, message)
    assert 'It said: "llama-model.cpp:' in message
    assert "GGML_ASSERT(n_expert_used_max > 0) failed" in message
    assert "ggml_abort ()" not in message and "0x0000" not in message
    assert "another file" in suggestion and "another quantization" in suggestion
    assert "GPU" not in suggestion  # a CPU load: no GPU advice
    # The whole story, the backtrace too, is in the log file.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "GGML_ASSERT(n_expert_used_max > 0) failed" in logged
    assert "Fatal Python error: Aborted" in logged


def test_a_real_kill_9_with_memory_to_spare_was_from_outside(
    qtbot: Any, watched: tuple[EngineClient, Monitor], gemma_path: Path
) -> None:
    client, monitor = watched
    with qtbot.waitSignal(client.loaded, timeout=LOAD_MS):
        client.load(p.Load(path=str(gemma_path), n_ctx=512, n_threads=1))
    qtbot.waitUntil(lambda: _free_ram_is_plenty(monitor), timeout=10_000)
    pid = client.pid
    assert pid is not None
    with qtbot.waitSignal(client.crashed, timeout=30_000) as blocker:
        os.kill(pid, signal.SIGKILL)
    kind, message, suggestion = blocker.args
    assert kind == "killed_from_outside", message
    assert "from outside the app" in message and "RAM free" in message
    assert "out of memory" not in message.replace("did not run out of memory", "")
    assert "GPU" not in message + suggestion
    assert suggestion == "Load the model again."
