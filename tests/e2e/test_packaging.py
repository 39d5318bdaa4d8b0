"""The Linux installer, end to end: build it, install it, run it.

``packaging/build_linux.sh`` builds the PyInstaller one-folder bundle and the .deb into a
temporary folder; the .deb is unpacked into a scratch root (``dpkg -x``, no root needed) and
the installed program is run from there, through a symlink as /usr/bin/llm-workbench would be:

* ``llm-workbench --self-test MODEL`` must pass every step with the real Gemma 3 270M model,
  which proves the frozen worker (``<exe> --worker``) loads the bundled llama.cpp libraries;
* the window must open under Xvfb and draw something (a screenshot with many colours).

The bundle size, the build time and the frozen app's start-up time are printed. These tests
take about two minutes on two cores; they skip, saying why, without PyInstaller, dpkg-deb
or xvfb-run.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from required_tools import missing_tool

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
APP = "llm-workbench"
BUILD_TIMEOUT_S = 900


@dataclass(frozen=True)
class Built:
    bundle: Path
    deb: Path
    tarball: Path | None
    seconds: float
    log: str


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _report(capsys: pytest.CaptureFixture[str], text: str) -> None:
    with capsys.disabled():
        print(f"\n[packaging] {text}")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    if not sys.platform.startswith("linux"):
        pytest.skip("the .deb is built on Linux only")
    if importlib.util.find_spec("PyInstaller") is None:
        missing_tool("PyInstaller is not installed (pip install pyinstaller)")
    for tool in ("dpkg-deb", "dpkg-shlibdeps", "objdump"):
        if shutil.which(tool) is None:
            missing_tool(f"{tool} is not installed (apt-get install dpkg-dev binutils)")
    base = tmp_path_factory.mktemp("packaging")
    env = dict(os.environ)
    env.update(PYTHON=sys.executable, LLMW_DIST=str(base / "dist"), LLMW_WORK=str(base / "work"))
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(ROOT / "packaging" / "build_linux.sh")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    seconds = time.monotonic() - started
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"build_linux.sh failed:\n{log[-4000:]}"
    debs = sorted((base / "dist").glob(f"{APP}_*.deb"))
    assert len(debs) == 1, log[-2000:]
    tarballs = sorted((base / "dist").glob(f"{APP}-*-linux-*.tar.gz"))
    return Built(
        bundle=base / "dist" / APP,
        deb=debs[0],
        tarball=tarballs[0] if tarballs else None,
        seconds=seconds,
        log=log,
    )


@pytest.fixture(scope="module")
def installed(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .deb unpacked into a scratch root; returns that root."""
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg-deb", "-x", str(built.deb), str(root)], check=True, timeout=300)
    return root


@pytest.fixture
def launcher(installed: Path, tmp_path: Path) -> Path:
    """A symlink to the installed program, as /usr/bin/llm-workbench is."""
    link = tmp_path / "bin" / APP
    link.parent.mkdir()
    link.symlink_to(installed / "opt" / APP / APP)
    return link


