"""The chat tests' FakeEngine implements ChatEngine, the part of the engine interface it stands for.

mypy checks the real :class:`EngineClient` against :class:`EngineLike` (the assignment at the
end of desktop/services/engine_client.py), but the tests are not type-checked, so this test
checks the chat tests' ``FakeEngine`` member by member: every member of
:class:`ChatEngine` (and its base :class:`EngineEvents`) is there, a signal as a Qt signal
with the real client's argument types, a property as a value of its annotated type, a method
with the same parameters and annotations. A member added to the interface, or renamed on one
side, fails here.
"""

from __future__ import annotations

import inspect
import os
from typing import Protocol, get_type_hints

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QMetaMethod, QObject, Signal, SignalInstance
from ui.test_chat_panel import FakeEngine

from desktop.services.engine_api import ChatEngine, EngineEvents, EngineLike
from desktop.services.engine_client import EngineClient


def protocol_members(proto: type) -> dict[str, object]:
    """Every public member a Protocol declares, its bases' included, by name."""
    members: dict[str, object] = {}
    for cls in reversed(proto.__mro__):
        if cls in (object, Protocol) or not getattr(cls, "_is_protocol", False):
            continue
        members.update((name, v) for name, v in vars(cls).items() if not name.startswith("_"))
    return members


def signal_signatures(cls: type[QObject]) -> dict[str, str]:
    """{name: "name(QString,QString,QString)"} for the signals a QObject class declares."""
    meta = cls.staticMetaObject
    methods = (meta.method(i) for i in range(meta.methodOffset(), meta.methodCount()))
    return {
        bytes(m.name().data()).decode(): bytes(m.methodSignature().data()).decode()
        for m in methods
        if m.methodType() == QMetaMethod.MethodType.Signal
    }


def parameters(function: object) -> list[tuple[str, object, object]]:
    """A function's parameters by name, kind and default (their types: get_type_hints)."""
    assert callable(function)
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def is_signal(member: object) -> bool:
    return isinstance(member, property) and get_type_hints(member.fget)["return"] is SignalInstance


def test_the_interface_lists_what_the_window_uses() -> None:
    signals = {name for name, m in protocol_members(EngineEvents).items() if is_signal(m)}
    assert signals == set(signal_signatures(EngineClient))  # every signal the client has
    chat = set(protocol_members(ChatEngine)) - signals
    assert chat == {"state", "model", "last_load", "chat", "stop", "retry_with", "unload"}
    assert set(protocol_members(EngineLike)) - signals - chat == {
        "current_load",
        "load",
        "shutdown",
    }


def test_fake_engine_has_every_member_of_chat_engine() -> None:
    fake = FakeEngine()
    fake_signals, real_signals = signal_signatures(FakeEngine), signal_signatures(EngineClient)
    for name, member in protocol_members(ChatEngine).items():
        assert hasattr(fake, name), f"FakeEngine has no {name}"
        if is_signal(member):
            assert isinstance(getattr(FakeEngine, name), Signal), name
            assert fake_signals[name] == real_signals[name]
        elif isinstance(member, property):
            wanted = get_type_hints(member.fget)["return"]
            value = getattr(fake, name)
            assert isinstance(value, wanted), f"FakeEngine.{name} = {value!r}, not {wanted}"
        else:
            method = getattr(FakeEngine, name)
            assert parameters(method) == parameters(member), name
            assert get_type_hints(method) == get_type_hints(member), name


@pytest.mark.parametrize("name", sorted(protocol_members(EngineLike)))
def test_engine_client_members_have_the_interface_types(name: str) -> None:
    """What mypy checks, once more at run time: the same checks the FakeEngine gets."""
    member = protocol_members(EngineLike)[name]
    real = getattr(EngineClient, name)
    if is_signal(member):
        assert isinstance(real, Signal)
    elif isinstance(member, property):
        assert isinstance(real, property)
        assert get_type_hints(real.fget)["return"] == get_type_hints(member.fget)["return"]
    else:
        assert parameters(real) == parameters(member)
        assert get_type_hints(real) == get_type_hints(member)
