"""The backend probe: ``python -m desktop.engine.probe`` (or ``<frozen exe> --probe-backends``).

:func:`desktop.core.hardware.probe_backends` starts this in a child process to
learn what the installed llama-cpp-python can use, because importing a build
that does not match the CPU can kill the process with an illegal instruction,
and the app must survive that to say so. It prints one line,
``LLMW-BACKENDS {json}``, and exits 0 whatever it found (a failed import is an
answer too); the parent reads that line and nothing else.

The answer's keys: ``version``, ``gpu_offload``, ``system_info``
(``llama_print_system_info()``), ``registries`` (ggml backend registries such
as "CPU", "CUDA") and ``devices`` (name, description, type), each with an
``*_error`` twin when it could not be read, or only ``import_error``. ggml's
registries and devices are read through the shared library's exported
``ggml_backend_*`` functions, which llama-cpp-python does not wrap.
"""

from __future__ import annotations

import ctypes
import json
import sys
from collections.abc import Callable
from typing import Any

from desktop.core.children import BACKEND_MARKER

#: ``sym(name, restype, argtypes)``: an exported C function, typed for ctypes.
_Symbols = Callable[[str, Any, list[Any]], Any]


def _text(value: Any) -> str:
    """A C string from ctypes (bytes or None) as text."""
    return (value or b"").decode("utf-8", "replace")


def _ggml_symbols(low: Any) -> _Symbols:
    """A finder for exported ggml_backend_* functions: ``sym(name, restype, argtypes)``.

    They live in libggml / libggml-base. Linux finds them through libllama too,
    Windows only in the DLL that defines them. Raises AttributeError when this
    llama-cpp-python has no libllama handle, and the finder raises it for a
    symbol no library exports.
    """
    libraries: list[Any] = []
    try:
        from llama_cpp import _ggml

        libraries.append(_ggml.libggml)
        libraries.append(_ggml.ctypes_ext.load_shared_library("ggml-base", _ggml.libggml_base_path))
    except Exception:  # older llama-cpp-python: no _ggml module
        pass
    libraries.append(low._lib)

    def sym(name: str, restype: Any, argtypes: list[Any]) -> Any:
        for library in libraries:
            function = getattr(library, name, None)
            if function is not None:
                function.restype, function.argtypes = restype, argtypes
                return function
        raise AttributeError(name)

    return sym


def _ggml_registries(sym: _Symbols) -> list[str]:
    """ggml's backend registries: "CPU", "CUDA", "Vulkan", ..."""
    pointer, size = ctypes.c_void_p, ctypes.c_size_t
    reg_count = sym("ggml_backend_reg_count", size, [])
    reg_get = sym("ggml_backend_reg_get", pointer, [size])
    reg_name = sym("ggml_backend_reg_name", ctypes.c_char_p, [pointer])
    return [_text(reg_name(reg_get(i))) for i in range(reg_count())]


def _ggml_devices(sym: _Symbols) -> list[dict[str, Any]]:
    """ggml's devices: name ("CUDA0"), description (the card), type (enum ggml_backend_dev_type)."""
    pointer, size, string = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p
    dev_count = sym("ggml_backend_dev_count", size, [])
    dev_get = sym("ggml_backend_dev_get", pointer, [size])
    dev_name = sym("ggml_backend_dev_name", string, [pointer])
    dev_description = sym("ggml_backend_dev_description", string, [pointer])
    dev_type = sym("ggml_backend_dev_type", ctypes.c_int, [pointer])
    devices = []
    for i in range(dev_count()):
        device = dev_get(i)
        devices.append(
            {
                "name": _text(dev_name(device)),
                "description": _text(dev_description(device)),
                "type": int(dev_type(device)),
            }
        )
    return devices


def probe() -> dict[str, Any]:
    """What the installed llama.cpp build says about itself (see the module docstring)."""
    answer: dict[str, Any] = {}
    try:
        import llama_cpp
        from llama_cpp import llama_cpp as low
    except BaseException as exc:  # ImportError, OSError from the library, even SystemExit
        answer["import_error"] = f"{type(exc).__name__}: {exc}"
        return answer
    answer["version"] = getattr(llama_cpp, "__version__", None)
    try:
        low.llama_backend_init()
    except Exception as exc:
        answer["init_error"] = str(exc)
    try:
        answer["gpu_offload"] = bool(low.llama_supports_gpu_offload())
    except Exception as exc:
        answer["gpu_offload_error"] = str(exc)
    try:
        info = low.llama_print_system_info()
        answer["system_info"] = _text(info) if isinstance(info, bytes) else str(info)
    except Exception as exc:
        answer["system_info_error"] = str(exc)
    try:
        sym = _ggml_symbols(low)
        answer["registries"] = _ggml_registries(sym)
        answer["devices"] = _ggml_devices(sym)
    except Exception as exc:
        answer["devices_error"] = f"{type(exc).__name__}: {exc}"
    return answer


def main() -> int:
    """Entry point of the probe process: print the answer line, exit 0."""
    print(BACKEND_MARKER + json.dumps(probe()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
