"""The hardware profile: immutable snapshot types, and their JSON form.

A :class:`HardwareProfile` holds every size in integer bytes. It round-trips
through JSON (``llm-workbench hardware --json`` prints it, ``--hardware FILE``
reads one back), and ``from_dict`` accepts a hand-written profile with only a
few fields, so "what if I had a 16 GB card" is a three-line file.

GPUs are listed one by one and never summed: two 12 GB cards are not one
24 GB card for llama.cpp (layers are split, and each card needs its own
buffers), and the estimator must see each.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1

# Where a bandwidth number came from. RAM: "measured" now, "cached" from an
# earlier measurement on this CPU, "manual" typed into a what-if profile.
# GPU: "nvml" (bus width x memory clock, see nvidia._nvml_bandwidth), "manual".
# "unknown" everywhere when there is no number.
BANDWIDTH_MEASURED = "measured"
BANDWIDTH_CACHED = "cached"
BANDWIDTH_NVML = "nvml"
BANDWIDTH_MANUAL = "manual"
BANDWIDTH_UNKNOWN = "unknown"

GPU_VENDORS = ("nvidia", "amd", "intel", "apple", "other")


@dataclass(frozen=True)
class CpuInfo:
    """The processor. ``features`` are the SIMD flags llama.cpp's CPU kernels use."""

    brand: str = "unknown CPU"
    architecture: str = "unknown"  # normalised: "x86_64", "arm64", ...
    physical_cores: int | None = None
    logical_cores: int | None = None
    features: tuple[str, ...] = ()  # lower case, e.g. ("sse3", "avx", "avx2", "fma")


@dataclass(frozen=True)
class MemoryInfo:
    """System RAM. The CPU part of a model is read from here once per token."""

    total_bytes: int = 0
    available_bytes: int = 0
    swap_total_bytes: int = 0
    swap_free_bytes: int = 0
    bandwidth_bytes_per_s: int | None = None
    bandwidth_source: str = BANDWIDTH_UNKNOWN  # "measured" / "cached" / "manual" / "unknown"
    unknown_reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class GpuInfo:
    """One GPU. Fields that could not be read are None, with a reason in ``unknown_reasons``."""

    index: int = 0
    vendor: str = "other"  # one of GPU_VENDORS
    name: str = "unknown GPU"
    vram_total_bytes: int | None = None  # unified GPUs: the share the GPU may use
    vram_free_bytes: int | None = None
    vram_used_bytes: int | None = None
    unified_memory: bool = False  # integrated GPUs and Apple share system RAM
    driver_version: str | None = None
    cuda_version: str | None = None  # highest CUDA the driver supports, e.g. "12.4"
    compute_capability: str | None = None  # e.g. "8.9"
    memory_bus_width_bits: int | None = None
    max_memory_clock_mhz: int | None = None  # as NVML reports it, see nvidia._nvml_bandwidth
    bandwidth_bytes_per_s: int | None = None  # theoretical peak
    bandwidth_source: str = BANDWIDTH_UNKNOWN  # "nvml" / "manual" / "unknown"
    pcie_generation: int | None = None
    pcie_width: int | None = None  # lanes
    unknown_reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackendInfo:
    """What the installed llama-cpp-python build can use.

    ``checked`` is False when nobody asked (``detect(check_backends=False)``, or
    a hand-written profile without a "backends" entry); then ``backends`` is
    empty and means "unknown", not "none".
    """

    backends: tuple[str, ...] = ()  # lower case, "cpu" first, e.g. ("cpu", "cuda")
    llama_cpp_version: str | None = None
    gpu_offload_supported: bool = False
    devices: tuple[str, ...] = ()  # ggml devices, e.g. "CUDA0: NVIDIA GeForce RTX 4090"
    system_info: str | None = None  # llama_print_system_info(), for bug reports
    error: str | None = None  # why llama.cpp could not be asked, in words
    checked: bool = False


