"""Benchmark: verdicts for every catalog variant at four context sizes.

Run: .venv/bin/python tests/bench/bench_verdicts.py
Target: well under 100 ms for all plans (the models table re-evaluates every row when the
context control moves). Prints the number of plans, the best-of-5 total time and per plan.
"""

from __future__ import annotations

import time

from desktop.core.catalog import load_catalog
from desktop.core.estimate import GIB, Device, Settings, estimate
from desktop.core.modelspec import spec_from_catalog

CONTEXTS = (2048, 8192, 32768, 131072)
MACHINES = {
    "8 GB GPU": [
        Device("GPU 8GB", "cuda", 7 * GIB + 512 * 2**20, 448 * 10**9, 30e12),
        Device("CPU", "cpu", 28 * GIB, 60 * 10**9, 5e11, cpu_features=("avx2",)),
    ],
    "CPU only": [Device("CPU", "cpu", 28 * GIB, 60 * 10**9, 5e11, cpu_features=("avx2",))],
}


def main() -> None:
    catalog = load_catalog()
    specs = []
    for model, variant in catalog.variants():
        try:
            specs.append(spec_from_catalog(model, variant))
        except ValueError:
            continue
    for label, devices in MACHINES.items():
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            plans = [
                estimate(spec, Settings(n_ctx=ctx), devices) for ctx in CONTEXTS for spec in specs
            ]
            best = min(best, time.perf_counter() - start)
        print(
            f"{label:9}: {len(plans)} plans ({len(specs)} variants x {len(CONTEXTS)} "
            f"contexts) in {best * 1000:.1f} ms = {best / len(plans) * 1e6:.0f} us per plan "
            f"(target: all under 100 ms)"
        )


if __name__ == "__main__":
    main()
