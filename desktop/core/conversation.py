"""The chat being held, without Qt: its turns, what the model reads, every history write.

:class:`ChatSession` is the model behind the Chat tab (:class:`desktop.ui.chat_panel.ChatPanel`
draws it and drives it from the engine client's signals). It owns the facts of one
conversation:

* the turns so far and the system prompt last stored, so :meth:`ChatSession.context` can say
  what the model reads (a question without an answer is left out: chat templates need the
  roles to alternate);
* the answer being streamed (:class:`Answer`), its text joined from the tokens;
* every write to :class:`~desktop.core.history.ChatHistory`: the question in one
  transaction, the answer when it starts (with the model and its settings), a checkpoint of
  a long answer every few seconds, and its end (complete with its stats, or interrupted).

Pure Python (an import-linter contract): the widgets and the engine protocol stay outside.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from desktop.core.history import ChatHistory, ChatMessage

__all__ = [
    "DEFAULT_CHECKPOINT_S",
    "Answer",
    "ChatSession",
    "Turn",
    "fewer_gpu_layers",
    "saved_note",
    "stats_line",
    "title_for",
]

#: How often a streaming answer is written to the history (seconds).
DEFAULT_CHECKPOINT_S = 3.0


def fewer_gpu_layers(layers: int) -> int:
    """The layer count to offer after running out of memory: about a quarter fewer."""
    return max(0, layers - max(2, round(layers / 4)))


def stats_line(stats: dict[str, Any]) -> str:
    """ "38.2 tokens/s · first token after 0.41 s · 128 tokens" from an answer's stats."""
    bits = []
    rate = stats.get("gen_tokens_per_s")
    if isinstance(rate, int | float) and rate > 0 and math.isfinite(rate):
        bits.append(f"{rate:.1f} tokens/s")
    ttft = stats.get("ttft_s")
    if isinstance(ttft, int | float) and math.isfinite(ttft):
        bits.append(f"first token after {ttft:.2f} s")
    generated = stats.get("generated_tokens")
    if isinstance(generated, int):
        bits.append(f"{generated} token" + ("" if generated == 1 else "s"))
    reason = stats.get("stop_reason")
    if reason == "user":
        bits.append("stopped by you")
    elif reason == "length":
        bits.append("reached the length limit")
    return " · ".join(bits)


