"""The chat tab's left column: search the saved chats, then the list (rename in place, export,
delete from its context menu).

:class:`ChatList` holds a search box over a :class:`~desktop.ui.chat_parts.ConversationList`.
It only shows and asks: ``searchChanged(text)``, ``renameRequested(id, title)``,
``exportRequested(id)`` and ``deleteRequested(id)`` go to the chat panel, which owns the
history.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLineEdit,
    QListWidgetItem,
    QMenu,
    QVBoxLayout,
    QWidget,
)

from desktop.core.history import Conversation
from desktop.services.signals import emit
from desktop.ui.chat_parts import ConversationList
from desktop.ui.widgets import HintLabel

__all__ = ["SEARCH_DELAY_MS", "ChatList"]

#: Search after typing pauses this long (each search reads the whole history).
SEARCH_DELAY_MS = 200
TITLE_LIMIT = 200


class ChatList(QWidget):
    """Search box, "Earlier chats" and the list; see the module docstring."""

    searchChanged = Signal(str)
    renameRequested = Signal(int, str)
    exportRequested = Signal(int)
    deleteRequested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.search = QLineEdit(self)
        self.search.setAccessibleName("Search chats")
        self.search.setPlaceholderText("Search chats")
        self.search.setClearButtonEnabled(True)
        self.title = HintLabel("Earlier chats", self)
        self.list = ConversationList(self)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)  # F2
        self.list.customContextMenuRequested.connect(self._menu)
        self.list.itemChanged.connect(self._on_item_changed)
        self.no_match = HintLabel("", self)
        self.no_match.setWordWrap(True)
        self.no_match.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.search)
        layout.addWidget(self.title)
        layout.addWidget(self.no_match)
        layout.addWidget(self.list, 1)

        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(lambda: emit(self.searchChanged, self.query))
        self.search.textChanged.connect(lambda _text: self._search_timer.start())
        rename = QAction("Rename", self.list)
        rename.setShortcut(QKeySequence(Qt.Key.Key_F2))
        rename.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        rename.triggered.connect(self.rename_selected)
        self.list.addAction(rename)

    @property
    def query(self) -> str:
        return self.search.text().strip()

    def show_conversations(
        self, conversations: Sequence[Conversation], current: int | None
    ) -> None:
        """List ``conversations`` (already filtered by the search), ``current`` selected."""
        blocked = self.list.blockSignals(True)
        self.list.show_conversations(conversations, current)
        for i in range(self.list.count()):
            item = self.list.item(i)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
        self.list.blockSignals(blocked)
        query = self.query
        self.title.setText(f'Chats with "{query}"' if query else "Earlier chats")
        self.no_match.setText(f'No chat has "{query}" in its title or messages.')
        self.no_match.setVisible(bool(query) and not conversations)

    def rename_selected(self) -> None:
        items = self.list.selectedItems() or (
            [self.list.currentItem()] if self.list.currentItem() else []
        )
        if items:
            self.list.editItem(items[0])

    # ------------------------------------------------------------------ internals

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        title = " ".join(item.text().split())[:TITLE_LIMIT]
        emit(self.renameRequested, ConversationList.conversation_of(item), title)

    def _menu(self, position: QPoint) -> None:
        item = self.list.itemAt(position)
        if item is None or not self.list.isEnabled():
            return
        conversation = ConversationList.conversation_of(item)
        menu = QMenu(self)
        rename = menu.addAction("Rename…")
        export = menu.addAction("Export…")
        menu.addSeparator()
        delete = menu.addAction("Delete this chat…")
        chosen = menu.exec(self.list.viewport().mapToGlobal(position))
        if chosen is rename:
            self.list.editItem(item)
        elif chosen is export:
            emit(self.exportRequested, conversation)
        elif chosen is delete:
            emit(self.deleteRequested, conversation)
