"""ChatSession: the chat's turns, what the model reads and the history writes, without Qt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.core.conversation import ChatSession, saved_note, title_for
from desktop.core.history import ChatHistory


@pytest.fixture
def history(tmp_path: Path) -> Iterator[ChatHistory]:
    with ChatHistory(tmp_path / "history.sqlite3") as opened:
        yield opened


def test_a_question_and_its_answer_are_stored_as_they_happen(history: ChatHistory) -> None:
    now = [0.0]
    session = ChatSession(history, checkpoint_s=1.0, clock=lambda: now[0])
    messages, created = session.ask("Why is the sky blue?", "Be brief.")
    assert created and session.conversation_id is not None
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Why is the sky blue?"},
    ]
    answer = session.begin_answer("chat-1", model="tiny.gguf", settings={"sampling": {}})
    assert not session.add_token("another-chat", "x")
    assert session.add_token("chat-1", "Rayleigh ")
    answer.joined()
    now[0] = 2.0
    session.checkpoint()  # due: the partial answer reaches the history
    stored = history.messages(session.conversation_id)
    assert [m.role for m in stored] == ["system", "user", "assistant"]
    assert stored[-1].status == "streaming" and stored[-1].content == "Rayleigh "
    session.add_token("chat-1", "scattering.")
    assert session.finish({"generated_tokens": 2}) == "Rayleigh scattering."
    assert session.answer is None
    last = history.messages(session.conversation_id)[-1]
    assert last.status == "complete" and last.stats == {"generated_tokens": 2}

    follow_up, created = session.ask("And at sunset?", "Be brief.")
    assert not created  # the same conversation; the system prompt is not stored twice
    assert [m["role"] for m in follow_up] == ["system", "user", "assistant", "user"]
    assert [m.role for m in history.messages(session.conversation_id)].count("system") == 1


def test_an_unanswered_question_is_left_out_of_the_context(history: ChatHistory) -> None:
    session = ChatSession(history)
    session.ask("First?", "")
    session.begin_answer("a", model="m", settings={})
    assert session.interrupt("the worker crashed") == ""
    messages, _ = session.ask("Second?", "")
    assert messages == [{"role": "user", "content": "Second?"}]
    stored = history.messages(session.conversation_id or 0)
    assert stored[1].status == "interrupted"
    assert saved_note(stored[1]) == "Interrupted: the worker crashed"


def test_open_continues_a_saved_conversation_and_delete_forgets_it(
    history: ChatHistory,
) -> None:
    first = ChatSession(history)
    first.ask("Hello there", "You are terse.")
    first.begin_answer("a", model="m", settings={})
    first.add_token("a", "Hi.")
    first.finish({})
    saved = first.conversation_id
    assert saved is not None

    again = ChatSession(history)
    shown = again.open(saved)
    assert [m.role for m in shown] == ["user", "assistant"]
    assert again.stored_system == "You are terse."
    assert again.context("You are terse.", "More?")[1:3] == [
        {"role": "user", "content": "Hello there"},
        {"role": "assistant", "content": "Hi."},
    ]
    assert again.delete(saved) and again.conversation_id is None and not again.turns
    assert history.list_conversations() == []


def test_titles_are_one_line_cut_at_a_word() -> None:
    assert title_for("  two\nlines ") == "two lines"
    assert title_for("") == "New chat"
    assert title_for("word " * 20, limit=12) == "word word…"
