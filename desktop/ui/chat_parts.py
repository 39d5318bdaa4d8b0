"""The chat tab's smaller parts: the list of earlier chats, the problem bar with its fix
button, and the empty state."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.history import Conversation
from desktop.ui import theme
from desktop.ui.icons import GlyphLabel
from desktop.ui.widgets import HintLabel

__all__ = ["ConversationList", "EmptyChat", "ErrorBar"]


class ConversationList(QListWidget):
    """The saved conversations, newest first; each item holds its conversation's id.

    Selecting one by code (:meth:`select_conversation`) sends no selection signal: only
    the person's clicks do.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Earlier chats")
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.setUniformItemSizes(True)
        self.setSpacing(1)

    def show_conversations(
        self, conversations: Sequence[Conversation], current: int | None
    ) -> None:
        """List ``conversations`` and select ``current`` (None: none selected)."""
        row_height = self.fontMetrics().height() + 12
        blocked = self.blockSignals(True)
        self.clear()
        for conversation in conversations:
            when = datetime.fromtimestamp(conversation.created)
            item = QListWidgetItem(conversation.title)
            item.setData(Qt.ItemDataRole.UserRole, conversation.id)
            item.setToolTip(f"{conversation.title}\n{when:%d %b %Y, %H:%M}")
            item.setSizeHint(QSize(0, row_height))
            self.addItem(item)
        self.blockSignals(blocked)
        if current is not None:
            self.select_conversation(current)

    def select_conversation(self, conversation_id: int | None) -> None:
        """Select the conversation's item, or clear the selection for a new chat."""
        blocked = self.blockSignals(True)
        if conversation_id is None:
            self.clearSelection()
            self.setCurrentRow(-1)
        else:
            for i in range(self.count()):
                item = self.item(i)
                if item.data(Qt.ItemDataRole.UserRole) == conversation_id:
                    self.setCurrentItem(item)
                    break
        self.blockSignals(blocked)

    def selected_conversation(self) -> int | None:
        items = self.selectedItems()
        return self.conversation_of(items[0]) if items else None

    @staticmethod
    def conversation_of(item: QListWidgetItem) -> int:
        return int(item.data(Qt.ItemDataRole.UserRole))

    def titles(self) -> list[str]:
        return [self.item(i).text() for i in range(self.count())]


class ErrorBar(QFrame):
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


class EmptyChat(QWidget):
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
