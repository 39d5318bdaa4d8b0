"""llama.cpp's RPC backend through ctypes: serve a device, add a remote one, ask one.

llama.cpp (ggml/include/ggml-rpc.h, RPC protocol v7.0.0 in llama-cpp-python 0.3.36) turns a
device of another computer into a device of this process: ``rpc-server`` there, and here
``ggml_backend_rpc_add_server(endpoint)`` followed by ``ggml_backend_register(reg)`` before
the model loads. llama-cpp-python wraps neither (it has no ``rpc_servers`` argument any
more), so this module binds the exported C functions itself::

    void ggml_backend_rpc_start_server(const char * endpoint, const char * cache_dir,
                                       size_t n_threads, size_t n_devices,
                                       ggml_backend_dev_t * devices);   // blocks
    ggml_backend_reg_t ggml_backend_rpc_add_server(const char * endpoint);
    void ggml_backend_register(ggml_backend_reg_t reg);                 // ggml-backend-reg
    void ggml_backend_dev_memory(ggml_backend_dev_t dev, size_t * free, size_t * total);

The libraries are opened by their sonames (``libggml.so.0``, ``libggml-rpc.so.0``): the
wheel ships ``libggml.so`` as a *copy*, not a link, so opening that name would load a second
ggml whose registry llama.cpp never reads (libllama's NEEDED entry is ``libggml.so.0``).

Every call that talks to a server aborts the process when the server cannot be reached or
answers wrongly (``GGML_ABORT("Failed to connect to ...")``, ``"RPC server version mismatch"``
then ``"RPC handshake failed"``, ``"Remote RPC server crashed or returned malformed
response"``). So the app asks servers only from child processes (``desktop.engine.rpc_probe``
and the worker), and checks first that something listens (:func:`check_reachable`).
"""

from __future__ import annotations

import ctypes
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "RemoteDeviceInfo",
    "check_reachable",
    "local_devices",
    "query_server",
    "register_servers",
    "start_server",
]

#: enum ggml_backend_dev_type (ggml-backend.h).
DEVICE_TYPES = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel"}
#: Round trips timed for the link latency (each one GET_DEVICE_MEMORY request).
LATENCY_ROUND_TRIPS = 5

_lock = threading.Lock()
_libraries: tuple[Any, Any] | None = None
#: Endpoints registered in this process (ggml keeps a registration for the process's life).
_registered: dict[str, list[int]] = {}


def _library_names(stem: str) -> list[str]:
    """The file names a ggml library has, soname first, on this system."""
    if sys.platform == "win32":
        return [f"{stem}.dll", f"lib{stem}.dll"]
    if sys.platform == "darwin":
        return [f"lib{stem}.0.dylib", f"lib{stem}.dylib"]
    return [f"lib{stem}.so.0", f"lib{stem}.so"]


def _open(folder: Path, stem: str) -> Any:
    for name in _library_names(stem):
        path = folder / name
        if path.exists():
            return ctypes.CDLL(str(path))
    raise OSError(f"{stem} is not in {folder}: this llama-cpp-python was built without RPC")


def libraries() -> tuple[Any, Any]:
    """(libggml, libggml-rpc), opened once, typed for ctypes."""
    global _libraries  # noqa: PLW0603 (opened once per process, like llama_cpp's own handle)
    with _lock:
        if _libraries is not None:
            return _libraries
        import llama_cpp  # loads libllama, and with it libggml.so.0

        folder = Path(llama_cpp.__file__).resolve().parent / "lib"
        ggml = _open(folder, "ggml")
        rpc = _open(folder, "ggml-rpc")
        p, size, string = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p
        size_p = ctypes.POINTER(ctypes.c_size_t)
        for lib, name, restype, argtypes in (
            (rpc, "ggml_backend_rpc_add_server", p, [string]),
            (rpc, "ggml_backend_rpc_start_server", None, [string, string, size, size, p]),
            (ggml, "ggml_backend_register", None, [p]),
            (ggml, "ggml_backend_dev_count", size, []),
            (ggml, "ggml_backend_dev_get", p, [size]),
            (ggml, "ggml_backend_dev_by_type", p, [ctypes.c_int]),
            (ggml, "ggml_backend_dev_name", string, [p]),
            (ggml, "ggml_backend_dev_description", string, [p]),
            (ggml, "ggml_backend_dev_type", ctypes.c_int, [p]),
            (ggml, "ggml_backend_dev_memory", None, [p, size_p, size_p]),
            (ggml, "ggml_backend_dev_buffer_type", p, [p]),
            (ggml, "ggml_backend_buft_get_alignment", size, [p]),
            (ggml, "ggml_backend_reg_dev_count", size, [p]),
            (ggml, "ggml_backend_reg_dev_get", p, [p, size]),
        ):
            function = getattr(lib, name)
            function.restype, function.argtypes = restype, argtypes
        _libraries = (ggml, rpc)
        return _libraries


