"""The estimator against what llama.cpp itself allocates, component by component.

Each case loads a real GGUF with real llama.cpp (CPU build) in a subprocess, parses the
buffer sizes it logs, and compares them with the plan for the same settings: weights and KV
cache within 1%, the total within 5%. The models are the real Gemma 3 270M (sliding-window
layers, tied output, 262k vocabulary) and tiny random-weight models of four architectures.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from llama_buffers import llama_reported_buffers
from synth import ACCURACY_MODELS, write_model

from desktop.core.estimate import Device, Settings, compare_with_llama, estimate
from desktop.core.gguf import read_header_file
from desktop.core.modelspec import spec_from_header

# The estimate for a CPU device against what llama.cpp allocated: a GPU build puts compute
# and output buffers on the GPU even at 0 layers, so this holds on CPU-only builds only.
pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("cpu_only_build")]

#: The CPU as this test machine's llama.cpp build sees it (portable build: AVX2, no AVX-512).
CPU = Device("CPU", "cpu", 64 * 2**30, 20 * 10**9, 1e11, cpu_features=("avx", "avx2", "fma"))


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("synth")
    for name, model in ACCURACY_MODELS.items():
        write_model(folder / f"{name}.gguf", model)
    return folder


def check(path: Path, settings: Settings) -> None:
    spec = spec_from_header(read_header_file(path))
    plan = estimate(spec, replace(settings, n_gpu_layers=0), [CPU])
    report = llama_reported_buffers(path, replace(settings, n_gpu_layers=0))
    rows = {r.component: r for r in compare_with_llama(plan, report)}
    table = "\n".join(
        f"{r.component:8} est {r.estimated_bytes / 2**20:9.2f} MiB  llama.cpp "
        f"{r.reported_bytes / 2**20:9.2f} MiB  {r.error_pct:+6.2f}%"
        for r in rows.values()
    )
    assert rows["weights"].reported_bytes > 0, "llama.cpp reported no model buffer"
    assert abs(rows["weights"].error_pct) <= 1.0, table
    if rows["kv"].reported_bytes:
        assert abs(rows["kv"].error_pct) <= 1.0, table
    assert abs(rows["total"].error_pct) <= 5.0, table


@pytest.mark.parametrize("n_ctx", [512, 2048, 8192, 32768])
def test_gemma3_270m(gemma_path: Path, n_ctx: int) -> None:
    check(gemma_path, Settings(n_ctx=n_ctx))


def test_gemma3_270m_small_swa_cache_and_ubatch(gemma_path: Path) -> None:
    check(gemma_path, Settings(n_ctx=8192, swa_full=False, n_ubatch=128))


def test_gemma3_270m_flash_attention_q8_cache(gemma_path: Path) -> None:
    check(gemma_path, Settings(n_ctx=4096, flash_attn=True, kv_type="q8_0"))


@pytest.mark.parametrize("model", sorted(ACCURACY_MODELS))
@pytest.mark.parametrize("n_ctx", [512, 2048, 8192])
def test_synthetic(synth_dir: Path, model: str, n_ctx: int) -> None:
    check(synth_dir / f"{model}.gguf", Settings(n_ctx=n_ctx))


@pytest.mark.parametrize(
    ("model", "settings"),
    [
        ("gemma3-swa", Settings(n_ctx=8192, swa_full=False)),
        ("llama-gqa", Settings(n_ctx=16384, flash_attn=True, kv_type="q8_0")),
        ("qwen3moe", Settings(n_ctx=16384, flash_attn=True)),
        ("qwen3", Settings(n_ctx=4096, kv_type="q4_0", flash_attn=True, n_ubatch=256)),
        ("llama-gqa", Settings(n_ctx=3000, use_mmap=False)),
    ],
    ids=["swa-window-cache", "flash-q8", "moe-flash", "q4-cache-ubatch", "no-mmap-odd-ctx"],
)
def test_synthetic_settings(synth_dir: Path, model: str, settings: Settings) -> None:
    check(synth_dir / f"{model}.gguf", settings)
