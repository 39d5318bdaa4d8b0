"""desktop.core.crash: one reading of exit statuses for the worker and the backend probe."""

from __future__ import annotations

import signal

import pytest

from desktop.core import crash


@pytest.mark.parametrize(
    ("code", "crashed", "windows", "kind", "signum"),
    [
        (int(signal.SIGILL), True, False, crash.ILLEGAL_INSTRUCTION, int(signal.SIGILL)),
        (128 + int(signal.SIGKILL), False, False, crash.KILLED, int(signal.SIGKILL)),
        (int(signal.SIGABRT), True, False, crash.ABORTED, int(signal.SIGABRT)),
        (int(signal.SIGSEGV), True, False, crash.SEGFAULT, int(signal.SIGSEGV)),
        (int(signal.SIGTERM), True, False, crash.SIGNAL, int(signal.SIGTERM)),
        (0xC000001D, False, True, crash.ILLEGAL_INSTRUCTION, None),
        (0xC000001D - 2**32, False, True, crash.ILLEGAL_INSTRUCTION, None),  # Qt's signed int
        (0xC0000005, True, True, crash.SEGFAULT, None),  # QProcess says "crashed" on Windows
        (0xC0000409, False, True, crash.ABORTED, None),
        (3, False, True, crash.ABORTED, None),  # abort() on Windows
        (3, False, False, crash.EXITED, None),
        (1, False, False, crash.EXITED, None),
    ],
)
def test_exit_cause(code: int, crashed: bool, windows: bool, kind: str, signum: int | None) -> None:
    cause = crash.exit_cause(code, crashed=crashed, windows=windows)
    assert (cause.kind, cause.signal_number, cause.exit_code) == (kind, signum, code)


def test_returncode_cause_reads_negative_codes_as_signals() -> None:
    cause = crash.returncode_cause(-int(signal.SIGSEGV), windows=False)
    assert (cause.kind, cause.signal_name, cause.exit_code) == (
        crash.SEGFAULT,
        "SIGSEGV",
        -int(signal.SIGSEGV),
    )
    assert crash.returncode_cause(-99, windows=False).signal_name is None  # no such signal
    assert crash.returncode_cause(0xC000001D, windows=True).kind == crash.ILLEGAL_INSTRUCTION
    assert crash.returncode_cause(0, windows=False).kind == crash.EXITED
