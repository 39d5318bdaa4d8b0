"""The speed model and its fit: figures from measured runs, robust to an outlier, stored in
real SQLite, keyed to the machine they were measured on."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from desktop.core.calibration import (
    DEFAULT_FIGURES,
    DeviceWork,
    SpeedFigures,
    SpeedRun,
    decode_seconds,
    fit,
    prompt_seconds,
)
from desktop.core.runs import MeasuredRun, RunStore, load_figures, machine_key
from desktop.core.threads import default_threads

GB = 1e9
BANDWIDTH = 30 * GB

#: A made-up machine, unlike the defaults: faster threads, a bigger fixed cost.
TRUE = replace(
    DEFAULT_FIGURES,
    per_token_seconds=0.004,
    cpu_thread_bytes_per_s=11 * GB,
    cpu_thread_scaling=0.95,
)


def _work(decode_gb: float) -> tuple[DeviceWork, ...]:
    return (DeviceWork("cpu", decode_gb * GB, BANDWIDTH, 2 * decode_gb * GB, 100e9),)


def _run(
    decode_gb: float, threads: int, figures: SpeedFigures = TRUE, scale: float = 1.0
) -> SpeedRun:
    work = _work(decode_gb)
    return SpeedRun(
        work=work,
        threads=threads,
        decode_tokens_per_s=scale / decode_seconds(work, threads, figures),
    )


def _ratio(figures: SpeedFigures, run: SpeedRun) -> float:
    """Predicted / measured decode speed."""
    predicted = 1 / decode_seconds(run.work, run.threads, figures)
    return predicted / float(run.decode_tokens_per_s or 1)


def test_roofline_cpu_rate_is_threads_or_memory_whichever_is_less() -> None:
    work = _work(4.0)
    one = decode_seconds(work, 1, DEFAULT_FIGURES) - DEFAULT_FIGURES.per_token_seconds
    assert one == pytest.approx(4 * GB / DEFAULT_FIGURES.cpu_thread_bytes_per_s)
    many = decode_seconds(work, 64, DEFAULT_FIGURES) - DEFAULT_FIGURES.per_token_seconds
    assert many == pytest.approx(4 * GB / (DEFAULT_FIGURES.cpu_decode_efficiency * BANDWIDTH))


def test_no_runs_keeps_the_defaults_and_says_so() -> None:
    figures = fit([])
    assert figures == DEFAULT_FIGURES
    assert not figures.calibrated
    assert figures.describe() == "not yet measured here: estimated from bandwidth"


def test_fit_recovers_a_machine_from_runs_of_several_sizes_and_threads() -> None:
    runs = [_run(gb, t) for gb in (0.25, 0.8, 2.0, 4.5) for t in (1, 2)]
    before = [_ratio(DEFAULT_FIGURES, r) for r in runs]
    assert max(abs(b - 1) for b in before) > 0.3  # the defaults are far off for this machine
    figures = fit(runs)
    assert figures.runs == len(runs)
    assert figures.describe() == "calibrated from 8 runs on this computer"
    for run in runs:
        assert _ratio(figures, run) == pytest.approx(1.0, abs=0.03)
    # And it predicts a size it never saw.
    unseen = _run(8.0, 2)
    assert _ratio(figures, unseen) == pytest.approx(1.0, abs=0.05)


def test_one_outlier_does_not_move_the_fit() -> None:
    runs = [_run(gb, t) for gb in (0.25, 2.0, 4.5) for t in (1, 2)]
    clean = fit(runs)
    noisy = fit([*runs, _run(2.0, 2, scale=0.4)])  # one run at 40% speed (the machine was busy)
    for run in runs:
        assert _ratio(noisy, run) == pytest.approx(_ratio(clean, run), abs=0.04)


def test_a_few_consistent_runs_move_the_fit() -> None:
    slow = replace(TRUE, cpu_thread_bytes_per_s=3 * GB)
    runs = [_run(gb, 2, slow) for gb in (0.8, 2.0, 4.5)]
    figures = fit(runs)
    for run in runs:
        assert _ratio(figures, run) == pytest.approx(1.0, abs=0.06)


def test_gpu_efficiency_is_fitted_per_backend() -> None:
    true = replace(TRUE, gpu_decode_efficiency={**TRUE.gpu_decode_efficiency, "cuda": 0.55})
    runs = []
    for gb in (2.0, 4.0, 8.0, 16.0):
        work = (DeviceWork("cuda", gb * GB, 1000 * GB), DeviceWork("cpu", 0.001 * GB, BANDWIDTH))
        runs.append(SpeedRun(work, 8, 1 / decode_seconds(work, 8, true)))
    figures = fit(runs)
    assert figures.gpu_efficiency("cuda") == pytest.approx(0.55, rel=0.05)
    assert figures.gpu_efficiency("metal") == DEFAULT_FIGURES.gpu_efficiency("metal")


def test_prompt_cost_and_efficiency_and_backend_overhead_come_from_measurements() -> None:
    # This machine: 6 ms per prompt token whatever the model, and 20% of the CPU's peak.
    true = replace(DEFAULT_FIGURES, cpu_compute_efficiency=0.2, prompt_per_token_seconds=0.006)
    runs = []
    for gb in (0.25, 1.0, 2.0, 4.5):
        work = _work(gb)
        prompt = 1 / (prompt_seconds(work, true) or 1.0)
        runs.append(SpeedRun(work, 2, 5.0, prompt, gpu_overhead_bytes={"cuda": 400 << 20}))
    figures = fit(runs)
    for run in runs:
        predicted = 1 / (prompt_seconds(run.work, figures) or 1.0)
        assert predicted == pytest.approx(run.prompt_tokens_per_s, rel=0.03)
    assert figures.cpu_compute_efficiency == pytest.approx(0.2, rel=0.1)
    assert figures.prompt_per_token_seconds == pytest.approx(0.006, rel=0.15)
    assert figures.overhead("cuda") == 400 << 20
    assert figures.measured_overhead_kinds == ("cuda",)
    assert figures.overhead("vulkan") == DEFAULT_FIGURES.overhead("vulkan")


def test_runs_are_stored_in_sqlite_per_machine(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    here = machine_key("AMD EPYC", [], ["cpu"])
    other = machine_key("Apple M2", ["Apple M2"], ["cpu", "metal"])
    with RunStore(db) as store:
        for gb in (0.25, 0.8, 2.0, 4.5):
            for t in (1, 2):
                store.add(MeasuredRun(here, "bench", f"m{gb}.gguf", int(gb * GB), _run(gb, t)))
        store.add(MeasuredRun(other, "bench", "x.gguf", 1, _run(1.0, 1, scale=10)))
        mine = store.runs(here)
    assert len(mine) == 8 and all(m.machine == here for m in mine)
    assert mine[0].run.work == _work(0.25) and mine[0].run.threads == 1
    figures = load_figures(here, db)
    assert figures.runs == 8
    assert _ratio(figures, _run(3.0, 2)) == pytest.approx(1.0, abs=0.05)
    assert load_figures(machine_key("new", [], ["cpu"]), db) == DEFAULT_FIGURES
    with sqlite3.connect(db) as conn:  # the same file as the chat history, its own table
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "speed_runs" in tables


def test_an_unreadable_database_gives_the_defaults(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    db.write_bytes(b"this is not a database" * 100)
    assert load_figures(machine_key("x", [], []), db) == DEFAULT_FIGURES


@pytest.mark.parametrize(
    ("physical", "logical", "usable", "expected"),
    [
        (2, 2, 2, 2),  # the 2-vCPU VM: both cores, not llama-cpp-python's 1
        (8, 16, 16, 8),  # hyper-threads add nothing to a memory-bound decode
        (8, 16, 4, 4),  # a container or taskset allows 4 CPUs
        (None, 4, None, 4),  # topology unknown: the logical count
        (None, None, None, 1),
    ],
)
def test_default_threads_are_the_physical_cores_this_process_may_use(
    physical: int | None, logical: int | None, usable: int | None, expected: int
) -> None:
    assert default_threads(physical, logical, usable) == expected
