# shellcheck shell=bash
# Shared by build_linux.sh and build_macos.sh (sourced, not run): which llama.cpp build the
# bundle carries. The app bundles whatever llama-cpp-python is installed in the build
# environment; LLMW_BACKEND asks for a specific one and rebuilds llama-cpp-python if the
# installed one has a different backend.
#
#   LLMW_BACKEND=cpu     -DGGML_NATIVE=OFF                      (portable x86-64/arm64 CPU build)
#   LLMW_BACKEND=cuda    -DGGML_NATIVE=OFF -DGGML_CUDA=on       (NVIDIA; needs the CUDA toolkit)
#   LLMW_BACKEND=vulkan  -DGGML_NATIVE=OFF -DGGML_VULKAN=on     (any vendor; needs the Vulkan SDK)
#   LLMW_BACKEND=metal   -DGGML_NATIVE=OFF -DGGML_METAL=on      (Apple Silicon)
#   LLMW_CMAKE_EXTRA     more CMake flags, appended (e.g. -DCMAKE_CUDA_ARCHITECTURES=75;86;89)
#
# GGML_NATIVE is always OFF: a build tuned for the build machine's CPU crashes with an
# illegal instruction on an older one.

llmw_cmake_args() {
  local flags="-DGGML_NATIVE=OFF"
  case "$1" in
    cpu) ;;
    cuda) flags="$flags -DGGML_CUDA=on" ;;
    vulkan) flags="$flags -DGGML_VULKAN=on" ;;
    metal) flags="$flags -DGGML_METAL=on" ;;
    *) echo "LLMW_BACKEND must be cpu, cuda, vulkan or metal (got '$1')" >&2; return 2 ;;
  esac
  echo "$flags${LLMW_CMAKE_EXTRA:+ $LLMW_CMAKE_EXTRA}"
}

# The llama.cpp backends of the installed llama-cpp-python, as the app reports them
# (`llm-workbench hardware --json`), e.g. "cpu" or "cpu cuda".
llmw_installed_backends() {
  "$1" -m desktop.cli hardware --json --no-bandwidth 2>/dev/null |
    "$1" -c 'import json,sys; b=json.load(sys.stdin)["backends"]; print(" ".join(b["backends"]) if not b["error"] else "")'
}

# llmw_ensure_backend PYTHON: with LLMW_BACKEND set, rebuild llama-cpp-python (same version)
# unless it already has that backend. Without LLMW_BACKEND, bundle what is installed.
llmw_ensure_backend() {
  local python="$1" backend="${LLMW_BACKEND:-}" have version
  have="$(llmw_installed_backends "$python")"
  if [ -z "$backend" ]; then
    echo "== llama.cpp backends in this build: ${have:-unknown} (set LLMW_BACKEND to choose)"
    return 0
  fi
  local gpu_free="${have//cpu/}"
  gpu_free="${gpu_free//blas/}"
  if { [ "$backend" = cpu ] && [ -n "$have" ] && [ -z "${gpu_free// /}" ]; } ||
     { [ "$backend" != cpu ] && [[ " $have " == *" $backend "* ]]; }; then
    echo "== llama.cpp already built for $backend (backends: $have)"
    return 0
  fi
  version="$("$python" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')"
  export CMAKE_ARGS
  CMAKE_ARGS="$(llmw_cmake_args "$backend")" || return 2
  echo "== rebuilding llama-cpp-python $version with CMAKE_ARGS=\"$CMAKE_ARGS\" (several minutes)"
  # pip would otherwise reuse the wheel it cached for the previous flags.
  "$python" -m pip cache remove 'llama_cpp_python*' >/dev/null 2>&1 || true
  "$python" -m pip install --force-reinstall --no-deps --no-binary llama-cpp-python \
    "llama-cpp-python==$version"
  have="$(llmw_installed_backends "$python")"
  echo "== llama.cpp backends now: ${have:-unknown}"
}
