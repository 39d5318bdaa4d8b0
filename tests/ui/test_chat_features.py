"""The chat features people expect, in a real ChatPanel: per-chat sampling (presets, the model's
recommended values, stored with the chat), regenerate, edit and resend, copy, search, rename
and export chats, Enter / Shift+Enter, and Unload.

The panel logic runs against the chat tests' FakeEngine; what depends on llama.cpp (that the
sampling reaches the worker, regenerate and edit-and-resend writing real answers) runs
against the real worker with Gemma 3 270M (marked ``engine``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication, QTextCursor
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox
from synth import SynthModel, write_model
from test_chat_panel import ANSWER_MS, LOAD_MS, FakeEngine, show, type_message

from desktop.core.history import ChatHistory
from desktop.core.sampling import DEFAULT_SAMPLING, Sampling, preset_named
from desktop.engine import protocol as p
from desktop.services.engine_client import EngineClient
from desktop.ui.chat_panel import JSON_FILTER, ChatPanel
from desktop.ui.sampling_panel import CUSTOM, RECOMMENDED
from desktop.ui.transcript import ACTION_SCHEME, Transcript

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


@pytest.fixture
def history(tmp_path: Path) -> Iterator[ChatHistory]:
    with ChatHistory(tmp_path / "history.sqlite3") as opened:
        yield opened


@pytest.fixture
def fake() -> FakeEngine:
    return FakeEngine()


def ask(panel: ChatPanel, fake: FakeEngine, question: str, answer: str) -> p.Chat:
    panel.input.setPlainText(question)
    panel.send()
    chat = fake.chats[-1]
    fake.stream([answer])
    fake.finish(1)
    return chat


def link_point(transcript: Transcript, action: str, index: int) -> Any:
    """Where the link "action" of entry ``index`` is drawn, in viewport coordinates."""
    href = f"{ACTION_SCHEME}:{action}:{index}"
    block = transcript.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            if fragment.charFormat().anchorHref() == href:
                cursor = QTextCursor(transcript.document())
                cursor.setPosition(fragment.position() + 1)
                transcript.ensureCursorVisible()
                transcript.setTextCursor(cursor)
                transcript.ensureCursorVisible()
                return transcript.cursorRect(cursor).center()
            it += 1
        block = block.next()
    raise AssertionError(f"no {href} link in the transcript")


def click_link(qtbot: Any, panel: ChatPanel, action: str, index: int) -> None:
    point = link_point(panel.transcript, action, index)
    with qtbot.waitSignal(panel.transcript.actionRequested, timeout=2000) as clicked:
        qtbot.mouseClick(panel.transcript.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert clicked.args == [action, index]


# --------------------------------------------------------------------------- sampling


def test_presets_and_edited_values_reach_the_request_and_are_stored_with_the_chat(
    qtbot: Any, fake: FakeEngine, history: ChatHistory
) -> None:
    fake.finish_load()
    panel = show(qtbot, ChatPanel(fake, history))
    sampling = panel.sampling_panel
    assert panel.sampling_toggle.text() == "Sampling: Balanced"
    assert not sampling.isVisible()
    qtbot.mouseClick(panel.sampling_toggle, Qt.MouseButton.LeftButton)
    assert sampling.isVisible()
    assert "llama.cpp's own defaults" in sampling.source.text()

    sampling.preset.setCurrentText("Creative")
    creative = preset_named("Creative")
    assert creative is not None
    assert sampling.top_k.text() == "Off" and sampling.temperature.value() == 1.0
    assert "min-p" in sampling.source.text()
    sampling.seed.setValue(42)
    sampling.max_tokens.setValue(256)
    assert sampling.preset_name == "Creative"  # seed and length are not part of a preset
    sampling.repeat_penalty.setValue(1.1)
    assert sampling.preset_name == CUSTOM and panel.sampling_toggle.text() == "Sampling: Custom"

    chat = ask(panel, fake, "Tell me a story", "Once")
    wanted = creative.sampling.replace(repeat_penalty=1.1, seed=42, max_tokens=256)
    got = Sampling(
        temperature=chat.temperature,
        top_p=chat.top_p,
        top_k=chat.top_k,
        min_p=chat.min_p,
        repeat_penalty=chat.repeat_penalty,
        max_tokens=chat.max_tokens,
        seed=chat.seed,
    )
    assert got == wanted
    first = panel.conversation_id
    assert first is not None
    assert history.conversation(first).sampling == {**wanted.to_dict(), "preset": CUSTOM}

    # Another chat picks Precise; each chat gets its own back when it is opened.
    panel.new_chat()
    sampling.preset.setCurrentText("Precise")
    ask(panel, fake, "What is 2+2?", "4")
    second = panel.conversation_id
    assert second is not None and fake.chats[-1].temperature == 0.2
    panel.open_conversation(first)
    assert panel.sampling == wanted and sampling.preset_name == CUSTOM
    panel.open_conversation(second)
    assert sampling.preset_name == "Precise" and panel.sampling.temperature == 0.2

    # An older chat without stored sampling takes its last answer's.
    old = history.create_conversation("Old")
    history.add_message(old, "user", "Hi")
    answer = history.start_assistant_message(
        old, model="m", settings={"sampling": Sampling(temperature=0.5).to_dict()}
    )
    history.finish(answer, content="Hello")
    panel.open_conversation(old)
    assert panel.sampling.temperature == 0.5 and sampling.preset_name == CUSTOM
    # One that never stored any gets the defaults, not the chat shown before.
    bare = history.create_conversation("Bare")
    history.add_message(bare, "user", "Hi")
    panel.open_conversation(bare)
    assert panel.sampling == DEFAULT_SAMPLING and sampling.preset_name == "Balanced"


def test_the_models_recommended_values_are_offered_and_picked_for_a_new_chat(
    qtbot: Any, fake: FakeEngine, history: ChatHistory, tmp_path: Path
) -> None:
    path = write_model(
        tmp_path / "recommends.gguf",
        SynthModel(extra_kv={"general.sampling.temp": 0.6, "general.sampling.top_k": 20}),
    )
    panel = show(qtbot, ChatPanel(fake, history))
    with qtbot.waitSignal(panel.sampling_panel.samplingChanged, timeout=5000):
        fake.finish_load(path=str(path))  # the header is read off the GUI thread
    assert panel.sampling_panel.preset_name == RECOMMENDED
    assert panel.sampling.temperature == pytest.approx(0.6) and panel.sampling.top_k == 20
    assert panel.sampling.min_p == DEFAULT_SAMPLING.min_p
    assert "general.sampling" in panel.sampling_panel.source.text()
    chat = ask(panel, fake, "Hi", "Hello")
    assert chat.temperature == pytest.approx(0.6) and chat.top_k == 20

    # Unloaded: the recommendation goes with the model; the chat keeps its values.
    fake.unload()
    qtbot.waitUntil(lambda: panel.sampling_panel.preset.findText(RECOMMENDED) < 0)
    assert panel.sampling.temperature == pytest.approx(0.6)


# --------------------------------------------------------------------------- keys


def test_enter_sends_and_shift_enter_makes_a_new_line_and_it_is_configurable(
    qtbot: Any, fake: FakeEngine, history: ChatHistory
) -> None:
    fake.finish_load()
    panel = show(qtbot, ChatPanel(fake, history))
    assert panel.enter_sends and "Enter sends · Shift+Enter: new line" in panel.keys_hint.text()
    type_message(qtbot, panel, "First line")
    qtbot.keyClick(panel.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(panel.input, "second line")
    assert fake.chats == []
    assert panel.input.toPlainText() == "First line\nsecond line"
    qtbot.keyClick(panel.input, Qt.Key.Key_Return)
    assert [m["content"] for m in fake.chats[-1].messages] == ["First line\nsecond line"]
    fake.stream(["ok"])
    fake.finish(1)

    panel.set_enter_sends(False)
    assert "Ctrl+Enter sends · Enter: new line" in panel.keys_hint.text()
    assert "(Ctrl+Enter sends)" in panel.input.placeholderText()
    type_message(qtbot, panel, "One")
    qtbot.keyClick(panel.input, Qt.Key.Key_Return)
    qtbot.keyClicks(panel.input, "two")
    assert len(fake.chats) == 1 and panel.input.toPlainText() == "One\ntwo"
    qtbot.keyClick(panel.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert len(fake.chats) == 2 and fake.chats[-1].messages[-1]["content"] == "One\ntwo"


# --------------------------------------------------------------------------- messages


def test_copy_puts_the_message_on_the_clipboard(
    qtbot: Any, fake: FakeEngine, history: ChatHistory
) -> None:
    fake.finish_load()
    panel = show(qtbot, ChatPanel(fake, history))
    ask(panel, fake, "Say **hi**", "Hi **there**\n\n- a list")
    QGuiApplication.clipboard().clear()
    click_link(qtbot, panel, "copy", 1)
    assert QGuiApplication.clipboard().text() == "Hi **there**\n\n- a list"  # the Markdown
    click_link(qtbot, panel, "copy", 0)
    assert QGuiApplication.clipboard().text() == "Say **hi**"
    assert panel.status_label.text() == "Copied the message."


def test_edit_and_resend_drops_what_followed(
    qtbot: Any, fake: FakeEngine, history: ChatHistory
) -> None:
    fake.finish_load()
    panel = show(qtbot, ChatPanel(fake, history))
    ask(panel, fake, "Name a fruit", "Apple")
    ask(panel, fake, "Name a colour", "Red")
    ask(panel, fake, "Name a city", "Paris")
    click_link(qtbot, panel, "edit", 2)  # "Name a colour"
    assert panel.edit_bar.isVisible() and panel.send_button.text() == "Send edited"
    assert panel.input.toPlainText() == "Name a colour"

    # Esc stops editing and keeps the chat as it was.
    qtbot.keyClick(panel.input, Qt.Key.Key_Escape)
    assert not panel.edit_bar.isVisible() and panel.input.toPlainText() == ""
    assert len(panel.transcript.entries) == 6

    click_link(qtbot, panel, "edit", 2)
    panel.input.selectAll()
    qtbot.keyClicks(panel.input, "Name a dark colour")
    qtbot.keyClick(panel.input, Qt.Key.Key_Return)
    assert [m["content"] for m in fake.chats[-1].messages] == [
        "Name a fruit",
        "Apple",
        "Name a dark colour",
    ]
    fake.stream(["Black"])
    fake.finish(1)
    assert [e.text for e in panel.transcript.entries] == [
        "Name a fruit",
        "Apple",
        "Name a dark colour",
        "Black",
    ]
    assert not panel.edit_bar.isVisible()
    conversation = panel.conversation_id
    assert conversation is not None
    assert [m.content for m in history.messages(conversation)] == [
        "Name a fruit",
        "Apple",
        "Name a dark colour",
        "Black",
    ]


def test_regenerate_rewrites_the_last_answer_in_the_chat_and_the_history(
    qtbot: Any, fake: FakeEngine, history: ChatHistory
) -> None:
    fake.finish_load()
    panel = show(qtbot, ChatPanel(fake, history))
    assert not panel.regenerate_button.isVisible()
    ask(panel, fake, "Hi", "Hello")
    first = ask(panel, fake, "A joke?", "No.")
    assert panel.regenerate_button.isVisible() and panel.regenerate_button.isEnabled()
    qtbot.mouseClick(panel.regenerate_button, Qt.MouseButton.LeftButton)
    again = fake.chats[-1]
    assert again.id != first.id and again.messages == first.messages
    assert not panel.regenerate_button.isEnabled()  # while it answers
    fake.stream(["Why did the chicken…"])
    fake.finish(3)
    assert [e.text for e in panel.transcript.entries] == [
        "Hi",
        "Hello",
        "A joke?",
        "Why did the chicken…",
    ]
    conversation = panel.conversation_id
    assert conversation is not None
    assert [m.content for m in history.messages(conversation)][-1] == "Why did the chicken…"
    assert len(history.messages(conversation)) == 4
    # Ctrl+R does the same.
    qtbot.keyClick(panel.input, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    assert len(fake.chats) == 4 and fake.chats[-1].messages == first.messages


def test_unload_frees_the_model_and_keeps_the_chat(
    qtbot: Any, fake: FakeEngine, history: ChatHistory
) -> None:
    panel = show(qtbot, ChatPanel(fake, history))
    assert not panel.unload_button.isVisible()
    fake.finish_load()
    assert panel.unload_button.isVisible() and panel.unload_button.isEnabled()
    ask(panel, fake, "Hi", "Hello")
    qtbot.mouseClick(panel.unload_button, Qt.MouseButton.LeftButton)
    assert fake.unloads == 1
    assert not panel.unload_button.isVisible() and not panel.input.isEnabled()
    assert panel.model_label.text() == "No model loaded"
    assert [e.text for e in panel.transcript.entries] == ["Hi", "Hello"]
    assert panel.stack.currentWidget() is panel.transcript


# --------------------------------------------------------------------------- the chat list


def test_search_and_rename_chats(qtbot: Any, fake: FakeEngine, history: ChatHistory) -> None:
    fake.finish_load()
    panel = show(qtbot, ChatPanel(fake, history))
    for question in ("Dragons and knights", "Cats", "Sourdough bread"):
        panel.new_chat()
        ask(panel, fake, question, f"All about {question.lower()}: crumb")
    assert panel.history_titles() == ["Sourdough bread", "Cats", "Dragons and knights"]

    search = panel.chat_list.search
    qtbot.keyClicks(search, "crumb sour")
    qtbot.waitUntil(lambda: panel.history_titles() == ["Sourdough bread"])
    assert panel.chat_list.title.text() == 'Chats with "crumb sour"'
    search.clear()
    qtbot.keyClicks(search, "unicorns")
    qtbot.waitUntil(lambda: panel.history_titles() == [])
    assert panel.chat_list.no_match.isVisible()
    assert "unicorns" in panel.chat_list.no_match.text()
    search.clear()
    qtbot.waitUntil(lambda: len(panel.history_titles()) == 3)
    assert not panel.chat_list.no_match.isVisible()

    # F2 on the selected chat edits its title in place; Enter saves it.
    lst = panel.history_list
    lst.setFocus()
    lst.setCurrentRow(1)  # "Cats"
    cats = lst.conversation_of(lst.item(1))
    qtbot.keyClick(lst, Qt.Key.Key_F2)
    editor = QApplication.focusWidget()
    assert editor is not None and editor is not lst
    editor.selectAll()  # type: ignore[attr-defined]
    qtbot.keyClicks(editor, "Why cats purr")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: history.conversation(cats).title == "Why cats purr")
    assert "Why cats purr" in panel.history_titles()
    panel.rename_conversation(cats, "   ")  # an empty title keeps the old one
    assert history.conversation(cats).title == "Why cats purr"


def test_export_asks_where_and_writes_every_message(
    qtbot: Any, fake: FakeEngine, history: ChatHistory, tmp_path: Path
) -> None:
    fake.finish_load()
    panel = show(qtbot, ChatPanel(fake, history))
    panel.system_prompt.setPlainText("Be kind.")
    ask(panel, fake, "Hi / there?", "Hello!")
    ask(panel, fake, "Bye", "Goodbye.")
    conversation = panel.conversation_id
    assert conversation is not None

    dialog = panel.open_export_dialog()
    assert isinstance(dialog, QFileDialog) and dialog.isVisible()
    assert dialog.acceptMode() == QFileDialog.AcceptMode.AcceptSave
    assert dialog.nameFilters() == ["Markdown (*.md)", "JSON (*.json)"]
    markdown = tmp_path / "chat.md"
    dialog.selectFile(str(markdown))
    dialog.accept()
    text = markdown.read_text(encoding="utf-8")
    for message in history.messages(conversation):
        assert message.content in text
    assert panel.status_label.text() == "Exported the chat to chat.md (Markdown)."

    dialog = panel.open_export_dialog(conversation)
    assert dialog is not None
    dialog.selectNameFilter(JSON_FILTER)
    dialog.filterSelected.emit(JSON_FILTER)  # as picking it in the dialog's list does
    assert dialog.defaultSuffix() == "json"
    dialog.selectFile(str(tmp_path / "chat"))
    dialog.accept()
    data = json.loads((tmp_path / "chat.json").read_text(encoding="utf-8"))
    assert [m["content"] for m in data["messages"]] == [
        m.content for m in history.messages(conversation)
    ]
    assert [m["role"] for m in data["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    assert panel.export_conversation(conversation, tmp_path / "missing" / "x.md") is False
    assert panel.status_label.text().startswith("Could not export to x.md:")


# --------------------------------------------------------------------------- real engine


@pytest.fixture(scope="module")
def engine(qapp: Any) -> Iterator[EngineClient]:
    client = EngineClient()
    yield client
    client.shutdown()


@pytest.fixture
def gemma_engine(qtbot: Any, engine: EngineClient, gemma_path: Path) -> EngineClient:
    if engine.state != "ready":
        with qtbot.waitSignal(engine.loaded, timeout=LOAD_MS):
            engine.load(p.Load(path=str(gemma_path), n_ctx=1024, n_threads=1))
    return engine


def answer_with(qtbot: Any, engine: EngineClient, action: Any) -> p.Done:
    with qtbot.waitSignal(engine.done, timeout=ANSWER_MS) as blocker:
        action()
    done = blocker.args[0]
    assert isinstance(done, p.Done)
    return done


@pytest.mark.engine
def test_gemma_the_sampling_reaches_the_worker_and_regenerate_rewrites(
    qtbot: Any, gemma_engine: EngineClient, history: ChatHistory
) -> None:
    panel = show(qtbot, ChatPanel(gemma_engine, history))
    # Greedy (temperature 0) and a 6-token limit: the worker must use both.
    panel.sampling_panel.temperature.setValue(0.0)
    panel.sampling_panel.max_tokens.setValue(6)
    type_message(qtbot, panel, "Write a sentence about the moon.")
    done = answer_with(qtbot, gemma_engine, lambda: qtbot.keyClick(panel.input, Qt.Key.Key_Return))
    assert done.stop_reason == "length" and done.generated_tokens == 6
    first = panel.transcript.entries[-1].text
    assert first.strip()

    # Regenerated with the same greedy settings: the same words again, stored once.
    done = answer_with(qtbot, gemma_engine, panel.regenerate)
    assert done.generated_tokens == 6
    assert panel.transcript.entries[-1].text == first
    assert len(panel.transcript.entries) == 2
    conversation = panel.conversation_id
    assert conversation is not None
    saved = history.messages(conversation)
    assert [m.role for m in saved] == ["user", "assistant"]
    assert saved[-1].content == first and saved[-1].settings["sampling"]["temperature"] == 0.0

    # Regenerated with a longer limit: a longer answer replaces it.
    panel.sampling_panel.max_tokens.setValue(12)
    done = answer_with(qtbot, gemma_engine, panel.regenerate)
    assert done.generated_tokens > 6
    longer = panel.transcript.entries[-1].text
    assert longer.startswith(first.rstrip()[:8]) and len(longer) > len(first)
    assert [m.content for m in history.messages(conversation)][-1] == longer


@pytest.mark.engine
def test_gemma_edit_and_resend_answers_the_edited_question(
    qtbot: Any, gemma_engine: EngineClient, history: ChatHistory
) -> None:
    panel = show(qtbot, ChatPanel(gemma_engine, history))
    panel.sampling = Sampling(temperature=0.0, seed=1, max_tokens=8)
    for question in ("Name a fruit.", "Name a colour."):
        type_message(qtbot, panel, question)
        answer_with(qtbot, gemma_engine, lambda: qtbot.keyClick(panel.input, Qt.Key.Key_Return))
    assert len(panel.transcript.entries) == 4

    click_link(qtbot, panel, "edit", 0)
    panel.input.selectAll()
    qtbot.keyClicks(panel.input, "Name an animal.")
    done = answer_with(qtbot, gemma_engine, lambda: qtbot.keyClick(panel.input, Qt.Key.Key_Return))
    assert done.prompt_tokens > 0
    entries = panel.transcript.entries
    assert [(e.kind, e.turn) for e in entries] == [("user", 0), ("assistant", 1)]
    assert entries[0].text == "Name an animal." and entries[1].text.strip()
    conversation = panel.conversation_id
    assert conversation is not None
    saved = history.messages(conversation)
    assert [(m.role, m.content) for m in saved] == [
        ("user", "Name an animal."),
        ("assistant", entries[1].text),
    ]
    assert saved[-1].status == "complete"


@pytest.mark.engine
def test_gemma_answers_with_every_preset(
    qtbot: Any, gemma_engine: EngineClient, history: ChatHistory
) -> None:
    """Each preset's values are ones llama.cpp takes (Creative turns top-k off with 0)."""
    panel = show(qtbot, ChatPanel(gemma_engine, history))
    for name in ("Precise", "Balanced", "Creative"):
        panel.sampling_panel.apply_preset(name)
        panel.sampling_panel.max_tokens.setValue(4)
        panel.sampling_panel.seed.setValue(7)
        type_message(qtbot, panel, f"Say something ({name}).")
        done = answer_with(qtbot, gemma_engine, panel.send)
        assert 0 < done.generated_tokens <= 4, name
        saved = history.messages(panel.conversation_id or -1)[-1]
        preset = preset_named(name)
        assert preset is not None
        assert saved.settings["sampling"]["temperature"] == preset.sampling.temperature
        assert saved.settings["sampling"]["top_k"] == preset.sampling.top_k


