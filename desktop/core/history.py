"""Chat history in SQLite: conversations and their messages, safe against crashes.

Every change is one transaction, committed before the call returns, in WAL mode:
if the app (or the machine's memory killer) ends the process mid-answer, what was
committed is still there and the file stays consistent. An answer being streamed
has status ``"streaming"``; when a database is opened, any message still
streaming was cut off by a crash and becomes ``"interrupted"``, keeping its text.

The UI appends the streamed text with :meth:`ChatHistory.append_partial` (or
replaces it with :meth:`ChatHistory.update_partial`); each call rewrites the row,
so a caller with a fast model should batch tokens, e.g. a few times a second.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, cast

import platformdirs

APP_NAME = "llm-workbench"
SCHEMA_VERSION = 2  # 2: conversations.sampling (the chat's sampler settings)

Role = Literal["system", "user", "assistant"]
Status = Literal["complete", "interrupted", "streaming"]
_ROLES = ("system", "user", "assistant")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    created REAL NOT NULL,
    sampling TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content TEXT NOT NULL,
    model TEXT,
    settings TEXT NOT NULL DEFAULT '{}',
    stats TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL CHECK (status IN ('complete', 'interrupted', 'streaming')),
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages (conversation_id, id);
"""


def default_history_path() -> Path:
    """``history.sqlite3`` in the user's data folder (platformdirs)."""
    return platformdirs.user_data_path(APP_NAME, appauthor=False) / "history.sqlite3"


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    created: float  # seconds since the epoch
    sampling: dict[str, Any] = field(default_factory=dict)  # the chat's sampler settings


@dataclass(frozen=True)
class ChatMessage:
    id: int
    conversation_id: int
    role: Role
    content: str
    model: str | None  # the model file's name or path that wrote an assistant message
    settings: dict[str, Any]  # load and sampling settings used
    stats: dict[str, Any]  # tokens, rates, stop reason; why it was interrupted
    status: Status
    created: float  # seconds since the epoch
    updated: float


class HistoryError(ValueError):
    """A call that names a message or conversation that does not exist, or a bad value."""