def title_for(text: str, limit: int = 48) -> str:
    """A conversation title from its first question: one line, cut at a word."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line or "New chat"
    cut = line[:limit].rsplit(" ", 1)[0]
    return (cut or line[:limit]) + "…"


def saved_note(message: ChatMessage) -> str:
    """What to write under a stored answer that did not complete ("" when it did)."""
    if message.status == "complete":
        return ""
    reason = message.stats.get("interrupted") if message.status == "interrupted" else ""
    return "Interrupted" + (f": {reason}" if reason else ": the answer was cut off.")


@dataclass(frozen=True)
class Turn:
    role: Literal["user", "assistant"]
    content: str
    message_id: int | None = None  # in the history (edit and regenerate delete from it)


@dataclass
class Answer:
    """The answer being streamed."""

    chat_id: str  # the engine's request id: its tokens carry it
    message_id: int  # in the history
    parts: list[str] = field(default_factory=list)
    text: str = ""  # what the transcript shows (parts joined at the last render)
    checkpointed: float = field(default_factory=time.monotonic)

    def joined(self) -> str:
        if self.parts:
            self.text += "".join(self.parts)
            self.parts.clear()
        return self.text


class ChatSession:
    """One conversation with the model, stored as it happens; see the module docstring."""

    def __init__(
        self,
        history: ChatHistory,
        *,
        checkpoint_s: float = DEFAULT_CHECKPOINT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.history = history
        self.checkpoint_s = checkpoint_s
        self._clock = clock
        self.conversation_id: int | None = None  # None: a new chat not saved yet
        self.turns: list[Turn] = []
        self.stored_system = ""  # the system prompt last saved in this conversation
        self.answer: Answer | None = None

    # ------------------------------------------------------------------ conversations

    def clear(self) -> None:
        """A new, empty chat (saved once its first question is asked)."""
        self.conversation_id = None
        self.turns = []
        self.stored_system = ""

    def open(self, conversation_id: int) -> list[ChatMessage]:
        """Continue a saved conversation; return its messages to show (not the system's)."""
        self.clear()
        self.conversation_id = conversation_id
        shown: list[ChatMessage] = []
        for message in self.history.messages(conversation_id):
            if message.role == "system":
                self.stored_system = message.content
                continue
            self.turns.append(
                Turn(
                    "user" if message.role == "user" else "assistant",
                    message.content,
                    message.id,
                )
            )
            shown.append(message)
        return shown

    def delete(self, conversation_id: int) -> bool:
        """Delete a saved conversation; True when it was this one (now a new chat)."""
        self.history.delete_conversation(conversation_id)
        if conversation_id != self.conversation_id:
            return False
        self.clear()
        return True

    # ------------------------------------------------------------------ one exchange

    def ask(self, question: str, system: str) -> tuple[list[dict[str, str]], bool]:
        """Store the question (starting the conversation if new); return what the model
        reads and whether a conversation was created."""
        history = self.history
        created = self.conversation_id is None
        if self.conversation_id is None:
            self.conversation_id = history.create_conversation(title_for(question))
        if system != self.stored_system:
            history.add_message(self.conversation_id, "system", system)
            self.stored_system = system
        message_id = history.add_message(self.conversation_id, "user", question)
        messages = self.context(system, question)
        self.turns.append(Turn("user", question, message_id))
        return messages, created

    def save_sampling(self, sampling: dict[str, Any]) -> None:
        """Store the chat's sampler settings with it (nothing to do before it is saved)."""
        if self.conversation_id is not None:
            self.history.set_conversation_sampling(self.conversation_id, sampling)

    # ------------------------------------------------------------------ edit, regenerate

    @property
    def can_regenerate(self) -> bool:
        """True when the chat ends with an answer (complete or cut off) that can be rewritten."""
        turns = self.turns
        return (
            self.answer is None
            and len(turns) >= 2
            and turns[-1].role == "assistant"
            and turns[-1].message_id is not None
            and turns[-2].role == "user"
        )

    def regenerate(self, system: str) -> list[dict[str, str]]:
        """Drop the last answer (from the history too); return what the model reads to
        answer the last question again (then :meth:`begin_answer` as for a new question)."""
        if not self.can_regenerate:
            raise ValueError("there is no answer to regenerate")
        assert self.conversation_id is not None
        answer = self.turns[-1]
        assert answer.message_id is not None
        self.history.delete_messages_from(self.conversation_id, answer.message_id)
        question = self.turns[-2]
        self.turns = self.turns[:-2]
        self._reload_stored_system()
        if system != self.stored_system:
            self.history.add_message(self.conversation_id, "system", system)
            self.stored_system = system
        messages = self.context(system, question.content)
        self.turns.append(question)
        return messages

    def truncate(self, turn_index: int) -> None:
        """Forget the turn ``turn_index`` and every later one, in the history too (editing a
        question drops what followed it); the edited question is then asked anew."""
        if self.answer is not None:
            raise ValueError("an answer is being written")
        if not 0 <= turn_index < len(self.turns):
            raise ValueError(f"there is no turn {turn_index}")
        first = self.turns[turn_index]
        if self.conversation_id is not None and first.message_id is not None:
            self.history.delete_messages_from(self.conversation_id, first.message_id)
        self.turns = self.turns[:turn_index]
        self._reload_stored_system()

    def _reload_stored_system(self) -> None:
        """The system prompt the history now ends with (after messages were deleted)."""
        self.stored_system = ""
        if self.conversation_id is None:
            return
        for message in self.history.messages(self.conversation_id):
            if message.role == "system":
                self.stored_system = message.content

    def begin_answer(self, chat_id: str, *, model: str, settings: dict[str, Any]) -> Answer:
        """The answer to the last question starts (stored empty, "streaming")."""
        assert self.conversation_id is not None, "ask() first"
        message_id = self.history.start_assistant_message(
            self.conversation_id, model=model, settings=settings
        )
        self.answer = Answer(chat_id, message_id, checkpointed=self._clock())
        return self.answer

    def add_token(self, chat_id: str, text: str) -> bool:
        """A streamed piece of the answer; False when it belongs to no answer of this chat."""
        answer = self.answer
        if answer is None or chat_id != answer.chat_id:
            return False
        answer.parts.append(text)
        return True

    def checkpoint(self) -> None:
        """Write the answer so far to the history, at most every ``checkpoint_s``."""
        answer = self.answer
        if answer is None:
            return
        now = self._clock()
        if now - answer.checkpointed >= self.checkpoint_s:
            answer.checkpointed = now
            self.history.update_partial(answer.message_id, answer.text)

    def finish(self, stats: dict[str, Any]) -> str:
        """The answer is complete: store it with its stats; return its text."""
        answer = self.answer
        assert answer is not None
        text = answer.joined()
        self.history.finish(answer.message_id, stats=stats, content=text)
        self._close(text)
        return text

    def interrupt(self, reason: str) -> str:
        """The answer was cut off: keep what it said, marked interrupted; return its text."""
        answer = self.answer
        assert answer is not None
        text = answer.joined()
        self.history.mark_interrupted(answer.message_id, reason, content=text)
        self._close(text)
        return text

    def _close(self, text: str) -> None:
        answer = self.answer
        self.turns.append(Turn("assistant", text, answer.message_id if answer else None))
        self.answer = None

    # ------------------------------------------------------------------ context

    def context(self, system: str, question: str) -> list[dict[str, str]]:
        """What the model reads: the system prompt, the answered turns, the new question.

        A question without an answer (a crash before the first word) is left out, so the
        roles keep alternating as chat templates require.
        """
        messages: list[dict[str, str]] = []
        if system:
            messages.append({"role": "system", "content": system})
        turns = self.turns
        for i, turn in enumerate(turns):
            if turn.role != "user":
                continue
            reply = turns[i + 1] if i + 1 < len(turns) else None
            if reply is None or reply.role != "assistant" or not reply.content.strip():
                continue
            messages.append({"role": "user", "content": turn.content})
            messages.append({"role": "assistant", "content": reply.content})
        messages.append({"role": "user", "content": question})
        return messages
