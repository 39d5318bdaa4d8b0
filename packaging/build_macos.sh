#!/usr/bin/env bash
# Build LLM Workbench for macOS: "LLM Workbench.app" (PyInstaller) inside a .dmg.
#
#   packaging/build_macos.sh
#
# Uses the project's .venv (or $PYTHON) with the app installed and pyinstaller added.
# On Apple Silicon the llama.cpp build must have Metal: install llama-cpp-python with
#   CMAKE_ARGS="-DGGML_METAL=on -DGGML_NATIVE=OFF" pip install llama-cpp-python
# or let this script rebuild it (LLMW_BACKEND defaults to metal on arm64, cpu on Intel).
#
# Environment:
#   PYTHON                   the Python whose packages are bundled (default: .venv/bin/python)
#   LLMW_BACKEND             metal|cpu (see packaging/backend.sh and packaging/README.md)
#   LLMW_DIST / LLMW_WORK    results (default dist) / scratch (default build)
#   LLMW_CODESIGN_IDENTITY   "Developer ID Application: ..." to sign with (hardened runtime);
#                            unset: PyInstaller's ad-hoc signature (Gatekeeper then asks the
#                            person to right-click > Open the first time)
#
# Results: $LLMW_DIST/LLM Workbench.app and $LLMW_DIST/llm-workbench-<version>-macos-<arch>.dmg
set -euo pipefail
started=$SECONDS
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi
dist="$(mkdir -p "${LLMW_DIST:-dist}" && cd "${LLMW_DIST:-dist}" && pwd)"
work="$(mkdir -p "${LLMW_WORK:-build}" && cd "${LLMW_WORK:-build}" && pwd)"
app=llm-workbench
bundle="$dist/LLM Workbench.app"
arch="$(uname -m)"

say() { echo "== $*"; }
die() { echo "build_macos.sh: $*" >&2; exit 1; }

[ "$(uname -s)" = Darwin ] || die "this script runs on macOS"
"$python" -c 'import PyInstaller' 2>/dev/null ||
  die "PyInstaller is not installed in $python; run: $python -m pip install pyinstaller"
"$python" -c 'import desktop, llama_cpp' 2>/dev/null ||
  die "the app or llama-cpp-python is not installed in $python; run: $python -m pip install -e ."
version="$("$python" -c 'import desktop; print(desktop.__version__)')"

if [ "$arch" = arm64 ]; then export LLMW_BACKEND="${LLMW_BACKEND:-metal}"; fi
# shellcheck source=packaging/backend.sh
source "$root/packaging/backend.sh"
llmw_ensure_backend "$python"
backends="$(llmw_installed_backends "$python")"
export LLMW_BACKEND
LLMW_BACKEND="$(echo "${backends:-cpu}" | tr ' ' '+')"

say "icons"
"$python" packaging/make_icons.py resources/icons/$app.svg "$work/icons"
export LLMW_ICON_DIR="$work/icons"

say "PyInstaller .app ($version, $arch)"
rm -rf "${dist:?}/$app" "$bundle"
"$python" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath "$dist" --workpath "$work/pyinstaller" packaging/$app.spec
"$bundle/Contents/MacOS/$app" --version >/dev/null ||
  die "the app does not start: $bundle/Contents/MacOS/$app --version failed"

if [ -n "${LLMW_CODESIGN_IDENTITY:-}" ]; then
  say "signing with $LLMW_CODESIGN_IDENTITY"
  codesign --force --deep --options runtime --timestamp \
    --sign "$LLMW_CODESIGN_IDENTITY" "$bundle"
  codesign --verify --strict --verbose=2 "$bundle"
  # Notarize (needs an App Store Connect key), then staple:
  #   xcrun notarytool submit "$dmg" --keychain-profile NAME --wait && xcrun stapler staple "$dmg"
fi

say ".dmg"
dmg="$dist/$app-$version-macos-$arch.dmg"
stage="$work/dmg"
rm -rf "$stage" "$dmg"
mkdir -p "$stage"
cp -R "$bundle" "$stage/"
ln -s /Applications "$stage/Applications"
hdiutil create -volname "LLM Workbench $version" -srcfolder "$stage" -ov -format UDZO "$dmg" >/dev/null
rm -rf "$stage"

say "done in $((SECONDS - started)) s (llama.cpp backends: ${backends:-unknown})"
du -sh "$bundle" "$dmg" | sed 's/^/   /'
