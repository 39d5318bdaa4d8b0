"""The real app under Xvfb at three window sizes, each tab screenshotted (a script, not a test).

    .venv/bin/python tests/e2e/window_sizes.py OUT_DIR [WxH ...]

Sizes default to 1320x840 (the window's default), 1280x720 and 1920x1080. The models folder
holds the Gemma test model, a copy of a small synthetic model under three names (one a symlink
to another: one file, two names), and damaged files (wrong magic, cut short), so the
pictures show broken-file rows and local-file naming too. Needs xvfb, xdotool, imagemagick.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from real_models import gemma_file  # noqa: E402
from test_app_xvfb import Window, _run  # noqa: E402

SIZES = ("1320x840", "1280x720", "1920x1080")


def models_folder(folder: Path) -> Path:
    """Gemma, one synthetic model under three names, and three damaged files."""
    from synth import ACCURACY_MODELS, write_model

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gemma-3-270m-it-Q4_K_M.gguf").symlink_to(gemma_file())
    tiny = write_model(folder / "tiny-llama-gqa-q4_0.gguf", ACCURACY_MODELS["llama-gqa"])
    shutil.copyfile(tiny, folder / "tiny-llama-gqa-q4_0-copy.gguf")
    (folder / "tiny-llama-link.gguf").symlink_to(tiny)
    (folder / "not-a-model.gguf").write_bytes(b"GGML" + b"\0" * 4096)
    data = tiny.read_bytes()
    (folder / "cut-short.gguf").write_bytes(data[:300])
    (folder / "empty.gguf").write_bytes(b"")
    return folder


def start_xvfb(size: str) -> tuple[subprocess.Popen[bytes], str]:
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{size}x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(write_end,),
    )
    os.close(write_end)
    with os.fdopen(read_end) as numbers:
        number = numbers.readline().strip()
    return server, f":{number}"


def shot(env: dict[str, str], path: Path) -> None:
    _run(["import", "-window", "root", str(path)], env)
    print(path)


def one_size(size: str, out: Path, tmp: Path) -> None:
    width, height = (int(v) for v in size.split("x"))
    server, display = start_xvfb(size)
    models = models_folder(tmp / f"models-{size}")
    settings = tmp / f"settings-{size}.json"
    settings.write_text(json.dumps({"models_dir": str(models)}), encoding="utf-8")
    probe = tmp / f"window-{size}.json"
    env = dict(os.environ)
    env.pop("QT_QPA_PLATFORM", None)
    env.update(
        DISPLAY=display,
        LLMW_SETTINGS=str(settings),
        XDG_DATA_HOME=str(tmp / f"data-{size}"),
        XDG_STATE_HOME=str(tmp / f"state-{size}"),
        HF_HUB_CACHE=str(tmp / "hf"),
        LLMW_REPORT_READY="1",
        LLMW_PROBE=str(probe),
    )
    log = tmp / f"app-{size}.log"
    with log.open("w") as sink:
        app = subprocess.Popen(
            [sys.executable, "-m", "desktop"], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    window = Window(app, log, probe, env)  # type: ignore[arg-type]
    try:
        window.id = _run(
            ["xdotool", "search", "--sync", "--onlyvisible", "--name", "LLM Workbench"],
            env,
            timeout=60,
        ).split()[0]
        window.wait("ready", lambda: "ready" in window.log_text(), 90)
        _run(["xdotool", "windowmove", window.id, "0", "0"], env)
        _run(["xdotool", "windowsize", window.id, str(width), str(height)], env)
        _run(["xdotool", "windowfocus", "--sync", window.id], env)
        window.wait("rows", lambda: window.table("Models").get("rows", 0))
        time.sleep(1.5)
        shot(env, out / f"{size}-1-models.png")
        for term, name in (("not-a-model", "2-broken-file"), ("tiny", "3-local-rows"),
                           ("gemma 3 270m", "")):
            window.key("ctrl+f")
            window.key("ctrl+a")
            window.type(term)
            window.wait("search", lambda term=term: window.text("Search models") == term)
            time.sleep(1.0)
            cells = window.table("Models")["cells"]
            local = [c for c in cells if c["text"][7] == "Local file"]
            print(size, term, [c["text"][:5] for c in local])
            if local:
                window.click(local[0]["rect"])
                time.sleep(1.0)
            if name:
                shot(env, out / f"{size}-{name}.png")
        window.click_widget("Open the load controls")
        time.sleep(1.5)
        shot(env, out / f"{size}-4-load-panel.png")
        window.click_widget("Load the model")
        window.wait(
            "loaded", lambda: window.text("Load status").startswith("Loaded"), timeout=90
        )
        time.sleep(1.0)
        shot(env, out / f"{size}-4b-loaded.png")
        window.key("alt+2")
        window.wait("chat ready", lambda: window.text("Chat status").startswith("Ready"))
        window.click_widget("Message")
        window.type("Say hello.")
        window.click_widget("Send")
        window.wait(
            "an answer streaming",
            lambda: len(window.text("Conversation").split("Say hello.", 1)[-1]) > 60,
            timeout=120,
        )
        if window.widget("Stop").get("enabled"):
            window.click_widget("Stop")
        window.wait(
            "chat ready", lambda: window.text("Chat status").startswith("Ready"), timeout=180
        )
        for key, name in (("alt+2", "5-chat"), ("alt+3", "6-monitor"), ("alt+4", "7-downloads")):
            window.key(key)
            time.sleep(1.0)
            shot(env, out / f"{size}-{name}.png")
    finally:
        app.terminate()
        try:
            app.wait(timeout=20)
        except subprocess.TimeoutExpired:
            app.kill()
        server.terminate()
        server.wait(timeout=10)


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "test-artifacts/sizes")
    out.mkdir(parents=True, exist_ok=True)
    sizes = sys.argv[2:] or list(SIZES)
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            one_size(size, out, Path(folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
