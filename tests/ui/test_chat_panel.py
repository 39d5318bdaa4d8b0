"""ChatPanel: streaming Markdown, stats, keys, history, and what a crash leaves behind.

Two kinds of tests:

* with :class:`FakeEngine` (the EngineClient's signals, driven by the test): rendering,
  throttling, every failure and its fix button, the history; fast, no llama.cpp;
* marked ``engine``: the real worker with Gemma 3 270M behind a real EngineClient, typed
  into with the keyboard (Ctrl+Enter, Esc, Ctrl+N), and a SIGKILL of the worker mid-answer.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QObject, Qt, Signal

from desktop.core.history import ChatHistory
from desktop.core.sampling import Sampling
from desktop.engine import protocol as p
from desktop.services.engine_client import EngineClient
from desktop.services.signals import emit
from desktop.ui.chat_panel import ChatPanel, fewer_gpu_layers, stats_line

LOAD_MS = 120_000
ANSWER_MS = 120_000
MODEL_PATH = "/models/tiny-model-Q4_K_M.gguf"


class FakeEngine(QObject):
    """The EngineClient's signals and the methods the panel calls, driven by the test."""

    hello = Signal(object)
    loadProgress = Signal(float)
    loaded = Signal(object)
    unloaded = Signal()
    token = Signal(object)
    done = Signal(object)
    error = Signal(object)
    crashed = Signal(str, str, str)
    stateChanged = Signal(str)
    loadStarted = Signal(object)
    modelKept = Signal(object)
    apiEvent = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.state = "stopped"
        self.model: p.Loaded | None = None
        self.last_load: p.Load | None = None
        self.chats: list[p.Chat] = []
        self.stops = 0
        self.retries: list[int] = []
        self.unloads = 0

    def set_state(self, state: str) -> None:
        self.state = state
        emit(self.stateChanged, state)

    def finish_load(self, gpu_layers: int = 0, path: str = MODEL_PATH) -> None:
        self.last_load = p.Load(path=path, n_gpu_layers=gpu_layers, n_ctx=2048)
        self.model = p.Loaded(
            n_ctx=2048,
            n_gpu_layers=gpu_layers,
            n_layers=32,
            chat_template="gguf",
            chat_format="chat_template.default",
            buffers={},
            load_seconds=1.0,
        )
        emit(self.loaded, self.model)
        self.set_state("ready")

    def chat(self, request: p.Chat) -> str:
        self.chats.append(request)
        self.set_state("generating")
        return request.id

    def stop(self) -> None:
        self.stops += 1
        self.set_state("stopping")

    def retry_with(self, n_gpu_layers: int) -> str:
        self.retries.append(n_gpu_layers)
        self.set_state("loading")
        return "retry"

    def unload(self) -> str | None:
        self.unloads += 1
        self.model = None
        emit(self.unloaded)
        self.set_state("idle")
        return "unload"

    def stream(self, pieces: list[str]) -> None:
        chat = self.chats[-1]
        for index, text in enumerate(pieces):
            emit(self.token, p.Token(text=text, t=100.0 + index / 40, index=index, id=chat.id))

    def finish(self, tokens: int, reason: str = "stop") -> p.Done:
        done = p.Done(
            prompt_tokens=12,
            generated_tokens=tokens,
            ttft_s=0.25,
            prompt_tokens_per_s=48.0,
            gen_tokens_per_s=42.0,
            stop_reason=reason,  # type: ignore[arg-type]
            id=self.chats[-1].id,
        )
        emit(self.done, done)
        self.set_state("ready")
        return done

    def crash(self, kind: str, message: str, suggestion: str) -> None:
        self.model = None
        self.set_state("stopped")
        emit(self.crashed, kind, message, suggestion)


@pytest.fixture
def history(tmp_path: Path) -> Iterator[ChatHistory]:
    with ChatHistory(tmp_path / "history.sqlite3") as opened:
        yield opened


@pytest.fixture
def fake() -> FakeEngine:
    return FakeEngine()


def show(qtbot: Any, panel: ChatPanel) -> ChatPanel:
    qtbot.addWidget(panel)
    panel.resize(980, 640)
    panel.show()
    qtbot.waitExposed(panel)
    panel.activateWindow()
    qtbot.waitUntil(panel.isActiveWindow)  # shortcuts need an active window
    return panel


