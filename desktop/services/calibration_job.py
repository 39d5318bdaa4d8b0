"""``llm-workbench calibrate`` run from the window, in a process of its own.

The measurement loads models through the worker, which a GUI thread must never wait for, so
the window starts the headless command as a QProcess (the frozen app re-runs itself with
``calibrate``) and shows its progress lines; when it ends, the app refits this computer's
speed figures from the runs it stored.

QtCore only (an import-linter contract).
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal

from desktop.core.children import engine_environment
from desktop.services.signals import emit

__all__ = ["CalibrationJob", "calibrate_command"]


def calibrate_command() -> list[str]:
    """The command that runs ``llm-workbench calibrate`` with this interpreter or app."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "calibrate"]
    return [sys.executable, "-m", "desktop.cli", "calibrate"]


class CalibrationJob(QObject):
    """One calibration at a time; ``progress`` carries its lines, ``finished`` the outcome."""

    progress = Signal(str)
    finished = Signal(bool, str)  # succeeded, the last line it printed (or why it failed)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._process: QProcess | None = None
        self._last = ""
        self._errors = ""

    def start(self) -> None:
        if self._process is not None:
            return
        process = QProcess(self)
        environment = QProcessEnvironment()
        for key, value in engine_environment().items():
            environment.insert(key, value)
        process.setProcessEnvironment(environment)
        process.readyReadStandardOutput.connect(self._read_output)
        process.readyReadStandardError.connect(self._read_errors)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        command = calibrate_command()
        self._process = process
        self._last = ""
        self._errors = ""
        process.start(command[0], command[1:])

    def cancel(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.waitForFinished(5000)

    def _read_output(self) -> None:
        if self._process is None:
            return
        text = bytes(self._process.readAllStandardOutput().data()).decode("utf-8", "replace")
        for line in text.splitlines():
            if line.strip():
                self._last = line.strip()
                emit(self.progress, self._last)

    def _read_errors(self) -> None:
        if self._process is not None:
            data = bytes(self._process.readAllStandardError().data())
            self._errors = (self._errors + data.decode("utf-8", "replace"))[-2000:]

    def _on_finished(self, exit_code: int, _status: object) -> None:
        self._process = None
        if exit_code == 0:
            emit(self.finished, True, self._last)
            return
        reason = self._errors.strip().splitlines()[-1:] or [f"exit code {exit_code}"]
        emit(self.finished, False, f"Calibration failed: {reason[0]}")

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self._process is not None:
            self._process = None
            emit(self.finished, False, "Calibration could not start.")