def _text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", "replace")


def _memory(ggml: Any, device: int) -> tuple[int, int]:
    free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
    ggml.ggml_backend_dev_memory(device, ctypes.byref(free), ctypes.byref(total))
    return int(free.value), int(total.value)


def _device_dict(ggml: Any, device: int) -> dict[str, Any]:
    free, total = _memory(ggml, device)
    buft = ggml.ggml_backend_dev_buffer_type(device)
    return {
        "name": _text(ggml.ggml_backend_dev_name(device)),
        "description": _text(ggml.ggml_backend_dev_description(device)),
        "type": DEVICE_TYPES.get(int(ggml.ggml_backend_dev_type(device)), "unknown"),
        "free_bytes": free,
        "total_bytes": total,
        "alignment": int(ggml.ggml_backend_buft_get_alignment(buft)) if buft else 0,
    }


def local_devices() -> list[dict[str, Any]]:
    """This process's ggml devices (name, description, type, memory), remote ones included."""
    ggml, _ = libraries()
    count = ggml.ggml_backend_dev_count()
    return [_device_dict(ggml, ggml.ggml_backend_dev_get(i)) for i in range(count)]


def _serveable_device(ggml: Any, wanted: str | None) -> int:
    """The device to share: ``wanted`` by name ("CPU", "CUDA0"; any case), else the CPU."""
    if wanted is None or wanted.lower() == "cpu":
        device = ggml.ggml_backend_dev_by_type(0)
        if device:
            return int(device)
    names = []
    for i in range(ggml.ggml_backend_dev_count()):
        device = ggml.ggml_backend_dev_get(i)
        name = _text(ggml.ggml_backend_dev_name(device))
        if name.startswith("RPC"):
            continue  # a remote device cannot be shared on
        names.append(name)
        if wanted is not None and name.lower() == wanted.lower():
            return int(device)
    raise ValueError(f"this computer has no device {wanted!r}; it has {', '.join(names) or 'none'}")


def serve_info(endpoint: str, device_name: str | None) -> dict[str, Any]:
    """What :func:`start_server` will offer: the device and its memory."""
    ggml, _ = libraries()
    device = _serveable_device(ggml, device_name)
    return {"endpoint": endpoint, **_device_dict(ggml, device)}


def start_server(
    endpoint: str, device_name: str | None, n_threads: int, cache_dir: str | None = None
) -> None:
    """Serve one device of this computer at ``endpoint`` ("host:port"); never returns
    unless llama.cpp cannot listen (it prints why on stderr)."""
    ggml, rpc = libraries()
    device = _serveable_device(ggml, device_name)
    devices = (ctypes.c_void_p * 1)(device)
    rpc.ggml_backend_rpc_start_server(
        endpoint.encode(),
        cache_dir.encode() if cache_dir else None,
        max(int(n_threads), 1),
        1,
        ctypes.cast(devices, ctypes.c_void_p),
    )


def check_reachable(endpoint: str, timeout: float = 3.0) -> str | None:
    """None when something accepts TCP connections at ``endpoint``; else why not, in words.

    llama.cpp aborts the process when a connection fails, so the worker and the probe look
    first. A connection that is accepted and closed again costs the server nothing.
    """
    host, _, port = endpoint.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return None
    except ConnectionRefusedError:
        return "nothing is listening there"
    except TimeoutError:
        return f"it did not accept a connection within {timeout:g} s"
    except (OSError, ValueError) as exc:
        return getattr(exc, "strerror", None) or str(exc)


