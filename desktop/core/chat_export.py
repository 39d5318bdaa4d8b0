"""A saved chat as a file a person can keep or share: Markdown to read, JSON for programs.

Both carry every message of the conversation (the system prompts included, in the order they
were set), the model that wrote each answer, its sampler settings and its stats; an answer that
was cut off says so. Pure Python: the chat panel picks the file, this writes it.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from desktop.core.conversation import saved_note, stats_line
from desktop.core.history import ChatHistory, ChatMessage, Conversation

__all__ = ["ExportFormat", "export_chat", "format_for", "to_json", "to_markdown"]

ExportFormat = Literal["markdown", "json"]
JSON_FORMAT_VERSION = 1


def format_for(path: Path) -> ExportFormat:
    """The format a file name asks for: ``.json`` is JSON, anything else Markdown."""
    return "json" if path.suffix.lower() == ".json" else "markdown"


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def to_markdown(conversation: Conversation, messages: list[ChatMessage]) -> str:
    """The chat as Markdown: a heading, then each message under who said it."""
    when = datetime.fromtimestamp(conversation.created)
    lines = [f"# {conversation.title}", "", f"*Chat started {when:%d %b %Y, %H:%M}.*", ""]
    for message in messages:
        if message.role == "system":
            lines += ["## System prompt", ""]
            lines += [f"> {line}" if line else ">" for line in message.content.splitlines()]
            if not message.content:
                lines.append("> (none)")
            lines.append("")
            continue
        if message.role == "user":
            lines += ["## You", "", message.content, ""]
            continue
        name = Path(message.model).stem if message.model else "Model"
        lines += [f"## {name}", "", message.content or "*(no answer)*", ""]
        notes = [bit for bit in (saved_note(message), stats_line(message.stats)) if bit]
        sampling = message.settings.get("sampling")
        if isinstance(sampling, dict) and sampling:
            notes.append(
                "sampling: " + ", ".join(f"{key} {value}" for key, value in sampling.items())
            )
        if notes:
            lines += [f"*{' · '.join(notes)}*", ""]
    return "\n".join(lines).rstrip() + "\n"


def to_json(conversation: Conversation, messages: list[ChatMessage]) -> str:
    """The chat as JSON: the conversation and every message with all it was stored with."""
    data: dict[str, Any] = {
        "format": "llm-workbench-chat",
        "version": JSON_FORMAT_VERSION,
        "title": conversation.title,
        "created": _iso(conversation.created),
        "sampling": conversation.sampling,
        "messages": [
            {
                "role": message.role,
                "content": message.content,
                "model": message.model,
                "status": message.status,
                "created": _iso(message.created),
                "settings": message.settings,
                "stats": message.stats,
            }
            for message in messages
        ],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def export_chat(
    history: ChatHistory,
    conversation_id: int,
    path: Path,
    fmt: ExportFormat | None = None,
) -> ExportFormat:
    """Write the conversation to ``path`` (atomically); return the format written.

    Raises OSError when the file cannot be written, HistoryError for an unknown chat.
    """
    conversation = history.conversation(conversation_id)
    messages = history.messages(conversation_id)
    fmt = fmt or format_for(path)
    text = to_json(conversation, messages) if fmt == "json" else to_markdown(
        conversation, messages
    )
    path = Path(path)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise
    return fmt
