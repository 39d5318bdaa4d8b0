"""Benchmark: what keeping the working model costs when switching models (issue 15, item 2).

While a model is loaded, the engine client asks llama.cpp's dry run about the next file before
the worker frees anything. This prints the time from ``load()`` to ``loaded`` for a switch
SmolLM2 135M -> Gemma 3 270M with the check (the app's way) and without it, and how long a
refused file takes to be answered while the loaded model stays (a file llama.cpp rejects).
The dry run's cache is cleared for each run, so every check is a real one. Median of 3 each.

    .venv/bin/python tests/bench/bench_model_switch.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="llmw-bench-cache-")

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests")]

from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer  # noqa: E402
from real_models import gemma_file, smollm2_file  # noqa: E402
from synth import write_with_stray_tensor  # noqa: E402

from desktop.core.hardware import default_cache_dir  # noqa: E402
from desktop.engine import protocol as p  # noqa: E402
from desktop.services.engine_client import EngineClient  # noqa: E402

REPEATS = 3


def wait_for(client: EngineClient, signal_name: str, timeout_s: float = 300) -> None:
    loop = QEventLoop()
    getattr(client, signal_name).connect(lambda *_: loop.quit())
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()


def timed_load(client: EngineClient, path: Path, signal_name: str = "loaded") -> float:
    for stale in (default_cache_dir() / "dry-runs").glob("*.json"):
        stale.unlink()
    started = time.perf_counter()
    client.load(p.Load(path=str(path), n_ctx=1024, n_threads=1))
    wait_for(client, signal_name)
    return time.perf_counter() - started


def main() -> int:
    app = QCoreApplication(sys.argv[:1])
    smol, gemma = smollm2_file(), gemma_file()
    broken = write_with_stray_tensor(Path(tempfile.mkdtemp()) / "stray-tensor.gguf")
    client = EngineClient()
    results: dict[str, list[float]] = {"checked": [], "unchecked": [], "refused": []}
    try:
        for _ in range(REPEATS):
            for checked in (True, False):
                client.check_before_load = True
                timed_load(client, smol)
                client.check_before_load = checked
                key = "checked" if checked else "unchecked"
                results[key].append(timed_load(client, gemma))
            client.check_before_load = True
            results["refused"].append(timed_load(client, broken, "error"))
            assert client.model is not None, "the refused file unloaded the model"
    finally:
        client.shutdown()
    checked, unchecked = (statistics.median(results[k]) for k in ("checked", "unchecked"))
    refused = statistics.median(results["refused"])
    print(f"switch SmolLM2 -> Gemma 3 270M, checked by llama.cpp first: {checked:.2f} s")
    print(f"switch SmolLM2 -> Gemma 3 270M, without the check:          {unchecked:.2f} s")
    print(f"the check's cost:                                   {checked - unchecked:+.2f} s")
    print(f"a refused file answered, the model kept:            {refused:.2f} s")
    app.quit()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
