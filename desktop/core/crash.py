"""How a child process ended, read from its exit status: the one table of crash codes.

llama.cpp runs in child processes (the worker, the backend probe) because it can
kill the process it runs in. Whoever started one reads its end here:
:func:`exit_cause` turns an exit status into a :class:`ExitCause` with a ``kind``
("illegal_instruction", "killed", "aborted", "segfault", ...), and the caller
words the sentence a person reads (``desktop.services.engine_client`` for the
worker, ``desktop.core.hardware`` for the backend probe).

Both ways of reporting a status are read: QProcess's (:func:`exit_cause`: a
"crashed" flag with the signal number) and ``subprocess``'s
(:func:`returncode_cause`: a negative signal number). Either way a status of
128 plus a signal number is that signal seen through a shell, and on Windows an
NTSTATUS code says what went wrong.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass

ILLEGAL_INSTRUCTION = "illegal_instruction"  # a llama.cpp build for another CPU
KILLED = "killed"  # SIGKILL: on Linux most likely the out-of-memory killer
ABORTED = "aborted"  # abort(): a failed GGML_ASSERT, out of GPU memory
SEGFAULT = "segfault"  # a memory access error (Windows: access violation)
BUS_ERROR = "bus_error"  # a memory-mapped model file changed or was cut short
SIGNAL = "signal"  # ended by some other signal
EXITED = "exited"  # a plain exit status

# Windows reports a crash as an NTSTATUS exit code; abort() exits with 3.
WINDOWS_ACCESS_VIOLATION = 0xC0000005
WINDOWS_ILLEGAL_INSTRUCTION = 0xC000001D
WINDOWS_STACK_BUFFER_OVERRUN = 0xC0000409  # also what abort() becomes with /GS fast-fail
WINDOWS_ABORT_EXIT = 3

# Signals that do not exist on every system (Windows has neither) are looked up by name.
_SIGNAL_KINDS = {
    "SIGILL": ILLEGAL_INSTRUCTION,
    "SIGKILL": KILLED,
    "SIGABRT": ABORTED,
    "SIGSEGV": SEGFAULT,
    "SIGBUS": BUS_ERROR,
}
_WINDOWS_KINDS = {
    WINDOWS_ILLEGAL_INSTRUCTION: ILLEGAL_INSTRUCTION,
    WINDOWS_STACK_BUFFER_OVERRUN: ABORTED,
    WINDOWS_ACCESS_VIOLATION: SEGFAULT,
}


@dataclass(frozen=True)
class ExitCause:
    """What an exit status means."""

    kind: str  # one of the constants above
    exit_code: int  # the status as it was reported
    signal_number: int | None = None  # the POSIX signal that ended it, if one did

    @property
    def signal_name(self) -> str | None:
        """The signal that ended the process ("SIGSEGV"); None for none or an unknown one."""
        return signal_name(self.signal_number) if self.signal_number is not None else None


def signal_name(signum: int) -> str | None:
    """The name of signal ``signum`` ("SIGSEGV"), None when this system has no such signal."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return None


def exit_cause(exit_code: int, *, crashed: bool = False, windows: bool | None = None) -> ExitCause:
    """Read an exit status as QProcess reports it.

    ``crashed`` says ``exit_code`` is a signal number (QProcess's CrashExit on
    POSIX). Otherwise a status from 129 to 159 is a signal seen through a shell,
    and an NTSTATUS code is read whatever its sign (Qt hands Windows' unsigned
    codes over as a negative int). ``windows`` (default: this system is
    Windows) decides whether the plain status 3 is abort()'s.
    """
    windows = sys.platform == "win32" if windows is None else windows
    ntstatus_kind = _WINDOWS_KINDS.get(exit_code & 0xFFFFFFFF)
    if ntstatus_kind is not None:  # never a signal number, whatever QProcess calls it
        return ExitCause(ntstatus_kind, exit_code)
    signum: int | None = None
    if crashed:
        signum = exit_code
    elif 128 < exit_code < 160:
        signum = exit_code - 128
    if signum is not None:
        kind = _SIGNAL_KINDS.get(signal_name(signum) or "", SIGNAL)
        return ExitCause(kind, exit_code, signum)
    kind = ABORTED if windows and exit_code == WINDOWS_ABORT_EXIT else EXITED
    return ExitCause(kind, exit_code)


def returncode_cause(returncode: int, *, windows: bool | None = None) -> ExitCause:
    """Read a ``subprocess`` return code: negative is the signal that ended the process."""
    if returncode < 0:
        cause = exit_cause(-returncode, crashed=True, windows=windows)
        return ExitCause(cause.kind, returncode, cause.signal_number)
    return exit_cause(returncode, windows=windows)
