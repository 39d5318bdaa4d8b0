"""Chat history in SQLite: the API, and what survives a process killed mid-write."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.core.history import ChatHistory, HistoryError, default_history_path

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def history(tmp_path: Path) -> Iterator[ChatHistory]:
    with ChatHistory(tmp_path / "history.sqlite3") as opened:
        yield opened


def test_conversation_with_a_streamed_answer(history: ChatHistory) -> None:
    conv = history.create_conversation("Dragons")
    history.add_message(conv, "system", "Be brief.")
    history.add_message(conv, "user", "Tell me about dragons.")
    answer = history.start_assistant_message(
        conv, model="gemma.gguf", settings={"n_ctx": 2048, "temperature": 0.8}
    )
    assert history.message(answer).status == "streaming"
    for piece in ["Dragons ", "are ", "large."]:
        history.append_partial(answer, piece)
    history.finish(answer, stats={"generated_tokens": 3, "gen_tokens_per_s": 42.0})

    messages = history.messages(conv)
    assert [m.role for m in messages] == ["system", "user", "assistant"]
    last = messages[-1]
    assert last.content == "Dragons are large."
    assert last.status == "complete"
    assert last.model == "gemma.gguf"
    assert last.settings == {"n_ctx": 2048, "temperature": 0.8}
    assert last.stats["gen_tokens_per_s"] == 42.0
    assert last.updated >= last.created
    with pytest.raises(HistoryError):
        history.append_partial(answer, "more")  # no longer streaming


def test_interrupted_answer_keeps_its_text(history: ChatHistory) -> None:
    conv = history.create_conversation()
    answer = history.start_assistant_message(conv)
    history.update_partial(answer, "Half an ans")
    history.mark_interrupted(answer, reason="The model worker was killed.")
    message = history.message(answer)
    assert (message.status, message.content) == ("interrupted", "Half an ans")
    assert message.stats == {"interrupted": "The model worker was killed."}


def test_list_rename_delete(history: ChatHistory) -> None:
    first = history.create_conversation("first")
    second = history.create_conversation("second")
    history.add_message(first, "user", "hi")
    assert [c.id for c in history.list_conversations()] == [second, first]
    history.rename_conversation(first, "renamed")
    assert {c.title for c in history.list_conversations()} == {"renamed", "second"}
    history.delete_conversation(first)
    assert [c.id for c in history.list_conversations()] == [second]
    assert history.messages(first) == []


def test_bad_calls_say_what_is_wrong(history: ChatHistory) -> None:
    with pytest.raises(HistoryError, match="no conversation 99"):
        history.add_message(99, "user", "hi")
    conv = history.create_conversation()
    with pytest.raises(HistoryError, match="role"):
        history.add_message(conv, "robot", "hi")  # type: ignore[arg-type]
    with pytest.raises(HistoryError, match="no message 12345"):
        history.finish(12345)
    with pytest.raises(HistoryError):
        history.rename_conversation(777, "x")


def test_wal_mode_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "h.sqlite3"
    with ChatHistory(path) as history:
        conv = history.create_conversation("kept")
        history.add_message(conv, "user", "hello")
    with ChatHistory(path) as history:
        assert history.messages(conv)[0].content == "hello"
        assert history.integrity_check() == "ok"
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_default_path_is_in_the_user_data_folder() -> None:
    path = default_history_path()
    assert path.name == "history.sqlite3"
    assert "llm-workbench" in str(path)


WRITER = textwrap.dedent(
    """
    import sys
    from desktop.core.history import ChatHistory

    history = ChatHistory(sys.argv[1])
    conv = history.create_conversation("stress")
    print("conv", conv, flush=True)
    answer = history.start_assistant_message(conv, model="m")
    i = 0
    while True:
        i += 1
        mid = history.add_message(conv, "user", f"message {i} " + "x" * (i % 300))
        print("msg", mid, flush=True)
        history.append_partial(answer, f"t{i} ")
        print("partial", answer, i, flush=True)
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_writes_loses_nothing_committed(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    committed: list[int] = []
    answer, pieces = 0, 0
    try:
        for line in child.stdout:
            kind, *values = line.split()
            if kind == "msg":
                committed.append(int(values[0]))
            elif kind == "partial":
                answer, pieces = int(values[0]), int(values[1])
            if len(committed) >= 300:
                break
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    with ChatHistory(db) as history:
        assert history.integrity_check() == "ok"
        assert history.interrupted_on_open == 1
        stored = {m.id: m for m in history.messages(1)}
        missing = [mid for mid in committed if mid not in stored]
        assert not missing, f"committed but lost: {missing}"
        partial = stored[answer]
        assert partial.status == "interrupted"
        assert partial.content.startswith("t1 t2 ")
        assert len(partial.content.split()) >= pieces