def _clean_env(home: Path) -> dict[str, str]:
    """A fresh user (own settings, caches, models folder) and nothing of the source checkout."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "VIRTUAL_ENV", "QT_", "LLMW_"))
    }
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        HF_HUB_OFFLINE="1",
    )
    return env


def test_deb_layout(built: Built, installed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    opt = installed / "opt" / APP
    assert (opt / APP).is_file() and os.access(opt / APP, os.X_OK)
    assert os.readlink(installed / "usr" / "bin" / APP) == f"/opt/{APP}/{APP}"
    desktop = (installed / "usr" / "share" / "applications" / f"{APP}.desktop").read_text()
    assert f"Exec={APP}" in desktop and f"Icon={APP}" in desktop
    assert (installed / "usr/share/icons/hicolor/scalable/apps" / f"{APP}.svg").is_file()
    assert (opt / "_internal" / "desktop" / "data" / "models.json").is_file()
    assert (opt / "_internal" / "desktop" / "data" / "gpus.json").is_file()
    libs = opt / "_internal" / "llama_cpp" / "lib"
    assert any(libs.glob("libllama.so*")), "llama.cpp's libraries are not bundled"

    info = subprocess.run(
        ["dpkg-deb", "--field", str(built.deb), "Depends", "Installed-Size"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    for package in ("libxcb-cursor0", "libxkbcommon-x11-0", "libfontconfig1", "libegl1"):
        assert package in info, f"the .deb does not depend on {package}: {info}"

    bundle_mb = _size(built.bundle) / 1e6
    _report(
        capsys,
        f"bundle {bundle_mb:.0f} MB, .deb {built.deb.stat().st_size / 1e6:.0f} MB"
        + (f", .tar.gz {built.tarball.stat().st_size / 1e6:.0f} MB" if built.tarball else "")
        + f"; built in {built.seconds:.0f} s",
    )


def test_tarball_layout(built: Built) -> None:
    import tarfile

    assert built.tarball is not None, "no portable .tar.gz was built"
    with tarfile.open(built.tarball) as tar:
        members = {m.name: m for m in tar.getmembers()}
    (top,) = {name.split("/", 1)[0] for name in members}
    assert top.startswith(f"{APP}-")
    assert members[f"{top}/{APP}"].isfile() and members[f"{top}/{APP}"].mode & 0o111
    assert f"{top}/{APP}.desktop" in members
    assert f"{top}/_internal/desktop/data/models.json" in members
    lib = members.get(f"{top}/_internal/llama_cpp/lib/libllama.so.0")
    assert lib is not None and lib.issym(), "the duplicate llama.cpp libraries are not symlinks"


def test_installed_self_test_passes(
    launcher: Path, gemma_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = subprocess.run(
        [str(launcher), "--self-test", str(gemma_path)],
        cwd=tmp_path,
        env=_clean_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    _report(capsys, "installed self-test:\n" + result.stdout.strip())
    assert result.returncode == 0, output
    assert "self-test: OK (" in result.stdout, output
    assert "Traceback" not in output
    assert f"load: {gemma_path.name}" in result.stdout  # the model asked for, not another


@pytest.fixture
def xvfb() -> Iterator[str]:
    if shutil.which("xvfb-run") is None:
        missing_tool("xvfb-run is not installed (apt-get install xvfb)")
    for tool in ("xdotool", "import"):
        if shutil.which(tool) is None:
            missing_tool(f"{tool} is not installed (apt-get install xdotool imagemagick)")
    yield "xvfb-run"


# Under Xvfb: the app's own start-up report (LLMW_SMOKE=1 prints "shown <seconds since the
# process started>" and quits), then a normal start, timed until xdotool sees the window,
# and a screenshot of the whole screen once the tables are filled in.
_GUI_SCRIPT = r"""
set -u
app="$1"; out="$2"
LLMW_SMOKE=1 timeout 120 "$app" >"$out/smoke.txt" 2>"$out/smoke.err"
echo "smoke_exit $?" >>"$out/smoke.txt"
start=$(date +%s.%N)
"$app" >"$out/app.log" 2>&1 &
pid=$!
if timeout 60 xdotool search --sync --onlyvisible --name "LLM Workbench" >/dev/null; then
  echo "$start $(date +%s.%N)" >"$out/seen.txt"
fi
sleep 4
import -window root "$out/shot.png"
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
exit 0
"""


def test_installed_window_opens(
    xvfb: str, launcher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "gui"
    out.mkdir()
    script = tmp_path / "gui.sh"
    script.write_text(_GUI_SCRIPT)
    env = _clean_env(tmp_path / "home")
    subprocess.run(
        [xvfb, "-a", "-s", "-screen 0 1280x800x24", "bash", str(script), str(launcher), str(out)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
        check=False,
    )
    smoke = (out / "smoke.txt").read_text()
    errors = (out / "smoke.err").read_text()
    events = dict(line.split() for line in smoke.splitlines() if len(line.split()) == 2)
    assert events.get("smoke_exit") == "0", f"{smoke}\n{errors}"
    assert {"shown", "catalog", "hardware"} <= set(events), f"{smoke}\n{errors}"
    assert "Traceback" not in errors, errors
    seen = (out / "seen.txt").read_text().split() if (out / "seen.txt").exists() else []
    assert seen, "xdotool never saw a window named LLM Workbench:\n" + (
        (out / "app.log").read_text()
    )
    seen_after = float(seen[1]) - float(seen[0])
    colours = _distinct_colours(out / "shot.png")
    _report(
        capsys,
        f"frozen start-up: window shown {float(events['shown']):.2f} s after the process "
        f"started (app's clock), seen by xdotool after {seen_after:.2f} s; catalog "
        f"{float(events['catalog']):.2f} s, hardware {float(events['hardware']):.2f} s; "
        f"screenshot {colours} colours",
    )
    assert colours > 50, "the screenshot is (nearly) blank"
    assert float(events["shown"]) < 30


def _distinct_colours(png: Path) -> int:
    import numpy as np
    from PySide6.QtGui import QImage

    image = QImage(str(png))
    assert not image.isNull(), f"cannot read the screenshot {png}"
    image = image.convertToFormat(QImage.Format.Format_RGB32)
    pixels = np.frombuffer(image.constBits(), dtype=np.uint32, count=image.width() * image.height())
    return len(np.unique(pixels))
