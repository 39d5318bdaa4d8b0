"""NVIDIA GPUs through NVML: the one NVML wrapper of the app, and the NVIDIA probe.

:class:`Nvml` is the only place that calls NVML, for the hardware probe here,
the live monitor (``desktop.services.monitor``) and ``llm-workbench bench``. As
in nvitop, NVML is initialised lazily, on the first call that needs it, and
every failure becomes an explicit unknown (None, plus a reason where the caller
asks for one): no driver, a driver/library mismatch, NotSupported, a function
an old nvidia-ml-py lacks, a ``None`` from Windows WDDM, NVML's "not available"
sentinel, ctypes trouble. Nothing here raises.

The NVML module is a parameter everywhere (``pynvml`` by default, imported
lazily), so tests hand in a fake machine: one GPU, two, a broken driver.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from desktop.core.hardware.profile import (
    BANDWIDTH_NVML,
    BANDWIDTH_UNKNOWN,
    GpuInfo,
)


class NvmlLike(Protocol):
    """The part of ``pynvml`` (nvidia-ml-py) that probe_nvidia needs unconditionally.

    Per-device functions (nvmlDeviceGetName, ...GetMemoryInfo, ...GetMemoryBusWidth,
    ...GetMaxClockInfo, ...GetCudaComputeCapability, ...GetMax/CurrPcieLink*,
    nvmlSystemGetDriverVersion, nvmlSystemGetCudaDriverVersion[_v2]) are looked up
    by name, because older nvidia-ml-py releases lack some of them.
    """

    NVMLError: type[Exception]

    def nvmlInit(self) -> None: ...

    def nvmlShutdown(self) -> None: ...


# NVML return codes (nvml.h). Fixed by NVIDIA's ABI; written here so a fake
# NVML in tests only has to provide NVMLError.
_NVML_ERROR_UNINITIALIZED = 1
_NVML_ERROR_NOT_SUPPORTED = 3
_NVML_ERROR_NO_PERMISSION = 4
_NVML_ERROR_DRIVER_NOT_LOADED = 9
_NVML_ERROR_LIBRARY_NOT_FOUND = 12
_NVML_ERROR_FUNCTION_NOT_FOUND = 13
_NVML_ERROR_GPU_IS_LOST = 15
_NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
_NVML_CLOCK_MEM = 2
# nvml.h's NVML_VALUE_NOT_AVAILABLE: an unsigned -1 stands for "no value".
_NVML_NOT_AVAILABLE = {2**32 - 1, 2**64 - 1}


def load_pynvml() -> Any:
    """The ``pynvml`` module (nvidia-ml-py), or None when it cannot be imported."""
    try:
        import pynvml
    except Exception:  # not installed, or a broken install: no NVML, not a crash
        return None
    return pynvml


def _nvml_error_code(exc: BaseException) -> int | None:
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) else None


def _nvml_error_text(exc: BaseException) -> str:
    """A field-level NVML failure as a short phrase."""
    code = _nvml_error_code(exc)
    if code == _NVML_ERROR_NOT_SUPPORTED:
        return "not supported by this GPU or driver"
    if code == _NVML_ERROR_NO_PERMISSION:
        return "permission denied"
    if code == _NVML_ERROR_FUNCTION_NOT_FOUND:
        return "not available in this NVIDIA driver version"
    if code == _NVML_ERROR_GPU_IS_LOST:
        return "the GPU stopped responding; restart the computer"
    try:
        text = str(exc)
    except Exception:  # pynvml's __str__ asks the library, which may be gone
        text = ""
    return f"NVML error {code}: {text}" if text else f"NVML error {code}"


def as_text(value: Any) -> str | None:
    """NVML strings: bytes on older nvidia-ml-py, str on newer."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").strip("\x00 ")
    return str(value).strip()


