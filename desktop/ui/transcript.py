"""The conversation as one read-only document (:class:`Transcript`): a header, then each
message in a frame; the answer being written is re-rendered from Markdown in its own frame.

A widget only: what the conversation *is* (its turns, the history) lives in
:mod:`desktop.core.conversation`; :class:`~desktop.ui.chat_panel.ChatPanel` draws it here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from PySide6.QtCore import QEvent, QUrl, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QDesktopServices,
    QFont,
    QPalette,
    QResizeEvent,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextDocumentFragment,
    QTextFormat,
    QTextFrame,
    QTextFrameFormat,
)
from PySide6.QtWidgets import QApplication, QFrame, QTextBrowser, QWidget

from desktop.services.signals import emit
from desktop.ui import theme

__all__ = ["ACTION_SCHEME", "Transcript", "TranscriptEntry"]

#: The links under each message ("Copy", "Edit") use this scheme; they never navigate.
ACTION_SCHEME = "llmw-action"

_MARKDOWN = (
    QTextDocument.MarkdownFeature.MarkdownDialectGitHub
    | QTextDocument.MarkdownFeature.MarkdownNoHTML  # a model's "<b>" is text, not markup
)


@dataclass
class TranscriptEntry:
    """One thing the transcript shows; kept so the whole chat can be redrawn (theme change)."""

    kind: Literal["user", "assistant", "error"]
    text: str = ""
    name: str = ""  # who speaks: "You", the model's name
    stats: str = ""  # the answer's stats line
    note: str = ""  # "Interrupted: ..."
    streaming: bool = False
    turn: int = -1  # the conversation turn it shows (ChatSession.turns); -1: not a turn


class Transcript(QTextBrowser):
    """The conversation as one read-only document: a header, then each message in a frame.

    Messages are only ever added at the end, and only the answer being streamed is
    rewritten (its own frame), so a render costs the length of that answer, not the chat.
    """

    MAX_TEXT_WIDTH = 820  # px: lines longer than this are hard to read
    MARGIN = 18  # px around the text, at least

    #: (action, entry index): a message's "Copy" or "Edit" link was clicked.
    actionRequested = Signal(str, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Conversation")
        self.setOpenLinks(False)  # a click must never navigate away from the chat
        self.anchorClicked.connect(self._open_link)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.document().setDocumentMargin(self.MARGIN)
        self._entries: list[TranscriptEntry] = []
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
    def entries(self) -> list[TranscriptEntry]:
        return list(self._entries)

    def clear_messages(self) -> None:
        self._entries.clear()
        self._answer_frame = None
        self.document().clear()
        self._fit_column()

    def add_user(self, text: str, turn: int = -1) -> None:
        self._entries.append(TranscriptEntry("user", text, "You", turn=turn))
        self._follow = True  # a new question: show it, and the answer as it comes
        self._draw_user(self._entries[-1])
        self._scroll_to_end()

    def begin_answer(self, name: str, turn: int = -1) -> None:
        """Start the model's answer: its name, then "…" until the first words come."""
        self._entries.append(TranscriptEntry("assistant", "", name, streaming=True, turn=turn))
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

    def add_answer(
        self, name: str, text: str, stats: str = "", note: str = "", turn: int = -1
    ) -> None:
        """A whole answer at once (from the history)."""
        self.begin_answer(name, turn)
        self.set_answer_text(text)
        self.end_answer(stats, note)

    def add_error(self, message: str, suggestion: str = "") -> None:
        self._entries.append(TranscriptEntry("error", message, note=suggestion))
        self._draw_error(self._entries[-1])
        self._scroll_to_end()

    def truncate_from_turn(self, turn: int) -> None:
        """Drop the entry of ``turn`` and everything after it (edit, regenerate), redrawn."""
        keep = next(
            (i for i, entry in enumerate(self._entries) if entry.turn >= turn), len(self._entries)
        )
        if keep < len(self._entries):
            del self._entries[keep:]
            self.redraw()

    def redraw(self) -> None:
        """Draw every entry again (the colours follow a new palette)."""
        entries = self._entries
        self.document().clear()
        self._fit_column()
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

    def _streaming(self) -> TranscriptEntry | None:
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
            "link": pal.color(QPalette.ColorRole.Link),
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

    def _draw_user(self, entry: TranscriptEntry) -> None:
        colors = self._colors()
        self._header(entry.name, colors["faded"])
        frame = self._frame(colors["user_bg"])
        char = QTextCharFormat()
        char.setForeground(colors["text"])
        frame.firstCursorPosition().insertText(entry.text, char)
        self._add_links(entry, ("Edit", "Copy"))

    def _draw_answer_start(self, entry: TranscriptEntry) -> None:
        colors = self._colors()
        self._header(entry.name, colors["faded"])
        self._answer_frame = self._frame(None)
        waiting = QTextCharFormat()
        waiting.setForeground(colors["faded"])
        self._answer_frame.firstCursorPosition().insertText("…", waiting)

    def _draw_answer_end(self, entry: TranscriptEntry) -> None:
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
        self._add_links(entry, ("Copy",))

    def _add_links(self, entry: TranscriptEntry, actions: tuple[str, ...]) -> None:
        """Small "Edit · Copy" links under a message (its index in the href)."""
        index = next((i for i, e in enumerate(self._entries) if e is entry), -1)
        if index < 0:
            return
        colors = self._colors()
        font = QFont(self.font())
        font.setPointSizeF(max(font.pointSizeF() * 0.85, 7.0))
        plain = QTextCharFormat()
        plain.setFont(font)
        plain.setForeground(colors["faded"])
        block = QTextBlockFormat()
        block.setTopMargin(2)
        self._add_block("", plain, block)
        cursor = self._end_cursor()
        for position, action in enumerate(actions):
            if position:
                cursor.insertText("   ", plain)
            link = QTextCharFormat(plain)
            link.setAnchor(True)
            link.setAnchorHref(f"{ACTION_SCHEME}:{action.lower()}:{index}")
            link.setForeground(colors["link"])
            link.setToolTip(
                "Put this message in the input to change and send it again "
                "(what followed it is dropped)"
                if action == "Edit"
                else "Copy this message's text"
            )
            cursor.insertText(action, link)
        cursor.insertText(" ", plain)  # typing after the link must not extend it

    def _draw_error(self, entry: TranscriptEntry) -> None:
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
        if url.scheme() == ACTION_SCHEME:
            action, _, index = url.path().partition(":")
            if index.isdigit():
                emit(self.actionRequested, action, int(index))
            return
        if url.scheme() in ("http", "https"):
            QDesktopServices.openUrl(url)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_column()

    def _fit_column(self) -> None:
        """Centre a readable column on wide windows; keep the margin on narrow ones (the
        side margins replace the document's own, and clearing the document resets them)."""
        side = max(self.MARGIN, (self.viewport().width() - self.MAX_TEXT_WIDTH) // 2)
        fmt = self._root().frameFormat()
        if fmt.leftMargin() != side or fmt.rightMargin() != side:
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
