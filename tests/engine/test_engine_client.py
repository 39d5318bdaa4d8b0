"""EngineClient with a real worker and real llama.cpp: signals, queueing, crashes, history."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop.core.history import ChatHistory
from desktop.engine import protocol as p
from desktop.services.engine_client import EngineClient, explain_exit

pytestmark = pytest.mark.engine

LoadFactory = Callable[..., p.Load]
STORY = [{"role": "user", "content": "Tell me a long story about a dragon and a knight."}]
LOAD_MS = 120_000
ANSWER_MS = 120_000


@pytest.fixture
def client() -> Iterator[EngineClient]:
    engine = EngineClient()
    yield engine
    engine.shutdown()


def load(qtbot: Any, client: EngineClient, request: p.Load) -> p.Loaded:
    with qtbot.waitSignal(client.loaded, timeout=LOAD_MS) as blocker:
        client.load(request)
    loaded = blocker.args[0]
    assert isinstance(loaded, p.Loaded)
    return loaded


def test_load_and_chat_through_signals(
    qtbot: Any, client: EngineClient, gemma_load: LoadFactory
) -> None:
    states: list[str] = []
    progress: list[float] = []
    hellos: list[p.Hello] = []
    client.stateChanged.connect(states.append)
    client.loadProgress.connect(progress.append)
    client.hello.connect(hellos.append)

    loaded = load(qtbot, client, gemma_load())
    assert loaded.n_layers == 18
    assert client.model == loaded
    assert states == ["starting", "loading", "ready"]
    assert progress[-1] == 1.0
    assert hellos[0].pid == client.pid

    tokens: list[p.Token] = []
    client.token.connect(tokens.append)
    chat = p.Chat(messages=STORY, max_tokens=16, seed=1)
    with qtbot.waitSignal(client.done, timeout=ANSWER_MS) as blocker:
        assert client.chat(chat) == chat.id
    done = blocker.args[0]
    assert isinstance(done, p.Done) and done.id == chat.id
    assert tokens and all(t.id == chat.id for t in tokens)
    assert "".join(t.text for t in tokens).strip()
    assert done.gen_tokens_per_s > 0
    assert states[-2:] == ["generating", "ready"]


def test_requests_are_served_one_at_a_time_in_order(
    qtbot: Any, client: EngineClient, gemma_load: LoadFactory
) -> None:
    seen: list[tuple[str, str]] = []
    errors: list[p.Error] = []
    client.token.connect(lambda t: seen.append(("token", t.id)))
    client.done.connect(lambda d: seen.append(("done", d.id)))
    client.loaded.connect(lambda loaded: seen.append(("loaded", loaded.id)))
    client.error.connect(errors.append)

    # All queued at once, before the worker has even said hello.
    load_id = client.load(gemma_load(n_ctx=512))
    first = client.chat(p.Chat(messages=STORY, max_tokens=6, seed=1))
    second = client.chat(p.Chat(messages=STORY, max_tokens=6, seed=2))
    assert client.pending_requests() == 3
    qtbot.waitUntil(lambda: sum(kind == "done" for kind, _ in seen) == 2, timeout=ANSWER_MS)

    assert not errors, errors  # the worker never saw two requests at once ("busy")
    order = [rid for _, rid in seen]
    assert order[0] == load_id
    assert order.index(first) < order.index(second)
    assert ("done", first) in seen and seen.index(("done", first)) < order.index(second)
    assert client.pending_requests() == 0


def test_stop_answers_with_done_user(
    qtbot: Any, client: EngineClient, gemma_load: LoadFactory
) -> None:
    load(qtbot, client, gemma_load())
    client.token.connect(lambda token: client.stop() if token.index == 2 else None)
    with qtbot.waitSignal(client.done, timeout=ANSWER_MS) as blocker:
        client.chat(p.Chat(messages=STORY, max_tokens=800, seed=1))
    assert blocker.args[0].stop_reason == "user"
    assert client.state == "ready"


def test_stop_that_times_out_ends_the_worker(qtbot: Any, gemma_load: LoadFactory) -> None:
    client = EngineClient(stop_timeout_ms=100)
    try:
        load(qtbot, client, gemma_load(n_ctx=4096))
        # A long prompt: llama.cpp cannot be interrupted while it reads it.
        long_prompt = [{"role": "user", "content": "dragon knight castle " * 700}]
        crashes: list[str] = []
        client.crashed.connect(crashes.append)
        with qtbot.waitSignal(client.error, timeout=ANSWER_MS) as blocker:
            chat_id = client.chat(p.Chat(messages=long_prompt, max_tokens=8))
            client.stop()
        error = blocker.args[0]
        assert (error.kind, error.id) == ("stop_timeout", chat_id)
        assert "Load the model again" in error.message
        assert client.state == "stopped" and client.pid is None and not crashes

        loaded = load(qtbot, client, gemma_load(n_ctx=512))  # a fresh worker
        assert loaded.n_ctx == 512
    finally:
        client.shutdown()


@pytest.mark.parametrize(
    ("signum", "kind", "says"),
    [
        (signal.SIGKILL, "killed", "SIGKILL"),  # free memory not known here: not blamed
        (signal.SIGABRT, "aborted", "llama.cpp aborted"),
        (signal.SIGILL, "illegal_instruction", "CPU instructions your processor lacks"),
        (signal.SIGSEGV, "segfault", "memory access error"),
    ],
)
def test_worker_killed_mid_answer_is_explained_and_the_history_kept(
    qtbot: Any,
    client: EngineClient,
    gemma_load: LoadFactory,
    tmp_path: Path,
    signum: int,
    kind: str,
    says: str,
) -> None:
    load(qtbot, client, gemma_load())
    pid = client.pid
    assert pid is not None

    # Wired as the chat panel does it.
    history = ChatHistory(tmp_path / "history.sqlite3")
    conversation = history.create_conversation("Dragons")
    history.add_message(conversation, "user", STORY[0]["content"])
    answer = history.start_assistant_message(conversation, model="gemma", settings={"seed": 1})
    received: list[str] = []

    def on_token(token: p.Token) -> None:
        received.append(token.text)
        history.append_partial(answer, token.text)
        if token.index == 3:
            os.kill(pid, signum)

    client.token.connect(on_token)
    client.done.connect(
        lambda done: history.finish(answer, stats={"tokens": done.generated_tokens})
    )
    client.crashed.connect(lambda _kind, message, _fix: history.mark_interrupted(answer, message))

    with qtbot.waitSignal(client.crashed, timeout=ANSWER_MS) as blocker:
        client.chat(p.Chat(messages=STORY, max_tokens=800, seed=1))
    crash_kind, message, suggestion = blocker.args
    assert crash_kind == kind
    assert says in message
    assert "while answering" in message
    assert suggestion.endswith(".")
    if signum == signal.SIGILL:
        assert "GGML_NATIVE=OFF" in suggestion
    assert client.state == "stopped"

    with ChatHistory(tmp_path / "history.sqlite3") as reopened:
        user, assistant = reopened.messages(conversation)
        assert user.content == STORY[0]["content"]
        assert assistant.status == "interrupted"
        assert assistant.content == "".join(received) and len(received) >= 4
        assert assistant.stats == {"interrupted": message}
    history.close()

    # The next load starts a new worker.
    assert load(qtbot, client, gemma_load(n_ctx=512)).n_ctx == 512
    assert client.pid not in (None, pid)


def test_load_errors_keep_the_worker(
    qtbot: Any, client: EngineClient, gemma_load: LoadFactory, tmp_path: Path
) -> None:
    with qtbot.waitSignal(client.error, timeout=LOAD_MS) as blocker:
        client.load(p.Load(path=str(tmp_path / "missing.gguf")))
    assert blocker.args[0].kind == "file_not_found"
    assert client.state == "idle"
    loaded = load(qtbot, client, gemma_load(n_ctx=512))
    assert loaded.n_ctx == 512


def test_retry_with_reloads_the_last_model_with_another_layer_count(
    qtbot: Any, client: EngineClient, gemma_load: LoadFactory
) -> None:
    first = gemma_load(n_ctx=768, n_gpu_layers=0)
    load(qtbot, client, first)
    with qtbot.waitSignal(client.loaded, timeout=LOAD_MS) as blocker:
        retry_id = client.retry_with(0)
    assert retry_id != first.id
    assert blocker.args[0].id == retry_id
    assert blocker.args[0].n_ctx == 768
    assert client.last_load is not None and client.last_load.path == first.path


def test_chat_without_a_worker_is_an_error(qtbot: Any, client: EngineClient) -> None:
    with qtbot.waitSignal(client.error, timeout=1000) as blocker:
        client.chat(p.Chat(messages=STORY))
    assert blocker.args[0].kind == "not_loaded"
    assert client.state == "stopped"


def test_unload(qtbot: Any, client: EngineClient, gemma_load: LoadFactory) -> None:
    load(qtbot, client, gemma_load(n_ctx=512))
    with qtbot.waitSignal(client.unloaded, timeout=LOAD_MS):
        client.unload()
    assert client.model is None and client.state == "idle"


def test_worker_that_cannot_start(qtbot: Any) -> None:
    client = EngineClient(command=["/nonexistent/llm-workbench-worker"])
    with qtbot.waitSignal(client.crashed, timeout=10_000) as blocker:
        client.load(p.Load(path="x.gguf"))
    assert blocker.args[0] == "failed_to_start"
    assert client.state == "stopped"


@pytest.mark.parametrize(
    ("code", "crashed", "kind"),
    [
        (9, True, "killed"),
        (137, False, "killed"),  # SIGKILL seen through a shell wrapper
        (134, False, "aborted"),
        (132, False, "illegal_instruction"),
        (0xC000001D, False, "illegal_instruction"),  # Windows STATUS_ILLEGAL_INSTRUCTION
        (0xC0000005, False, "segfault"),  # Windows access violation
        (7, True, "bus_error"),
        (15, True, "signal"),
        (1, False, "exited"),
    ],
)
def test_explain_exit(code: int, crashed: bool, kind: str) -> None:
    explanation = explain_exit(code, crashed, activity="while answering")
    assert explanation.kind == kind
    assert explanation.message.endswith(".") and explanation.suggestion.endswith(".")
    assert "while answering" in explanation.message


def test_explain_exit_quotes_llama_cpp() -> None:
    tail = (
        "llama_context: n_ctx = 4096\n"
        "/src/ggml-cuda.cu:88: GGML_ASSERT(ptr != nullptr) failed\n"
        "Fatal Python error: Aborted\n"
        "Current thread 0x00007f (most recent call first):\n"
    )
    explanation = explain_exit(6, True, stderr_tail=tail)
    assert 'It said: "ggml-cuda.cu:88: GGML_ASSERT(ptr != nullptr) failed"' in (
        explanation.message
    )