def as_int(value: Any) -> int | None:
    """An NVML number, None for a missing value or NVML's "not available" sentinel."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return None if number in _NVML_NOT_AVAILABLE else number


class Nvml:
    """One NVML session: lazy ``nvmlInit``, and every call's failure an explicit None.

    ``module`` is ``pynvml`` or anything with the same function names (a fake in
    tests); None means there is no NVML at all, and every call answers None.
    """

    def __init__(self, module: Any) -> None:
        self.module: Any = module
        self.error_type: type[BaseException] = getattr(module, "NVMLError", Exception)
        self.init_error: BaseException | None = None  # why nvmlInit failed, if it did
        self._initialised: bool | None = None  # None: not tried yet
        self._handles: list[Any] | None = None

    def init(self) -> bool:
        """Initialise NVML once; False (and ``init_error``) when it cannot be started."""
        if self._initialised is None:
            self._initialised = False
            if self.module is not None:
                try:
                    self.module.nvmlInit()
                except Exception as exc:  # NVMLError_*, or OSError from a half-removed driver
                    self.init_error = exc
                else:
                    self._initialised = True
        return self._initialised

    def shutdown(self) -> None:
        """End the session (after a successful init); a later call starts a new one."""
        if self._initialised:
            with contextlib.suppress(Exception):
                self.module.nvmlShutdown()
        self._initialised = None
        self.init_error = None
        self._handles = None

    def _first(
        self, names: Sequence[str], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Any, str | None]:
        """(value, None) from the first of ``names`` that answers, else (None, why)."""
        if not self.init():
            return None, "NVML could not be started"
        why = f"not available in this nvidia-ml-py version ({names[0]})"
        for name in names:
            func = getattr(self.module, name, None)
            if func is None:
                continue
            try:
                value = func(*args, **kwargs)
            except self.error_type as exc:
                why = _nvml_error_text(exc)
                continue
            except Exception as exc:  # ctypes trouble, a fake's RuntimeError: still never raise
                why = f"{type(exc).__name__}: {exc}"
                continue
            if value is None or (isinstance(value, int) and value in _NVML_NOT_AVAILABLE):
                why = "not reported by the driver"  # e.g. Windows WDDM
                continue
            return value, None
        return None, why

    def call(self, names: str | Sequence[str], /, *args: Any, **kwargs: Any) -> Any:
        """The first NVML function in ``names`` that answers, or None when none does."""
        return self._first([names] if isinstance(names, str) else names, args, kwargs)[0]

    def read(self, what: str, reasons: list[str], names: Sequence[str], /, *args: Any) -> Any:
        """Like :meth:`call`, and on failure append "<what>: <why>" to ``reasons``."""
        value, why = self._first(names, args, {})
        if why is not None:
            reasons.append(f"{what}: {why}")
        return value

    def handles(self) -> list[Any]:
        """The handle of every GPU NVML can open, found once; [] without NVML."""
        if self._handles is None:
            count = as_int(self.call("nvmlDeviceGetCount")) or 0
            found = (self.call("nvmlDeviceGetHandleByIndex", i) for i in range(count))
            self._handles = [handle for handle in found if handle is not None]
        return self._handles

    def name(self, handle: Any) -> str | None:
        """The GPU's name ("NVIDIA GeForce RTX 4090"), None when NVML does not say."""
        return as_text(self.call("nvmlDeviceGetName", handle))

    def process_vram(self, handle: Any, pid: int) -> int | None:
        """Bytes of VRAM process ``pid`` uses on this GPU; None when that is not known.

        None covers every case without a number: NVML cannot list the GPU's
        processes (NotSupported, no driver), the process is not in the list (it
        has no CUDA context on this GPU, or NVML cannot see it, as from inside a
        container), and a usage NVML does not report (Windows WDDM gives None).
        """
        processes = self.call("nvmlDeviceGetComputeRunningProcesses", handle)
        if processes is None:
            return None
        try:
            used = [
                as_int(getattr(proc, "usedGpuMemory", None))
                for proc in processes
                if getattr(proc, "pid", None) == pid
            ]
        except Exception:  # not a list of process records after all
            return None
        if not used or any(u is None for u in used):
            return None
        return sum(u for u in used if u is not None)

    def process_vram_total(self, pid: int) -> int | None:
        """Process ``pid``'s VRAM summed over the GPUs that report it; None when none does."""
        known = [v for v in (self.process_vram(h, pid) for h in self.handles()) if v is not None]
        return sum(known) if known else None


@dataclass
class NvidiaOutcome:
    """What reading NVML gave: the GPUs, notes for a person, and what a failure shows."""

    gpus: list[GpuInfo]
    notes: list[str]
    # True when the failure proves an NVIDIA driver is installed (so a person
    # with an NVIDIA card needs to hear about it), False for "no NVML here".
    driver_present: bool


