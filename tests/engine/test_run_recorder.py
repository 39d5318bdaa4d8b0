"""Chat answers become measured runs: the real worker answers, the run lands in real SQLite
beside its prediction, and the refitted figures come back on the GUI thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop.core.calibration import DEFAULT_FIGURES
from desktop.core.estimate import Device, Settings
from desktop.core.gguf import read_header_file
from desktop.core.modelspec import spec_from_header
from desktop.core.runs import RunStore, machine_key
from desktop.engine import protocol as p
from desktop.services.engine_client import EngineClient
from desktop.services.run_recorder import MIN_GENERATED_TOKENS, RunRecorder

pytestmark = pytest.mark.engine

STORY = [{"role": "user", "content": "Tell me a long story about a dragon and a knight."}]
CPU = Device("CPU", "cpu", 16 * 2**30, 29 * 10**9, 1e11, physical_cores=2, logical_cores=2)
MACHINE = machine_key("test CPU", [], ["cpu"])


@pytest.fixture
def client() -> Iterator[EngineClient]:
    engine = EngineClient()
    yield engine
    engine.shutdown()


def _chat(qtbot: Any, client: EngineClient, tokens: int) -> p.Done:
    with qtbot.waitSignal(client.done, timeout=120_000) as blocker:
        client.chat(p.Chat(messages=STORY, max_tokens=tokens, seed=1, temperature=0.0, top_k=1))
    done = blocker.args[0]
    assert isinstance(done, p.Done)
    return done


def test_each_answer_is_stored_and_refits_the_figures(
    qtbot: Any,
    client: EngineClient,
    gemma_load: Callable[..., p.Load],
    gemma_path: Path,
    tmp_path: Path,
) -> None:
    db = tmp_path / "history.sqlite3"
    recorder = RunRecorder(client, MACHINE, db)
    spec = spec_from_header(read_header_file(gemma_path))
    settings = Settings(n_ctx=1024, n_gpu_layers=0, n_threads=1)
    recorder.expect(spec, settings, [CPU], gemma_path.name, gemma_path.stat().st_size)
    with qtbot.waitSignal(client.loaded, timeout=120_000):
        client.load(gemma_load(n_threads=1))

    short = _chat(qtbot, client, 4)  # too short to time: not stored
    assert short.generated_tokens < MIN_GENERATED_TOKENS
    fitted: list[Any] = []
    recorder.figuresChanged.connect(fitted.append)
    with qtbot.waitSignals([recorder.runStored, recorder.figuresChanged], timeout=60_000):
        done = _chat(qtbot, client, 24)
    assert fitted[0].runs == 1 and fitted[0].describe() == "calibrated from 1 run on this computer"
    with RunStore(db) as store:
        runs = store.runs(MACHINE)
    assert len(runs) == 1
    run = runs[0]
    assert run.source == "chat" and run.model == gemma_path.name
    assert run.run.threads == 1
    assert run.run.decode_tokens_per_s == pytest.approx(done.gen_tokens_per_s)
    assert run.run.work[-1].kind == "cpu" and run.run.work[-1].decode_bytes > 200e6
    assert run.details["generated_tokens"] == done.generated_tokens
    with qtbot.waitSignal(recorder.figuresChanged, timeout=60_000):
        _chat(qtbot, client, 24)
    assert fitted[-1].runs == 2 and fitted[-1] != DEFAULT_FIGURES
