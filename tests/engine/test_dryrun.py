"""llama.cpp's own dry run (no_alloc) against a real load of the same file and settings.

The dry run's KV, compute and output buffers must be exactly what a real load reports (both
are llama.cpp's printed MiB figures); its weights, from the header placed as llama.cpp
placed the layers, within the accuracy suite's 1%. A file llama.cpp refuses is a sentence
with llama.cpp's reason, never a crash; and `estimate PATH` reports the check.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from llama_buffers import llama_reported_buffers
from synth import ACCURACY_MODELS, write_model, write_with_stray_tensor

from desktop.core.dryrun import DryRun, dry_run, dry_run_request, with_header_weights
from desktop.core.estimate import Device, Plan, Settings, compare_with_llama, estimate
from desktop.core.gguf import read_header_file
from desktop.core.llama_log import BufferLine
from desktop.core.modelspec import spec_from_header

pytestmark = pytest.mark.engine

CPU = Device("CPU", "cpu", 64 * 2**30, 20 * 10**9, 1e11, cpu_features=("avx", "avx2", "fma"))
BUILD = "test-build"


def _plan_and_dry(path: Path, settings: Settings, cache: Path | None = None) -> tuple[Plan, DryRun]:
    spec = spec_from_header(read_header_file(path))
    plan = estimate(spec, replace(settings, n_gpu_layers=0), [CPU])
    return plan, dry_run(path, dry_run_request(plan), build=BUILD, cache_dir=cache)


def _by(report_buffers: tuple[BufferLine, ...], component: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for b in report_buffers:
        if b.component == component:
            out[b.device] = out.get(b.device, 0) + b.size_bytes
    return out


def _compare_with_real_load(path: Path, settings: Settings) -> DryRun:
    plan, dry = _plan_and_dry(path, settings)
    assert dry.ok, dry.reason
    real = llama_reported_buffers(path, replace(settings, n_gpu_layers=0))
    for component in ("kv", "compute", "output"):
        assert _by(dry.buffers, component) == _by(real.buffers, component), component
    assert dry.n_ctx == real.n_ctx
    assert dry.offloaded_layers == real.offloaded_layers == 0
    rows = {r.component: r for r in compare_with_llama(plan, with_header_weights(dry, plan))}
    real_weights = real.total("weights")
    assert abs(rows["weights"].estimated_bytes - real_weights) <= 0.01 * real_weights
    return dry


@pytest.mark.parametrize(
    "settings",
    [
        Settings(n_ctx=4096),
        Settings(n_ctx=8192, swa_full=False, n_ubatch=128),
        Settings(n_ctx=2048, kv_type="q8_0", flash_attn=True),
    ],
    ids=["default", "small-swa", "q8-kv-flash"],
)
def test_gemma_dry_run_equals_a_real_load(gemma_path: Path, settings: Settings) -> None:
    dry = _compare_with_real_load(gemma_path, settings)
    assert dry.layer_devices == ("CPU",) * 19  # 18 blocks and the output layer
    assert dry.seconds > 0  # how fast: tests/bench/bench_dryrun.py (target < 2 s)


@pytest.mark.parametrize("name", sorted(ACCURACY_MODELS))
def test_synthetic_dry_runs_equal_real_loads(tmp_path: Path, name: str) -> None:
    path = write_model(tmp_path / f"{name}.gguf", ACCURACY_MODELS[name])
    dry = _compare_with_real_load(path, Settings(n_ctx=2048))
    assert len(dry.layer_devices) == ACCURACY_MODELS[name].n_layer + 1  # and the output


def test_a_real_size_shape_dry_runs_without_reading_its_data(tmp_path: Path) -> None:
    from synth import LLAMA_8B_Q4, write_header_only

    path = write_header_only(tmp_path / "llama8b.gguf", LLAMA_8B_Q4)
    # The file's data is a sparse hole: a dry run that read it would allocate 4.7 GB of page
    # cache and take seconds; this one reads the header only.
    _, dry = _plan_and_dry(path, Settings(n_ctx=8192))
    assert dry.ok, dry.reason
    assert _by(dry.buffers, "kv") == {"CPU": 32 * 8192 * 2 * 8 * 128 * 2}  # f16 K and V
    # The bytes it reads and its time (targets: the header only, < 2 s) are
    # tests/bench/bench_dryrun.py's figures.


def test_results_are_cached_by_file_settings_and_build(gemma_path: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _, first = _plan_and_dry(gemma_path, Settings(n_ctx=1024), cache)
    # How fast the cache answers (< 0.5 s) is tests/bench/bench_quick_paths.py's figure.
    _, second = _plan_and_dry(gemma_path, Settings(n_ctx=1024), cache)
    assert not first.cached and second.cached
    assert second.to_dict() == first.to_dict()
    _, other = _plan_and_dry(gemma_path, Settings(n_ctx=2048), cache)
    assert not other.cached  # other settings: llama.cpp is asked again


def test_a_file_llama_cpp_refuses_is_a_sentence_with_its_reason(tmp_path: Path) -> None:
    path = write_with_stray_tensor(tmp_path / "stray.gguf")
    _, dry = _plan_and_dry(path, Settings(n_ctx=512))
    assert not dry.ok
    assert dry.reason is not None
    assert dry.reason.startswith("llama.cpp can't load this file: ")
    assert "wrong number of tensors" in dry.reason
    assert "Traceback" not in dry.reason


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "desktop.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.usefixtures("cpu_only_build")  # compared with a load at 0 GPU layers
def test_estimate_checks_a_local_file_with_llama_cpp(gemma_path: Path) -> None:
    done = _cli("estimate", str(gemma_path), "--ctx", "4096", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["checked_by_llama_cpp"] is True
    check = result["llama_cpp_check"]
    real = llama_reported_buffers(gemma_path, Settings(n_ctx=4096, n_gpu_layers=0))
    for component in ("kv", "compute", "output"):
        mine = sum(b["size_bytes"] for b in check["buffers"] if b["component"] == component)
        assert mine == real.total(component)
    assert {b["source"] for b in check["buffers"]} == {"header", "llama.cpp"}
    assert result["calibration"]["runs"] >= 0
    skipped = json.loads(_cli("estimate", str(gemma_path), "--no-check", "--json").stdout)
    assert skipped["checked_by_llama_cpp"] is False and "llama_cpp_check" not in skipped


def test_estimate_exits_1_with_llama_cpps_reason(tmp_path: Path) -> None:
    path = write_with_stray_tensor(tmp_path / "stray.gguf")
    done = _cli("estimate", str(path))
    assert done.returncode == 1
    assert "llama.cpp can't load this file: " in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_calibrate_measures_stores_and_reports(tmp_path: Path, gemma_path: Path) -> None:
    """`calibrate`: the starter model and the sparse 1B shape, stored, refitted, reported."""
    import os

    env = dict(
        os.environ, XDG_DATA_HOME=str(tmp_path / "data"), XDG_CACHE_HOME=str(tmp_path / "cache")
    )
    models = tmp_path / "data" / "llm-workbench" / "models"
    models.mkdir(parents=True)
    (models / gemma_path.name).symlink_to(gemma_path)  # the starter model, already in place
    done = subprocess.run(
        [sys.executable, "-m", "desktop.cli", "calibrate", "--json"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["before"]["runs"] == 0
    assert result["after"]["runs"] == len(result["runs"]) >= 2
    assert result["after"]["source"].startswith("calibrated from")
    files = {r["file"] for r in result["runs"]}
    assert "llama-3.2-1b-shape-q4_k.gguf" in files
    assert all(r["gen_tokens_per_s"] > 0 for r in result["runs"])
    again = subprocess.run(
        [sys.executable, "-m", "desktop.cli", "hardware", "--json", "--no-bandwidth"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert json.loads(again.stdout)["calibration"]["runs"] == result["after"]["runs"]
    shape = tmp_path / "cache" / "llm-workbench" / "calibration" / "llama-3.2-1b-shape-q4_k.gguf"
    assert shape.stat().st_blocks * 512 < 16 * 2**20  # a sparse file: no disk space to speak of