def ctrl_enter(qtbot: Any, panel: ChatPanel) -> None:
    qtbot.keyClick(panel.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)


def type_message(qtbot: Any, panel: ChatPanel, text: str) -> None:
    panel.input.setFocus()
    qtbot.keyClicks(panel.input, text)


# --------------------------------------------------------------------------- fake engine


def test_input_is_disabled_until_a_model_is_loaded(
    qtbot: Any, fake: FakeEngine, history: ChatHistory
) -> None:
    panel = show(qtbot, ChatPanel(fake, history))
    assert panel.stack.currentWidget() is panel.empty_state
    assert panel.empty_state.heading.text() == "Load a model to start chatting"
    assert not panel.input.isEnabled() and not panel.send_button.isEnabled()
    assert panel.input.placeholderText() == "Load a model to start chatting"
    assert panel.model_label.text() == "No model loaded"

    fake.set_state("loading")
    assert "loading" in panel.empty_state.body.text()
    assert panel.status_label.text() == "Loading the model…"

    fake.finish_load()
    assert panel.stack.currentWidget() is panel.transcript
    assert panel.input.isEnabled()
    assert panel.model_label.text() == "tiny-model-Q4_K_M"
    assert "(Enter sends)" in panel.input.placeholderText()
    assert not panel.send_button.isEnabled()  # nothing typed yet
    type_message(qtbot, panel, "Hi")
    assert panel.send_button.isEnabled()
    for widget in (panel.input, panel.send_button, panel.stop_button, panel.history_list):
        assert widget.accessibleName()


def test_answer_streams_as_markdown_and_shows_its_stats(
    qtbot: Any, fake: FakeEngine, history: ChatHistory
) -> None:
    fake.finish_load()
    panel = show(qtbot, ChatPanel(fake, history, sampling=Sampling(temperature=0.2, seed=7)))
    type_message(qtbot, panel, "Explain **bold** please")
    ctrl_enter(qtbot, panel)

    (chat,) = fake.chats
    assert chat.messages == [{"role": "user", "content": "Explain **bold** please"}]
    assert (chat.temperature, chat.seed) == (0.2, 7)
    assert panel.input.toPlainText() == ""
    assert panel.stop_button.isEnabled() and not panel.send_button.isEnabled()
    assert not panel.history_list.isEnabled()

    fake.stream(["Here", " is", " **bold**", " text", ".\n\n", "- one\n", "- two"])
    answer = panel.transcript.entries[-1]
    assert answer.streaming and answer.text == ""  # not drawn at once: on the render timer
    qtbot.waitUntil(lambda: "Here is bold text." in panel.transcript.toPlainText())
    markdown = panel.transcript.document().toMarkdown()
    assert "**bold**" in markdown and "- one" in markdown

    done = fake.finish(7)
    assert not panel.answering
    line = "42.0 tokens/s · first token after 0.25 s · 7 tokens"
    assert panel.transcript.entries[-1].stats == line
    assert line in panel.transcript.toPlainText()

    conversation = panel.conversation_id
    assert conversation is not None
    user, assistant = history.messages(conversation)
    assert (user.role, user.content) == ("user", "Explain **bold** please")
    assert assistant.status == "complete"
    assert assistant.content == "Here is **bold** text.\n\n- one\n- two"
    assert assistant.model == "tiny-model-Q4_K_M"
    assert assistant.settings["load"]["n_ctx"] == 2048
    assert assistant.settings["sampling"]["seed"] == 7
    assert assistant.stats["gen_tokens_per_s"] == done.gen_tokens_per_s
    assert panel.history_titles() == ["Explain **bold** please"]


def test_a_flood_of_tokens_is_rendered_a_few_times_not_per_token(
    qtbot: Any, fake: FakeEngine, history: ChatHistory
) -> None:
    fake.finish_load()
    panel = show(qtbot, ChatPanel(fake, history))
    renders: list[int] = []
    draw = panel.transcript.set_answer_text
    panel.transcript.set_answer_text = lambda text: (renders.append(len(text)), draw(text))[1]
    type_message(qtbot, panel, "Count")
    panel.send()
    fake.stream([f" {i}" for i in range(2000)])
    qtbot.waitUntil(lambda: len(renders) >= 1)
    assert renders == [len("".join(f" {i}" for i in range(2000)))]
    fake.finish(2000)
    assert len(renders) == 2  # the final render


