#!/usr/bin/env bash
# Build LLM Workbench for Linux: the PyInstaller one-folder bundle, a .deb and a portable .tar.gz.
#
#   packaging/build_linux.sh
#
# Run from anywhere; uses the project's .venv (or $PYTHON) with the app installed and
# pyinstaller added (pip install pyinstaller). Needs dpkg-deb and dpkg-shlibdeps (package
# dpkg-dev) for the .deb; without them only the bundle and the .tar.gz are made.
#
# Environment:
#   PYTHON                 the Python whose packages are bundled (default: .venv/bin/python)
#   LLMW_BACKEND           cpu|cuda|vulkan|metal: rebuild llama-cpp-python for it first
#                          (see packaging/backend.sh and packaging/README.md)
#   LLMW_DIST              where the results go (default: dist)
#   LLMW_WORK              scratch folder (default: build)
#   LLMW_DEB_COMPRESSION   xz (default, smallest), gzip, zstd (dpkg 1.21.18+ only) or none
#   LLMW_SKIP_DEB=1        no .deb;  LLMW_SKIP_TAR=1  no .tar.gz
#
# Results (version from desktop/__init__.py):
#   $LLMW_DIST/llm-workbench/                        the bundle (run ./llm-workbench)
#   $LLMW_DIST/llm-workbench_<version>_<arch>.deb    installs to /opt/llm-workbench
#   $LLMW_DIST/llm-workbench-<version>-linux-<machine>.tar.gz
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

say() { echo "== $*"; }
die() { echo "build_linux.sh: $*" >&2; exit 1; }

"$python" -c 'import PyInstaller' 2>/dev/null ||
  die "PyInstaller is not installed in $python; run: $python -m pip install pyinstaller"
"$python" -c 'import desktop, llama_cpp' 2>/dev/null ||
  die "the app or llama-cpp-python is not installed in $python; run: $python -m pip install -e ."
version="$("$python" -c 'import desktop; print(desktop.__version__)')"

# shellcheck source=packaging/backend.sh
source "$root/packaging/backend.sh"
llmw_ensure_backend "$python"
backends="$(llmw_installed_backends "$python")"
export LLMW_BACKEND="${LLMW_BACKEND:-$(echo "${backends:-cpu}" | tr ' ' '+')}"

say "icons"
"$python" packaging/make_icons.py resources/icons/$app.svg "$work/icons"
export LLMW_ICON_DIR="$work/icons"

say "PyInstaller one-folder bundle ($version)"
rm -rf "${dist:?}/$app"
"$python" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath "$dist" --workpath "$work/pyinstaller" packaging/$app.spec
bundle="$dist/$app"
"$bundle/$app" --version >/dev/null || die "the bundle does not start: $bundle/$app --version failed"