# The offscreen platform cannot raise or grab for the popup menu; the menu still works.
@pytest.mark.qt_log_ignore(
    "does not support propagateSizeHints", "does not support raise", "grabbing the keyboard"
)
def test_the_list_menu_exports_and_deletes(
    qtbot: Any, fake: FakeEngine, history: ChatHistory, tmp_path: Path
) -> None:
    fake.finish_load()
    panel = show(qtbot, ChatPanel(fake, history))
    ask(panel, fake, "Keep me", "Kept")
    panel.new_chat()
    ask(panel, fake, "Delete me", "Gone soon")
    doomed = panel.conversation_id
    assert doomed is not None
    lst = panel.history_list
    row = next(i for i in range(lst.count()) if lst.item(i).text() == "Delete me")
    point = lst.visualItemRect(lst.item(row)).center()
    chosen: list[str] = []

    def pick(text: str) -> None:
        menu = QApplication.activePopupWidget()
        if menu is None:  # not open yet: look again soon
            QTimer.singleShot(50, lambda: pick(text))
            return
        actions = [a for a in menu.actions() if a.text() == text]
        chosen.append(text)
        menu.setActiveAction(actions[0])
        qtbot.keyClick(menu, Qt.Key.Key_Return)

    # Export… opens the save dialog for that chat.
    QTimer.singleShot(0, lambda: pick("Export…"))
    lst.customContextMenuRequested.emit(point)
    assert chosen == ["Export…"]
    assert panel.export_dialog is not None and panel.export_dialog.isVisible()
    assert 'Export "Delete me"' in panel.export_dialog.windowTitle()
    panel.export_dialog.reject()

    # Delete this chat… asks first; Yes deletes it and shows a new chat.
    def confirm() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(50, confirm)
            return
        assert '"Delete me"' in box.text()
        box.button(QMessageBox.StandardButton.Yes).click()

    QTimer.singleShot(0, lambda: pick("Delete this chat…"))
    QTimer.singleShot(0, confirm)
    lst.customContextMenuRequested.emit(point)
    qtbot.waitUntil(lambda: panel.history_titles() == ["Keep me"])
    assert panel.conversation_id is None and panel.transcript.entries == []
    assert [c.title for c in history.list_conversations()] == ["Keep me"]
