"""Run a slow function on Qt's thread pool and get its result back on the GUI thread.

Hardware detection (a RAM bandwidth test and a llama.cpp subprocess), reading the catalog
and reading GGUF headers all take long enough to freeze a window, so they run here::

    task = run_in_thread(detect, on_done=state.set_real_profile, on_error=show_error)

``fn`` runs on a pool thread and must not touch widgets. Its result (or the exception it
raised) comes back as the :class:`Task`'s ``succeeded`` / ``failed`` signal, delivered on
the thread that called :func:`run_in_thread` through a queued connection, and the callbacks
run there too. Tests wait for those signals with ``qtbot.waitSignal``, never with sleeps.

A task started for a widget (or any QObject) names it as its ``owner``: when the owner has
been deleted by the time the result comes (its window or panel closed meanwhile), the
result is dropped instead of handed to callbacks that would touch deleted Qt objects.

No Qt object of a task is deleted where Qt forbids it. Not inside its own delivery: a
delivered task stays referenced until a zero timer has fired (a task nobody else holds
would otherwise be freed, and its QObject deleted, while Qt still handles the queued call
to it). Not on a pool thread: the carrier the pool thread emits on is a C++ child of its
task (dropping the pool thread's Python reference to it deletes nothing), and a delivered
task lets go of its callbacks at once, so the reference cycles through them (a callback's
widget holding its task) never leave the task for Python's cycle collector, which runs on
whichever thread happens to allocate.

QtCore only (an import-linter contract): no widgets here.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal, Slot

from desktop.services.signals import emit

__all__ = ["Task", "run_in_thread"]

# Tasks whose result has not been delivered yet (or was, a zero timer ago: see _finish).
# Python would otherwise be free to collect a Task nobody else holds while its runnable
# still runs, and the result would be lost.
_PENDING: set[Task] = set()


class _Carrier(QObject):
    """Emitted from the pool thread; lives in the caller's thread, so delivery is queued."""

    result = Signal(object)
    exception = Signal(object)


class _Runnable(QRunnable):
    def __init__(self, fn: Callable[[], Any], carrier: _Carrier) -> None:
        super().__init__()
        self._fn = fn
        self._carrier = carrier
        self.setAutoDelete(True)

    def run(self) -> None:
        try:
            value = self._fn()
        except Exception as exc:  # handed to the GUI thread, which decides what to show
            self._send(self._carrier.exception, exc)
        else:
            self._send(self._carrier.result, value)

    @staticmethod
    def _send(signal: Any, value: object) -> None:
        # If the app quit while this ran, Qt deleted the carrier: nobody wants the result.
        with contextlib.suppress(RuntimeError):
            emit(signal, value)


class Task(QObject):
    """One background call. ``succeeded(result)`` or ``failed(exception)``, exactly once."""

    succeeded = Signal(object)
    failed = Signal(object)

    def __init__(
        self,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        parent: QObject | None = None,
        *,
        owner: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._on_done = on_done
        self._on_error = on_error
        self._cancelled = False
        self._finished = False
        # A weak reference: the owner's callbacks may hold this task (no cycle through it).
        self._owner = weakref.ref(owner) if owner is not None else None
        if owner is not None:
            owner.destroyed.connect(self.cancel)
        # A child: owned by this task's C++ object, so the pool thread letting go of its
        # Python reference (when the runnable is deleted there) never deletes it there.
        self._carrier = _Carrier(self)
        self._carrier.result.connect(self._deliver_result)
        self._carrier.exception.connect(self._deliver_exception)

    @property
    def finished(self) -> bool:
        """True once the result or the exception has been delivered (or dropped)."""
        return self._finished

    @property
    def dropped(self) -> bool:
        """True when the result is (or was) not delivered: cancelled, or its owner is gone."""
        return self._cancelled or not self._owner_alive()

    @Slot()
    def cancel(self) -> None:
        """Drop the result when it comes; the function itself runs to its end."""
        self._cancelled = True

    def _owner_alive(self) -> bool:
        if self._owner is None:
            return True
        owner = self._owner()
        return owner is not None and shiboken6.isValid(owner)

    @Slot(object)
    def _deliver_result(self, value: object) -> None:
        on_done = self._finish()
        if on_done is None:
            return
        if on_done[0] is not None:
            on_done[0](value)
        emit(self.succeeded, value)

    @Slot(object)
    def _deliver_exception(self, exc: object) -> None:
        on_error = self._finish()
        if on_error is None:
            return
        if on_error[1] is not None:
            assert isinstance(exc, BaseException)
            on_error[1](exc)
        emit(self.failed, exc)

    def _finish(
        self,
    ) -> tuple[Callable[[Any], None] | None, Callable[[BaseException], None] | None] | None:
        """Mark the task delivered and let go of its callbacks (returned, unless the result
        is dropped: None)."""
        self._finished = True
        # Not _PENDING.discard(self) here: that may be the last reference, and Python would
        # then delete this QObject inside its own queued call (PySide's qt_metacall, under
        # QObject::event), which Qt forbids; a use-after-free, and a crash some runs later.
        # The release waits for a zero timer, whose event is delivered to another object.
        QTimer.singleShot(0, lambda: _PENDING.discard(self))
        callbacks = (self._on_done, self._on_error)
        self._on_done = self._on_error = None
        return None if self.dropped else callbacks


def run_in_thread(
    fn: Callable[[], Any],
    on_done: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    *,
    pool: QThreadPool | None = None,
    owner: QObject | None = None,
) -> Task:
    """Start ``fn()`` on ``pool`` (Qt's global pool by default) and return its :class:`Task`.

    ``on_done(result)`` or ``on_error(exception)`` is called on the calling thread, before
    the task's signal of the same meaning. An ``fn`` that raises never takes the app down.
    With an ``owner`` (the widget or object the callbacks belong to), nothing is called
    when the owner has been deleted by then. ``fn`` must not touch Qt objects.
    """
    task = Task(on_done, on_error, owner=owner)
    _PENDING.add(task)
    (pool or QThreadPool.globalInstance()).start(_Runnable(fn, task._carrier))
    return task
