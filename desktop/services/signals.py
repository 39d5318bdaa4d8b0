"""``emit(signal, *args)``: Signal.emit without PySide6 6.12's reference leak on Python 3.11.

PySide6 6.12.0's ``SignalInstance.emit`` returns ``True`` without taking a new
reference to it. On Python 3.11, where ``True`` is an ordinary reference-counted
object, every emit from Python therefore lowers its count by one; after some
hundreds of emits (one per streamed token) the interpreter frees ``True`` and
aborts with "Fatal Python error: bool_dealloc". Python 3.12 made ``True``
immortal, so there the leak is harmless.

This module measures the leak once at import, on a private signal, and, only
where it exists, gives the reference back after each emit. Every signal the
services emit from Python goes through :func:`emit`.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

from PySide6.QtCore import QObject, Signal, SignalInstance

_PROBE_EMITS = 8


def _incref(obj: object) -> None:
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))


class _Probe(QObject):
    ping = Signal()


def _measure_leak() -> bool:
    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(_PROBE_EMITS):
        probe.ping.emit()
    leaked = before - sys.getrefcount(True)
    for _ in range(max(leaked, 0)):  # undo the probe's own damage
        _incref(True)
    return leaked >= _PROBE_EMITS


#: True when this PySide6 and Python lose a reference to emit's result on each call.
EMIT_LEAKS_RESULT = _measure_leak()


def emit(signal: SignalInstance, *args: Any) -> None:
    """``signal.emit(*args)``, returning the reference PySide6 6.12 drops (if it does)."""
    # PySide6's stubs say emit returns None; at run time it returns a bool.
    result: object = signal.emit(*args)  # type: ignore[func-returns-value]
    if EMIT_LEAKS_RESULT and isinstance(result, bool):
        _incref(result)
