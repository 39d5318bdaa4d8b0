"""How the core starts an engine process it may not import (the backend probe, the dry run).

``desktop.core`` never imports ``desktop.engine`` (an import-linter contract); it starts
engine modules as child processes by name, since llama.cpp can kill the process it runs in.
A source install runs ``python -m desktop.engine.NAME``; the frozen app re-runs itself with a
flag that ``desktop.cli.main`` hands to that module (as the worker is ``<exe> --worker``).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BACKEND_MARKER",
    "DRY_RUN_MARKER",
    "RPC_PROBE_MARKER",
    "RPC_SERVER_MARKER",
    "EngineAnswer",
    "engine_command",
    "engine_environment",
    "run_engine",
]

#: The answer lines the engine children print (desktop.engine.probe and .dryrun): the marker,
#: then one JSON object. Here, where both sides can import them without loading more.
BACKEND_MARKER = "LLMW-BACKENDS "
DRY_RUN_MARKER = "LLMW_DRY_RUN "
#: desktop.engine.rpc_probe's answer, and each line desktop.engine.rpc_server prints.
RPC_PROBE_MARKER = "LLMW_RPC_PROBE "
RPC_SERVER_MARKER = "LLMW_RPC_SERVER "

#: The folder that holds the ``desktop`` package (a source checkout's root).
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


def engine_command(module: str, frozen_flag: str, python: str = sys.executable) -> list[str]:
    """The command that runs engine ``module`` with interpreter ``python``."""
    if getattr(sys, "frozen", False) and python == sys.executable:
        return [python, frozen_flag]
    return [python, "-m", module]


def engine_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default ``os.environ``), with this package findable by ``python -m``.

    Run from a source checkout, ``desktop`` is only importable from the checkout folder, so
    its parent goes on PYTHONPATH, last, so that whatever the caller put there (a fake
    llama_cpp in tests) comes first. Frozen apps need nothing.
    """
    environment = dict(os.environ if env is None else env)
    if not getattr(sys, "frozen", False):
        parts = [part for part in environment.get("PYTHONPATH", "").split(os.pathsep) if part]
        if _PACKAGE_PARENT not in parts:
            environment["PYTHONPATH"] = os.pathsep.join([*parts, _PACKAGE_PARENT])
    return environment


@dataclass(frozen=True)
class EngineAnswer:
    """How an engine child ended, and the JSON it printed after its marker (None: none)."""

    returncode: int
    stdout: str
    stderr: str
    answer: dict[str, Any] | None


def run_engine(
    module: str,
    frozen_flag: str,
    args: Sequence[str],
    *,
    marker: str,
    timeout: float,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
) -> EngineAnswer:
    """Run engine ``module`` to its end and read its answer line (``marker`` + JSON).

    Raises what ``subprocess.run`` raises (TimeoutExpired, OSError, ...): each caller words
    those for its own question.
    """
    done = subprocess.run(
        [*engine_command(module, frozen_flag, python), *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        env=engine_environment(env),
        check=False,
    )
    answer: dict[str, Any] | None = None
    for line in done.stdout.splitlines():
        if line.startswith(marker):
            with contextlib.suppress(json.JSONDecodeError):
                parsed = json.loads(line[len(marker) :])
                answer = parsed if isinstance(parsed, dict) else None
    return EngineAnswer(done.returncode, done.stdout, done.stderr, answer)
