"""How much CPU the Monitor costs: CPU seconds per sample and percent of one core at 4 Hz.

Two measurements, with a child process standing in for the worker:

1. the monitor's QTimer running in a Qt event loop for ``--seconds`` (what the app
   pays, event-loop wakeups included): process CPU time / wall time;
2. ``sample_now()`` called back to back: CPU time per sample.

    python tests/bench/bench_monitor.py [--seconds 10] [--hz 4]

Target: under 1% of one core at 4 Hz.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from PySide6.QtCore import QCoreApplication, QTimer  # noqa: E402

from desktop.services.monitor import Monitor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--hz", type=float, default=4.0)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()

    app = QCoreApplication.instance() or QCoreApplication(sys.argv)
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    try:
        monitor = Monitor(interval_ms=round(1000 / args.hz))
        monitor.set_worker_pid(stand_in.pid)
        gpus = len(monitor.sample_now().gpus)

        # 1. On the timer, as in the app.
        samples_before = len(monitor.times)
        cpu0, wall0 = time.process_time(), time.monotonic()
        monitor.start()
        QTimer.singleShot(round(args.seconds * 1000), app.quit)
        app.exec()
        monitor.stop()
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        samples = len(monitor.times) - samples_before

        # 2. Back to back.
        cpu1 = time.process_time()
        for _ in range(args.calls):
            monitor.sample_now()
        per_call = (time.process_time() - cpu1) / args.calls
    finally:
        stand_in.kill()
        stand_in.wait()

    print(f"GPUs seen by NVML: {gpus}")
    print(
        f"timer at {args.hz:g} Hz for {wall:.1f} s: {samples} samples, "
        f"{cpu:.4f} CPU s = {cpu / max(samples, 1) * 1000:.3f} ms per sample, "
        f"{cpu / wall * 100:.3f}% of one core (event loop included)"
    )
    print(
        f"sample_now() back to back: {per_call * 1e6:.0f} us CPU per sample "
        f"-> {per_call * args.hz * 100:.3f}% of one core at {args.hz:g} Hz"
    )
    print("target: < 1% of one core at 4 Hz")


if __name__ == "__main__":
    main()
