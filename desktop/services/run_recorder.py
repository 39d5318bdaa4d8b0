"""Every chat answer becomes a measured run: what the estimator said the devices would do,
what llama.cpp did, kept in the app's database so this computer's predictions learn.

The engine client's ``loadStarted`` hands the recorder the request of each load, with the
spec, the settings and the devices of its plan (:meth:`RunRecorder.expect`; a load without a
plan keeps the expectation it had); the engine client's ``loaded`` says where the layers
really went and how many threads llama.cpp uses; each ``done`` then stores one run
(:mod:`desktop.core.runs`). The refit runs on the thread pool, and ``figuresChanged`` hands
the new :class:`~desktop.core.calibration.SpeedFigures` back on the GUI thread.

QtCore only (an import-linter contract).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from desktop.core.calibration import SpeedFigures, SpeedRun
from desktop.core.estimate import Device, Settings, resolved_threads, speed_work
from desktop.core.modelspec import ModelSpec
from desktop.core.runs import MIN_GENERATED_TOKENS, MeasuredRun, RunStore, load_figures
from desktop.engine import protocol as p
from desktop.services.engine_api import EngineEvents
from desktop.services.load_request import LoadRequest
from desktop.services.signals import emit
from desktop.services.tasks import Task, run_in_thread

__all__ = ["MIN_GENERATED_TOKENS", "RunRecorder"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Expected:
    spec: ModelSpec
    settings: Settings
    devices: tuple[Device, ...]
    model_file: str
    model_bytes: int


class RunRecorder(QObject):
    """Stores each chat answer's speed beside its prediction; refits the figures after."""

    figuresChanged = Signal(object)  # SpeedFigures
    runStored = Signal(int)  # the run's row id

    def __init__(
        self,
        engine: EngineEvents,
        machine: str | None = None,
        path: Path | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._machine = machine  # None until hardware detection says which computer this is
        self._path = path
        self._expected: _Expected | None = None
        self._loaded: p.Loaded | None = None  # what the worker said of the model it holds
        self._task: Task | None = None
        engine.loadStarted.connect(self._on_load_started)
        engine.loaded.connect(self._on_loaded)
        engine.unloaded.connect(self._on_unloaded)
        engine.done.connect(self._on_done)

    @property
    def machine(self) -> str | None:
        return self._machine

    def set_machine(self, machine: str) -> None:
        """Which computer the runs are measured on (desktop.core.runs.machine_key)."""
        self._machine = machine

    def expect(
        self,
        spec: ModelSpec,
        settings: Settings,
        devices: Sequence[Device],
        model_file: str,
        model_bytes: int,
    ) -> None:
        """The plan of the load that is about to start (what the next answers measure)."""
        self._expected = _Expected(spec, settings, tuple(devices), model_file, model_bytes)
        self._loaded = None

    def _on_load_started(self, request: LoadRequest) -> None:
        if request.spec is None or request.settings is None or not request.devices:
            return  # not planned (a bare protocol load): nothing to measure against
        name, size = Path(request.path).name, request.model_bytes
        self.expect(request.spec, request.settings, request.devices, name, size)

    def _on_loaded(self, loaded: p.Loaded) -> None:
        self._loaded = loaded

    def _on_unloaded(self, *_args: object) -> None:
        self._loaded = None

    def _on_done(self, done: p.Done) -> None:
        expected, loaded, machine = self._expected, self._loaded, self._machine
        if expected is None or loaded is None or machine is None:
            return
        if done.generated_tokens < MIN_GENERATED_TOKENS or done.stop_reason == "user":
            return  # too short to time well, or cut off by the person mid-token
        if not expected.devices:
            return
        layers = int(loaded.n_gpu_layers)
        work = speed_work(expected.spec, expected.settings, expected.devices, layers)
        threads = int(loaded.n_threads) or resolved_threads(expected.devices[-1], expected.settings)
        run = SpeedRun(
            work=tuple(work),
            threads=threads,
            decode_tokens_per_s=float(done.gen_tokens_per_s),
            # Not the prompt speed: a chat's later turns reuse the cached prefix, so
            # prompt_tokens / ttft overstates it. bench and calibrate measure it from a fresh load.
            prompt_tokens_per_s=None,
        )
        measured = MeasuredRun(
            machine=machine,
            source="chat",
            model=expected.model_file,
            model_bytes=expected.model_bytes,
            run=run,
            details={
                "n_ctx": int(loaded.n_ctx),
                "gpu_layers": layers,
                "kv_type": expected.settings.kv_type,
                "flash_attn": expected.settings.flash_attn,
                "prompt_tokens": int(done.prompt_tokens),
                "generated_tokens": int(done.generated_tokens),
                "time_to_first_token_s": float(done.ttft_s),
            },
        )
        try:
            with RunStore(self._path) as store:
                row = store.add(measured)
        except (sqlite3.Error, OSError) as exc:  # a full disk: the chat goes on, unlearned
            log.warning("could not store the run for calibration: %s", exc)
            return
        emit(self.runStored, row)
        self.refit()

    def refit(self) -> None:
        """Fit this computer's figures again from its stored runs (on the thread pool);
        ``figuresChanged`` brings them back. Nothing before the machine is known."""
        machine, path = self._machine, self._path
        if machine is None:
            return
        self._task = run_in_thread(
            lambda: load_figures(machine, path), self._on_figures, self._on_fit_error, owner=self
        )

    def _on_figures(self, figures: SpeedFigures) -> None:
        self._task = None
        emit(self.figuresChanged, figures)

    def _on_fit_error(self, exc: BaseException) -> None:
        self._task = None
        log.warning("refitting the speed figures failed: %s", exc)
