"""Measured runs beside their predictions, in the app's SQLite database, and the speed
figures this computer has earned from them.

Every ``bench``, every ``calibrate`` and every chat answer stores one row: the model (name,
file size), where its layers were (the devices' work per token as the estimator placed it),
the threads, the context and its fill, KV type, flash attention, the measured decode and
prompt speed and time to first token, the worker's peak RSS and, with NVML, its VRAM, and
what was predicted. :func:`load_figures` fits :class:`~desktop.core.calibration.SpeedFigures`
from the runs of *this* computer (keyed by its CPU and GPUs, so a database copied to another
machine does not mislead it).

The table lives in the chat history's database file (``history.sqlite3``), WAL mode, one
transaction per write, like the history itself.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.core.calibration import DEFAULT_FIGURES, DeviceWork, SpeedFigures, SpeedRun, fit
from desktop.core.history import default_history_path

__all__ = [
    "MIN_GENERATED_TOKENS",
    "MeasuredRun",
    "RunStore",
    "load_figures",
    "machine_key",
    "profile_machine_key",
]

#: Only the newest runs count: a machine's figures follow its present drivers and build.
MAX_RUNS_FITTED = 200
#: Answers shorter than this say little about decode speed (a handful of tokens, timed from
#: the first to the last, is mostly noise); they are not stored.
MIN_GENERATED_TOKENS = 16

_SCHEMA = """
CREATE TABLE IF NOT EXISTS speed_runs (
    id INTEGER PRIMARY KEY,
    machine TEXT NOT NULL,
    created REAL NOT NULL,
    source TEXT NOT NULL,
    model TEXT NOT NULL,
    model_bytes INTEGER NOT NULL,
    threads INTEGER NOT NULL,
    decode_tokens_per_s REAL,
    prompt_tokens_per_s REAL,
    predicted_tokens_per_s REAL,
    predicted_prompt_tokens_per_s REAL,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS speed_runs_by_machine ON speed_runs (machine, id);
"""


def machine_key(cpu_brand: str, gpu_names: Sequence[str], backends: Sequence[str]) -> str:
    """Which computer a run was measured on: its CPU, GPUs and llama.cpp backends."""
    return json.dumps([cpu_brand, sorted(gpu_names), sorted(backends)])


@dataclass(frozen=True)
class MeasuredRun:
    """One run as stored: the fit's input plus what a person may want to look at later."""

    machine: str
    source: str  # "bench", "calibrate", "chat", "self-test"
    model: str  # file name
    model_bytes: int
    run: SpeedRun
    predicted_tokens_per_s: float | None = None
    predicted_prompt_tokens_per_s: float | None = None
    #: n_ctx, context_tokens, kv_type, flash_attn, gpu_layers, layers per device,
    #: ttft_s, peak_rss_bytes, vram_bytes: whatever the caller measured.
    details: Mapping[str, Any] = field(default_factory=dict)
    created: float = 0.0  # seconds since the epoch (0: now, when stored)


class RunStore:
    """The ``speed_runs`` table of the app's database."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_history_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=10)
        self._conn.execute("PRAGMA journal_mode=WAL")
        with self._conn:
            self._conn.executescript(_SCHEMA)

    def add(self, measured: MeasuredRun) -> int:
        run = measured.run
        details = dict(measured.details)
        details["work"] = [w.to_dict() for w in run.work]
        details["gpu_overhead_bytes"] = dict(run.gpu_overhead_bytes)
        with self._conn:
            cursor = self._conn.execute(
                "INSERT INTO speed_runs (machine, created, source, model, model_bytes, threads,"
                " decode_tokens_per_s, prompt_tokens_per_s, predicted_tokens_per_s,"
                " predicted_prompt_tokens_per_s, details) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    measured.machine,
                    measured.created or time.time(),
                    measured.source,
                    measured.model,
                    int(measured.model_bytes),
                    int(run.threads),
                    run.decode_tokens_per_s,
                    run.prompt_tokens_per_s,
                    measured.predicted_tokens_per_s,
                    measured.predicted_prompt_tokens_per_s,
                    json.dumps(details),
                ),
            )
        return int(cursor.lastrowid or 0)

    def runs(self, machine: str, limit: int = MAX_RUNS_FITTED) -> list[MeasuredRun]:
        """This machine's newest runs, oldest first."""
        rows = self._conn.execute(
            "SELECT machine, created, source, model, model_bytes, threads, decode_tokens_per_s,"
            " prompt_tokens_per_s, predicted_tokens_per_s, predicted_prompt_tokens_per_s,"
            " details FROM speed_runs WHERE machine = ? ORDER BY id DESC LIMIT ?",
            (machine, limit),
        ).fetchall()
        out = []
        for row in reversed(rows):
            try:
                out.append(_measured(row))
            except (ValueError, KeyError, TypeError):  # a row from a future format: skip it
                continue
        return out

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _measured(row: Sequence[Any]) -> MeasuredRun:
    details = json.loads(row[10])
    work = tuple(DeviceWork.from_dict(w) for w in details.pop("work", []))
    overhead = {str(k): int(v) for k, v in details.pop("gpu_overhead_bytes", {}).items()}
    return MeasuredRun(
        machine=row[0],
        created=float(row[1]),
        source=row[2],
        model=row[3],
        model_bytes=int(row[4]),
        run=SpeedRun(
            work=work,
            threads=int(row[5]),
            decode_tokens_per_s=row[6],
            prompt_tokens_per_s=row[7],
            gpu_overhead_bytes=overhead,
        ),
        predicted_tokens_per_s=row[8],
        predicted_prompt_tokens_per_s=row[9],
        details=details,
    )


def load_figures(machine: str, path: Path | str | None = None) -> SpeedFigures:
    """This computer's speed figures: fitted from its stored runs, the defaults without any.

    A database that cannot be opened or read gives the defaults (never raises): a prediction
    from bandwidth is better than none.
    """
    try:
        with RunStore(path) as store:
            runs = [m.run for m in store.runs(machine) if m.run.work]
    except (sqlite3.Error, OSError):
        return DEFAULT_FIGURES
    return fit(runs) if runs else DEFAULT_FIGURES


def profile_machine_key(profile: Any) -> str:
    """:func:`machine_key` of a HardwareProfile."""
    backends = getattr(getattr(profile, "backends", None), "backends", ()) or ()
    return machine_key(
        str(getattr(profile.cpu, "brand", "unknown CPU")),
        [str(g.name) for g in getattr(profile, "gpus", ())],
        [str(b) for b in backends],
    )
