"""The Chat tab: talk to the loaded model, see each answer stream in as Markdown, keep history.

:class:`ChatPanel` is handed the :class:`~desktop.services.engine_client.EngineClient` and a
:class:`~desktop.core.history.ChatHistory` and follows the client's signals:

* the answer streams into a :class:`Transcript` (one QTextBrowser for the whole chat); only
  the answer being written is re-rendered from Markdown, at most about 20 times a second and
  less often when an answer is long, so a fast model never floods the event loop;
* when ``done`` arrives the answer shows its speed, time to first token and token count;
* Ctrl+Enter sends, Esc stops, Ctrl+N starts a new chat (while focus is in the panel);
* every message is saved as it happens: the question in one transaction, the answer when it
  starts (with the model and its settings) and when it ends (with its stats); a long answer
  is also checkpointed every few seconds, so even a crash of the app keeps most of it;
* when the worker crashes, runs out of memory or cannot stop in time, the chat says so in
  plain words with the fix as a button ("Reload with 20 GPU layers"); the conversation
  stays, and the partial answer is kept and marked interrupted in the history.

Until a model is loaded the input is disabled and the tab says "Load a model to start
chatting"; past conversations can still be read.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from PySide6.QtCore import QEvent, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QDesktopServices,
    QFont,
    QKeySequence,
    QPalette,
    QResizeEvent,
    QShortcut,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextDocumentFragment,
    QTextFormat,
    QTextFrame,
    QTextFrameFormat,
)
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.history import ChatHistory, ChatMessage
from desktop.core.sampling import Sampling
from desktop.engine import protocol as p
from desktop.services.signals import emit
from desktop.ui import theme
from desktop.ui.icons import GlyphLabel, glyph_icon
from desktop.ui.widgets import HintLabel

if TYPE_CHECKING:
    from desktop.services.engine_client import EngineClient

__all__ = [
    "ChatPanel",
    "Transcript",
    "fewer_gpu_layers",
    "stats_line",
]

#: Fastest re-render of a streaming answer (20 Hz) and the slowest (for very long answers).
MIN_RENDER_INTERVAL_MS = 50
MAX_RENDER_INTERVAL_MS = 400
#: A render may take at most this share of the time between renders.
RENDER_BUDGET = 0.25
#: How often a streaming answer is written to the history (seconds).
DEFAULT_CHECKPOINT_S = 3.0
#: Engine states in which a model is loaded.
MODEL_STATES = ("ready", "generating", "stopping")
_STATUS = {
    "stopped": "",  # the model label already says "No model loaded"
    "idle": "",
    "starting": "Starting the model worker…",
    "loading": "Loading the model…",
    "ready": "Ready",
    "generating": "Answering…",
    "stopping": "Stopping…",
    "unloading": "Unloading the model…",
}
# Worker failures where fewer GPU layers is the fix (memory), and where reloading can't help.
_MEMORY_KINDS = frozenset({"killed", "aborted", "out_of_memory"})
_NO_RELOAD_KINDS = frozenset(
    {"illegal_instruction", "failed_to_start", "not_loaded", "bad_template", "busy", "protocol"}
)
#: The error bar's short sentence per failure kind (the chat has the whole explanation).
_HEADLINES = {
    "killed": "The model ran out of memory and was stopped.",
    "out_of_memory": "The model ran out of memory.",
    "aborted": "llama.cpp aborted the model.",
    "segfault": "The model worker crashed.",
    "bus_error": "The model worker crashed reading the model file.",
    "signal": "The model worker was ended.",
    "exited": "The model worker stopped.",
    "illegal_instruction": "This llama.cpp build does not fit your processor.",
    "stop_timeout": "The model could not stop in time and was ended.",
}
_MARKDOWN = (
    QTextDocument.MarkdownFeature.MarkdownDialectGitHub
    | QTextDocument.MarkdownFeature.MarkdownNoHTML  # a model's "<b>" is text, not markup
)


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


def _title_for(text: str, limit: int = 48) -> str:
    """A conversation title from its first question: one line, cut at a word."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line or "New chat"
    cut = line[:limit].rsplit(" ", 1)[0]
    return (cut or line[:limit]) + "…"


# --------------------------------------------------------------------------- transcript


@dataclass
class _Entry:
    """One thing the transcript shows; kept so the whole chat can be redrawn (theme change)."""

    kind: Literal["user", "assistant", "error"]
    text: str = ""
    name: str = ""  # who speaks: "You", the model's name
    stats: str = ""  # the answer's stats line
    note: str = ""  # "Interrupted: ..."
    streaming: bool = False


