"""Benchmark: the estimator against llama.cpp's own buffer sizes, as a table.

Run: .venv/bin/python tests/bench/bench_accuracy.py [--quick]
Loads each model with real llama.cpp (CPU build, subprocess, verbose log parsed) and prints,
per model and context, estimated vs reported MiB per component and the error in percent.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llama_buffers import llama_reported_buffers
from synth import ACCURACY_MODELS, write_model

from desktop.core.estimate import Device, Settings, compare_with_llama, estimate
from desktop.core.gguf import read_header_file
from desktop.core.modelspec import spec_from_header

CPU = Device("CPU", "cpu", 64 * 2**30, 20 * 10**9, 1e11, cpu_features=("avx", "avx2", "fma"))
GEMMA = Path(__file__).resolve().parents[1] / ".models" / "gemma-3-270m-Q4_K_M.gguf"


def cases(folder: Path, quick: bool) -> list[tuple[str, Path, Settings]]:
    out = []
    if GEMMA.exists():
        for ctx in (512, 2048, 8192, 32768):
            out.append((f"gemma3-270m ctx={ctx}", GEMMA, Settings(n_ctx=ctx)))
        out.append(("gemma3-270m ctx=8192 swa-window", GEMMA, Settings(n_ctx=8192, swa_full=False)))
    for name, model in ACCURACY_MODELS.items():
        path = write_model(folder / f"{name}.gguf", model)
        for ctx in (512, 8192) if quick else (512, 2048, 8192, 32768):
            out.append((f"{name} ctx={ctx}", path, Settings(n_ctx=ctx)))
        out.append((f"{name} ctx=16384 flash", path, Settings(n_ctx=16384, flash_attn=True)))
    return out


def main() -> None:
    quick = "--quick" in sys.argv
    print(f"{'case':34} {'component':9} {'estimate MiB':>13} {'llama.cpp MiB':>14} {'error':>8}")
    worst = {"weights": 0.0, "kv": 0.0, "total": 0.0, "compute": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for label, path, settings in cases(Path(tmp), quick):
            settings = replace(settings, n_gpu_layers=0)
            plan = estimate(spec_from_header(read_header_file(path)), settings, [CPU])
            rows = compare_with_llama(plan, llama_reported_buffers(path, settings))
            for row in rows:
                print(
                    f"{label:34} {row.component:9} {row.estimated_bytes / 2**20:13.2f} "
                    f"{row.reported_bytes / 2**20:14.2f} {row.error_pct:+7.2f}%"
                )
                if row.component in worst:
                    worst[row.component] = max(worst[row.component], abs(row.error_pct))
    print("worst |error|: " + ", ".join(f"{k} {v:.2f}%" for k, v in worst.items()))


if __name__ == "__main__":
    main()
