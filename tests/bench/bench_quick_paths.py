"""Benchmark: the quick paths whose speed the unit, UI and engine tests used to assert.

Those tests keep the behaviour (the header is read in a few MB, the second start hashes
nothing, the cache answers, Stop ends the answer early); how fast it is on this machine is
a figure, measured here and printed beside its target, so a busy shared test machine never
fails a test for being slow. Each line: what, the figure, the target, ok or MISSED.

* Gemma 3 270M's GGUF header parsed (262k-token vocabulary): target < 1 s
  (was tests/unit/test_gguf_reader.py::test_gemma_header);
* the starter model's second start (size check against its marker, no hashing): < 0.5 s
  (was tests/unit/test_library.py::test_starter_model_is_assembled_once);
* the hardware check's RAM bandwidth measurement, first run: < 1.5 s
  (was tests/unit/test_hardware.py::test_real_bandwidth_measurement_is_quick_and_cached);
* the models table re-evaluating every catalog row for a new context: < 1 s here
  (< 100 ms on a desktop; was tests/ui/test_main_window.py::test_whole_table_reevaluates...);
* a cached llama.cpp dry run answered from its cache: < 0.5 s
  (was tests/engine/test_dryrun.py::test_results_are_cached_by_file_settings_and_build;
  the uncached dry runs' own times are tests/bench/bench_dryrun.py's);
* Stop to the worker's Done while Gemma streams: < 200 ms
  (was tests/engine/test_worker.py::test_stop_ends_generation_within_200_ms).

    .venv/bin/python tests/bench/bench_quick_paths.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests")]

from real_models import gemma_file  # noqa: E402

Measure = Callable[[Path], float]


def header_parse(_scratch: Path) -> float:
    from desktop.core.gguf import read_header_file

    path = gemma_file()
    started = time.perf_counter()
    read_header_file(path)
    return time.perf_counter() - started


def starter_second_start(scratch: Path) -> float:
    from desktop.core.library import ensure_starter_model

    models = scratch / "models"
    if ensure_starter_model(models) is None:
        raise RuntimeError("the starter model package is not installed")
    started = time.perf_counter()
    ensure_starter_model(models)
    return time.perf_counter() - started


def bandwidth_first_run(scratch: Path) -> float:
    from desktop.core.hardware import detect

    started = time.perf_counter()
    detect(cache_dir=scratch / "hardware", check_backends=False)
    return time.perf_counter() - started


def table_reevaluation(scratch: Path) -> float:
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from desktop.core.catalog import load_catalog
    from desktop.core.hardware import detect
    from desktop.core.rows import catalog_rows
    from desktop.ui.models_table import ModelsTableModel
    from desktop.ui.state import WorkbenchState

    app = QApplication.instance() or QApplication([])
    state = WorkbenchState(n_ctx=4096)
    state.set_real_profile(detect(cache_dir=scratch / "hardware", check_backends=False))
    table = ModelsTableModel(state)
    table.set_rows(catalog_rows(load_catalog()))
    seconds: list[float] = []
    loop = QEventLoop()
    table.rowsEvaluated.connect(lambda s: (seconds.append(float(s)), loop.quit()))
    QTimer.singleShot(30_000, loop.quit)
    state.set_n_ctx(16384)
    if not seconds:
        loop.exec()
    del app
    if not seconds:
        raise RuntimeError("the table did not re-evaluate within 30 s")
    return seconds[0]


def cached_dry_run(scratch: Path) -> float:
    from dataclasses import replace

    from desktop.core.dryrun import dry_run, dry_run_request
    from desktop.core.estimate import Device, Settings, estimate
    from desktop.core.gguf import read_header_file
    from desktop.core.modelspec import spec_from_header

    path = gemma_file()
    cpu = Device("CPU", "cpu", 64 * 2**30, 20 * 10**9, 1e11, cpu_features=("avx2",))
    spec = spec_from_header(read_header_file(path))
    plan = estimate(spec, replace(Settings(n_ctx=1024), n_gpu_layers=0), [cpu])
    cache = scratch / "dryrun"
    dry_run(path, dry_run_request(plan), build="bench", cache_dir=cache)
    started = time.perf_counter()
    answer = dry_run(path, dry_run_request(plan), build="bench", cache_dir=cache)
    elapsed = time.perf_counter() - started
    if not answer.cached:
        raise RuntimeError("the second dry run was not answered from the cache")
    return elapsed


def stop_latency(_scratch: Path) -> float:
    from desktop.engine import protocol as p
    from desktop.engine.runner import WorkerRunner

    story = [{"role": "user", "content": "Tell me a long story about a dragon and a knight."}]
    with WorkerRunner() as runner:
        runner.load(p.Load(path=str(gemma_file()), n_ctx=1024, n_threads=1))
        chat = p.Chat(messages=story, max_tokens=800, seed=3, temperature=1.0)
        runner.send(chat)
        tokens, stop_sent = 0, 0.0
        for event in runner.events_for(chat.id, timeout=60):
            if isinstance(event, p.Token):
                tokens += 1
                if tokens == 5:
                    stop_sent = time.monotonic()
                    runner.stop()
            elif isinstance(event, p.Done):
                if event.stop_reason != "user":
                    raise RuntimeError(f"the answer ended by {event.stop_reason!r}, not Stop")
                return time.monotonic() - stop_sent
    raise RuntimeError("no Done from the worker")


#: (what, measure, target in seconds)
CASES: tuple[tuple[str, Measure, float], ...] = (
    ("Gemma 3 270M header parsed", header_parse, 1.0),
    ("starter model, second start", starter_second_start, 0.5),
    ("RAM bandwidth measured (first run)", bandwidth_first_run, 1.5),
    ("models table re-evaluated (16k context)", table_reevaluation, 1.0),
    ("dry run answered from its cache", cached_dry_run, 0.5),
    ("Stop to Done while streaming", stop_latency, 0.2),
)


def main() -> int:
    missed = 0
    print(f"{'what':42} {'figure':>10} {'target':>10}")
    with tempfile.TemporaryDirectory(prefix="llmw-bench-") as folder:
        for what, measure, target in CASES:
            seconds = measure(Path(folder))
            ok = seconds < target
            missed += not ok
            print(
                f"{what:42} {seconds * 1000:>7.0f} ms {'< ' + format(target * 1000, '.0f'):>7} ms"
                f"  {'ok' if ok else 'MISSED'}"
            )
    print("targets met" if not missed else f"{missed} TARGETS MISSED")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
