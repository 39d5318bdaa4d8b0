"""How the core starts an engine process it may not import (the backend probe, the dry run).

``desktop.core`` never imports ``desktop.engine`` (an import-linter contract); it starts
engine modules as child processes by name, since llama.cpp can kill the process it runs in.
A source install runs ``python -m desktop.engine.NAME``; the frozen app re-runs itself with a
flag that ``desktop.cli.main`` hands to that module (as the worker is ``<exe> --worker``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["engine_command", "engine_environment"]

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
