"""End to end: the app as a person starts it, in a real X window under Xvfb, with the real
model worker and the real Gemma 3 270M test model.

The app process runs with its window probe (``desktop/ui/test_probe.py``, on when
``LLMW_PROBE`` names a file): a JSON file of what each named widget shows, rewritten five
times a second. The test drives the window only with X events (xdotool: keys, typing, mouse
clicks at the widgets' screen positions) and waits on what the probe reports, never on a fixed
sleep. One hobbyist's path, each step asserted on what the window shows:

1. the window opens and fills in (catalog, hardware, the local models folder);
2. the search box narrows the models table to exactly the rows the core's search would keep;
3. clicking the local Gemma row names it in the detail pane;
4. Load… then Load model brings the model up ("Loaded" in the load status, the chat ready);
5. a chat message streams an answer into the conversation; Stop ends it ("stopped by you");
6. the monitor's tokens-per-second curve has points.

A screenshot of every step is kept under ``test-artifacts/e2e/`` (one with almost no colours,
a blank or black window, fails). Needs Debian's xvfb, xdotool and imagemagick
(``packaging/dev.sh test`` installs them); where they are missing the test skips and says which.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from real_models import gemma_file
from required_tools import missing_tool

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.engine]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
TOOLS = ("Xvfb", "xdotool", "import", "identify")
SCREEN = "1440x900x24"
SEARCH = "gemma 3 270m"
PROMPT = "Tell me a long story about a dragon who learns to bake bread."


def _missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


@pytest.fixture
def x_display() -> Iterator[str]:
    missing = _missing_tools()
    if missing:
        missing_tool(f"needs {', '.join(missing)} (Debian: xvfb xdotool imagemagick)")
    # Xvfb picks a free display itself and writes its number to the pipe once it listens
    # (-displayfd): no race with another test run choosing the same number.
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", SCREEN, "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(write_end,),
    )
    os.close(write_end)
    with os.fdopen(read_end) as numbers:
        number = numbers.readline().strip()
    if not number:
        server.kill()
        pytest.fail(f"Xvfb did not start (exit status {server.wait()})")
    display = f":{number}"
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


class Window:
    """The running app seen from outside: X input through xdotool, state through the probe."""

    def __init__(
        self, app: subprocess.Popen[str], log: Path, probe: Path, env: dict[str, str]
    ) -> None:
        self.app = app
        self.log = log
        self.probe = probe
        self.env = env
        self.id = ""
        self.last: dict[str, Any] = {}

    # ---- reading

    def state(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):  # not written yet
            self.last = json.loads(self.probe.read_text(encoding="utf-8"))
        return self.last

    def widgets(self, name: str) -> list[dict[str, Any]]:
        """The visible widgets called ``name`` (an accessible name), in window order."""
        return [w for w in self.state().get("widgets", []) if w.get("name") == name]

    def widget(self, name: str) -> dict[str, Any]:
        found = self.widgets(name)
        return found[0] if found else {}

    def table(self, name: str) -> dict[str, Any]:
        """The visible item view called ``name`` (its ``rows`` and ``cells``)."""
        return next((w for w in self.widgets(name) if "rows" in w), {})

    def text(self, name: str) -> str:
        return str(self.widget(name).get("text", ""))

    def wait(self, what: str, condition: Callable[[], Any], timeout: float = 30) -> Any:
        """Poll ``condition`` (on fresh probe data) until it returns something true."""
        deadline = time.monotonic() + timeout
        while True:
            self.state()
            result = condition()
            if result:
                return result
            if self.last.get("error"):
                pytest.fail(f"the window probe failed: {self.last['error']}")
            if self.last.get("dialogs"):
                _screenshot("failed", self.env)
                pytest.fail(f"a dialog opened: {self.last['dialogs']}\n{self.log_text()}")
            if self.app.poll() is not None:
                pytest.fail(f"the app exited while waiting for {what}:\n{self.log_text()}")
            if time.monotonic() > deadline:
                _screenshot("failed", self.env)  # what the window showed, for the report
                shown = json.dumps(self.last, indent=1)[:6000]
                pytest.fail(f"{what}: not within {timeout} s. The window shows:\n{shown}")
            time.sleep(0.1)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    # ---- acting

    def key(self, keys: str) -> None:
        _run(["xdotool", "key", "--window", self.id, keys], self.env)

    def type(self, text: str) -> None:
        _run(["xdotool", "type", "--window", self.id, "--delay", "15", text], self.env)

    def click(self, rect: list[int]) -> None:
        x, y, width, height = rect
        _run(
            ["xdotool", "mousemove", "--sync", str(x + width // 2), str(y + height // 2)],
            self.env,
        )
        _run(["xdotool", "click", "1"], self.env)

    def click_widget(self, name: str) -> None:
        """Click the middle of the widget called ``name`` once it is enabled and wholly on
        screen (a button scrolled out of a pane's view is a broken window, not a wait)."""
        found = self.wait(f"an enabled {name!r} on screen", lambda: _clickable(self.widgets(name)))
        self.click(found["rect"])


def _clickable(widgets: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first enabled widget shown whole (its ``shown`` part as large as its ``rect``)."""
    for widget in widgets:
        width, height = widget["rect"][2:]
        if widget.get("enabled") and widget["shown"][2:] == [width, height] and width * height:
            return widget
    return None


def _expected_rows(models_dir: Path, hf_cache: Path) -> list[tuple[str, str]]:
    """(source, quant) of every row the search should keep, from the core alone."""
    from desktop.core.catalog import load_catalog
    from desktop.core.library import scan
    from desktop.core.rows import catalog_rows, library_rows

    rows = [*catalog_rows(load_catalog()), *library_rows(scan([models_dir], hf_cache=hf_cache))]
    words = SEARCH.split()
    kept = []
    for row in rows:
        haystack = " ".join(
            (row.name, row.quant, row.repo or "", row.file_name, row.publisher, *row.tags)
        ).lower()
        if all(word in haystack for word in words):
            kept.append((row.source, row.quant))
    return sorted(kept)


def test_a_hobbyists_path_in_a_real_window(x_display: str, tmp_path: Path) -> None:
    for stale in ARTIFACTS.glob("*.png"):  # this run's screenshots only (and no old failure)
        stale.unlink()
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    # The test model under the starter model's own name, so the app's first start finds its
    # starter already there instead of writing a second copy.
    from desktop.core.library import STARTER_PACKAGE

    starter_name = str(importlib.import_module(STARTER_PACKAGE).MODEL_NAME)
    gemma = models_dir / starter_name
    gemma.symlink_to(gemma_file())
    hf_cache = tmp_path / "hf"
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"models_dir": str(models_dir)}), encoding="utf-8")
    probe = tmp_path / "window.json"
    env = dict(os.environ)
    env.pop("QT_QPA_PLATFORM", None)  # a real xcb window, not offscreen
    env.update(
        DISPLAY=x_display,
        LLMW_SETTINGS=str(settings),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        HF_HUB_CACHE=str(hf_cache),
        LLMW_REPORT_READY="1",
        LLMW_PROBE=str(probe),
        # The search box searches Hugging Face too; this path checks the catalog and local
        # rows only (tests/e2e/h12_walkthrough.py walks the Hub search against a test Hub).
        HF_HUB_OFFLINE="1",
    )
    log = tmp_path / "app.log"
    started = time.monotonic()
    steps: dict[str, float] = {}
    with log.open("w") as out:
        app = subprocess.Popen(
            [sys.executable, "-m", "desktop"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    window = Window(app, log, probe, env)
    try:
        # 1. The window opens and fills in.
        window.id = _run(
            ["xdotool", "search", "--sync", "--onlyvisible", "--name", "LLM Workbench"],
            env,
            timeout=60,
        ).split()[0]
        steps["window shown"] = time.monotonic() - started
        window.wait("'ready' in the app's output", lambda: "ready" in window.log_text(), 90)
        _run(["xdotool", "windowfocus", "--sync", window.id], env)  # no window manager here
        total = window.wait(
            "the models table filled in", lambda: window.table("Models").get("rows", 0)
        )
        assert window.state()["title"] == "LLM Workbench"
        assert not window.state()["dialogs"], window.state()["dialogs"]
        _screenshot("1-models", env)
        steps["filled in"] = time.monotonic() - started

        # 2. The search box narrows the table to the rows the core's search keeps.
        expected = _expected_rows(models_dir, hf_cache)
        assert ("local", "Q4_K_M") in expected, expected
        window.key("ctrl+f")
        window.type(SEARCH)
        window.wait("the typed search", lambda: window.text("Search models") == SEARCH)
        cells = window.wait(
            f"the table narrowed to {len(expected)} rows",
            lambda: (
                window.table("Models").get("rows") == len(expected)
                and window.table("Models")["cells"]
            ),
        )
        assert len(expected) < total
        for cell in cells:
            assert "270m" in cell["text"][0].lower(), cell["text"]
        shown = sorted(
            ("local" if c["text"][7] == "Local file" else "catalog", c["text"][2]) for c in cells
        )
        assert shown == expected, [c["text"] for c in cells]
        local = [c for c in cells if c["text"][7] == "Local file"]
        _screenshot("2-models-search", env)

        # 3. A click on the local row names it in the detail pane.
        window.click(local[0]["rect"])
        details = window.wait(
            "the detail pane showing the local Gemma file",
            lambda: any(gemma.name in t for t in window.widget("Model details").get("texts", [])),
        )
        assert details
        texts = window.widget("Model details")["texts"]
        assert local[0]["text"][0] in texts, texts  # the row's name, as the pane's title
        # Gemma 3 270M's GGUF has no chat template: where it is picked, it says it is a base model.
        base = " ".join(window.widget("Base model").get("texts", []))
        assert "Base model: it continues text, it does not follow instructions" in base, base
        assert window.text("Predicted speed"), "the detail pane predicts no speed"
        steps["picked"] = time.monotonic() - started

        # 4. Load… opens the load controls; Load model brings the model up.
        window.click_widget("Open the load controls")
        window.click_widget("Load the model")
        status = window.wait(
            "the model loaded",
            lambda: window.text("Load status").startswith("Loaded") and window.text("Load status"),
            timeout=60,
        )
        assert "Loaded in" in status, status
        _screenshot("3-loaded", env)
        steps["loaded"] = time.monotonic() - started

        # 5. A chat message streams an answer; Stop ends it.
        window.key("alt+2")
        window.wait("the chat ready", lambda: window.text("Chat status").startswith("Ready"))
        assert "270m" in window.text("Model").lower(), window.text("Model")
        chat_base = window.wait(
            "the chat's base-model warning",
            lambda: [w for w in window.widgets("Base model") if w.get("texts")],
        )
        assert any("does not follow instructions" in " ".join(w["texts"]) for w in chat_base)
        window.click_widget("Message")
        window.type(PROMPT)
        window.wait("the typed message", lambda: window.text("Message") == PROMPT)
        window.click_widget("Send")
        before = len(PROMPT)
        window.wait(
            "an answer streaming into the conversation",
            lambda: (
                window.text("Chat status").startswith("Answering")
                and PROMPT in window.text("Conversation")
                and len(window.text("Conversation")) > before + 80
            ),
            timeout=60,
        )
        _screenshot("4-chat-streaming", env)
        window.click_widget("Stop")
        transcript = window.wait(
            "the answer stopped",
            lambda: (
                window.text("Chat status").startswith("Ready")
                and "stopped by you" in window.text("Conversation")
                and window.text("Conversation")
            ),
        )
        answer = transcript.split(PROMPT, 1)[1]
        assert len(answer.strip()) > 80, transcript
        assert not window.widget("Stop").get("enabled"), "Stop is still enabled"
        _screenshot("5-chat-stopped", env)
        steps["answered"] = time.monotonic() - started

        # 6. The monitor's tokens/s curve has points.
        window.key("alt+3")

        def rate_curves() -> dict[str, int]:
            return window.widget("Tokens per second over time").get("curves") or {}

        curves = window.wait(
            "points on the tokens-per-second curve",
            lambda: rate_curves().get("Each token") and rate_curves(),
        )
        assert curves["Each token"] > 10, curves
        _screenshot("6-monitor", env)
        window.key("alt+4")
        window.wait("the Downloads tab", lambda: "Downloads" in window.state()["tab"])
        _screenshot("7-downloads", env)

        print("seconds since start: " + ", ".join(f"{k} {v:.1f}" for k, v in steps.items()))
        assert app.poll() is None, window.log_text()
    finally:
        app.terminate()
        try:
            app.wait(timeout=20)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()
    assert "Traceback" not in window.log_text(), window.log_text()