def _nvml_init_failure(exc: BaseException) -> tuple[str, bool]:
    """A failed nvmlInit as a sentence for a person, and whether a driver is present."""
    code = _nvml_error_code(exc)
    if code == _NVML_ERROR_LIBRARY_NOT_FOUND:
        return (
            "The NVIDIA driver library (NVML) was not found, so NVIDIA GPUs cannot be read. "
            "If this computer has an NVIDIA GPU, install the NVIDIA driver.",
            False,
        )
    if code == _NVML_ERROR_DRIVER_NOT_LOADED:
        return (
            "The NVIDIA driver is installed but not running, so the NVIDIA GPU cannot be used. "
            "Restart the computer; if that does not help, reinstall the NVIDIA driver.",
            True,
        )
    if code == _NVML_ERROR_LIB_RM_VERSION_MISMATCH:
        return (
            "The NVIDIA driver was updated but the old version is still loaded "
            "(driver/library version mismatch). Restart the computer to use the GPU.",
            True,
        )
    if code == _NVML_ERROR_NO_PERMISSION:
        return (
            "Not allowed to read the NVIDIA GPU (permission denied). "
            "Check that your user may access /dev/nvidia*.",
            True,
        )
    if code == _NVML_ERROR_UNINITIALIZED:
        return (
            "The NVIDIA management library (NVML) could not be initialised. "
            "Restart the computer or reinstall the NVIDIA driver.",
            True,
        )
    return (f"Reading NVIDIA GPUs failed ({_nvml_error_text(exc)}).", True)


def _cuda_version_text(version: int | None) -> str | None:
    """NVML encodes CUDA 12.4 as 12040 (1000 * major + 10 * minor)."""
    if version is None or version <= 0:
        return None
    return f"{version // 1000}.{(version % 1000) // 10}"


def _nvml_bandwidth(bus_width_bits: int | None, max_memory_clock_mhz: int | None) -> int | None:
    """Theoretical peak VRAM bandwidth in bytes/s from NVML's bus width and memory clock.

    bandwidth = 2 * clock_MHz * 1e6 * bus_bits / 8

    The factor 2 is the double data rate: NVML's NVML_CLOCK_MEM (like CUDA's
    cudaDeviceProp.memoryClockRate) is reported so that two transfers happen
    per clock on every memory type, GDDR6X and HBM included. This is the
    formula in NVIDIA's "How to Implement Performance Metrics in CUDA C/C++"
    (theoretical bandwidth = memory clock * 2 * bus width / 8) and in NVIDIA's
    nvbench (device_info::get_global_memory_bandwidth, "ddr_factor = 2").
    Checks: RTX 4090 384-bit, 10501 MHz -> 1008 GB/s (spec 1008);
    RTX 3090 384-bit, 9751 MHz -> 936 GB/s (spec 936);
    A100 40GB 5120-bit, 1215 MHz -> 1555 GB/s (spec 1555).
    """
    if not bus_width_bits or not max_memory_clock_mhz:
        return None
    return 2 * max_memory_clock_mhz * 1_000_000 * bus_width_bits // 8


def probe_nvidia(nvml: NvmlLike | None = None) -> tuple[list[GpuInfo], list[str]]:
    """Every NVIDIA GPU through NVML, plus notes on why NVML could not be read.

    ``nvml`` defaults to the ``pynvml`` module (from nvidia-ml-py), imported
    here lazily. Returns ([], [note]) when there is no NVML at all; that is
    normal on a machine without an NVIDIA card. Never raises; always calls
    nvmlShutdown after a successful nvmlInit.
    """
    outcome = read_nvidia(nvml)
    return outcome.gpus, outcome.notes


def read_nvidia(nvml: NvmlLike | None) -> NvidiaOutcome:
    """probe_nvidia's answer, plus whether a failure shows a driver is installed."""
    module: Any = nvml if nvml is not None else load_pynvml()
    if module is None:
        return NvidiaOutcome(
            [],
            [
                "nvidia-ml-py is not installed, so NVIDIA GPUs cannot be read. "
                "Reinstall LLM Workbench."
            ],
            False,
        )
    session = Nvml(module)
    if not session.init():
        exc = session.init_error
        if isinstance(exc, session.error_type):
            note, driver_present = _nvml_init_failure(exc)
            return NvidiaOutcome([], [note], driver_present)
        # e.g. OSError from ctypes on a half-removed driver
        return NvidiaOutcome(
            [], [f"Reading NVIDIA GPUs failed ({type(exc).__name__}: {exc})."], True
        )
    try:
        return _read_nvidia_devices(session)
    finally:
        session.shutdown()


