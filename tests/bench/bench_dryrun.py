"""How long llama.cpp's dry run takes, and how much of the file it reads.

For Gemma 3 270M and a sparse Llama 3.1 8B Q4_K shape: the dry run (desktop.engine.dryrun,
no_alloc + load mode NONE) in a child process, wall time from start to answer, and the bytes
the dry run read (``rchar`` of /proc/self/io, Linux, after importing llama_cpp), against the
size of the file's header (metadata and tensor table). The child's own start (Python,
importing llama_cpp) is part of the time a person waits, so the wall time includes it.

Targets: well under 2 s each; no tensor data read (bytes read at most the header + 1 MiB).

    python tests/bench/bench_dryrun.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests")]

from real_models import MODELS_DIR, gemma_file  # noqa: E402
from synth import LLAMA_8B_Q4, write_header_only  # noqa: E402

_CHILD = r"""
import json, sys
import llama_cpp
from desktop.engine.dryrun import dry_run
def rchar():
    return int(dict(l.split(": ") for l in open("/proc/self/io").read().splitlines())["rchar"])
before = rchar()  # Python, llama_cpp and its libraries are read by now
answer = dry_run({"path": sys.argv[1], "n_ctx": 4096})
print(json.dumps({"ok": answer["ok"], "seconds": answer.get("seconds"), "read": rchar() - before}))
"""


def main() -> int:
    eight_b = MODELS_DIR / "llama-3.1-8b-shape-q4_k.gguf"
    if not eight_b.exists():
        MODELS_DIR.mkdir(parents=True, exist_ok=True)
        write_header_only(eight_b, LLAMA_8B_Q4)
    ok = True
    from desktop.core.gguf import read_header_file

    print(
        f"{'model':30} {'wall s':>7} {'llama.cpp s':>12} {'read':>11} {'header':>11} {'file':>10}"
    )
    for path in (gemma_file(), eight_b):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path)],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO_ROOT,
            timeout=120,
        )
        wall = time.perf_counter() - started
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        size = path.stat().st_size
        header = read_header_file(path).data_offset
        ok &= bool(answer["ok"]) and wall < 2.0 and answer["read"] <= header + 2**20
        print(
            f"{path.name[:30]:30} {wall:>7.2f} {answer['seconds']:>12.2f} "
            f"{answer['read'] / 2**20:>7.2f} MiB {header / 2**20:>7.2f} MiB "
            f"{size / 2**30:>6.2f} GiB"
        )
    print("targets met (< 2 s, no tensor data read)" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
