"""The chat's core features without Qt: sampling presets and a model's recommended values,
searching, editing and regenerating in the real SQLite history, exports written to real files,
and the model files a person adds by hand."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_server import write_split_model
from synth import SynthModel, write_model

from desktop.core.added_models import check_added_path, inside_folders, scan_local
from desktop.core.chat_export import export_chat
from desktop.core.conversation import ChatSession
from desktop.core.gguf import read_header_file
from desktop.core.history import ChatHistory
from desktop.core.sampling import (
    DEFAULT_SAMPLING,
    PRESETS,
    Sampling,
    preset_named,
    recommended_sampling,
    sampling_from_dict,
)
from desktop.core.settings import UserSettings, load_settings, save_settings


@pytest.fixture
def history(tmp_path: Path) -> Iterator[ChatHistory]:
    with ChatHistory(tmp_path / "history.sqlite3") as opened:
        yield opened


# --------------------------------------------------------------------------- sampling


def test_presets_have_distinct_values_and_say_where_they_come_from() -> None:
    names = [preset.name for preset in PRESETS]
    assert names == ["Precise", "Balanced", "Creative"]
    assert len({preset.sampling for preset in PRESETS}) == 3
    for preset in PRESETS:
        assert preset.source.endswith(".") and len(preset.source) > 40
    balanced = preset_named("Balanced")
    assert balanced is not None and balanced.sampling == DEFAULT_SAMPLING
    # llama.cpp's own defaults (common/common.h, common_params_sampling).
    assert (DEFAULT_SAMPLING.temperature, DEFAULT_SAMPLING.top_k) == (0.8, 40)
    assert (DEFAULT_SAMPLING.top_p, DEFAULT_SAMPLING.min_p) == (0.95, 0.05)
    precise, creative = preset_named("Precise"), preset_named("Creative")
    assert precise is not None and creative is not None
    assert precise.sampling.temperature < DEFAULT_SAMPLING.temperature
    assert creative.sampling.temperature > DEFAULT_SAMPLING.temperature
    assert "arXiv:2407.01082" in creative.source


def test_recommended_values_come_from_the_gguf_sampling_keys(tmp_path: Path) -> None:
    path = write_model(
        tmp_path / "recommends.gguf",
        SynthModel(
            extra_kv={
                "general.sampling.temp": 0.6,
                "general.sampling.top_k": 20,
                "general.sampling.top_p": 0.95,
            }
        ),
    )
    header = read_header_file(path)
    found = recommended_sampling(header.metadata)
    assert found is not None
    assert found.temperature == pytest.approx(0.6)
    assert found.top_k == 20 and isinstance(found.top_k, int)
    assert found.top_p == pytest.approx(0.95)
    assert found.min_p == DEFAULT_SAMPLING.min_p  # not in the file: the default stays
    plain = read_header_file(write_model(tmp_path / "plain.gguf", SynthModel()))
    assert recommended_sampling(plain.metadata) is None
    assert recommended_sampling({"general.sampling.temp": float("nan")}) is None


def test_stored_sampling_is_read_back_and_bad_values_are_ignored() -> None:
    stored = Sampling(temperature=0.3, top_k=5, seed=9, max_tokens=None).to_dict()
    assert sampling_from_dict({**stored, "preset": "Custom"}) == Sampling(
        temperature=0.3, top_k=5, seed=9, max_tokens=None
    )
    bad = {"temperature": "hot", "top_k": -3, "seed": True, "min_p": float("inf")}
    assert sampling_from_dict(bad) == DEFAULT_SAMPLING
    assert sampling_from_dict(None) == DEFAULT_SAMPLING


# --------------------------------------------------------------------------- history


def test_search_finds_titles_and_messages_and_escapes_wildcards(history: ChatHistory) -> None:
    dragons = history.create_conversation("Dragons")
    history.add_message(dragons, "user", "What do dragons eat?")
    cats = history.create_conversation("Cats")
    history.add_message(cats, "user", "Why do cats purr at 100% volume?")
    history.add_message(cats, "system", "secret instructions")
    assert [c.title for c in history.search_conversations("")] == ["Cats", "Dragons"]
    assert [c.title for c in history.search_conversations("DRAGON")] == ["Dragons"]
    assert [c.title for c in history.search_conversations("purr volume")] == ["Cats"]
    assert [c.title for c in history.search_conversations("100%")] == ["Cats"]
    assert history.search_conversations("0%v") == []  # % is literal, not a wildcard
    assert history.search_conversations("secret") == []  # system prompts are not searched
    assert history.search_conversations("cats dragons") == []  # every word must match


def test_sampling_is_stored_with_the_conversation_and_old_files_are_migrated(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite3"
    # A history file as schema 1 wrote it (no sampling column).
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE conversations (id INTEGER PRIMARY KEY, title TEXT NOT NULL,"
        " created REAL NOT NULL);"
        "INSERT INTO conversations (title, created) VALUES ('Old chat', 1.0);"
        "PRAGMA user_version = 1;"
    )
    conn.close()
    with ChatHistory(path) as history:
        (old,) = history.list_conversations()
        assert (old.title, old.sampling) == ("Old chat", {})
        history.set_conversation_sampling(old.id, {"temperature": 0.2, "preset": "Precise"})
    with ChatHistory(path) as reopened:
        assert reopened.conversation(old.id).sampling == {"temperature": 0.2, "preset": "Precise"}


def test_regenerate_drops_the_last_answer_and_asks_the_same_question(
    history: ChatHistory,
) -> None:
    session = ChatSession(history)
    session.ask("Hi", "Be brief.")
    session.begin_answer("a", model="m", settings={})
    session.add_token("a", "Hello!")
    session.finish({})
    session.ask("Name a colour", "Be brief.")
    session.begin_answer("b", model="m", settings={})
    session.add_token("b", "Blue")
    session.finish({})
    assert session.can_regenerate
    messages = session.regenerate("Be brief.")
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Name a colour"},
    ]
    assert not session.can_regenerate  # the question waits for its new answer
    conversation = session.conversation_id
    assert conversation is not None
    stored = [(m.role, m.content) for m in history.messages(conversation)]
    assert stored == [
        ("system", "Be brief."),
        ("user", "Hi"),
        ("assistant", "Hello!"),
        ("user", "Name a colour"),
    ]
    session.begin_answer("c", model="m", settings={})
    session.add_token("c", "Red")
    session.finish({})
    assert [m.content for m in history.messages(conversation)][-1] == "Red"


def test_editing_a_question_drops_it_and_what_followed(history: ChatHistory) -> None:
    session = ChatSession(history)
    for question in ("One", "Two", "Three"):
        session.ask(question, "")
        session.begin_answer(question, model="m", settings={})
        session.add_token(question, f"Answer {question}")
        session.finish({})
    session.ask("Four", "New system")  # a system prompt set after "Three"
    session.begin_answer("4", model="m", settings={})
    session.finish({})
    session.truncate(2)  # edit "Two"
    assert [turn.content for turn in session.turns] == ["One", "Answer One"]
    assert session.stored_system == ""  # the later system prompt went with what followed
    messages, created = session.ask("Two, edited", "")
    assert not created
    assert [m["content"] for m in messages] == ["One", "Answer One", "Two, edited"]
    conversation = session.conversation_id
    assert conversation is not None
    assert [m.content for m in history.messages(conversation)] == [
        "One",
        "Answer One",
        "Two, edited",
    ]
    with pytest.raises(ValueError, match="no turn"):
        session.truncate(9)


# --------------------------------------------------------------------------- export


def _chat_with_everything(history: ChatHistory) -> int:
    conversation = history.create_conversation("Sea | poems / mostly")
    history.add_message(conversation, "system", "Rhyme.")
    history.add_message(conversation, "user", "A poem about the sea, please.")
    answer = history.start_assistant_message(
        conversation,
        model="/models/gemma-3-270m-Q4_K_M.gguf",
        settings={"sampling": {"temperature": 0.8, "seed": 3}},
    )
    history.finish(
        answer,
        stats={"gen_tokens_per_s": 40.0, "generated_tokens": 12},
        content="The sea is **wide**.",
    )
    history.add_message(conversation, "user", "Another?")
    cut = history.start_assistant_message(conversation, model="/models/gemma.gguf")
    history.mark_interrupted(cut, "The worker was killed.", content="Waves")
    history.set_conversation_sampling(conversation, {"temperature": 0.8, "preset": "Balanced"})
    return conversation


def test_markdown_export_has_every_message(history: ChatHistory, tmp_path: Path) -> None:
    conversation = _chat_with_everything(history)
    path = tmp_path / "sea.md"
    assert export_chat(history, conversation, path) == "markdown"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Sea | poems / mostly\n")
    for message in history.messages(conversation):
        assert message.content in text
    for piece in (
        "## System prompt",
        "> Rhyme.",
        "## You",
        "## gemma-3-270m-Q4_K_M",
        "40.0 tokens/s",
        "Interrupted: The worker was killed.",
        "temperature 0.8",
    ):
        assert piece in text
    assert text.index("A poem about") < text.index("The sea is") < text.index("Another?")


def test_json_export_has_every_message_with_its_settings(
    history: ChatHistory, tmp_path: Path
) -> None:
    conversation = _chat_with_everything(history)
    path = tmp_path / "sea.JSON"
    assert export_chat(history, conversation, path) == "json"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == "llm-workbench-chat" and data["title"] == "Sea | poems / mostly"
    assert data["sampling"]["preset"] == "Balanced"
    saved = history.messages(conversation)
    assert [(m["role"], m["content"], m["status"]) for m in data["messages"]] == [
        (m.role, m.content, m.status) for m in saved
    ]
    assert data["messages"][2]["settings"]["sampling"]["seed"] == 3
    assert data["messages"][2]["stats"]["generated_tokens"] == 12
    with pytest.raises(OSError):
        export_chat(history, conversation, tmp_path / "no-such-folder" / "x.json")


# --------------------------------------------------------------------------- adding files


def test_only_real_gguf_files_can_be_added(tmp_path: Path) -> None:
    good = write_model(tmp_path / "good.gguf", SynthModel())
    assert check_added_path(good) is None
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"PK\x03\x04 a zip file")
    problems = {
        "text": check_added_path(text),
        "fake": check_added_path(fake),
        "folder": check_added_path(tmp_path),
        "gone": check_added_path(tmp_path / "gone.gguf"),
    }
    assert "notes.txt is not a GGUF model file" in str(problems["text"])
    assert "fake.gguf is named .gguf but is not a GGUF file" in str(problems["fake"])
    assert "is a folder" in str(problems["folder"]) and "Settings" in str(problems["folder"])
    assert "cannot be found" in str(problems["gone"])
    for sentence in problems.values():
        assert sentence is not None and sentence.endswith(".") and "\n" not in sentence


def test_added_files_are_listed_once_beside_the_folders(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (tmp_path / "elsewhere").mkdir()
    inside = write_model(folder / "inside.gguf", SynthModel())
    outside = write_model(tmp_path / "elsewhere" / "outside.gguf", SynthModel(n_layer=2))
    assert inside_folders(inside, [folder]) and not inside_folders(outside, [folder])
    found = scan_local(
        [folder],
        [outside, inside, outside, tmp_path / "deleted.gguf"],
        include_hf_cache=False,
        include_lm_studio=False,
    )
    assert [model.path.name for model in found] == ["inside.gguf", "outside.gguf"]
    assert all(model.status == "ready" and model.spec is not None for model in found)


def test_an_added_part_of_a_split_model_stands_for_the_whole_set(tmp_path: Path) -> None:
    parts = write_split_model(tmp_path / "big.gguf", SynthModel(), max_tensors=8)
    assert len(parts) >= 2
    (whole,) = scan_local(
        [], [parts[-1], parts[0]], include_hf_cache=False, include_lm_studio=False
    )
    assert whole.status == "ready" and whole.parts == tuple(parts)
    single = read_header_file(write_model(tmp_path / "one.gguf", SynthModel()))
    assert whole.spec is not None and whole.spec.n_layer == single.get("llama.block_count")
    parts[1].unlink()
    (broken,) = scan_local([], [parts[0]], include_hf_cache=False, include_lm_studio=False)
    assert broken.status == "partial" and "missing" in str(broken.problem)


def test_new_settings_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    assert UserSettings().enter_sends and not UserSettings().reload_last_model
    settings = UserSettings(
        extra_files=("/a/one.gguf",),
        enter_sends=False,
        reload_last_model=True,
        last_load={"path": "/a/one.gguf", "n_ctx": 2048},
    )
    save_settings(settings, path)
    assert load_settings(path) == settings
    path.write_text(json.dumps({"enter_sends": "yes", "last_load": {"n_ctx": 1}}))
    assert load_settings(path) == UserSettings()  # wrong types fall back to the defaults