def test_second_message_sends_the_conversation_and_system_prompt(
    qtbot: Any, fake: FakeEngine, history: ChatHistory
) -> None:
    fake.finish_load()
    panel = show(qtbot, ChatPanel(fake, history))
    qtbot.mouseClick(panel.system_toggle, Qt.MouseButton.LeftButton)
    assert panel.system_prompt.isVisible()
    panel.system_prompt.setPlainText("Answer in French.")
    for question, answer in (("Hello", "Bonjour"), ("How are you?", "Bien")):
        panel.input.setPlainText(question)
        panel.send()
        fake.stream([answer])
        fake.finish(1)
    assert fake.chats[-1].messages == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "How are you?"},
    ]
    conversation = panel.conversation_id
    assert conversation is not None
    roles = [m.role for m in history.messages(conversation)]
    assert roles == ["system", "user", "assistant", "user", "assistant"]  # system saved once


def test_stop_keeps_the_answer_so_far(qtbot: Any, fake: FakeEngine, history: ChatHistory) -> None:
    fake.finish_load()
    panel = show(qtbot, ChatPanel(fake, history))
    panel.input.setPlainText("Tell me a story")
    panel.send()
    fake.stream(["Once", " upon"])
    qtbot.keyClick(panel.input, Qt.Key.Key_Escape)
    assert fake.stops == 1 and panel.status_label.text() == "Stopping…"
    fake.finish(2, reason="user")
    assert panel.transcript.entries[-1].stats.endswith("stopped by you")
    assert panel.transcript.entries[-1].text == "Once upon"


@pytest.mark.parametrize(
    ("kind", "gpu_layers", "fix"),
    [
        ("killed", 28, "Reload with 21 GPU layers"),
        ("aborted", 4, "Reload with 2 GPU layers"),
        ("killed", 0, "Reload the model"),
        ("segfault", 28, "Reload the model"),
        ("illegal_instruction", 0, None),
    ],
)
def test_a_crash_keeps_the_chat_and_offers_the_fix(
    qtbot: Any,
    fake: FakeEngine,
    history: ChatHistory,
    kind: str,
    gpu_layers: int,
    fix: str | None,
) -> None:
    fake.finish_load(gpu_layers)
    panel = show(qtbot, ChatPanel(fake, history))
    reloads: list[int] = []
    panel.reloadRequested.connect(reloads.append)
    panel.input.setPlainText("First question")
    panel.send()
    fake.stream(["First answer"])
    fake.finish(2)
    panel.input.setPlainText("Second question")
    panel.send()
    fake.stream(["Partial", " answer"])

    message = "The model worker was killed while answering, most likely by the OS."
    fake.crash(kind, message, "Load the model with fewer GPU layers.")

    assert not panel.answering
    kinds = [entry.kind for entry in panel.transcript.entries]
    assert kinds == ["user", "assistant", "user", "assistant", "error"]
    assert panel.transcript.entries[3].text == "Partial answer"
    assert panel.transcript.entries[3].note.startswith("Interrupted")
    assert panel.transcript.entries[4].text == message
    assert panel.stack.currentWidget() is panel.transcript  # the chat stays readable
    assert not panel.input.isEnabled()  # no model until it is reloaded
    assert panel.error_bar.isVisible()
    assert panel.error_bar.label.text().endswith("Your chat is kept.")

    conversation = panel.conversation_id
    assert conversation is not None
    saved = history.messages(conversation)
    assert [m.status for m in saved] == ["complete", "complete", "complete", "interrupted"]
    assert saved[-1].content == "Partial answer"
    assert saved[-1].stats == {"interrupted": message}

    if fix is None:
        assert not panel.fix_button.isVisible()
        return
    assert panel.fix_button.isVisible() and panel.fix_button.text() == fix
    layers = fewer_gpu_layers(gpu_layers) if "GPU layers" in fix else gpu_layers
    with qtbot.waitSignal(panel.reloadRequested):
        qtbot.mouseClick(panel.fix_button, Qt.MouseButton.LeftButton)
    assert fake.retries == [layers] and reloads == [layers]
    assert not panel.error_bar.isVisible()
    fake.finish_load(layers)
    assert panel.input.isEnabled()

    # The next question carries the whole conversation; the cut-off answer counts as what
    # the model said.
    panel.input.setPlainText("Third question")
    panel.send()
    assert [m["content"] for m in fake.chats[-1].messages] == [
        "First question",
        "First answer",
        "Second question",
        "Partial answer",
        "Third question",
    ]


