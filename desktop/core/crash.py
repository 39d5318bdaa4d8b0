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

import re
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


# --------------------------------------------------------------------------
# What the dead process said, and what the machine had


#: Lines of a debugger backtrace (ggml prints one through gdb when it aborts) and of Python's
#: faulthandler: where the process was, never why.
_BACKTRACE_LINE = re.compile(
    r"^(#\d+\s|0x[0-9a-f]+|\[(New )?(Inferior|Thread|LWP)|\d+\s+\S+: No such file|"
    r"\d+\s+in\s|Fatal Python error|Current thread|Thread 0x|File \"|Extension modules|"
    r"warning: |Using host libthread_db|Download failed|\(gdb\)|ptrace)",
    re.IGNORECASE,
)
_ASSERT = re.compile(r"GGML_ASSERT\(.*\) failed|GGML_ABORT|ggml_abort\b(?! \(\))")
_SOURCE_PATH = re.compile(r"^\S*/([^/\s]+\.(?:c|cc|cpp|cu|h|m|mm):\d+:)")
_ERROR_WORDS = ("error", "Error", "failed", "terminate called", "what()", "exception")


def is_backtrace_line(line: str) -> bool:
    """A debugger's or faulthandler's line (where the process was, not why)."""
    return bool(_BACKTRACE_LINE.match(line.strip()))


def llama_reason(stderr_text: str) -> str:
    """llama.cpp's own reason in a dead worker's stderr: its ``GGML_ASSERT(...) failed`` line,
    else the last error line before any backtrace; "" when it said none.

    A debugger backtrace (``#2 0x00007f... in ggml_abort () from libggml-base.so``) says where
    the process was, not why: its lines are never quoted (the log file keeps them).
    """
    lines = [line.strip() for line in stderr_text.splitlines() if line.strip()]
    said = [line for line in lines if not _BACKTRACE_LINE.match(line)]
    for line in said:
        if _ASSERT.search(line):
            return _short_source_path(line)[:300]
    for line in reversed(said):
        if any(word in line for word in _ERROR_WORDS):
            return _short_source_path(line)[:300]
    return ""


def _short_source_path(line: str) -> str:
    """"/tmp/pip-build/vendor/llama.cpp/src/llama-model.cpp:1364: GGML_ASSERT" -> the file
    name and line only: the build folder means nothing to a person."""
    return _SOURCE_PATH.sub(r"\1", line, count=1)


#: RAM was short when less than this share of it (or less than RAM_SHORT_BYTES) was available:
#: Linux's OOM killer acts once available memory is all but gone, so a machine with this much
#: free at the last sample did not run out.
RAM_SHORT_FRACTION = 0.05
RAM_SHORT_BYTES = 512 * 1024**2
VRAM_SHORT_FRACTION = 0.03
VRAM_SHORT_BYTES = 256 * 1024**2


@dataclass(frozen=True)
class MemoryFacts:
    """The machine's memory headroom a moment before a child died (the monitor's samples:
    the least free over the last few seconds). None: not known."""

    ram_available_bytes: int | None = None
    ram_total_bytes: int | None = None
    vram_free_bytes: int | None = None  # the GPU with the least free
    vram_total_bytes: int | None = None

    @property
    def ram_short(self) -> bool | None:
        return _short(
            self.ram_available_bytes, self.ram_total_bytes, RAM_SHORT_FRACTION, RAM_SHORT_BYTES
        )

    @property
    def vram_short(self) -> bool | None:
        return _short(
            self.vram_free_bytes, self.vram_total_bytes, VRAM_SHORT_FRACTION, VRAM_SHORT_BYTES
        )


def _short(free: int | None, total: int | None, fraction: float, floor: int) -> bool | None:
    if free is None or not total:
        return None
    return free < max(total * fraction, floor)
