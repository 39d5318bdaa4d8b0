"""End to end: the app as a person starts it, in a real X window under Xvfb.

Starts ``python -m desktop`` as a subprocess on a virtual screen, waits for its window, drives
it with the keyboard (search, each tab), and saves a screenshot of every screen under
``test-artifacts/e2e/``. A screenshot with almost no colours (a blank or black window) fails.
Needs Debian's xvfb, xdotool and imagemagick (``packaging/dev.sh test`` installs them); where
they are missing the test skips and says which.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from required_tools import missing_tool

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
TOOLS = ("Xvfb", "xdotool", "import", "identify")
SCREEN = "1440x900x24"


def _missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


@pytest.fixture
def x_display() -> Iterator[str]:
    missing = _missing_tools()
    if missing:
        missing_tool(f"needs {', '.join(missing)} (Debian: xvfb xdotool imagemagick)")
    for number in range(90, 140):
        if (
            not Path(f"/tmp/.X11-unix/X{number}").exists()
            and not Path(f"/tmp/.X{number}-lock").exists()
        ):
            break
    display = f":{number}"
    server = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", SCREEN, "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        if server.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"Xvfb did not start on {display}")
        time.sleep(0.1)
    try:
        yield display
    finally:
        server.terminate()
        server.wait(timeout=10)


def _run(args: list[str], env: dict[str, str], timeout: float = 30) -> str:
    done = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args[0]} failed: {done.stderr}"
    return done.stdout


def _screenshot(name: str, env: dict[str, str]) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    _run(["import", "-window", "root", str(path)], env)
    colours = int(_run(["identify", "-format", "%k", str(path)], env).strip())
    assert colours > 50, f"{path.name} looks blank ({colours} colours)"
    return path


def _wait_for_text_in_log(
    log: Path, text: str, proc: subprocess.Popen[str], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(encoding="utf-8", errors="replace"):
        if proc.poll() is not None:
            pytest.fail(f"the app exited early:\n{log.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {text!r} from the app within {timeout} s:\n{log.read_text()}")
        time.sleep(0.2)


def test_every_screen_in_a_real_window(x_display: str, tmp_path: Path) -> None:
    env = dict(os.environ)
    env.pop("QT_QPA_PLATFORM", None)  # a real xcb window, not offscreen
    env.update(
        DISPLAY=x_display,
        LLMW_SETTINGS=str(tmp_path / "settings.json"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        LLMW_REPORT_READY="1",
    )
    log = tmp_path / "app.log"
    started = time.monotonic()
    with log.open("w") as out:
        app = subprocess.Popen(
            [sys.executable, "-m", "desktop"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        window = _run(
            ["xdotool", "search", "--sync", "--onlyvisible", "--name", "LLM Workbench"],
            env,
            timeout=60,
        ).split()[0]
        shown_s = time.monotonic() - started
        # The catalog, the hardware check and the library scan fill in from the background.
        _wait_for_text_in_log(log, "ready", app, timeout=90)
        _run(["xdotool", "windowfocus", "--sync", window], env)  # no window manager here
        shots = [_screenshot("1-models", env)]
        _run(["xdotool", "key", "--window", window, "ctrl+f"], env)
        _run(["xdotool", "type", "--window", window, "--delay", "20", "gemma 3 270m"], env)
        time.sleep(1.0)  # the filter applies on the next event-loop turn; nothing to wait on
        _run(["xdotool", "key", "--window", window, "Down"], env)  # into the results: selects
        time.sleep(0.8)
        shots.append(_screenshot("2-models-search", env))
        for number, name in ((2, "3-chat"), (3, "4-monitor"), (4, "5-downloads")):
            _run(["xdotool", "key", "--window", window, f"alt+{number}"], env)
            time.sleep(0.8)
            shots.append(_screenshot(name, env))
        print(f"window shown after {shown_s:.2f} s; screenshots: {[p.name for p in shots]}")
        assert app.poll() is None, log.read_text()
    finally:
        app.terminate()
        try:
            app.wait(timeout=20)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()
    assert "Traceback" not in log.read_text(), log.read_text()