class Transcript(QTextBrowser):
    """The conversation as one read-only document: a header, then each message in a frame.

    Messages are only ever added at the end, and only the answer being streamed is
    rewritten (its own frame), so a render costs the length of that answer, not the chat.
    """

    MAX_TEXT_WIDTH = 820  # px: lines longer than this are hard to read

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Conversation")
        self.setOpenLinks(False)  # a click must never navigate away from the chat
        self.anchorClicked.connect(self._open_link)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.document().setDocumentMargin(18)
        self._entries: list[_Entry] = []
        self._answer_frame: QTextFrame | None = None
        self._scratch = QTextDocument(self)  # where Markdown is parsed before it goes in
        self._palette_key: tuple[int, ...] = self._current_palette_key()
        self.last_render_s = 0.0
        # Follow the end of the chat while it grows, unless the person scrolled up to read.
        self._follow = True
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._on_scrolled)
        bar.rangeChanged.connect(self._on_range_changed)

    # ------------------------------------------------------------------ content

    @property
    def entries(self) -> list[_Entry]:
        return list(self._entries)

    def clear_messages(self) -> None:
        self._entries.clear()
        self._answer_frame = None
        self.document().clear()

    def add_user(self, text: str) -> None:
        self._entries.append(_Entry("user", text, "You"))
        self._follow = True  # a new question: show it, and the answer as it comes
        self._draw_user(self._entries[-1])
        self._scroll_to_end()

    def begin_answer(self, name: str) -> None:
        """Start the model's answer: its name, then "…" until the first words come."""
        self._entries.append(_Entry("assistant", "", name, streaming=True))
        self._draw_answer_start(self._entries[-1])
        self._scroll_to_end()

    def set_answer_text(self, markdown: str) -> float:
        """Show the streaming answer so far; return the seconds the render took."""
        entry = self._streaming()
        if entry is None or self._answer_frame is None:
            return 0.0
        started = time.perf_counter()
        entry.text = markdown
        self._fill_frame(self._answer_frame, markdown)
        self.last_render_s = time.perf_counter() - started
        return self.last_render_s

    def end_answer(self, stats: str = "", note: str = "") -> None:
        """The answer is complete (or cut off): its stats or note go under it."""
        entry = self._streaming()
        if entry is None:
            return
        if self._answer_frame is not None:
            self._fill_frame(self._answer_frame, entry.text)
        entry.streaming = False
        entry.stats = stats
        entry.note = note
        self._answer_frame = None
        self._draw_answer_end(entry)

    def add_answer(self, name: str, text: str, stats: str = "", note: str = "") -> None:
        """A whole answer at once (from the history)."""
        self.begin_answer(name)
        self.set_answer_text(text)
        self.end_answer(stats, note)

    def add_error(self, message: str, suggestion: str = "") -> None:
        self._entries.append(_Entry("error", message, note=suggestion))
        self._draw_error(self._entries[-1])
        self._scroll_to_end()

    def redraw(self) -> None:
        """Draw every entry again (the colours follow a new palette)."""
        entries = self._entries
        self.document().clear()
        self._answer_frame = None
        for entry in entries:
            if entry.kind == "user":
                self._draw_user(entry)
            elif entry.kind == "error":
                self._draw_error(entry)
            else:
                self._draw_answer_start(entry)
                if self._answer_frame is not None:
                    self._fill_frame(self._answer_frame, entry.text)
                if not entry.streaming:
                    self._answer_frame = None
                    self._draw_answer_end(entry)

    # ------------------------------------------------------------------ drawing

    def _streaming(self) -> _Entry | None:
        entry = self._entries[-1] if self._entries else None
        return entry if entry is not None and entry.streaming else None

    def _colors(self) -> dict[str, QColor]:
        pal = QApplication.palette()
        base = pal.color(QPalette.ColorRole.Base)
        highlight = pal.color(QPalette.ColorRole.Highlight)
        warn_bg, warn_text, warn_border = theme.banner_colors(pal, "warning")
        return {
            "text": pal.color(QPalette.ColorRole.Text),
            "faded": theme.mix(pal.color(QPalette.ColorRole.Text), base, 0.42),
            "user_bg": theme.mix(base, highlight, 0.13 if theme.is_dark(pal) else 0.09),
            "code_bg": theme.mix(base, pal.color(QPalette.ColorRole.Text), 0.07),
            "error_bg": warn_bg,
            "error_text": warn_text,
            "error_border": warn_border,
        }

    def _end_cursor(self) -> QTextCursor:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        return cursor

    def _add_block(self, text: str, char: QTextCharFormat, block: QTextBlockFormat) -> None:
        """A paragraph at the end (the empty last block is reused, so no blank lines pile up)."""
        cursor = self._end_cursor()
        if cursor.block().length() > 1 or cursor.currentFrame() is not self._root():
            cursor.insertBlock(block, char)
        else:
            cursor.setBlockFormat(block)
            cursor.setBlockCharFormat(char)
        cursor.insertText(text, char)

    def _root(self) -> QTextFrame:
        return self.document().rootFrame()

    def _header(self, name: str, color: QColor) -> None:
        char = QTextCharFormat()
        char.setFontWeight(QFont.Weight.Bold)
        char.setForeground(color)
        block = QTextBlockFormat()
        block.setTopMargin(18 if self.document().characterCount() > 1 else 0)
        block.setBottomMargin(4)
        self._add_block(name, char, block)

    def _frame(self, background: QColor | None, border: QColor | None = None) -> QTextFrame:
        fmt = QTextFrameFormat()
        fmt.setPadding(10 if background is not None else 2)
        fmt.setBorder(1 if border is not None else 0)
        if border is not None:
            fmt.setBorderBrush(QBrush(border))
            fmt.setBorderStyle(QTextFrameFormat.BorderStyle.BorderStyle_Solid)
        if background is not None:
            fmt.setBackground(background)
            # The layout drops the top margin of the block after a frame: space below it.
            fmt.setBottomMargin(12)
        return self._end_cursor().insertFrame(fmt)

    def _draw_user(self, entry: _Entry) -> None:
        colors = self._colors()
        self._header(entry.name, colors["faded"])
        frame = self._frame(colors["user_bg"])
        char = QTextCharFormat()
        char.setForeground(colors["text"])
        frame.firstCursorPosition().insertText(entry.text, char)

    def _draw_answer_start(self, entry: _Entry) -> None:
        colors = self._colors()
        self._header(entry.name, colors["faded"])
        self._answer_frame = self._frame(None)
        waiting = QTextCharFormat()
        waiting.setForeground(colors["faded"])
        self._answer_frame.firstCursorPosition().insertText("…", waiting)

    def _draw_answer_end(self, entry: _Entry) -> None:
        colors = self._colors()
        small = QTextCharFormat()
        small.setForeground(colors["faded"])
        font = QFont(self.font())
        font.setPointSizeF(max(font.pointSizeF() * 0.88, 7.0))
        small.setFont(font)
        block = QTextBlockFormat()
        block.setTopMargin(2)
        if entry.note:
            warn = QTextCharFormat(small)
            warn.setForeground(colors["error_text"])
            warn.setFontItalic(True)
            self._add_block(entry.note, warn, block)
        if entry.stats:
            self._add_block(entry.stats, small, block)

    def _draw_error(self, entry: _Entry) -> None:
        colors = self._colors()
        self._header("What happened", colors["faded"])
        frame = self._frame(colors["error_bg"], colors["error_border"])
        char = QTextCharFormat()
        char.setForeground(colors["error_text"])
        cursor = frame.firstCursorPosition()
        cursor.insertText(entry.text, char)
        if entry.note:
            bold = QTextCharFormat(char)
            bold.setFontWeight(QFont.Weight.Bold)
            cursor.insertBlock()
            cursor.insertText("What to do: ", bold)
            cursor.insertText(entry.note, char)

    def _fill_frame(self, frame: QTextFrame, markdown: str) -> None:
        """Replace the frame's contents with ``markdown`` rendered."""
        scratch = self._scratch
        scratch.setDefaultFont(self.document().defaultFont())
        scratch.setMarkdown(markdown, _MARKDOWN)
        self._tint_code_blocks(scratch)
        first = scratch.begin()
        cursor = frame.firstCursorPosition()
        cursor.setPosition(frame.lastPosition(), QTextCursor.MoveMode.KeepAnchor)
        cursor.beginEditBlock()
        cursor.removeSelectedText()
        # A pasted fragment's first block takes the format of the block it lands in: give
        # that block the fragment's own (so an answer may start with a heading or code).
        cursor.setBlockFormat(first.blockFormat())
        cursor.setBlockCharFormat(first.charFormat())
        cursor.insertFragment(QTextDocumentFragment(scratch))
        cursor.endEditBlock()

    def _tint_code_blocks(self, doc: QTextDocument) -> None:
        background = None
        block = doc.begin()
        while block.isValid():
            fmt = block.blockFormat()
            if fmt.hasProperty(QTextFormat.Property.BlockCodeFence):
                if background is None:
                    background = self._colors()["code_bg"]
                fmt.setBackground(background)
                cursor = QTextCursor(block)
                cursor.setBlockFormat(fmt)
            block = block.next()

    # ------------------------------------------------------------------ behaviour

    def _on_scrolled(self, value: int) -> None:
        self._follow = value >= self.verticalScrollBar().maximum() - 8

    def _on_range_changed(self, _minimum: int, maximum: int) -> None:
        # The document grew (its layout is lazy, so this comes after the edit).
        if self._follow:
            self.verticalScrollBar().setValue(maximum)

    def _scroll_to_end(self) -> None:
        self._follow = True
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    def loadResource(self, kind: int, name: QUrl | str) -> Any:
        # Never fetch images or files a model's Markdown names (local files included).
        return None

    def _open_link(self, url: QUrl) -> None:
        if url.scheme() in ("http", "https"):
            QDesktopServices.openUrl(url)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        # Centre a readable column on wide windows.
        side = max(0, (self.viewport().width() - self.MAX_TEXT_WIDTH) // 2)
        fmt = self._root().frameFormat()
        if fmt.leftMargin() != side:
            fmt.setLeftMargin(side)
            fmt.setRightMargin(side)
            self._root().setFrameFormat(fmt)

    def _current_palette_key(self) -> tuple[int, ...]:
        pal = QApplication.palette()
        roles = (QPalette.ColorRole.Base, QPalette.ColorRole.Text, QPalette.ColorRole.Highlight)
        return tuple(pal.color(role).rgba() for role in roles)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        # Qt 6 tells widgets of a new application palette with PaletteChange.
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            key = self._current_palette_key()
            if key != self._palette_key:
                self._palette_key = key
                self.redraw()


# --------------------------------------------------------------------------- panel parts


class _ErrorBar(QFrame):
    """What went wrong, with the fix as a button, right under the conversation."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatErrorBar")
        self.setAccessibleName("Problem")
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.fix_button = QPushButton(self)
        self.fix_button.setAccessibleName("Fix")
        self.close_button = QToolButton(self)
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Dismiss")
        self.close_button.setAccessibleName("Dismiss the problem")
        self.close_button.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 8, 8)
        layout.setSpacing(10)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.fix_button, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        self._colors_key: tuple[int, ...] = ()
        self._apply_colors()
        self.hide()

    def show_problem(self, text: str, fix: str | None) -> None:
        self.label.setText(text)
        self.setAccessibleDescription(text)
        self.fix_button.setVisible(fix is not None)
        self.fix_button.setText(fix or "")
        self.fix_button.setAccessibleName(fix or "Fix")
        self.show()

    def _apply_colors(self) -> None:
        background, text, border = theme.banner_colors(QApplication.palette(), "warning")
        key = (background.rgba(), text.rgba(), border.rgba())
        if key == self._colors_key:
            return  # the style sheet below sends a palette change of its own: no loop
        self._colors_key = key
        self.setStyleSheet(
            f"QFrame#chatErrorBar {{ background: {background.name()}; border: 1px solid "
            f"{border.name()}; border-radius: 6px; }}"
            f"QFrame#chatErrorBar QLabel {{ color: {text.name()}; background: transparent; }}"
        )

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._apply_colors()
        super().changeEvent(event)


class _EmptyChat(QWidget):
    """The centre of the tab before a model is loaded."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Load a model to start chatting")
        picture = GlyphLabel("chat", 44, self, QPalette.ColorRole.PlaceholderText)
        self.heading = QLabel("Load a model to start chatting", self)
        font = QFont(self.heading.font())
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        self.heading.setFont(font)
        self.heading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.body = HintLabel("", self)
        self.body.setWordWrap(True)
        self.body.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.body.setFixedWidth(440)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(picture, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.heading)
        layout.addWidget(self.body, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(2)
        self.set_loading(False)

    def set_loading(self, loading: bool) -> None:
        text = (
            "The model is loading; the chat opens as soon as it is ready."
            if loading
            else "Pick a model in the Models tab and press Load…. "
            "Your earlier chats are listed on the left and can be read any time."
        )
        if text != self.body.text():
            self.body.setText(text)
            # A wrapped label centred in a layout gets its one-line height: ask for all lines.
            self.body.setMinimumHeight(self.body.heightForWidth(self.body.width()))


@dataclass
class _Answer:
    """The answer being streamed."""

    chat_id: str
    message_id: int  # in the history
    parts: list[str] = field(default_factory=list)
    text: str = ""  # what the transcript shows (parts joined at the last render)
    tokens: int = 0
    checkpointed: float = field(default_factory=time.monotonic)

    def joined(self) -> str:
        if self.parts:
            self.text += "".join(self.parts)
            self.parts.clear()
        return self.text


@dataclass(frozen=True)
class _Turn:
    role: Literal["user", "assistant"]
    content: str


# --------------------------------------------------------------------------- the panel


class ChatPanel(QWidget):
    """Chat with the model the engine client has loaded; see the module docstring.

    Signals:

    * ``reloadRequested(int n_gpu_layers)`` - the fix button was pressed; the panel has
      already asked the engine client to load the model again (``retry_with``), the window
      may show it (the load panel's layer count, the Models tab's progress);
    * ``conversationChanged(int)`` - the conversation shown (its id; -1 for a new chat);
    * ``answerFinished(object)`` - a protocol ``Done`` for an answer of this panel.
    """

    reloadRequested = Signal(int)
    conversationChanged = Signal(int)
    answerFinished = Signal(object)

    def __init__(
        self,
        engine_client: EngineClient,
        history: ChatHistory,
        parent: QWidget | None = None,
        *,
        sampling: Sampling | None = None,
        checkpoint_s: float = DEFAULT_CHECKPOINT_S,
    ) -> None:
        super().__init__(parent)
        self._engine = engine_client
        self._history = history
        self.sampling = sampling or Sampling()
        self._checkpoint_s = checkpoint_s
        self._conversation: int | None = None
        self._turns: list[_Turn] = []
        self._stored_system = ""  # the system prompt last saved in this conversation
        self._answer: _Answer | None = None
        self._model_name = ""  # set by the window; else from the file name
        self._model_loaded = engine_client.state in MODEL_STATES
        self._loaded: p.Loaded | None = engine_client.model
        self._render_interval_ms = MIN_RENDER_INTERVAL_MS
        self.setAccessibleName("Chat")
        self.setMinimumSize(560, 360)

        self._build()
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.timeout.connect(self._render)

        for keys, slot in (
            ("Ctrl+Return", self.send),
            ("Ctrl+Enter", self.send),
            ("Esc", self.stop),
            (QKeySequence.StandardKey.New, self.new_chat),
        ):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)

        engine_client.stateChanged.connect(self._on_state)
        engine_client.loaded.connect(self._on_loaded)
        engine_client.unloaded.connect(self._on_unloaded)
        engine_client.token.connect(self._on_token)
        engine_client.done.connect(self._on_done)
        engine_client.error.connect(self._on_error)
        engine_client.crashed.connect(self._on_crashed)

        self.refresh_history()
        self._update_model_label()
        self._update_controls()

    # ------------------------------------------------------------------ building

    def _build(self) -> None:
        # Left: the conversations
        self.new_chat_button = QPushButton("New chat", self)
        self.new_chat_button.setIcon(glyph_icon("chat"))
        self.new_chat_button.setToolTip("Start a new chat (Ctrl+N)")
        self.new_chat_button.setAccessibleName("New chat")
        self.new_chat_button.clicked.connect(self.new_chat)
        self.history_list = QListWidget(self)
        self.history_list.setAccessibleName("Earlier chats")
        self.history_list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.history_list.customContextMenuRequested.connect(self._history_menu)
        self.history_list.itemSelectionChanged.connect(self._on_history_selected)
        self.history_list.setUniformItemSizes(True)
        self.history_list.setSpacing(1)
        history_title = HintLabel("Earlier chats", self)
        side = QWidget(self)
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 6, 0)
        side_layout.addWidget(self.new_chat_button)
        side_layout.addSpacing(4)
        side_layout.addWidget(history_title)
        side_layout.addWidget(self.history_list, 1)
        side.setMinimumWidth(170)

        # Right: who we talk to, the system prompt, the conversation, the input
        self.model_label = QLabel(self)
        bold = QFont(self.model_label.font())
        bold.setBold(True)
        self.model_label.setFont(bold)
        self.model_label.setAccessibleName("Model")
        self.status_label = HintLabel("", self)
        self.status_label.setAccessibleName("Chat status")
        self.system_toggle = QToolButton(self)
        self.system_toggle.setText("System prompt")
        self.system_toggle.setCheckable(True)
        self.system_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.system_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.system_toggle.setAutoRaise(True)
        self.system_toggle.setAccessibleName("Show the system prompt")
        self.system_toggle.toggled.connect(self._toggle_system)
        top = QHBoxLayout()
        top.addWidget(self.model_label)
        top.addWidget(self.status_label)
        top.addStretch(1)
        top.addWidget(self.system_toggle)

        self.system_prompt = QPlainTextEdit(self)
        self.system_prompt.setAccessibleName("System prompt")
        self.system_prompt.setPlaceholderText(
            "Optional: instructions the model follows in every answer of this chat, "
            'e.g. "You are a patient teacher. Answer in short paragraphs."'
        )
        self.system_prompt.setMaximumHeight(84)
        self.system_prompt.setTabChangesFocus(True)
        self.system_prompt.hide()

        self.transcript = Transcript(self)
        self.empty_state = _EmptyChat(self)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.empty_state)
        self.stack.addWidget(self.transcript)
        self.stack.setFrameShape(QFrame.Shape.StyledPanel)

        self.error_bar = _ErrorBar(self)
        self.fix_button = self.error_bar.fix_button
        self.fix_button.clicked.connect(self._on_fix)
        self._fix_layers: int | None = None

        self.input = QPlainTextEdit(self)
        self.input.setAccessibleName("Message")
        self.input.setTabChangesFocus(True)
        lines = self.input.fontMetrics().lineSpacing()
        self.input.setFixedHeight(4 * lines + 14)  # four lines; longer text scrolls
        self.input.textChanged.connect(self._update_controls)
        self.send_button = QPushButton("Send", self)
        self.send_button.setToolTip("Send (Ctrl+Enter)")
        self.send_button.setAccessibleName("Send")
        self.send_button.clicked.connect(self.send)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setToolTip("Stop the answer (Esc)")
        self.stop_button.setAccessibleName("Stop")
        self.stop_button.clicked.connect(self.stop)
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        input_row = QHBoxLayout()
        input_row.addWidget(self.input, 1)
        input_row.addLayout(buttons)
        self.keys_hint = HintLabel(
            "Ctrl+Enter sends · Esc stops the answer · Ctrl+N starts a new chat", self
        )

        main = QWidget(self)
        main_layout = QVBoxLayout(main)
        main_layout.setContentsMargins(6, 0, 0, 0)
        main_layout.setSpacing(6)
        main_layout.addLayout(top)
        main_layout.addWidget(self.system_prompt)
        main_layout.addWidget(self.stack, 1)
        main_layout.addWidget(self.error_bar)
        main_layout.addLayout(input_row)
        main_layout.addWidget(self.keys_hint)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(side)
        self.splitter.addWidget(main)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([220, 900])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 10, 0, 0)
        layout.addWidget(self.splitter)

    # ------------------------------------------------------------------ public API

    @property
    def conversation_id(self) -> int | None:
        """The conversation shown (None: a new chat not saved yet)."""
        return self._conversation

    @property
    def answering(self) -> bool:
        """True while an answer of this panel is streaming."""
        return self._answer is not None

    def set_model_name(self, name: str) -> None:
        """The name to show and save for the loaded model (default: its file name)."""
        self._model_name = name
        self._update_model_label()
        self._update_controls()

    def send(self) -> None:
        """Send the typed message (Ctrl+Enter); nothing happens unless the model is ready."""
        text = self.input.toPlainText().strip()
        if not text or self._answer is not None or self._engine.state != "ready":
            return
        history = self._history
        if self._conversation is None:
            self._conversation = history.create_conversation(_title_for(text))
            self.refresh_history()
            emit(self.conversationChanged, self._conversation)
        conversation = self._conversation
        system = self.system_prompt.toPlainText().strip()
        if system != self._stored_system:
            history.add_message(conversation, "system", system)
            self._stored_system = system
        history.add_message(conversation, "user", text)
        messages = self._context(system, text)
        self._turns.append(_Turn("user", text))
        self.transcript.add_user(text)
        chat = p.Chat.from_sampling(messages, self.sampling)
        message_id = history.start_assistant_message(
            conversation, model=self._name(), settings=self._settings_record()
        )
        self._answer = _Answer(chat.id, message_id)
        self._render_interval_ms = MIN_RENDER_INTERVAL_MS
        self.transcript.begin_answer(self._name())
        self.error_bar.hide()
        self.input.clear()
        self._show_page()
        self._engine.chat(chat)
        self._update_controls()

    def stop(self) -> None:
        """Stop the answer being written (Esc); what was written so far is kept."""
        if self._answer is not None and self._engine.state == "generating":
            self._engine.stop()

    def new_chat(self) -> None:
        """Start a new, empty chat (Ctrl+N); the system prompt stays as typed."""
        if self._answer is not None:
            return
        self._conversation = None
        self._turns = []
        self._stored_system = ""
        self.transcript.clear_messages()
        self.error_bar.hide()
        self.history_list.blockSignals(True)
        self.history_list.clearSelection()
        self.history_list.setCurrentRow(-1)
        self.history_list.blockSignals(False)
        self._show_page()
        self.input.setFocus()
        emit(self.conversationChanged, -1)

    def open_conversation(self, conversation_id: int) -> None:
        """Show a saved conversation; the next message continues it."""
        if self._answer is not None:
            return
        messages = self._history.messages(conversation_id)
        self._conversation = conversation_id
        self._turns = []
        self._stored_system = ""
        self.transcript.clear_messages()
        self.error_bar.hide()
        for message in messages:
            self._show_saved(message)
        self.system_prompt.setPlainText(self._stored_system)
        if self._stored_system and not self.system_toggle.isChecked():
            self.system_toggle.setChecked(True)
        self._select_in_list(conversation_id)
        self._show_page()
        emit(self.conversationChanged, conversation_id)

    def refresh_history(self) -> None:
        """List the saved conversations again (newest first)."""
        self._history_row_height = self.history_list.fontMetrics().height() + 12
        current = self._conversation
        self.history_list.blockSignals(True)
        self.history_list.clear()
        for conversation in self._history.list_conversations():
            when = datetime.fromtimestamp(conversation.created)
            item = QListWidgetItem(conversation.title)
            item.setData(Qt.ItemDataRole.UserRole, conversation.id)
            item.setToolTip(f"{conversation.title}\n{when:%d %b %Y, %H:%M}")
            item.setSizeHint(QSize(0, self._history_row_height))
            self.history_list.addItem(item)
        self.history_list.blockSignals(False)
        if current is not None:
            self._select_in_list(current)

    def history_titles(self) -> list[str]:
        return [self.history_list.item(i).text() for i in range(self.history_list.count())]

    # ------------------------------------------------------------------ engine

    def _on_state(self, state: str) -> None:
        if state in ("stopped", "idle") and self._answer is not None:
            # A crash or a stop timeout reports right after this; anything else ended the
            # worker without a word, and the answer must not wait forever.
            QTimer.singleShot(0, self, self._check_orphaned_answer)
        self._update_controls()

    def _on_loaded(self, loaded: p.Loaded) -> None:
        self._model_loaded = True
        self._loaded = loaded
        self.error_bar.hide()
        self._update_model_label()
        self._update_controls()

    def _on_unloaded(self) -> None:
        self._model_loaded = False
        self._loaded = None
        self._update_model_label()
        self._update_controls()

    def _on_token(self, token: p.Token) -> None:
        answer = self._answer
        if answer is None or token.id != answer.chat_id:
            return
        answer.parts.append(token.text)
        answer.tokens += 1
        if not self._render_timer.isActive():
            self._render_timer.start(self._render_interval_ms)

    def _render(self) -> None:
        answer = self._answer
        if answer is None:
            return
        seconds = self.transcript.set_answer_text(answer.joined())
        # Keep rendering a small share of the time: a long answer is redrawn less often.
        wanted = round(seconds * 1000 / RENDER_BUDGET)
        self._render_interval_ms = min(max(MIN_RENDER_INTERVAL_MS, wanted), MAX_RENDER_INTERVAL_MS)
        now = time.monotonic()
        if now - answer.checkpointed >= self._checkpoint_s:
            answer.checkpointed = now
            self._history.update_partial(answer.message_id, answer.text)

    def _on_done(self, done: p.Done) -> None:
        answer = self._answer
        if answer is None or done.id != answer.chat_id:
            return
        self._render_timer.stop()
        text = answer.joined()
        stats = {
            "prompt_tokens": done.prompt_tokens,
            "generated_tokens": done.generated_tokens,
            "ttft_s": done.ttft_s,
            "prompt_tokens_per_s": done.prompt_tokens_per_s,
            "gen_tokens_per_s": done.gen_tokens_per_s,
            "stop_reason": done.stop_reason,
        }
        self._history.finish(answer.message_id, stats=stats, content=text)
        self.transcript.set_answer_text(text)
        self.transcript.end_answer(stats_line(stats))
        self._turns.append(_Turn("assistant", text))
        self._answer = None
        self._update_controls()
        emit(self.answerFinished, done)

    def _on_error(self, error: p.Error) -> None:
        answer = self._answer
        if answer is None or error.id != answer.chat_id:
            return  # a failed load is the load panel's to show
        self._interrupt(error.message)
        self._show_problem(error.kind, error.message, "")

    def _on_crashed(self, kind: str, message: str, suggestion: str) -> None:
        had_model = self._model_loaded
        self._model_loaded = False
        if self._answer is not None:
            self._interrupt(message)
        elif not had_model:
            return  # it died while loading: the load panel says so
        self._show_problem(kind, message, suggestion)
        self._update_controls()

    def _check_orphaned_answer(self) -> None:
        if self._answer is not None and self._engine.state not in ("generating", "stopping"):
            message = "The model worker stopped before the answer was complete."
            self._interrupt(message)
            self._show_problem("exited", message, "Load the model again.")

    def _interrupt(self, reason: str) -> None:
        """End the streaming answer as interrupted, keeping what it said."""
        answer = self._answer
        if answer is None:
            return
        self._render_timer.stop()
        text = answer.joined()
        self._history.mark_interrupted(answer.message_id, reason, content=text)
        self.transcript.set_answer_text(text)
        note = "Interrupted: the answer was cut off here." if text else "Interrupted: no answer."
        self.transcript.end_answer(note=note)
        self._turns.append(_Turn("assistant", text))
        self._answer = None
        self._update_controls()

    def _show_problem(self, kind: str, message: str, suggestion: str) -> None:
        # The whole story goes into the chat; the bar under it says it short, with the fix.
        self.transcript.add_error(message, suggestion)
        fix = self._fix_for(kind)
        self._fix_layers = fix[1] if fix is not None else None
        headline = _HEADLINES.get(kind, "The answer failed.")
        if self._turns:
            headline += " Your chat is kept."
        self.error_bar.show_problem(headline, fix[0] if fix else None)
        self._show_page()

    def _fix_for(self, kind: str) -> tuple[str, int] | None:
        """The fix button for a failure: its text and the GPU layers to reload with."""
        last = self._engine.last_load
        if last is None or kind in _NO_RELOAD_KINDS:
            return None
        layers = self._loaded.n_gpu_layers if self._loaded is not None else last.n_gpu_layers
        if kind in _MEMORY_KINDS and layers > 0:
            fewer = fewer_gpu_layers(layers)
            return f"Reload with {fewer} GPU layer{'' if fewer == 1 else 's'}", fewer
        return "Reload the model", last.n_gpu_layers

    def _on_fix(self) -> None:
        layers = self._fix_layers
        if layers is None:
            return
        self.error_bar.hide()
        emit(self.reloadRequested, layers)
        self._engine.retry_with(layers)

    # ------------------------------------------------------------------ history

    def _show_saved(self, message: ChatMessage) -> None:
        if message.role == "system":
            self._stored_system = message.content
            return
        if message.role == "user":
            self._turns.append(_Turn("user", message.content))
            self.transcript.add_user(message.content)
            return
        note = ""
        if message.status != "complete":
            reason = message.stats.get("interrupted") if message.status == "interrupted" else ""
            note = "Interrupted" + (f": {reason}" if reason else ": the answer was cut off.")
        self._turns.append(_Turn("assistant", message.content))
        self.transcript.add_answer(
            Path(message.model).stem if message.model else "Model",
            message.content,
            stats_line(message.stats),
            note,
        )

    def _on_history_selected(self) -> None:
        items = self.history_list.selectedItems()
        if not items:
            return
        conversation = int(items[0].data(Qt.ItemDataRole.UserRole))
        if conversation != self._conversation:
            self.open_conversation(conversation)

    def _select_in_list(self, conversation_id: int) -> None:
        self.history_list.blockSignals(True)
        for i in range(self.history_list.count()):
            item = self.history_list.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == conversation_id:
                self.history_list.setCurrentItem(item)
                break
        self.history_list.blockSignals(False)

    def _history_menu(self, position: Any) -> None:
        item = self.history_list.itemAt(position)
        if item is None or self._answer is not None:
            return
        menu = QMenu(self)
        delete = menu.addAction("Delete this chat…")
        if menu.exec(self.history_list.viewport().mapToGlobal(position)) is not delete:
            return
        answer = QMessageBox.question(
            self,
            "Delete chat",
            f'Delete "{item.text()}" and all its messages? This cannot be undone.',
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        conversation = int(item.data(Qt.ItemDataRole.UserRole))
        self._history.delete_conversation(conversation)
        if conversation == self._conversation:
            self.new_chat()
        self.refresh_history()

    # ------------------------------------------------------------------ helpers

    def _context(self, system: str, question: str) -> list[dict[str, str]]:
        """What the model reads: the system prompt, the answered turns, the new question.

        A question without an answer (a crash before the first word) is left out, so the
        roles keep alternating as chat templates require.
        """
        messages: list[dict[str, str]] = []
        if system:
            messages.append({"role": "system", "content": system})
        turns = self._turns
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

    def _name(self) -> str:
        if self._model_name:
            return self._model_name
        last = self._engine.last_load
        return Path(last.path).stem if last is not None else "Model"

    def _settings_record(self) -> dict[str, Any]:
        """The load and sampling settings saved with each answer."""
        record: dict[str, Any] = {"sampling": dataclasses.asdict(self.sampling)}
        last = self._engine.last_load
        if last is not None:
            load = dataclasses.asdict(last)
            load.pop("id", None)
            record["load"] = load
        if self._loaded is not None:
            record["gpu_layers_used"] = self._loaded.n_gpu_layers
        return record

    def _update_model_label(self) -> None:
        loaded = self._loaded
        if not self._model_loaded or loaded is None:
            self.model_label.setText("No model loaded")
            return
        if loaded.n_gpu_layers <= 0:
            where = "on the CPU"
        else:
            layers = min(loaded.n_gpu_layers, loaded.n_layers + 1)
            where = f"{layers} of {loaded.n_layers + 1} layers on the GPU"
        self.model_label.setText(self._name())
        self.model_label.setToolTip(f"{loaded.n_ctx:,} tokens of context, {where}")

    def _update_controls(self) -> None:
        state = self._engine.state
        ready = state in MODEL_STATES and self._model_loaded
        answering = self._answer is not None
        self.input.setEnabled(ready)
        self.input.setPlaceholderText(
            f"Message {self._name()}…  (Ctrl+Enter sends)"
            if ready
            else "Load a model to start chatting"
        )
        self.send_button.setEnabled(
            state == "ready" and not answering and bool(self.input.toPlainText().strip())
        )
        self.stop_button.setEnabled(answering and state == "generating")
        self.new_chat_button.setEnabled(not answering)
        self.history_list.setEnabled(not answering)
        status = _STATUS.get(state, state)
        if state == "ready" and self._loaded is not None:
            status = f"Ready · {self._loaded.n_ctx:,} tokens of context"
        self.status_label.setText(status)
        self.empty_state.set_loading(state in ("starting", "loading"))
        if not ready and not self._model_loaded:
            self._update_model_label()
        self._show_page()

    def _show_page(self) -> None:
        """The empty state until a model is loaded, unless there is a chat to read."""
        has_chat = bool(self.transcript.entries)
        model = self._engine.state in MODEL_STATES and self._model_loaded
        self.stack.setCurrentWidget(self.transcript if has_chat or model else self.empty_state)
        self.transcript.setPlaceholderText(
            f"Ask {self._name()} anything. Ctrl+Enter sends." if model else ""
        )

    def _toggle_system(self, shown: bool) -> None:
        self.system_prompt.setVisible(shown)
        self.system_toggle.setArrowType(
            Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow
        )
        self.system_toggle.setAccessibleName(
            "Hide the system prompt" if shown else "Show the system prompt"
        )
        if shown:
            self.system_prompt.setFocus()
