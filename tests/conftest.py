"""Fixtures shared by every test: offscreen Qt, the real test model, leak checks.

Engine tests (real llama.cpp) are marked ``engine``; set LLMW_SKIP_ENGINE=1 to skip them
locally. The README's test command and CI always run them.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from real_models import gemma_file

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Keep tests off the network and out of the person's own caches and settings.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# The app's database (chat history and the measured runs that calibrate speed predictions)
# lives in the user data folder: a test's bench of a tiny model must not calibrate the
# person's (or the developer's) real machine. One folder per test session.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="llmw-test-data-")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("LLMW_SKIP_ENGINE") == "1":
        skip = pytest.mark.skip(reason="LLMW_SKIP_ENGINE=1")
        for item in items:
            if "engine" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def llama_build() -> Any:
    """What the installed llama.cpp build can do (``probe_backends()``: a child process asks
    llama.cpp, ``llama_supports_gpu_offload()`` among it), asked once per session."""
    from desktop.core.hardware import probe_backends

    return probe_backends()


@pytest.fixture
def cpu_only_build(llama_build: Any) -> None:
    """For a test that holds only on a CPU-only llama.cpp build (layers, KV cache and compute
    buffers all on the CPU): it skips, saying why, on a build that can offload to a GPU.

    A build with only the RPC backend is CPU-only here: llama.cpp says it supports offload
    (to remote devices), but with no server named every layer stays on this CPU.
    """
    from desktop.core.hardware.backends import NON_OFFLOAD_BACKENDS

    gpu_backends = [b for b in llama_build.backends if b not in NON_OFFLOAD_BACKENDS]
    if llama_build.gpu_offload_supported and gpu_backends:
        pytest.skip(
            "holds only on a CPU-only llama.cpp build; this one offloads to "
            + ", ".join(gpu_backends)
        )


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    """The real Gemma 3 270M Q4_K_M GGUF (253 MB), assembled once from its wheel."""
    return gemma_file()


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread running (napari does the same for QThreads)."""
    before = set(threading.enumerate())
    yield
    import sys

    if "PySide6.QtCore" in sys.modules:
        from PySide6.QtCore import QThreadPool

        pool = QThreadPool.globalInstance()
        if not pool.waitForDone(5000):
            pytest.fail("a test left work running in the Qt thread pool")
    leaked = [
        t
        for t in set(threading.enumerate()) - before
        if t.is_alive() and not t.daemon and not t.name.startswith(("QDBus", "pydevd"))
    ]
    for t in leaked:
        t.join(timeout=5)
    still = [t.name for t in leaked if t.is_alive()]
    if still:
        pytest.fail(f"a test left threads running: {', '.join(still)}")
