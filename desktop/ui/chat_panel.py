"""The Chat tab: talk to the loaded model, see each answer stream in as Markdown, keep history.

:class:`ChatPanel` is handed the engine client (any :class:`~desktop.services.engine_api.
ChatEngine`) and a :class:`~desktop.core.history.ChatHistory`. The conversation itself (its
turns, what the model reads, every history write) is a Qt-free
:class:`~desktop.core.conversation.ChatSession`; the panel draws it and drives it from the
client's signals, and reads the client's own state (``state``, ``model``, ``last_load``)
rather than keeping copies:

* the answer streams into a :class:`~desktop.ui.transcript.Transcript` (one QTextBrowser for
  the whole chat); only the answer being written is re-rendered from Markdown, at most about
  20 times a second and less often when an answer is long, so a fast model never floods the
  event loop;
* when ``done`` arrives the answer shows its speed, time to first token and token count;
* Enter sends and Shift+Enter makes a new line (or, with ``enter_sends`` off in the
  Settings, Enter makes a new line); Ctrl+Enter always sends, Esc stops, Ctrl+N starts a new
  chat (while focus is in the panel);
* each chat has its own sampling (:class:`~desktop.ui.sampling_panel.SamplingPanel`: presets,
  the loaded model's recommended values where its file has them), stored with the chat;
* the last answer can be written again (Regenerate), a question edited and sent again (what
  followed it is dropped), any message copied; chats can be searched, renamed and exported
  (Markdown or JSON) from the list on the left (:class:`~desktop.ui.chat_list.ChatList`);
* Unload frees the model (through the engine client, which owns loading);
* every message is saved as it happens (see :mod:`desktop.core.conversation`), a long answer
  checkpointed every few seconds, so even a crash of the app keeps most of it;
* when the worker crashes, runs out of memory or cannot stop in time, the chat says so in
  plain words with the fix as a button ("Reload with 20 GPU layers"); the conversation
  stays, and the partial answer is kept and marked interrupted in the history.

Until a model is loaded the input is disabled and the tab says "Load a model to start
chatting"; past conversations can still be read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import (
    QFont,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QShortcut,
    QTextCursor,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.chat_export import export_chat
from desktop.core.conversation import (
    DEFAULT_CHECKPOINT_S,
    ChatSession,
    fewer_gpu_layers,
    saved_note,
    stats_line,
)
from desktop.core.gguf import GGUFError, read_header_file
from desktop.core.history import ChatHistory, ChatMessage, HistoryError
from desktop.core.sampling import Sampling, recommended_sampling, sampling_from_dict
from desktop.engine import protocol as p
from desktop.services.engine_api import ChatEngine
from desktop.services.signals import emit
from desktop.services.tasks import Task, run_in_thread
from desktop.ui.base_model_note import NO_TEMPLATE, BaseModelBanner
from desktop.ui.chat_list import ChatList
from desktop.ui.chat_parts import EmptyChat, ErrorBar
from desktop.ui.icons import glyph_icon
from desktop.ui.sampling_panel import RECOMMENDED, SamplingPanel
from desktop.ui.transcript import Transcript
from desktop.ui.widgets import HintLabel

__all__ = [
    "ChatPanel",
    "Transcript",
    "fewer_gpu_layers",
    "stats_line",
]

MIN_RENDER_INTERVAL_MS = 50
MAX_RENDER_INTERVAL_MS = 400
#: A render may take at most this share of the time between renders.
RENDER_BUDGET = 0.25
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
    # The file itself makes llama.cpp abort: reloading it would abort again (the message
    # offers another file, another quantization or a new download instead).
    | {"aborted_by_file"}
)
#: The error bar's short sentence per failure kind (the chat has the whole explanation).
_HEADLINES = {
    "killed": "The model ran out of memory and was stopped.",
    "out_of_memory": "The model ran out of memory.",
    "aborted": "llama.cpp aborted the model.",
    "aborted_by_file": "llama.cpp aborted on this file: pick another file or quantization.",
    "killed_from_outside": "The model worker was ended from outside the app.",
    "segfault": "The model worker crashed.",
    "bus_error": "The model worker crashed reading the model file.",
    "signal": "The model worker was ended.",
    "exited": "The model worker stopped.",
    "illegal_instruction": "This llama.cpp build does not fit your processor.",
    "stop_timeout": "The model could not stop in time and was ended.",
}


# --------------------------------------------------------------------------- the panel


class ChatPanel(QWidget):
    """Chat with the model the engine client has loaded; see the module docstring.

    Signals:

    * ``reloadRequested(int n_gpu_layers)`` - the fix button was pressed, just before the
      panel asks the engine client to load the model again (``retry_with``: a load like any
      other, which the load controls follow through the client's ``loadStarted``);
    * ``conversationChanged(int)`` - the conversation shown (its id; -1 for a new chat);
    * ``answerFinished(object)`` - a protocol ``Done`` for an answer of this panel.
    """

    reloadRequested = Signal(int)
    conversationChanged = Signal(int)
    answerFinished = Signal(object)

    def __init__(
        self,
        engine_client: ChatEngine,
        history: ChatHistory,
        parent: QWidget | None = None,
        *,
        sampling: Sampling | None = None,
        checkpoint_s: float = DEFAULT_CHECKPOINT_S,
    ) -> None:
        super().__init__(parent)
        self._engine = engine_client
        self._history = history
        self.session = ChatSession(history, checkpoint_s=checkpoint_s)
        self._enter_sends = True
        self._editing_turn: int | None = None  # the question being edited, if any
        self._recommended_task: Task | None = None
        self.export_dialog: QFileDialog | None = None
        self._model_name = ""  # set by the window; else from the file name
        # The model the chat last saw loaded: it outlives a crash (the engine forgets its
        # model then), so the fix button can offer fewer layers than it really had.
        self._last_model: p.Loaded | None = engine_client.model
        self._render_interval_ms = MIN_RENDER_INTERVAL_MS
        self.setAccessibleName("Chat")
        self.setMinimumSize(560, 360)

        self._build()
        self.sampling_panel.set_sampling(sampling or Sampling())
        self._update_sampling_toggle()
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.timeout.connect(self._render)

        for keys, slot in (
            ("Ctrl+Return", self.send),
            ("Ctrl+Enter", self.send),
            ("Esc", self.stop),
            (QKeySequence.StandardKey.New, self.new_chat),
            ("Ctrl+R", self.regenerate),
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
        if engine_client.model is not None:
            self._ask_recommended()

    # ------------------------------------------------------------------ building

    def _build(self) -> None:
        # Left: the conversations
        self.new_chat_button = QPushButton("New chat", self)
        self.new_chat_button.setIcon(glyph_icon("chat"))
        self.new_chat_button.setToolTip("Start a new chat (Ctrl+N)")
        self.new_chat_button.setAccessibleName("New chat")
        self.new_chat_button.clicked.connect(self.new_chat)
        self.chat_list = ChatList(self)
        self.history_list = self.chat_list.list
        self.history_list.itemSelectionChanged.connect(self._on_history_selected)
        self.chat_list.searchChanged.connect(lambda _query: self.refresh_history())
        self.chat_list.renameRequested.connect(self.rename_conversation)
        self.chat_list.exportRequested.connect(self.open_export_dialog)
        self.chat_list.deleteRequested.connect(self._confirm_delete)
        side = QWidget(self)
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 6, 0)
        side_layout.addWidget(self.new_chat_button)
        side_layout.addSpacing(4)
        side_layout.addWidget(self.chat_list, 1)
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
        self.unload_button = QToolButton(self)
        self.unload_button.setText("Unload")
        self.unload_button.setToolTip("Unload the model and free its memory")
        self.unload_button.setAccessibleName("Unload the model")
        self.unload_button.clicked.connect(self.unload)
        self.sampling_toggle = QToolButton(self)
        self.sampling_toggle.setCheckable(True)
        self.sampling_toggle.setAutoRaise(True)
        self.sampling_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.sampling_toggle.setAccessibleName("Show the sampling settings")
        self.sampling_toggle.toggled.connect(self._toggle_sampling)
        top = QHBoxLayout()
        top.addWidget(self.model_label)
        top.addWidget(self.unload_button)
        top.addWidget(self.status_label)
        top.addStretch(1)
        top.addWidget(self.system_toggle)
        top.addWidget(self.sampling_toggle)

        # A base model continues text instead of answering: the chat says so while it is loaded.
        self.base_banner = BaseModelBanner(self)
        self._base_reason: str | None = None  # the loaded model's, from its load request

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
        self.empty_state = EmptyChat(self)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.empty_state)
        self.stack.addWidget(self.transcript)
        self.stack.setFrameShape(QFrame.Shape.StyledPanel)

        self.error_bar = ErrorBar(self)
        self.fix_button = self.error_bar.fix_button
        self.fix_button.clicked.connect(self._on_fix)
        self._fix_layers: int | None = None

        self.edit_bar = QFrame(self)
        self.edit_bar.setAccessibleName("Editing a message")
        self.edit_label = HintLabel(
            "Editing your message: Send replaces it and drops everything after it.", self
        )
        self.cancel_edit_button = QPushButton("Cancel editing", self)
        self.cancel_edit_button.clicked.connect(self.cancel_edit)
        edit_layout = QHBoxLayout(self.edit_bar)
        edit_layout.setContentsMargins(0, 0, 0, 0)
        edit_layout.addWidget(self.edit_label, 1)
        edit_layout.addWidget(self.cancel_edit_button)
        self.edit_bar.hide()

        self.input = QPlainTextEdit(self)
        self.input.setAccessibleName("Message")
        self.input.setTabChangesFocus(True)
        self.input.installEventFilter(self)  # Enter / Shift+Enter
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
        self.keys_hint = HintLabel("", self)
        self.regenerate_button = QToolButton(self)
        self.regenerate_button.setText("Regenerate answer")
        self.regenerate_button.setToolTip("Write the last answer again (Ctrl+R)")
        self.regenerate_button.setAccessibleName("Regenerate the last answer")
        self.regenerate_button.clicked.connect(self.regenerate)
        hint_row = QHBoxLayout()
        hint_row.addWidget(self.keys_hint, 1)
        hint_row.addWidget(self.regenerate_button)
        self.transcript.actionRequested.connect(self._on_message_action)

        main = QWidget(self)
        main_layout = QVBoxLayout(main)
        main_layout.setContentsMargins(6, 0, 0, 0)
        main_layout.setSpacing(6)
        main_layout.addLayout(top)
        main_layout.addWidget(self.base_banner)
        main_layout.addWidget(self.system_prompt)
        main_layout.addWidget(self.stack, 1)
        main_layout.addWidget(self.error_bar)
        main_layout.addWidget(self.edit_bar)
        main_layout.addLayout(input_row)
        main_layout.addLayout(hint_row)

        self.sampling_panel = SamplingPanel(self)
        self.sampling_panel.samplingChanged.connect(self._on_sampling_changed)
        self.sampling_panel.hide()

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(side)
        self.splitter.addWidget(main)
        self.splitter.addWidget(self.sampling_panel)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 0)
        self.splitter.setSizes([220, 900, 250])
        self._update_keys_hint()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 10, 0, 0)
        layout.addWidget(self.splitter)

    # ------------------------------------------------------------------ public API

    @property
    def conversation_id(self) -> int | None:
        """The conversation shown (None: a new chat not saved yet)."""
        return self.session.conversation_id

    @property
    def answering(self) -> bool:
        """True while an answer of this panel is streaming."""
        return self.session.answer is not None

    @property
    def sampling(self) -> Sampling:
        """The sampler settings the next answer is written with (this chat's)."""
        return self.sampling_panel.sampling()

    @sampling.setter
    def sampling(self, value: Sampling) -> None:
        self.sampling_panel.set_sampling(value)
        self._update_sampling_toggle()

    @property
    def enter_sends(self) -> bool:
        return self._enter_sends

    def set_enter_sends(self, enabled: bool) -> None:
        """Enter sends and Shift+Enter makes a new line (True), or Enter makes a new line and
        Ctrl+Enter sends (False)."""
        self._enter_sends = enabled
        self._update_keys_hint()
        self._update_controls()

    def set_model_name(self, name: str) -> None:
        """The name to show and save for the loaded model (default: its file name)."""
        self._model_name = name
        self._update_model_label()
        self._update_controls()

    def send(self) -> None:
        """Send the typed message (Enter or Ctrl+Enter); nothing happens unless the model is
        ready."""
        text = self.input.toPlainText().strip()
        session = self.session
        if not text or session.answer is not None or self._engine.state != "ready":
            return
        system = self.system_prompt.toPlainText().strip()
        if self._editing_turn is not None:
            # The edited question replaces the old one and everything after it.
            turn = self._editing_turn
            self._editing_turn = None
            self.edit_bar.hide()
            if turn < len(session.turns):
                session.truncate(turn)
                self.transcript.truncate_from_turn(turn)
        messages, created = session.ask(text, system)
        if created:
            self.refresh_history()
            emit(self.conversationChanged, session.conversation_id)
        self.transcript.add_user(text, len(session.turns) - 1)
        self.input.clear()
        self._start_answer(messages)

    def regenerate(self) -> None:
        """Write the last answer again (Ctrl+R), with the sampling now set; the old answer
        is dropped from the chat and the history."""
        session = self.session
        if not session.can_regenerate or self._engine.state != "ready":
            return
        self.cancel_edit()
        messages = session.regenerate(self.system_prompt.toPlainText().strip())
        self.transcript.truncate_from_turn(len(session.turns))
        self._start_answer(messages)

    def edit_message(self, turn: int) -> None:
        """Put the question of ``turn`` in the input to change it; Send replaces it and drops
        what followed it (Cancel editing, or Esc, keeps the chat as it is)."""
        turns = self.session.turns
        if self.answering or not 0 <= turn < len(turns) or turns[turn].role != "user":
            return
        if not self.input.isEnabled():
            self.status_label.setText("Load a model to edit and resend a message.")
            return
        self._editing_turn = turn
        self.input.setPlainText(turns[turn].content)
        self.edit_bar.show()
        self.input.setFocus()
        self.input.moveCursor(QTextCursor.MoveOperation.End)
        self._update_controls()

    def cancel_edit(self) -> None:
        if self._editing_turn is None:
            return
        self._editing_turn = None
        self.edit_bar.hide()
        self.input.clear()
        self._update_controls()

    def copy_message(self, index: int) -> str:
        """Copy the text of the transcript's entry ``index``; return it."""
        entries = self.transcript.entries
        if not 0 <= index < len(entries):
            return ""
        text = entries[index].text
        QGuiApplication.clipboard().setText(text)
        self.status_label.setText("Copied the message.")
        return text

    def unload(self) -> None:
        """Free the model (the engine client owns loading); the chat stays readable."""
        if self.answering or self._engine.model is None:
            return
        self.cancel_edit()
        self._engine.unload()
        self._update_controls()

    def _start_answer(self, messages: list[dict[str, str]]) -> None:
        session = self.session
        sampling = self.sampling
        session.save_sampling(self.sampling_panel.record())
        chat = p.Chat.from_sampling(messages, sampling)
        session.begin_answer(chat.id, model=self._name(), settings=self._settings_record())
        self._render_interval_ms = MIN_RENDER_INTERVAL_MS
        self.transcript.begin_answer(self._name(), len(session.turns))
        self.error_bar.hide()
        self._show_page()
        self._engine.chat(chat)
        self._update_controls()

    def stop(self) -> None:
        """Stop the answer being written (Esc); what was written so far is kept. Without an
        answer, Esc stops editing a message."""
        if self.session.answer is not None and self._engine.state == "generating":
            self._engine.stop()
        elif self.session.answer is None:
            self.cancel_edit()

    def new_chat(self) -> None:
        """Start a new, empty chat (Ctrl+N); the system prompt stays as typed."""
        if self.session.answer is not None:
            return
        self.cancel_edit()
        self.session.clear()
        self.transcript.clear_messages()
        self.error_bar.hide()
        self.history_list.select_conversation(None)
        self._show_page()
        self.input.setFocus()
        emit(self.conversationChanged, -1)

    def open_conversation(self, conversation_id: int) -> None:
        """Show a saved conversation; the next message continues it."""
        if self.session.answer is not None:
            return
        self.cancel_edit()
        messages = self.session.open(conversation_id)
        self.transcript.clear_messages()
        self.error_bar.hide()
        for turn, message in enumerate(messages):
            self._show_saved(message, turn)
        self._restore_sampling(conversation_id, messages)
        system = self.session.stored_system
        self.system_prompt.setPlainText(system)
        if system and not self.system_toggle.isChecked():
            self.system_toggle.setChecked(True)
        self.history_list.select_conversation(conversation_id)
        self._show_page()
        emit(self.conversationChanged, conversation_id)

    def refresh_history(self) -> None:
        """List the saved conversations again (newest first), those the search finds."""
        self.chat_list.show_conversations(
            self._history.search_conversations(self.chat_list.query),
            self.session.conversation_id,
        )

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        """Give a chat a new title (an empty one keeps the old)."""
        title = " ".join(title.split())
        if title:
            # A chat deleted meanwhile: the list below shows what is there.
            with contextlib.suppress(HistoryError):
                self._history.rename_conversation(conversation_id, title)
        self.refresh_history()

    def open_export_dialog(self, conversation_id: int | None = None) -> QFileDialog | None:
        """Ask where to export a chat (default: the one shown), as Markdown or JSON."""
        if conversation_id is None:
            conversation_id = self.conversation_id
        if conversation_id is None:
            return None
        chosen_id = conversation_id
        title = self._history.conversation(chosen_id).title
        dialog = QFileDialog(self, f'Export "{title}"')
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setNameFilters([MARKDOWN_FILTER, JSON_FILTER])
        dialog.setDefaultSuffix("md")
        dialog.filterSelected.connect(
            lambda chosen: dialog.setDefaultSuffix("json" if chosen == JSON_FILTER else "md")
        )
        dialog.selectFile(_file_name(title) + ".md")
        dialog.fileSelected.connect(lambda name: self.export_conversation(chosen_id, Path(name)))
        self.export_dialog = dialog
        dialog.open()
        return dialog

    def export_conversation(self, conversation_id: int, path: Path) -> bool:
        """Write the chat to ``path`` (``.json``: JSON, else Markdown); say how it went."""
        try:
            fmt = export_chat(self._history, conversation_id, path)
        except (OSError, HistoryError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.status_label.setText(f"Could not export to {path.name}: {reason}.")
            return False
        kind = "JSON" if fmt == "json" else "Markdown"
        self.status_label.setText(f"Exported the chat to {path.name} ({kind}).")
        return True

    def history_titles(self) -> list[str]:
        return self.history_list.titles()

    # ------------------------------------------------------------------ engine

    def _on_state(self, state: str) -> None:
        if state in ("stopped", "idle") and self.session.answer is not None:
            # A crash or a stop timeout reports right after this; anything else ended the
            # worker without a word, and the answer must not wait forever.
            QTimer.singleShot(0, self, self._check_orphaned_answer)
        self._update_controls()

    def set_base_model(self, reason: str | None) -> None:
        """Why the model being loaded is a base model ("" a chat model; None: not known, then
        the worker's fallback chat format says it)."""
        self._base_reason = reason

    def _on_loaded(self, loaded: p.Loaded) -> None:
        self._last_model = loaded
        self._ask_recommended()
        self.error_bar.hide()
        reason = self._base_reason
        if reason is None:
            reason = NO_TEMPLATE if loaded.chat_template == "fallback" else ""
        self.base_banner.show_reason(reason)
        self._update_model_label()
        self._update_controls()

    def _on_unloaded(self) -> None:
        self._last_model = None
        self.sampling_panel.set_recommended(None)
        self._update_sampling_toggle()
        self.base_banner.show_reason("")
        self._update_model_label()
        self._update_controls()

    def _ask_recommended(self) -> None:
        """Read the loaded file's recommended sampling (its header, off the GUI thread)."""
        last = self._engine.last_load
        if last is None:
            return
        if self._recommended_task is not None:
            self._recommended_task.cancel()
        path = last.path
        task = run_in_thread(
            lambda: _recommended_from_file(path),
            lambda found: self._on_recommended(path, found),
            owner=self,
        )
        self.destroyed.connect(task.cancel)  # a panel closed meanwhile gets no answer
        self._recommended_task = task

    def _on_recommended(self, path: str, found: Sampling | None) -> None:
        last = self._engine.last_load
        if last is None or last.path != path or self._engine.model is None:
            return  # another model loaded meanwhile, or none is
        panel = self.sampling_panel
        panel.set_recommended(found, self._name())
        # A chat that has not chosen yet follows what the model's makers recommend.
        if found is not None and not self.session.turns and panel.preset_name == "Balanced":
            panel.apply_preset(RECOMMENDED)
        self._update_sampling_toggle()

    def _on_token(self, token: p.Token) -> None:
        if not self.session.add_token(token.id, token.text):
            return
        if not self._render_timer.isActive():
            self._render_timer.start(self._render_interval_ms)

    def _render(self) -> None:
        answer = self.session.answer
        if answer is None:
            return
        seconds = self.transcript.set_answer_text(answer.joined())
        # Keep rendering a small share of the time: a long answer is redrawn less often.
        wanted = round(seconds * 1000 / RENDER_BUDGET)
        self._render_interval_ms = min(max(MIN_RENDER_INTERVAL_MS, wanted), MAX_RENDER_INTERVAL_MS)
        self.session.checkpoint()

    def _on_done(self, done: p.Done) -> None:
        answer = self.session.answer
        if answer is None or done.id != answer.chat_id:
            return
        self._render_timer.stop()
        stats = {
            "prompt_tokens": done.prompt_tokens,
            "generated_tokens": done.generated_tokens,
            "ttft_s": done.ttft_s,
            "prompt_tokens_per_s": done.prompt_tokens_per_s,
            "gen_tokens_per_s": done.gen_tokens_per_s,
            "stop_reason": done.stop_reason,
        }
        text = self.session.finish(stats)
        self.transcript.set_answer_text(text)
        self.transcript.end_answer(stats_line(stats))
        self._update_controls()
        emit(self.answerFinished, done)

    def _on_error(self, error: p.Error) -> None:
        answer = self.session.answer
        if answer is None or error.id != answer.chat_id:
            return  # a failed load is the load panel's to show
        self._interrupt(error.message)
        self._show_problem(error.kind, error.message, "")

    def _on_crashed(self, kind: str, message: str, suggestion: str) -> None:
        had_model = self._last_model is not None
        if self.session.answer is not None:
            self._interrupt(message)
        elif not had_model:
            return  # it died while loading: the load panel says so
        self._show_problem(kind, message, suggestion)  # the fix reads the model it had
        self._last_model = None
        self.base_banner.show_reason("")
        self._update_controls()

    def _check_orphaned_answer(self) -> None:
        if self.answering and self._engine.state not in ("generating", "stopping"):
            message = "The model worker stopped before the answer was complete."
            self._interrupt(message)
            self._show_problem("exited", message, "Load the model again.")

    def _interrupt(self, reason: str) -> None:
        """End the streaming answer as interrupted, keeping what it said."""
        if self.session.answer is None:
            return
        self._render_timer.stop()
        text = self.session.interrupt(reason)
        self.transcript.set_answer_text(text)
        note = "Interrupted: the answer was cut off here." if text else "Interrupted: no answer."
        self.transcript.end_answer(note=note)
        self._update_controls()

    def _show_problem(self, kind: str, message: str, suggestion: str) -> None:
        # The whole story goes into the chat; the bar under it says it short, with the fix.
        self.transcript.add_error(message, suggestion)
        fix = self._fix_for(kind)
        self._fix_layers = fix[1] if fix is not None else None
        headline = _HEADLINES.get(kind, "The answer failed.")
        if self.session.turns:
            headline += " Your chat is kept."
        self.error_bar.show_problem(headline, fix[0] if fix else None)
        self._show_page()

    def _fix_for(self, kind: str) -> tuple[str, int] | None:
        """The fix button for a failure: its text and the GPU layers to reload with."""
        last = self._engine.last_load
        if last is None or kind in _NO_RELOAD_KINDS:
            return None
        model = self._last_model
        layers = model.n_gpu_layers if model is not None else last.n_gpu_layers
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

    def _show_saved(self, message: ChatMessage, turn: int) -> None:
        if message.role == "user":
            self.transcript.add_user(message.content, turn)
            return
        self.transcript.add_answer(
            Path(message.model).stem if message.model else "Model",
            message.content,
            stats_line(message.stats),
            saved_note(message),
            turn,
        )

    def _restore_sampling(self, conversation_id: int, messages: list[ChatMessage]) -> None:
        """The chat's own sampling: as stored with it, else as its last answer used."""
        stored: object = self._history.conversation(conversation_id).sampling
        if not stored:
            answers = [m for m in messages if m.role == "assistant"]
            stored = answers[-1].settings.get("sampling") if answers else None
        panel = self.sampling_panel
        if isinstance(stored, dict) and stored:
            preset = stored.get("preset")
            panel.set_sampling(
                sampling_from_dict(stored), preset if isinstance(preset, str) else None
            )
        elif panel.recommended is not None:  # a chat that never chose: the model's, else
            panel.set_sampling(panel.recommended, RECOMMENDED)  # the defaults
        else:
            panel.set_sampling(Sampling(), "Balanced")
        self._update_sampling_toggle()

    def _on_sampling_changed(self, _sampling: Sampling) -> None:
        self._update_sampling_toggle()
        if self.session.conversation_id is not None and not self.answering:
            self.session.save_sampling(self.sampling_panel.record())

    def _on_message_action(self, action: str, index: int) -> None:
        entries = self.transcript.entries
        if not 0 <= index < len(entries):
            return
        if action == "copy":
            self.copy_message(index)
        elif action == "edit" and entries[index].kind == "user":
            self.edit_message(entries[index].turn)

    def _on_history_selected(self) -> None:
        conversation = self.history_list.selected_conversation()
        if conversation is not None and conversation != self.session.conversation_id:
            self.open_conversation(conversation)

    def _confirm_delete(self, conversation_id: int) -> None:
        if self.answering:
            return
        title = self._history.conversation(conversation_id).title
        answer = QMessageBox.question(
            self,
            "Delete chat",
            f'Delete "{title}" and all its messages? This cannot be undone.',
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        if self.session.delete(conversation_id):
            self.new_chat()
        self.refresh_history()

    # ------------------------------------------------------------------ helpers

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
        model = self._engine.model
        if model is not None:
            record["gpu_layers_used"] = model.n_gpu_layers
        return record

    def _update_model_label(self) -> None:
        loaded = self._engine.model
        if loaded is None:
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
        model = self._engine.model
        ready = state in MODEL_STATES and model is not None
        answering = self.answering
        self.input.setEnabled(ready)
        keys = "Enter sends" if self._enter_sends else "Ctrl+Enter sends"
        self.input.setPlaceholderText(
            f"Message {self._name()}…  ({keys})" if ready else "Load a model to start chatting"
        )
        self.send_button.setEnabled(
            state == "ready" and not answering and bool(self.input.toPlainText().strip())
        )
        self.stop_button.setEnabled(answering and state == "generating")
        self.new_chat_button.setEnabled(not answering)
        self.history_list.setEnabled(not answering)  # the search box keeps its focus
        self.unload_button.setVisible(model is not None)
        self.unload_button.setEnabled(state == "ready" and not answering)
        self.regenerate_button.setVisible(self.session.can_regenerate)
        self.regenerate_button.setEnabled(state == "ready" and self.session.can_regenerate)
        self.send_button.setText("Send edited" if self._editing_turn is not None else "Send")
        status = _STATUS.get(state, state)
        if state == "ready" and model is not None:
            status = f"Ready · {model.n_ctx:,} tokens of context"
        self.status_label.setText(status)
        self.empty_state.set_loading(state in ("starting", "loading"))
        if not ready and model is None:
            self._update_model_label()
        self._show_page()

    def _show_page(self) -> None:
        """The empty state until a model is loaded, unless there is a chat to read."""
        has_chat = bool(self.transcript.entries)
        model = self._engine.state in MODEL_STATES and self._engine.model is not None
        self.stack.setCurrentWidget(self.transcript if has_chat or model else self.empty_state)
        keys = "Enter sends" if self._enter_sends else "Ctrl+Enter sends"
        self.transcript.setPlaceholderText(f"Ask {self._name()} anything. {keys}." if model else "")

    def _update_keys_hint(self) -> None:
        keys = (
            "Enter sends · Shift+Enter: new line"
            if self._enter_sends
            else "Ctrl+Enter sends · Enter: new line"
        )
        self.keys_hint.setText(f"{keys} · Esc stops · Ctrl+R regenerates · Ctrl+N: new chat")
        self.send_button.setToolTip(f"Send ({'Enter' if self._enter_sends else 'Ctrl+Enter'})")

    def _update_sampling_toggle(self) -> None:
        shown = self.sampling_toggle.isChecked()
        self.sampling_toggle.setText(f"Sampling: {self.sampling_panel.preset_name}")
        self.sampling_toggle.setArrowType(
            Qt.ArrowType.LeftArrow if shown else Qt.ArrowType.RightArrow
        )
        self.sampling_toggle.setToolTip(
            "Hide the sampling settings" if shown else "Show this chat's sampling settings"
        )

    def _toggle_sampling(self, shown: bool) -> None:
        self.sampling_panel.setVisible(shown)
        self.sampling_toggle.setAccessibleName(
            "Hide the sampling settings" if shown else "Show the sampling settings"
        )
        self._update_sampling_toggle()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # The message box: Enter sends and Shift+Enter makes a new line (when enter_sends).
        if watched is self.input and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self._enter_sends:
                modifiers = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
                if modifiers == Qt.KeyboardModifier.NoModifier:
                    self.send()
                    return True
                if modifiers == Qt.KeyboardModifier.ShiftModifier:
                    self.input.insertPlainText("\n")
                    return True
        return super().eventFilter(watched, event)

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


MARKDOWN_FILTER = "Markdown (*.md)"
JSON_FILTER = "JSON (*.json)"


def _file_name(title: str) -> str:
    """A file name from a chat title: no slashes or other characters file systems refuse."""
    name = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', " ", title)
    name = " ".join(name.split()).strip(". ")[:80]
    return name or "chat"


def _recommended_from_file(path: str) -> Sampling | None:
    """The sampling a GGUF file recommends (runs on the thread pool); None: none, or the
    file cannot be read now."""
    try:
        header = read_header_file(path)
    except (GGUFError, OSError):
        return None
    return recommended_sampling(header.metadata)