@dataclass(frozen=True)
class HardwareProfile:
    """Everything the estimator needs to know about one machine (real or imagined)."""

    cpu: CpuInfo = field(default_factory=CpuInfo)
    memory: MemoryInfo = field(default_factory=MemoryInfo)
    gpus: tuple[GpuInfo, ...] = ()  # each card separately, never summed
    backends: BackendInfo = field(default_factory=BackendInfo)
    warnings: tuple[str, ...] = ()  # sentences for the person, with the fix
    os: str = ""  # platform.platform()
    created_at: str = ""  # ISO 8601, UTC

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of JSON types; ``from_dict`` turns it back into an equal profile."""
        data: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        data.update(dataclasses.asdict(self))
        return data

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HardwareProfile:
        """Build a profile from a dict, filling every missing optional key with a default.

        Raises ValueError, naming the field, when a value has the wrong type: this
        reads files people write by hand, and they deserve to know which line is wrong.
        """
        if not isinstance(data, Mapping):
            raise ValueError("a hardware profile must be a JSON object")
        gpus_raw = data.get("gpus") or []
        if not isinstance(gpus_raw, list | tuple):
            raise ValueError("'gpus' must be a list of GPU objects")
        return cls(
            cpu=_cpu_from_dict(_section(data, "cpu")),
            memory=_memory_from_dict(_section(data, "memory")),
            gpus=tuple(_gpu_from_dict(g, i) for i, g in enumerate(gpus_raw)),
            backends=_backends_from_dict(data.get("backends")),
            warnings=_str_tuple(data, "warnings", "warnings"),
            os=_str(data, "os", "os", ""),
            created_at=_str(data, "created_at", "created_at", ""),
        )

    @classmethod
    def from_json(cls, text: str) -> HardwareProfile:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from exc
        return cls.from_dict(data)


def _section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"'{key}' must be an object")
    return value


def _opt_int(data: Mapping[str, Any], key: str, where: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    # bool is an int subclass; "true" bytes is always a typo.
    if isinstance(value, bool):
        raise ValueError(f"{where} must be a whole number, not {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)  # 8.0e9 written by hand is fine
    raise ValueError(f"{where} must be a whole number, not {value!r}")


def _int(data: Mapping[str, Any], key: str, where: str, default: int) -> int:
    value = _opt_int(data, key, where)
    return default if value is None else value


def _opt_str(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where} must be text, not {value!r}")
    return value


def _str(data: Mapping[str, Any], key: str, where: str, default: str) -> str:
    value = _opt_str(data, key, where)
    return default if value is None else value


def _bool(data: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ValueError(f"{where} must be true or false, not {value!r}")
    return value


def _str_tuple(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where} must be a list of text")
    return tuple(value)


def _cpu_from_dict(d: Mapping[str, Any]) -> CpuInfo:
    return CpuInfo(
        brand=_str(d, "brand", "cpu.brand", CpuInfo.brand),
        architecture=_str(d, "architecture", "cpu.architecture", CpuInfo.architecture),
        physical_cores=_opt_int(d, "physical_cores", "cpu.physical_cores"),
        logical_cores=_opt_int(d, "logical_cores", "cpu.logical_cores"),
        features=_str_tuple(d, "features", "cpu.features"),
    )


def _memory_from_dict(d: Mapping[str, Any]) -> MemoryInfo:
    total = _int(d, "total_bytes", "memory.total_bytes", 0)
    bandwidth = _opt_int(d, "bandwidth_bytes_per_s", "memory.bandwidth_bytes_per_s")
    source = _opt_str(d, "bandwidth_source", "memory.bandwidth_source")
    if source is None:
        # A number typed into a what-if file is the person's own figure.
        source = BANDWIDTH_UNKNOWN if bandwidth is None else BANDWIDTH_MANUAL
    return MemoryInfo(
        total_bytes=total,
        # A what-if profile rarely says what is free; assume an idle machine.
        available_bytes=_int(d, "available_bytes", "memory.available_bytes", total),
        swap_total_bytes=_int(d, "swap_total_bytes", "memory.swap_total_bytes", 0),
        swap_free_bytes=_int(d, "swap_free_bytes", "memory.swap_free_bytes", 0),
        bandwidth_bytes_per_s=bandwidth,
        bandwidth_source=source,
        unknown_reasons=_str_tuple(d, "unknown_reasons", "memory.unknown_reasons"),
    )


def _gpu_from_dict(raw: Any, position: int) -> GpuInfo:
    where = f"gpus[{position}]"
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be an object")
    name = _str(raw, "name", f"{where}.name", GpuInfo.name)
    vendor = _str(raw, "vendor", f"{where}.vendor", _vendor_from_name(name))
    if vendor not in GPU_VENDORS:
        raise ValueError(f"{where}.vendor must be one of {', '.join(GPU_VENDORS)}")
    bandwidth = _opt_int(raw, "bandwidth_bytes_per_s", f"{where}.bandwidth_bytes_per_s")
    source = _opt_str(raw, "bandwidth_source", f"{where}.bandwidth_source")
    if source is None:
        source = BANDWIDTH_UNKNOWN if bandwidth is None else BANDWIDTH_MANUAL

    def opt_int(key: str) -> int | None:
        return _opt_int(raw, key, f"{where}.{key}")

    def opt_str(key: str) -> str | None:
        return _opt_str(raw, key, f"{where}.{key}")

    return GpuInfo(
        index=_int(raw, "index", f"{where}.index", position),
        vendor=vendor,
        name=name,
        vram_total_bytes=opt_int("vram_total_bytes"),
        vram_free_bytes=opt_int("vram_free_bytes"),
        vram_used_bytes=opt_int("vram_used_bytes"),
        unified_memory=_bool(raw, "unified_memory", f"{where}.unified_memory", vendor == "apple"),
        driver_version=opt_str("driver_version"),
        cuda_version=opt_str("cuda_version"),
        compute_capability=opt_str("compute_capability"),
        memory_bus_width_bits=opt_int("memory_bus_width_bits"),
        max_memory_clock_mhz=opt_int("max_memory_clock_mhz"),
        bandwidth_bytes_per_s=bandwidth,
        bandwidth_source=source,
        pcie_generation=opt_int("pcie_generation"),
        pcie_width=opt_int("pcie_width"),
        unknown_reasons=_str_tuple(raw, "unknown_reasons", f"{where}.unknown_reasons"),
    )


def _vendor_from_name(name: str) -> str:
    """Guess the vendor of a hand-written GPU from its name ("RTX 3060" -> nvidia)."""
    lowered = name.lower()
    if any(w in lowered for w in ("nvidia", "geforce", "rtx", "gtx", "quadro", "tesla")):
        return "nvidia"
    if any(w in lowered for w in ("amd", "radeon", "instinct")):
        return "amd"
    if any(w in lowered for w in ("intel", "arc ", "iris")):
        return "intel"
    if lowered.startswith("apple") or re.search(r"\bm[1-9]\b", lowered):
        return "apple"
    return "other"


def _backends_from_dict(raw: Any) -> BackendInfo:
    if raw is None:
        return BackendInfo()
    # A bare list, ["cpu", "cuda"], is the natural thing to write by hand.
    if isinstance(raw, list | tuple):
        names = _str_tuple({"b": raw}, "b", "backends")
        return BackendInfo(
            backends=names,
            gpu_offload_supported=any(n != "cpu" for n in names),
            checked=True,
        )
    if not isinstance(raw, Mapping):
        raise ValueError("'backends' must be an object or a list of backend names")
    names = _str_tuple(raw, "backends", "backends.backends")
    return BackendInfo(
        backends=names,
        llama_cpp_version=_opt_str(raw, "llama_cpp_version", "backends.llama_cpp_version"),
        gpu_offload_supported=_bool(
            raw,
            "gpu_offload_supported",
            "backends.gpu_offload_supported",
            any(n != "cpu" for n in names),
        ),
        devices=_str_tuple(raw, "devices", "backends.devices"),
        system_info=_opt_str(raw, "system_info", "backends.system_info"),
        error=_opt_str(raw, "error", "backends.error"),
        checked=_bool(raw, "checked", "backends.checked", bool(names)),
    )
