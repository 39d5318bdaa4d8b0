"""Predicted against measured decode speed, from 270M to 8B, at 1 thread and at the default.

For each model and thread count it measures:

* **bare**: llama-cpp-python in a child process, ``create_completion(stream=True)``, greedy;
  decode rate = (pieces - 1) / (last piece - first piece);
* **app**: ``llm-workbench bench``'s path (worker process, JSON lines) at the same threads,
  with the app's prediction for that load (this computer's calibrated figures, or the
  defaults when it has no runs).

Models: the real Gemma 3 270M, and sparse Llama 3.2 3B and Llama 3.1 8B shapes with Q4_K
weights written by desktop.core.synth (zero data: llama.cpp runs them at the real speed).

Targets: predicted / measured between 0.85 and 1.15 for every row; the app's default decode
speed at least 0.97x the best bare speed over every thread count. Runs are not stored.

    python tests/bench/bench_speed.py [--models gemma,3b,8b] [--tokens 32] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests")]

from real_models import MODELS_DIR, gemma_file  # noqa: E402
from synth import LLAMA_3B_Q4, LLAMA_8B_Q4, write_header_only  # noqa: E402

from desktop.benchmark import run_bench  # noqa: E402
from desktop.core.hardware import detect  # noqa: E402
from desktop.core.runs import load_figures, profile_machine_key  # noqa: E402
from desktop.core.threads import default_threads, usable_cpus  # noqa: E402

_BARE = r"""
import json, sys, time, llama_cpp
path, threads, n_gen = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
llm = llama_cpp.Llama(model_path=path, n_ctx=2048, n_threads=threads, n_threads_batch=threads,
                      n_gpu_layers=0, verbose=False, seed=1)
stamps = []
for _ in llm.create_completion("the quick brown fox jumps over", max_tokens=n_gen,
                               temperature=0.0, top_k=1, stream=True):
    stamps.append(time.perf_counter())
print(json.dumps((len(stamps) - 1) / (stamps[-1] - stamps[0])))
"""


def bare_rate(path: Path, threads: int, tokens: int) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _BARE, str(path), str(threads), str(tokens)],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def model_files(names: list[str]) -> dict[str, Path]:
    shapes = {
        "3b": ("llama-3.2-3b-shape-q4_k.gguf", LLAMA_3B_Q4),
        "8b": ("llama-3.1-8b-shape-q4_k.gguf", LLAMA_8B_Q4),
    }
    files: dict[str, Path] = {}
    for name in names:
        if name == "gemma":
            files[name] = gemma_file()
            continue
        file_name, shape = shapes[name]
        path = MODELS_DIR / file_name
        if not path.exists():
            MODELS_DIR.mkdir(parents=True, exist_ok=True)
            write_header_only(path, shape)
        files[name] = path
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="gemma,3b,8b")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", default=None, help="comma-separated thread counts")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="alternate bare and app runs this many times and compare medians (a shared VM "
        "drifts by 10%% between minutes; one pair of runs cannot show a 3%% difference)",
    )
    args = parser.parse_args()
    profile = detect()
    figures = load_figures(profile_machine_key(profile))
    default = default_threads(profile.cpu.physical_cores, profile.cpu.logical_cores, usable_cpus())
    thread_counts = sorted({1, default})
    if args.threads:
        thread_counts = sorted({int(t) for t in args.threads.split(",")} | {default})
    print(f"prediction: {figures.describe()}; default threads {default}")
    print(
        f"{'model':10} {'threads':>7} {'bare':>9} {'app':>9} {'predicted':>10} "
        f"{'pred/app':>9} {'app/bare':>9}"
    )
    ok = True
    for name, path in model_files(args.models.split(",")).items():
        bares = {}
        for threads in thread_counts:
            bare_runs: list[float] = []
            app_runs: list[float] = []
            predicted = 0.0
            for _ in range(max(args.repeat, 1)):
                bare_runs.append(bare_rate(path, threads, args.tokens))
                result = run_bench(
                    path,
                    n_ctx=2048,
                    n_gpu_layers=0,
                    tokens=args.tokens,
                    prompt_tokens=1,
                    profile=profile,
                    n_threads=threads,
                    figures=figures,
                )
                app_runs.append(float(result["gen_tokens_per_s"]))
                predicted = float(result["predicted_tokens_per_s"])
            bare = statistics.median(bare_runs)
            app = statistics.median(app_runs)
            bares[threads] = bare
            ratio = predicted / app
            ok &= 0.85 <= ratio <= 1.15
            print(
                f"{name:10} {threads:>7} {bare:>9.2f} {app:>9.2f} {predicted:>10.2f} "
                f"{ratio:>9.3f} {app / bare:>9.3f}"
            )
        best = max(bares.values())
        default_app = app if thread_counts[-1] == default else 0.0
        share = default_app / best
        ok &= share >= 0.97
        print(f"{name:10} default-thread app speed / best bare: {share:.3f} (target >= 0.97)")
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
