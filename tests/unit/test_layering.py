"""The layering rules import-linter cannot express: which Qt modules each layer may use."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "desktop"


def imported_modules(folder: Path) -> dict[str, set[str]]:
    """{file: every module it imports}, from the source, without importing anything."""
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[str(path.relative_to(PACKAGE.parent))] = names
    return found


def test_services_use_qtcore_only() -> None:
    offenders = {
        file: sorted(
            m for m in mods if m.startswith("PySide6.") and not m.startswith("PySide6.QtCore")
        )
        for file, mods in imported_modules(PACKAGE / "services").items()
    }
    assert not {f: m for f, m in offenders.items() if m}, offenders


def test_core_and_engine_import_no_qt() -> None:
    for sub in ("core", "engine"):
        for file, mods in imported_modules(PACKAGE / sub).items():
            qt = sorted(m for m in mods if m.split(".")[0] in ("PySide6", "pyqtgraph"))
            assert not qt, f"{file} imports {qt}"


# The engine modules that the app's own process imports (services and the CLI use them):
# llama_cpp there would load llama.cpp into the GUI, which the worker process exists to avoid.
# The rest of desktop/engine runs in child processes (worker, probe, ...) and may import it.
APP_SIDE_ENGINE_MODULES = {
    "desktop/engine/__init__.py",
    "desktop/engine/protocol.py",
    "desktop/engine/runner.py",
}


def test_only_engine_child_processes_import_llama_cpp() -> None:
    users = sorted(
        file
        for file, mods in imported_modules(PACKAGE).items()
        if any(m.split(".")[0] == "llama_cpp" for m in mods)
    )
    assert "desktop/engine/worker.py" in users, users
    assert "desktop/engine/probe.py" in users, users
    misplaced = [
        file
        for file in users
        if not file.startswith("desktop/engine/") or file in APP_SIDE_ENGINE_MODULES
    ]
    assert not misplaced, users