def register_servers(endpoints: list[str]) -> dict[str, list[int]]:
    """Add each server's devices to llama.cpp's registry (once per process); their devices.

    The next model load sees them as GPU-type devices ("RPC0", "RPC1", ...), remote ones
    first in the order given (llama.cpp's own order: src/llama.cpp puts RPC devices first).
    """
    ggml, rpc = libraries()
    out: dict[str, list[int]] = {}
    for endpoint in endpoints:
        with _lock:
            known = _registered.get(endpoint)
        if known is None:
            reg = rpc.ggml_backend_rpc_add_server(endpoint.encode())
            if not reg:
                raise RuntimeError(f"the RPC server at {endpoint} offers no device")
            ggml.ggml_backend_register(reg)
            known = [
                int(ggml.ggml_backend_reg_dev_get(reg, i))
                for i in range(ggml.ggml_backend_reg_dev_count(reg))
            ]
            with _lock:
                _registered[endpoint] = known
        out[endpoint] = known
    return out


def local_gpu_devices() -> list[int]:
    """This computer's GPU devices in llama.cpp's order (src/llama.cpp: GPUs, else iGPUs)."""
    ggml, _ = libraries()
    gpus, igpus = [], []
    for i in range(ggml.ggml_backend_dev_count()):
        device = ggml.ggml_backend_dev_get(i)
        if _text(ggml.ggml_backend_dev_name(device)).startswith("RPC"):
            continue
        kind = int(ggml.ggml_backend_dev_type(device))
        if kind == 1:
            gpus.append(int(device))
        elif kind == 2:
            igpus.append(int(device))
    return gpus or igpus


def registered_devices() -> dict[str, list[int]]:
    """The remote devices this process registered, by endpoint."""
    with _lock:
        return {k: list(v) for k, v in _registered.items()}


@dataclass(frozen=True)
class RemoteDeviceInfo:
    """One device of an RPC server, as llama.cpp sees it from here."""

    endpoint: str
    index: int  # the device's number on its server
    name: str  # llama.cpp's device name in this process ("RPC0")
    free_bytes: int
    total_bytes: int
    alignment: int  # the server's buffer alignment (bytes)
    latency_s: float  # median round trip of one small request

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "index": self.index,
            "name": self.name,
            "free_bytes": self.free_bytes,
            "total_bytes": self.total_bytes,
            "alignment": self.alignment,
            "latency_s": round(self.latency_s, 6),
        }


def query_server(endpoint: str) -> list[RemoteDeviceInfo]:
    """The server's devices with their memory (llama.cpp's own calls), and the link latency.

    The latency is the median of :data:`LATENCY_ROUND_TRIPS` GET_DEVICE_MEMORY round trips,
    each a few bytes each way, through llama.cpp's own connection.
    """
    ggml, _ = libraries()
    devices = register_servers([endpoint])[endpoint]
    out = []
    for index, device in enumerate(devices):
        info = _device_dict(ggml, device)
        times = []
        for _ in range(LATENCY_ROUND_TRIPS):
            started = time.perf_counter()
            _memory(ggml, device)
            times.append(time.perf_counter() - started)
        out.append(
            RemoteDeviceInfo(
                endpoint=endpoint,
                index=index,
                name=info["name"],
                free_bytes=info["free_bytes"],
                total_bytes=info["total_bytes"],
                alignment=info["alignment"],
                latency_s=statistics.median(times),
            )
        )
    return out


def remote_memory() -> dict[str, tuple[int, int]]:
    """(free, total) bytes of every registered remote device's memory, by "endpoint#index"."""
    ggml, _ = libraries()
    out = {}
    for endpoint, devices in registered_devices().items():
        for index, device in enumerate(devices):
            out[f"{endpoint}#{index}"] = _memory(ggml, device)
    return out