class ChatHistory:
    """One SQLite file of conversations; use from one thread (the GUI thread)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_history_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: each change below opens and commits its own transaction.
        self._conn = sqlite3.connect(self.path, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise HistoryError(f"{self.path} cannot use write-ahead logging (mode {mode}).")
        # NORMAL in WAL mode loses nothing when the process dies, only on power loss.
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=5000")
        with self._transaction():
            self._create_schema()
            self.interrupted_on_open = self._conn.execute(
                "UPDATE messages SET status = 'interrupted', updated = ?"
                " WHERE status = 'streaming'",
                (time.time(),),
            ).rowcount

    def _create_schema(self) -> None:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                self._conn.execute(statement)
        # A file from schema 1 has conversations without the sampling column: add it.
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(conversations)")}
        if "sampling" not in columns:
            self._conn.execute(
                "ALTER TABLE conversations ADD COLUMN sampling TEXT NOT NULL DEFAULT '{}'"
            )
        self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # ------------------------------------------------------------------ conversations

    def create_conversation(self, title: str = "New chat") -> int:
        with self._transaction():
            cursor = self._conn.execute(
                "INSERT INTO conversations (title, created) VALUES (?, ?)", (title, time.time())
            )
        return _rowid(cursor)

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        with self._transaction():
            cursor = self._conn.execute(
                "UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id)
            )
        _require(cursor, "conversation", conversation_id)

    def delete_conversation(self, conversation_id: int) -> None:
        with self._transaction():
            cursor = self._conn.execute(
                "DELETE FROM conversations WHERE id = ?", (conversation_id,)
            )
        _require(cursor, "conversation", conversation_id)

    def list_conversations(self) -> list[Conversation]:
        """Newest first."""
        rows = self._conn.execute(
            "SELECT id, title, created, sampling FROM conversations"
            " ORDER BY created DESC, id DESC"
        ).fetchall()
        return [_conversation(row) for row in rows]

    def conversation(self, conversation_id: int) -> Conversation:
        row = self._conn.execute(
            "SELECT id, title, created, sampling FROM conversations WHERE id = ?",
            (conversation_id,),
        ).fetchone()
        if row is None:
            raise HistoryError(f"there is no conversation {conversation_id}")
        return _conversation(row)

    def search_conversations(self, query: str) -> list[Conversation]:
        """Conversations whose title or any message contains ``query`` (any case), newest
        first; every conversation for an empty query."""
        words = query.split()
        if not words:
            return self.list_conversations()
        # Every word must appear, in the title or in some message (LIKE is case-blind for
        # ASCII; % and _ in the query are matched literally).
        clauses = []
        params: list[str] = []
        for word in words:
            escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = f"%{escaped}%"
            clauses.append(
                "(c.title LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM messages m"
                " WHERE m.conversation_id = c.id AND m.role != 'system'"
                " AND m.content LIKE ? ESCAPE '\\'))"
            )
            params += [pattern, pattern]
        rows = self._conn.execute(
            "SELECT c.id, c.title, c.created, c.sampling FROM conversations c WHERE "
            + " AND ".join(clauses)
            + " ORDER BY c.created DESC, c.id DESC",
            params,
        ).fetchall()
        return [_conversation(row) for row in rows]

    def set_conversation_sampling(self, conversation_id: int, sampling: dict[str, Any]) -> None:
        """Store the chat's sampler settings (they come back when the chat is opened)."""
        with self._transaction():
            cursor = self._conn.execute(
                "UPDATE conversations SET sampling = ? WHERE id = ?",
                (json.dumps(sampling), conversation_id),
            )
        _require(cursor, "conversation", conversation_id)

    # ------------------------------------------------------------------ messages

    def add_message(
        self,
        conversation_id: int,
        role: Role,
        content: str,
        *,
        model: str | None = None,
        settings: dict[str, Any] | None = None,
        stats: dict[str, Any] | None = None,
        status: Status = "complete",
    ) -> int:
        """Store a whole message; return its id."""
        if role not in _ROLES:
            raise HistoryError(f"role must be system, user or assistant, not {role!r}")
        now = time.time()
        try:
            with self._transaction():
                cursor = self._conn.execute(
                    "INSERT INTO messages (conversation_id, role, content, model, settings, stats,"
                    " status, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        conversation_id,
                        role,
                        content,
                        model,
                        json.dumps(settings or {}),
                        json.dumps(stats or {}),
                        status,
                        now,
                        now,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise HistoryError(f"there is no conversation {conversation_id} ({exc})") from None
        return _rowid(cursor)

    def start_assistant_message(
        self,
        conversation_id: int,
        *,
        model: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> int:
        """An empty assistant message with status "streaming", to be filled as tokens come."""
        return self.add_message(
            conversation_id, "assistant", "", model=model, settings=settings, status="streaming"
        )

    def append_partial(self, message_id: int, text: str) -> None:
        """Add streamed text to a message that is still streaming."""
        with self._transaction():
            cursor = self._conn.execute(
                "UPDATE messages SET content = content || ?, updated = ?"
                " WHERE id = ? AND status = 'streaming'",
                (text, time.time(), message_id),
            )
        _require(cursor, "streaming message", message_id)

    def update_partial(self, message_id: int, content: str) -> None:
        """Replace the text of a message that is still streaming."""
        with self._transaction():
            cursor = self._conn.execute(
                "UPDATE messages SET content = ?, updated = ?"
                " WHERE id = ? AND status = 'streaming'",
                (content, time.time(), message_id),
            )
        _require(cursor, "streaming message", message_id)

    def finish(
        self, message_id: int, stats: dict[str, Any] | None = None, content: str | None = None
    ) -> None:
        """The answer is complete; store its stats (and its final text, if given)."""
        self._close_message(message_id, "complete", stats or {}, content)

    def mark_interrupted(
        self, message_id: int, reason: str | None = None, content: str | None = None
    ) -> None:
        """The answer was cut off (stop, crash); keep what was said, with the reason."""
        stats = {"interrupted": reason} if reason else {}
        self._close_message(message_id, "interrupted", stats, content)

    def _close_message(
        self, message_id: int, status: Status, stats: dict[str, Any], content: str | None
    ) -> None:
        with self._transaction():
            cursor = self._conn.execute(
                "UPDATE messages SET status = ?, stats = ?, content = COALESCE(?, content),"
                " updated = ? WHERE id = ?",
                (status, json.dumps(stats), content, time.time(), message_id),
            )
        _require(cursor, "message", message_id)

    def delete_messages_from(self, conversation_id: int, message_id: int) -> int:
        """Delete the message ``message_id`` and every later one of the conversation (edit and
        resend, regenerate); return how many were deleted."""
        with self._transaction():
            cursor = self._conn.execute(
                "DELETE FROM messages WHERE conversation_id = ? AND id >= ?",
                (conversation_id, message_id),
            )
        return cursor.rowcount

    def messages(self, conversation_id: int) -> list[ChatMessage]:
        """The conversation's messages in the order they were added."""
        rows = self._conn.execute(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,)
        ).fetchall()
        return [_message(row) for row in rows]

    def message(self, message_id: int) -> ChatMessage:
        row = self._conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise HistoryError(f"there is no message {message_id}")
        return _message(row)

    # ------------------------------------------------------------------ lifecycle

    def integrity_check(self) -> str:
        """SQLite's own check of the file: "ok" when sound."""
        return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ChatHistory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on an exception."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def _rowid(cursor: sqlite3.Cursor) -> int:
    rowid = cursor.lastrowid
    assert rowid is not None  # an INSERT always sets it
    return rowid


def _require(cursor: sqlite3.Cursor, what: str, key: int) -> None:
    if cursor.rowcount == 0:
        raise HistoryError(f"there is no {what} {key}")


def _conversation(row: sqlite3.Row) -> Conversation:
    try:
        sampling = json.loads(row["sampling"])
    except ValueError:
        sampling = {}
    return Conversation(
        row["id"],
        row["title"],
        row["created"],
        sampling if isinstance(sampling, dict) else {},
    )


def _message(row: sqlite3.Row) -> ChatMessage:
    return ChatMessage(
        id=row["id"],
        conversation_id=row["conversation_id"],
        role=cast(Role, row["role"]),
        content=row["content"],
        model=row["model"],
        settings=json.loads(row["settings"]),
        stats=json.loads(row["stats"]),
        status=cast(Status, row["status"]),
        created=row["created"],
        updated=row["updated"],
    )
