"""emit(): thousands of emits leave the reference count of True where it was."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QObject, Signal

from desktop.services.signals import emit


class Emitter(QObject):
    happened = Signal(object)


def test_emit_keeps_true_alive() -> None:
    emitter = Emitter()
    seen: list[object] = []
    emitter.happened.connect(seen.append)
    before = sys.getrefcount(True)
    for i in range(5000):  # more than the references True has in a fresh interpreter
        emit(emitter.happened, i)
    assert sys.getrefcount(True) >= before - 2
    assert seen == list(range(5000))