def _read_nvidia_devices(nvml: Nvml) -> NvidiaOutcome:
    system_reasons: list[str] = []
    count = as_int(nvml.read("GPU count", system_reasons, ["nvmlDeviceGetCount"]))
    if count is None:
        note = "NVML started but could not count the NVIDIA GPUs (" + system_reasons[0] + ")."
        return NvidiaOutcome([], [note], True)
    # Driver-wide facts: read once, shared by every card (and their reasons with them).
    driver = as_text(nvml.read("driver version", system_reasons, ["nvmlSystemGetDriverVersion"]))
    cuda = _cuda_version_text(
        as_int(
            nvml.read(
                "CUDA version",
                system_reasons,
                ["nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"],
            )
        )
    )
    gpus = [_read_nvidia_device(nvml, i, driver, cuda, system_reasons) for i in range(count)]
    return NvidiaOutcome(gpus, [], True)


def _read_nvidia_device(
    nvml: Nvml, index: int, driver: str | None, cuda: str | None, system_reasons: list[str]
) -> GpuInfo:
    reasons = list(system_reasons)
    handle = nvml.read("device", reasons, ["nvmlDeviceGetHandleByIndex"], index)
    if handle is None:
        return GpuInfo(
            index=index,
            vendor="nvidia",
            name=f"NVIDIA GPU {index}",
            driver_version=driver,
            cuda_version=cuda,
            unknown_reasons=tuple(reasons),
        )
    name = as_text(nvml.read("name", reasons, ["nvmlDeviceGetName"], handle))

    total, free, used = _nvml_memory(nvml, handle, reasons)

    capability = nvml.read(
        "compute capability", reasons, ["nvmlDeviceGetCudaComputeCapability"], handle
    )
    compute_capability: str | None = None
    if isinstance(capability, tuple | list) and len(capability) == 2:
        compute_capability = f"{capability[0]}.{capability[1]}"

    bus = as_int(nvml.read("memory bus width", reasons, ["nvmlDeviceGetMemoryBusWidth"], handle))
    clock = as_int(
        nvml.read("memory clock", reasons, ["nvmlDeviceGetMaxClockInfo"], handle, _NVML_CLOCK_MEM)
    )
    bandwidth = _nvml_bandwidth(bus, clock)
    if bandwidth is None:
        reasons.append("memory bandwidth: needs both the memory bus width and the memory clock")

    # "Max" is the best link this card and this slot can do together; the
    # current link drops to gen 1 at idle to save power, which would mislead.
    pcie_gen = as_int(
        nvml.read(
            "PCIe generation",
            reasons,
            ["nvmlDeviceGetMaxPcieLinkGeneration", "nvmlDeviceGetCurrPcieLinkGeneration"],
            handle,
        )
    )
    pcie_width = as_int(
        nvml.read(
            "PCIe width",
            reasons,
            ["nvmlDeviceGetMaxPcieLinkWidth", "nvmlDeviceGetCurrPcieLinkWidth"],
            handle,
        )
    )
    return GpuInfo(
        index=index,
        vendor="nvidia",
        name=name or f"NVIDIA GPU {index}",
        vram_total_bytes=total,
        vram_free_bytes=free,
        vram_used_bytes=used,
        unified_memory=False,
        driver_version=driver,
        cuda_version=cuda,
        compute_capability=compute_capability,
        memory_bus_width_bits=bus,
        max_memory_clock_mhz=clock,
        bandwidth_bytes_per_s=bandwidth,
        bandwidth_source=BANDWIDTH_NVML if bandwidth is not None else BANDWIDTH_UNKNOWN,
        pcie_generation=pcie_gen,
        pcie_width=pcie_width,
        unknown_reasons=tuple(reasons),
    )


def _nvml_memory(nvml: Nvml, handle: Any, reasons: list[str]) -> tuple[int | None, ...]:
    """(total, free, used) VRAM bytes.

    Tries the v2 structure first, whose "used" leaves out the memory the driver
    reserves for itself (v1 counts it as used); old drivers and old
    nvidia-ml-py lack v2 (nvmlMemory_v2 absent, no ``version`` argument), and
    then v1 is read. "free" is the same in both.
    """
    memory: Any = None
    version = getattr(nvml.module, "nvmlMemory_v2", None)
    if version is not None:
        # A failure here only means falling back to v1, so it leaves no reason.
        memory = nvml.call("nvmlDeviceGetMemoryInfo", handle, version=version)
    if memory is None:
        memory = nvml.read("VRAM", reasons, ["nvmlDeviceGetMemoryInfo"], handle)
    if memory is None:
        return None, None, None
    values: list[int | None] = []
    for attr, label in (("total", "VRAM total"), ("free", "VRAM free"), ("used", "VRAM used")):
        value = as_int(getattr(memory, attr, None))
        if value is None:
            reasons.append(f"{label}: not reported by the driver")
        values.append(value)
    return tuple(values)
