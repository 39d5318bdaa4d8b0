"""Benchmark: the estimator against llama.cpp's own buffer sizes, as a table.

Run: .venv/bin/python tests/bench/bench_accuracy.py [--quick] [--no-rpc]
Loads each model with real llama.cpp (CPU build, subprocess, verbose log parsed) and prints,
per model and context, estimated vs reported MiB per component and the error in percent.

Then the multi-device cases (tests/rpc_cases.py): one and two llama.cpp RPC servers on
127.0.0.1, per device (server endpoint, or CPU) and component, targets: weights and KV within
1%, each device's total within 5%, the offloaded layer count exact. Last, decode speed of
Gemma 3 270M on the CPU alone and all on one and two servers (1 thread each), and what one
remote split costs per token beyond its round trip: the figure behind
desktop.core.estimate.RPC_SPLIT_SECONDS (noisy on a busy machine).
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
    if "--no-rpc" not in sys.argv:
        rpc_table()


def rpc_table() -> None:
    """The plan against llama.cpp per device, over real RPC servers on 127.0.0.1."""
    from rpc_cases import CASES, plan_and_load, share

    from desktop.core.estimate import compare_by_device

    servers = [share(), share()]
    try:
        print()
        print(
            f"{'case':30} {'device':18} {'component':9} {'estimate':>9} {'llama.cpp':>9}"
            f" {'error':>8}"
        )
        worst = {"weights": 0.0, "kv": 0.0, "total": 0.0}
        with tempfile.TemporaryDirectory() as tmp:
            paths = {"gemma": GEMMA}
            for name in ("llama-gqa", "qwen3"):
                paths[name] = write_model(Path(tmp) / f"{name}.gguf", ACCURACY_MODELS[name])
            for case in CASES:
                endpoints = [s.endpoint for s in servers[: case.n_servers]]
                plan, loaded = plan_and_load(
                    paths[case.model], endpoints, case.n_gpu_layers, case.n_ctx
                )
                report = loaded.report()
                layers = (
                    "layers exact"
                    if report.offloaded_layers == plan.gpu_layers
                    else (f"LAYERS {plan.gpu_layers} planned, {report.offloaded_layers} offloaded")
                )
                print(f"{case.label:30} ({layers})")
                for row in compare_by_device(plan, report):
                    print(
                        f"{'':30} {row['device']:18} {row['component']:9} "
                        f"{row['estimated_bytes'] / 2**20:9.2f} "
                        f"{row['reported_bytes'] / 2**20:9.2f} "
                        f"{row['error_pct']:+7.2f}%"
                    )
                    if row["component"] in worst and row["reported_bytes"]:
                        worst[row["component"]] = max(
                            worst[row["component"]], abs(row["error_pct"])
                        )
        print("worst |error| per device: " + ", ".join(f"{k} {v:.2f}%" for k, v in worst.items()))
        rpc_speed([s.endpoint for s in servers])
    finally:
        for server in servers:
            server.stop()


def rpc_speed(endpoints: list[str]) -> None:
    """Decode tok/s: CPU alone, then every layer on one and on two servers (1 thread each)."""
    from desktop.core import rpc
    from desktop.core.estimate import RPC_SPLIT_SECONDS
    from desktop.engine import protocol as p
    from desktop.engine.runner import WorkerRunner

    latency = min(d.latency_s for s in rpc.probe_servers(endpoints) for d in s.devices)
    chat = p.Chat(
        messages=[{"role": "user", "content": "Write a long story about a fox."}],
        max_tokens=64,
        temperature=0.0,
        top_k=1,
        seed=1,
    )
    rates = {}
    for n in (0, 1, 2):
        load = p.Load(
            path=str(GEMMA),
            n_gpu_layers=99 if n else 0,
            n_ctx=1024,
            n_threads=1,
            rpc_servers=endpoints[:n],
        )
        with WorkerRunner() as runner:
            runner.load(load)
            done = [e for e in runner.chat(chat) if isinstance(e, p.Done)][-1]
        rates[n] = done.gen_tokens_per_s
        print(f"gemma3-270m decode, {n} servers: {rates[n]:.1f} tok/s")
    for n in (1, 2):
        per_split = ((1 / rates[n]) - (1 / rates[0])) / n - latency
        print(
            f"  {n} servers: {per_split * 1000:.2f} ms per remote split per token beyond the "
            f"{latency * 1000:.2f} ms round trip (model: {RPC_SPLIT_SECONDS * 1000:.2f} ms)"
        )


if __name__ == "__main__":
    main()