def test_stop_timeout_error_offers_a_reload(
    qtbot: Any, fake: FakeEngine, history: ChatHistory
) -> None:
    fake.finish_load(10)
    panel = show(qtbot, ChatPanel(fake, history))
    panel.input.setPlainText("A long prompt")
    panel.send()
    panel.stop()
    fake.set_state("stopped")
    emit(
        fake.error,
        p.Error(
            kind="stop_timeout",
            message="The model did not stop within 2 s, so its worker was ended. "
            "Load the model again to continue.",
            id=fake.chats[-1].id,
        ),
    )
    assert panel.transcript.entries[-2].note == "Interrupted: no answer."
    assert panel.fix_button.text() == "Reload the model"
    qtbot.mouseClick(panel.fix_button, Qt.MouseButton.LeftButton)
    assert fake.retries == [10]

    # An unanswered question is left out of the next context (roles must alternate).
    fake.finish_load(10)
    panel.input.setPlainText("Again")
    panel.send()
    assert fake.chats[-1].messages == [{"role": "user", "content": "Again"}]


def test_a_worker_ended_without_a_report_does_not_leave_the_answer_hanging(
    qtbot: Any, fake: FakeEngine, history: ChatHistory
) -> None:
    fake.finish_load()
    panel = show(qtbot, ChatPanel(fake, history))
    panel.input.setPlainText("Hello")
    panel.send()
    fake.stream(["Hi"])
    fake.set_state("stopped")  # e.g. EngineClient.kill(): no crash report
    qtbot.waitUntil(lambda: not panel.answering)
    assert panel.transcript.entries[-1].kind == "error"
    assert panel.fix_button.text() == "Reload the model"


