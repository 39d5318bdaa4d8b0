"""Which llama.cpp backends the installed build can use, asked in a child process.

Importing llama_cpp here, in the app's process, is what this avoids: a build
that does not match the CPU dies of an illegal instruction on import, and
``desktop.core`` never imports llama_cpp (an import-linter contract checks it).
So :func:`probe_backends` starts ``python -m desktop.engine.probe`` (the frozen
app: ``<exe> --probe-backends``, as the worker is ``<exe> --worker``), reads the
one ``LLMW-BACKENDS {json}`` line it prints, and turns a crash, a hang or a
garbled answer into ``BackendInfo(error=...)`` in words.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from desktop.core import crash
from desktop.core.children import BACKEND_MARKER, engine_command, run_engine
from desktop.core.hardware.profile import BackendInfo

# Named as a string: desktop.core must not import desktop.engine, only start it.
_PROBE_MODULE = "desktop.engine.probe"
# How the frozen app starts the probe (desktop.cli.main hands this flag to the probe).
_FROZEN_PROBE_FLAG = "--probe-backends"

# ggml registry names -> ours. "ROCm" is ggml-cuda compiled for HIP.
_KNOWN_BACKENDS = {
    "cpu": "cpu",
    "cuda": "cuda",
    "rocm": "rocm",
    "hip": "rocm",
    "metal": "metal",
    "vulkan": "vulkan",
    "sycl": "sycl",
    "opencl": "opencl",
    "musa": "musa",
    "cann": "cann",
    "blas": "blas",
    "rpc": "rpc",
    "kompute": "kompute",
}
# Registries that are helpers, not a place to put model layers.
NON_OFFLOAD_BACKENDS = frozenset({"cpu", "blas", "rpc"})
_REINSTALL_HINT = "reinstall llama-cpp-python built for this computer"


def backend_title(name: str) -> str:
    """A backend's name as people write it: "cuda" -> "CUDA", "vulkan" -> "Vulkan"."""
    return name.upper() if len(name) <= 4 else name.title()


def _parse_system_info_backends(text: str) -> list[str]:
    """Backend names from llama_print_system_info(): "CUDA : ARCHS = 890 | ... | CPU : SSE3 = 1"."""
    names = re.findall(r"(?:^|\|)\s*([A-Za-z][\w-]*)\s+:\s", text)
    return [_KNOWN_BACKENDS[n.lower()] for n in names if n.lower() in _KNOWN_BACKENDS]


def _describe_crash(returncode: int) -> str:
    """Why the probe died, from its return code (:mod:`desktop.core.crash` reads it)."""
    cause = crash.returncode_cause(returncode)
    if cause.kind == crash.ILLEGAL_INSTRUCTION:
        return (
            "llama.cpp crashed while loading: this build uses CPU instructions this "
            f"processor does not have; {_REINSTALL_HINT}"
        )
    if cause.signal_number is not None:
        name = cause.signal_name or f"signal {cause.signal_number}"
        return f"llama.cpp crashed while loading ({name}); {_REINSTALL_HINT}"
    if cause.kind == crash.SEGFAULT:
        return f"llama.cpp crashed while loading (access violation); {_REINSTALL_HINT}"
    if cause.kind == crash.ABORTED:
        return f"llama.cpp aborted while loading (exit code {returncode}); {_REINSTALL_HINT}"
    return f"checking llama.cpp failed (exit code {returncode})"


def probe_command(python: str = sys.executable) -> list[str]:
    """How to start the probe with interpreter ``python``; the frozen app re-runs itself."""
    return engine_command(_PROBE_MODULE, _FROZEN_PROBE_FLAG, python)


def probe_backends(
    python: str = sys.executable,
    timeout: float = 30,
    *,
    env: Mapping[str, str] | None = None,
) -> BackendInfo:
    """Ask the installed llama-cpp-python, in a child process, which backends it has.

    ``python`` is the interpreter whose llama_cpp is asked; ``env`` replaces the
    child's environment (tests point PYTHONPATH at a fake llama_cpp). A missing
    package, a crash, a hang past ``timeout`` seconds or a garbled answer
    become ``BackendInfo(error=...)``. Never raises.
    """
    try:
        done = run_engine(
            _PROBE_MODULE,
            _FROZEN_PROBE_FLAG,
            [],
            marker=BACKEND_MARKER,
            timeout=timeout,
            python=python,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return BackendInfo(
            error=f"llama.cpp did not answer within {timeout:g} s; {_REINSTALL_HINT}", checked=True
        )
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return BackendInfo(error=f"could not start Python to check llama.cpp ({exc})", checked=True)
    answer: Any = done.answer
    if done.returncode != 0 and answer is None:
        return BackendInfo(error=_describe_crash(done.returncode), checked=True)
    if not isinstance(answer, dict):
        return BackendInfo(error="llama.cpp check gave no readable answer", checked=True)
    return _backend_info_from_answer(answer)


def _backend_info_from_answer(answer: dict[str, Any]) -> BackendInfo:
    if "import_error" in answer:
        return BackendInfo(
            error=f"llama-cpp-python cannot be imported ({answer['import_error']}); "
            "install or reinstall it",
            checked=True,
        )
    version = answer.get("version")
    system_info = answer.get("system_info")
    system_info = system_info.strip() if isinstance(system_info, str) else None

    names: list[str] = ["cpu"]  # llama.cpp always has its CPU backend
    registries = answer.get("registries")
    if isinstance(registries, list) and registries:
        names += [
            _KNOWN_BACKENDS.get(str(r).lower(), str(r).lower())
            for r in registries
            if isinstance(r, str)
        ]
    elif system_info:
        names += _parse_system_info_backends(system_info)
    backends = tuple(dict.fromkeys(names))  # de-duplicated, order kept

    devices: list[str] = []
    raw_devices = answer.get("devices")
    if isinstance(raw_devices, list):
        for dev in raw_devices:
            if isinstance(dev, dict):
                label = str(dev.get("name", "?"))
                description = dev.get("description")
                devices.append(f"{label}: {description}" if description else label)

    offload = answer.get("gpu_offload")
    gpu_offload = (
        offload
        if isinstance(offload, bool)
        else any(b not in NON_OFFLOAD_BACKENDS for b in backends)
    )
    return BackendInfo(
        backends=backends,
        llama_cpp_version=version if isinstance(version, str) else None,
        gpu_offload_supported=gpu_offload,
        devices=tuple(devices),
        system_info=system_info,
        error=None,
        checked=True,
    )