# ------------------------------------------------------------------ .deb
if [ "${LLMW_SKIP_DEB:-0}" != 1 ] && command -v dpkg-deb >/dev/null; then
  arch="$(dpkg --print-architecture)"
  deb="$dist/${app}_${version}_${arch}.deb"
  say ".deb ($arch)"
  stage="$work/deb"
  rm -rf "$stage"
  mkdir -p "$stage/root/opt" "$stage/root/usr/bin" "$stage/root/usr/share/applications" \
    "$stage/root/usr/share/icons/hicolor/scalable/apps" "$stage/root/usr/share/doc/$app" \
    "$stage/root/DEBIAN"
  cp -a "$bundle" "$stage/root/opt/$app"
  ln -s "/opt/$app/$app" "$stage/root/usr/bin/$app"
  install -m 644 resources/$app.desktop "$stage/root/usr/share/applications/$app.desktop"
  install -m 644 resources/icons/$app.svg "$stage/root/usr/share/icons/hicolor/scalable/apps/$app.svg"
  for size in 16 24 32 48 64 128 256 512; do
    mkdir -p "$stage/root/usr/share/icons/hicolor/${size}x${size}/apps"
    install -m 644 "$work/icons/$app-$size.png" \
      "$stage/root/usr/share/icons/hicolor/${size}x${size}/apps/$app.png"
  done
  printf 'LLM Workbench %s\nLicense: MIT\nBundles Python, Qt for Python (LGPLv3) and llama.cpp (MIT).\n' \
    "$version" >"$stage/root/usr/share/doc/$app/copyright"

  # Depends: the system libraries the bundle's binaries link to (X11/xcb for Qt's window
  # system plugin, fontconfig, D-Bus, the C/C++ runtime...), found by dpkg-shlibdeps from
  # their ELF headers, plus the packages Qt's xcb plugin loads at run time.
  mkdir -p "$stage/shlibs/debian"
  printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$app" "$app" >"$stage/shlibs/debian/control"
  mapfile -t elves < <(find "$stage/root/opt/$app" -type f \( -name '*.so*' -o -name "$app" \) \
    -exec sh -c 'head -c4 "$1" | grep -q "ELF" && echo "$1"' _ {} \;)
  libdirs=()
  while IFS= read -r dir; do libdirs+=("-l$dir"); done < <(printf '%s\n' "${elves[@]}" | xargs -n1 dirname | sort -u)
  shlibs="$(cd "$stage/shlibs" && dpkg-shlibdeps -O --ignore-missing-info \
    "${libdirs[@]}" "${elves[@]}" 2>"$stage/shlibdeps.log" | sed -n 's/^shlibs:Depends=//p')" || {
    missing="$(grep -o 'cannot find library [^ ]*' "$stage/shlibdeps.log" | cut -d' ' -f4 |
      sort -u | tr '\n' ' ')"
    [ -n "$missing" ] && die "the bundle links to libraries this machine lacks: $missing- install" \
      "them (e.g. apt-get install libwayland-cursor0 libwayland-egl1) so dpkg-shlibdeps can" \
      "name their packages"
    die "dpkg-shlibdeps failed: $(grep error "$stage/shlibdeps.log" | tail -3)"
  }
  # Loaded with dlopen (not in any ELF header), so dpkg-shlibdeps cannot see them:
  # libxcb-cursor (Qt >= 6.5 refuses to start xcb without it), GL/EGL for OpenGL contexts.
  extra="libxcb-cursor0, libxkbcommon-x11-0, libxcb-icccm4, libxcb-keysyms1, libxcb-shape0,"
  extra="$extra libxcb-render-util0, libxcb-image0, libegl1, libgl1, libfontconfig1, libdbus-1-3"
  depends="$("$python" - "$shlibs" "$extra" <<'EOF'
import re, sys
seen, out = set(), []
for part in ",".join(sys.argv[1:]).split(","):
    part = part.strip()
    name = re.split(r"[\s(]", part, maxsplit=1)[0]
    if part and name not in seen:
        seen.add(name)
        out.append(part)
print(", ".join(out))
EOF
)"
  installed_kb="$(du -sk "$stage/root" | cut -f1)"
  cat >"$stage/root/DEBIAN/control" <<EOF
Package: $app
Version: $version
Architecture: $arch
Maintainer: LLM Workbench maintainers <llm-workbench@users.noreply.github.com>
Installed-Size: $installed_kb
Depends: $depends
Section: science
Priority: optional
Homepage: https://github.com/llm-workbench/llm-workbench
Description: which GGUF language models this computer can run, and how fast
 LLM Workbench shows the CPU, RAM, GPUs and VRAM of this computer, estimates
 for each GGUF model and quantization whether it fits and how many tokens per
 second it will give, and runs it through llama.cpp with live speed and memory
 charts. llama.cpp backend in this build: $LLMW_BACKEND.
EOF
  compression="${LLMW_DEB_COMPRESSION:-xz}"
  dpkg-deb --build --root-owner-group -Z"$compression" "$stage/root" "$deb" >/dev/null
  say "Depends: $depends"
elif [ "${LLMW_SKIP_DEB:-0}" != 1 ]; then
  echo "build_linux.sh: dpkg-deb not found; no .deb (install dpkg-dev)" >&2
fi

# ------------------------------------------------------------------ portable .tar.gz
if [ "${LLMW_SKIP_TAR:-0}" != 1 ]; then
  tarball="$dist/$app-$version-linux-$(uname -m).tar.gz"
  say "portable .tar.gz"
  top="$app-$version"
  rm -rf "${work:?}/tar"
  mkdir -p "$work/tar"
  cp -al "$bundle" "$work/tar/$top" 2>/dev/null || cp -a "$bundle" "$work/tar/$top"
  install -m 644 resources/$app.desktop "$work/tar/$top/$app.desktop"
  install -m 644 resources/icons/$app.svg "$work/tar/$top/$app.svg"
  tar -C "$work/tar" -czf "$tarball" "$top"
  rm -rf "${work:?}/tar"
fi

# ------------------------------------------------------------------ summary
say "done in $((SECONDS - started)) s (llama.cpp backends: ${backends:-unknown})"
du -sh "$bundle" | sed 's/^/   bundle   /'
for f in "${deb:-}" "${tarball:-}"; do
  [ -n "$f" ] && [ -f "$f" ] && du -h "$f" | sed 's/^/   /'
done
exit 0