def test_history_lists_and_reopens_conversations(
    qtbot: Any, fake: FakeEngine, history: ChatHistory
) -> None:
    first = history.create_conversation("Dragons")
    history.add_message(first, "system", "Be brief.")
    history.add_message(first, "user", "What do dragons eat?")
    answer = history.start_assistant_message(first, model="/m/gemma-3-270m-Q4_K_M.gguf")
    history.mark_interrupted(answer, "The worker crashed.", content="Mostly *knights*")
    second = history.create_conversation("Cats")

    panel = show(qtbot, ChatPanel(fake, history))
    assert panel.history_titles() == ["Cats", "Dragons"]
    panel.history_list.item(1).setSelected(True)
    assert panel.conversation_id == first
    assert panel.stack.currentWidget() is panel.transcript  # readable without a model
    text = panel.transcript.toPlainText()
    assert "What do dragons eat?" in text and "Mostly knights" in text
    assert "Interrupted: The worker crashed." in text
    assert panel.transcript.entries[1].name == "gemma-3-270m-Q4_K_M"
    assert panel.system_prompt.toPlainText() == "Be brief."

    panel.history_list.item(0).setSelected(True)
    assert panel.conversation_id == second and panel.transcript.entries == []
    assert panel.system_prompt.toPlainText() == ""

    qtbot.keyClick(panel.input, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert panel.conversation_id is None
    assert panel.history_list.selectedItems() == []


def test_links_and_images_in_answers_are_safe(
    qtbot: Any, fake: FakeEngine, history: ChatHistory
) -> None:
    fake.finish_load()
    panel = show(qtbot, ChatPanel(fake, history))
    panel.input.setPlainText("Show me")
    panel.send()
    fake.stream(["![x](file:///etc/passwd) [site](https://example.com) <script>x</script>"])
    fake.finish(1)
    assert panel.transcript.loadResource(2, "file:///etc/passwd") is None
    assert not panel.transcript.openLinks()
    assert "<script>x</script>" in panel.transcript.toPlainText()  # shown, not run


@pytest.mark.parametrize(
    ("stats", "line"),
    [
        ({}, ""),
        (
            {
                "gen_tokens_per_s": 12.345,
                "ttft_s": 1.5,
                "generated_tokens": 1,
                "stop_reason": "length",
            },
            "12.3 tokens/s · first token after 1.50 s · 1 token · reached the length limit",
        ),
    ],
)
def test_stats_line(stats: dict[str, Any], line: str) -> None:
    assert stats_line(stats) == line


# --------------------------------------------------------------------------- real engine


@pytest.fixture(scope="module")
def engine(qapp: Any) -> Iterator[EngineClient]:
    """One worker for the module's engine tests (loading Gemma once, not per test)."""
    client = EngineClient()
    yield client
    client.shutdown()


@pytest.fixture
def gemma_engine(qtbot: Any, engine: EngineClient, gemma_path: Path) -> EngineClient:
    """The shared client with Gemma loaded (again, after a test killed its worker)."""
    if engine.state != "ready":
        with qtbot.waitSignal(engine.loaded, timeout=LOAD_MS):
            engine.load(p.Load(path=str(gemma_path), n_ctx=1024, n_threads=1))
    return engine


@contextmanager
def connected(sig: Any, slot: Callable[..., Any]) -> Iterator[None]:
    """Connect for the duration of a block (the engine outlives the test's panel)."""
    sig.connect(slot)
    try:
        yield
    finally:
        sig.disconnect(slot)


def gemma_panel(qtbot: Any, engine: EngineClient, history: ChatHistory, **kw: Any) -> ChatPanel:
    sampling = Sampling(temperature=0.0, seed=1, max_tokens=kw.pop("max_tokens", 40))
    return show(qtbot, ChatPanel(engine, history, sampling=sampling, **kw))


@pytest.mark.engine
def test_gemma_answer_streams_into_the_view(
    qtbot: Any, gemma_engine: EngineClient, history: ChatHistory
) -> None:
    panel = gemma_panel(qtbot, gemma_engine, history, max_tokens=48)
    seen_while_streaming: list[str] = []

    def look(_token: p.Token) -> None:
        seen_while_streaming.append(panel.transcript.entries[-1].text)

    type_message(qtbot, panel, "Write a short poem about the sea.")
    with (
        connected(gemma_engine.token, look),
        qtbot.waitSignal(gemma_engine.done, timeout=ANSWER_MS) as blocker,
    ):
        ctrl_enter(qtbot, panel)
        assert panel.answering
    done = blocker.args[0]
    assert done.generated_tokens > 5
    assert any(seen_while_streaming), "the view was never updated before the answer ended"
    answer = panel.transcript.entries[-1]
    assert answer.text.strip() and not answer.streaming
    assert answer.stats == stats_line(
        {
            "gen_tokens_per_s": done.gen_tokens_per_s,
            "ttft_s": done.ttft_s,
            "generated_tokens": done.generated_tokens,
            "stop_reason": done.stop_reason,
        }
    )
    assert "tokens/s · first token after" in panel.transcript.toPlainText()

    conversation = panel.conversation_id
    assert conversation is not None
    user, assistant = history.messages(conversation)
    assert user.content == "Write a short poem about the sea."
    assert assistant.status == "complete" and assistant.content == answer.text
    assert assistant.model == "gemma-3-270m-Q4_K_M"
    assert assistant.settings["load"]["n_threads"] == 1
    assert assistant.stats["generated_tokens"] == done.generated_tokens


@pytest.mark.engine
def test_gemma_escape_stops_mid_answer(
    qtbot: Any, gemma_engine: EngineClient, history: ChatHistory
) -> None:
    panel = gemma_panel(qtbot, gemma_engine, history, max_tokens=600)

    def escape_at_fifth(token: p.Token) -> None:
        if token.index == 4:
            qtbot.keyClick(panel.input, Qt.Key.Key_Escape)

    type_message(qtbot, panel, "Tell me a long story about a dragon and a knight.")
    with (
        connected(gemma_engine.token, escape_at_fifth),
        qtbot.waitSignal(gemma_engine.done, timeout=ANSWER_MS) as blocker,
    ):
        ctrl_enter(qtbot, panel)
    done = blocker.args[0]
    assert done.stop_reason == "user" and done.generated_tokens < 600
    assert panel.transcript.entries[-1].stats.endswith("stopped by you")
    assert panel.transcript.entries[-1].text.strip()
    qtbot.waitUntil(lambda: gemma_engine.state == "ready")
    assert panel.input.isEnabled()


@pytest.mark.engine
def test_gemma_new_chat_and_history_after_reopening(
    qtbot: Any, gemma_engine: EngineClient, tmp_path: Path
) -> None:
    path = tmp_path / "history.sqlite3"
    with ChatHistory(path) as history:
        panel = gemma_panel(qtbot, gemma_engine, history, max_tokens=12)
        type_message(qtbot, panel, "Name three colours.")
        with qtbot.waitSignal(gemma_engine.done, timeout=ANSWER_MS):
            ctrl_enter(qtbot, panel)
        answer = panel.transcript.entries[-1].text
        qtbot.keyClick(panel.input, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
        assert panel.conversation_id is None and panel.transcript.entries == []
        assert panel.history_titles() == ["Name three colours."]
        panel.close()

    with ChatHistory(path) as reopened:
        again = show(qtbot, ChatPanel(gemma_engine, reopened))
        assert again.history_titles() == ["Name three colours."]
        again.history_list.item(0).setSelected(True)
        kinds = [(e.kind, e.text) for e in again.transcript.entries]
        assert kinds == [("user", "Name three colours."), ("assistant", answer)]
        assert "tokens/s" in again.transcript.entries[1].stats
        again.close()


@pytest.mark.engine
def test_gemma_worker_killed_mid_answer_keeps_the_chat(
    qtbot: Any, gemma_engine: EngineClient, history: ChatHistory
) -> None:
    panel = gemma_panel(qtbot, gemma_engine, history, max_tokens=8)
    type_message(qtbot, panel, "Say hello.")
    with qtbot.waitSignal(gemma_engine.done, timeout=ANSWER_MS):
        ctrl_enter(qtbot, panel)
    first_answer = panel.transcript.entries[-1].text

    pid = gemma_engine.pid
    assert pid is not None
    received: list[str] = []

    def kill_at_fourth(token: p.Token) -> None:
        received.append(token.text)
        if token.index == 3:
            os.kill(pid, signal.SIGKILL)

    panel.sampling = Sampling(temperature=0.0, seed=1, max_tokens=600)
    type_message(qtbot, panel, "Tell me a long story about a dragon.")
    with (
        connected(gemma_engine.token, kill_at_fourth),
        qtbot.waitSignal(gemma_engine.crashed, timeout=ANSWER_MS) as blocker,
    ):
        ctrl_enter(qtbot, panel)
    kind, message, _suggestion = blocker.args
    assert kind == "killed"

    entries = panel.transcript.entries
    assert [e.kind for e in entries] == ["user", "assistant", "user", "assistant", "error"]
    assert entries[1].text == first_answer  # earlier messages are kept
    assert entries[3].text == "".join(received) and entries[3].note.startswith("Interrupted")
    assert entries[4].text == message
    assert panel.error_bar.isVisible()
    assert panel.fix_button.text() == "Reload the model"  # CPU only: no layers to take off
    assert not panel.input.isEnabled()

    conversation = panel.conversation_id
    assert conversation is not None
    saved = history.messages(conversation)
    assert saved[-1].status == "interrupted"
    assert saved[-1].content == "".join(received) and len(received) >= 4
    assert saved[-1].stats == {"interrupted": message}

    with qtbot.waitSignal(gemma_engine.loaded, timeout=LOAD_MS):
        qtbot.mouseClick(panel.fix_button, Qt.MouseButton.LeftButton)
    assert gemma_engine.pid not in (None, pid)
    qtbot.waitUntil(panel.input.isEnabled)
    assert not panel.error_bar.isVisible()
