"""GPU specifications (resources/gpus.json): "what if I had this card" and missing bandwidth.

The table holds each device's memory, memory bandwidth and FP16 rate, with the sources
they came from. Two uses:

* ``find_gpu_spec("NVIDIA GeForce RTX 4090")`` finds the row for a name a driver reports,
  e.g. to fill in the bandwidth of a GPU whose driver cannot tell it (Apple, AMD, Intel).
* ``what_if_profile_dict(spec, ram_bytes)`` builds a hardware profile, in the shape
  ``llm-workbench hardware --json`` prints, for a machine with that GPU, so the estimator
  can answer "would it fit, how fast" for hardware the person does not have.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import desktop
from desktop.core.hardware import apple_recommended_working_set
from desktop.core.units import GIB

__all__ = [
    "BandwidthVariant",
    "GpuSpec",
    "GpuSpecError",
    "default_gpu_specs_paths",
    "find_gpu_spec",
    "load_gpu_specs",
    "what_if_profile_dict",
]

# The llama.cpp backend a what-if machine with this vendor's GPU would use.
_BACKEND_FOR_VENDOR: Final = {"nvidia": "cuda", "amd": "rocm", "intel": "vulkan", "apple": "metal"}

# Words that vary between how a vendor markets a card and how its driver names it.
_NOISE_WORDS: Final = frozenset(
    {"nvidia", "amd", "intel", "apple", "geforce", "radeon", "graphics", "gpu", "generation"}
)
_MEMORY_WORD: Final = re.compile(r"^(\d+)gb$")
# A driver-reported memory size may differ this much from the marketed one and still match.
_MEMORY_TOLERANCE: Final = 0.2


class GpuSpecError(ValueError):
    """gpus.json is missing or malformed; the message names the device and field."""


@dataclass(frozen=True, slots=True)
class BandwidthVariant:
    """Bandwidth of one bin of a chip sold in several (Apple M3 Max 30-core: 300 GB/s)."""

    variant: str
    bandwidth_bytes_per_s: int
    memory_options_bytes: tuple[int, ...]  # empty: which memory sizes go with it is unknown
    source: str


@dataclass(frozen=True, slots=True)
class GpuSpec:
    """One device from the table. Sizes in bytes, bandwidth in bytes per second."""

    vendor: str  # "nvidia", "amd", "intel", "apple" (as hardware.GpuInfo.vendor)
    name: str
    memory_bytes: int  # unified-memory chips: the largest configuration
    bandwidth_bytes_per_s: int  # unified-memory chips: the top bin
    fp16_tflops: float | None  # non-tensor shader rate (see gpus.json fp16_definition)
    unified_memory: bool
    source: str
    memory_options_bytes: tuple[int, ...] = ()  # unified-memory configurations sold
    bandwidth_by_variant: tuple[BandwidthVariant, ...] = ()
    fp16_tensor_dense_tflops: float | None = None
    fp32_tflops: float | None = None
    memory_type: str | None = None
    bus_width_bits: int | None = None
    year: int | None = None
    aliases: tuple[str, ...] = ()  # other names drivers report for it

    def bandwidth_for_memory(self, memory_bytes: int) -> int:
        """Bandwidth of the bin sold with this much memory (M4 Max 36 GB: 410 GB/s).

        Falls back to the headline figure when no bin is known for that size.
        """
        for variant in self.bandwidth_by_variant:
            if memory_bytes in variant.memory_options_bytes:
                return variant.bandwidth_bytes_per_s
        return self.bandwidth_bytes_per_s


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def default_gpu_specs_paths() -> tuple[Path, ...]:
    """resources/gpus.json beside the package (source checkout), then desktop/data/ (frozen)."""
    package = Path(desktop.__file__).resolve().parent
    return (package.parent / "resources" / "gpus.json", package / "data" / "gpus.json")


def load_gpu_specs(path: Path | None = None) -> list[GpuSpec]:
    """Every device in gpus.json, in file order. Raises GpuSpecError naming what is wrong."""
    if path is None:
        return list(_load_default())
    return list(_load(path))


@functools.cache
def _load_default() -> tuple[GpuSpec, ...]:
    # The shipped table never changes while the app runs; read it once.
    candidates = default_gpu_specs_paths()
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        looked = ", ".join(str(p) for p in candidates)
        raise GpuSpecError(
            f"The GPU table (gpus.json) is missing; looked in {looked}. Reinstall LLM Workbench."
        )
    return _load(found)


def _load(path: Path) -> tuple[GpuSpec, ...]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GpuSpecError(f"Could not read the GPU table {path}: {exc.strerror}.") from exc
    except json.JSONDecodeError as exc:
        raise GpuSpecError(
            f"{path.name} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from exc
    if not isinstance(data, Mapping) or not isinstance(data.get("devices"), list):
        raise GpuSpecError(f"{path.name} must be an object with a 'devices' list")
    specs = tuple(
        _parse_device(raw, f"{path.name} device {i}") for i, raw in enumerate(data["devices"], 1)
    )
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise GpuSpecError(f"{path.name}: device '{duplicates[0]}' is listed twice")
    return specs


def _parse_device(raw: object, where: str) -> GpuSpec:
    if not isinstance(raw, Mapping):
        raise GpuSpecError(f"{where} must be an object")
    name = raw.get("name")
    if isinstance(name, str) and name:
        where = f"{where} ({name})"

    def text(key: str) -> str:
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise GpuSpecError(f"{where}: {key} must be non-empty text (got {value!r})")
        return value

    def positive_int(value: object, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GpuSpecError(f"{where}: {key} must be a positive integer (got {value!r})")
        return value

    def opt_int(key: str) -> int | None:
        value = raw.get(key)
        return None if value is None else positive_int(value, key)

    def opt_float(key: str) -> float | None:
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise GpuSpecError(f"{where}: {key} must be a positive number or null (got {value!r})")
        return float(value)

    def int_tuple(value: object, key: str) -> tuple[int, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise GpuSpecError(f"{where}: {key} must be a list of byte counts (got {value!r})")
        return tuple(positive_int(v, key) for v in value)

    vendor = text("vendor")
    if vendor not in _BACKEND_FOR_VENDOR:
        raise GpuSpecError(f"{where}: vendor must be one of {', '.join(_BACKEND_FOR_VENDOR)}")
    unified = raw.get("unified_memory")
    if not isinstance(unified, bool):
        raise GpuSpecError(f"{where}: unified_memory must be true or false (got {unified!r})")
    aliases = raw.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise GpuSpecError(f"{where}: aliases must be a list of names")

    variants: list[BandwidthVariant] = []
    for i, v in enumerate(raw.get("bandwidth_by_variant") or [], 1):
        if not isinstance(v, Mapping) or not isinstance(v.get("variant"), str):
            raise GpuSpecError(
                f"{where}: bandwidth_by_variant {i} must be an object with 'variant'"
            )
        key = f"bandwidth_by_variant {i}"
        source = v.get("source")
        if not isinstance(source, str) or not source:
            raise GpuSpecError(f"{where}: {key}: source must be non-empty text")
        variants.append(
            BandwidthVariant(
                variant=v["variant"],
                bandwidth_bytes_per_s=positive_int(
                    v.get("bandwidth_bytes_per_s"), f"{key}: bandwidth_bytes_per_s"
                ),
                memory_options_bytes=int_tuple(
                    v.get("memory_options_bytes"), f"{key}: memory_options_bytes"
                ),
                source=source,
            )
        )
    year = opt_int("year")
    return GpuSpec(
        vendor=vendor,
        name=text("name"),
        memory_bytes=positive_int(raw.get("memory_bytes"), "memory_bytes"),
        bandwidth_bytes_per_s=positive_int(
            raw.get("bandwidth_bytes_per_s"), "bandwidth_bytes_per_s"
        ),
        fp16_tflops=opt_float("fp16_tflops"),
        unified_memory=unified,
        source=text("source"),
        memory_options_bytes=int_tuple(raw.get("memory_options_bytes"), "memory_options_bytes"),
        bandwidth_by_variant=tuple(variants),
        fp16_tensor_dense_tflops=opt_float("fp16_tensor_dense_tflops"),
        fp32_tflops=opt_float("fp32_tflops"),
        memory_type=raw.get("memory_type") if isinstance(raw.get("memory_type"), str) else None,
        bus_width_bits=opt_int("bus_width_bits"),
        year=year,
        aliases=tuple(aliases),
    )


# --------------------------------------------------------------------------
# Finding a device by the name a driver reports
# --------------------------------------------------------------------------


def _name_key(name: str) -> tuple[frozenset[str], int | None]:
    """("NVIDIA GeForce RTX 2060 (6GB)") -> ({"rtx", "2060"}, 6): words that identify the
    model, and a memory size in GB when the name carries one."""
    lowered = name.lower()
    for mark in ("(tm)", "(r)", "™", "®"):
        lowered = lowered.replace(mark, " ")
    lowered = re.sub(r"(\d+)\s+gb\b", r"\1gb", lowered)  # "16 GB" -> "16gb"
    words = re.split(r"[\s\-_/,()]+", lowered)
    memory_gb: int | None = None
    kept: set[str] = set()
    for word in words:
        if not word or word in _NOISE_WORDS:
            continue
        match = _MEMORY_WORD.match(word)
        if match:
            memory_gb = int(match.group(1))
        else:
            kept.add(word)
    return frozenset(kept), memory_gb


def _memory_matches(spec: GpuSpec, gib: float) -> bool:
    sizes = spec.memory_options_bytes or (spec.memory_bytes,)
    return any(abs(size / GIB - gib) <= _MEMORY_TOLERANCE * size / GIB for size in sizes)


def find_gpu_spec(
    name: str, memory_bytes: int | None = None, specs: Sequence[GpuSpec] | None = None
) -> GpuSpec | None:
    """The table row for a device name as a driver reports it, or None.

    "NVIDIA GeForce RTX 4090" finds "GeForce RTX 4090". The identifying words must agree
    exactly, so "RTX 4090 Laptop GPU" (a different chip) and "RTX 4070 Ti" (when only "RTX
    4070" were listed) find nothing rather than a wrong card. Where a model was sold with
    several memory sizes (RTX 3060 8 GB / 12 GB), ``memory_bytes`` (what the driver reports)
    or a size in the name picks the row; without either, the smallest is returned, as the
    cautious guess.
    """
    table = load_gpu_specs() if specs is None else specs
    words, named_gb = _name_key(name)
    candidates = [s for s in table if _matches(s, words)]
    if not candidates and "(" in name:
        # Vulkan adds the driver in brackets: "AMD Radeon RX 7900 XTX (RADV NAVI31)".
        words, named_gb = _name_key(re.sub(r"\([^)]*\)", " ", name))
        candidates = [s for s in table if _matches(s, words)]
    if named_gb is not None:
        candidates = [s for s in candidates if _memory_matches(s, float(named_gb))]
    if memory_bytes is not None and memory_bytes > 0:
        gib = memory_bytes / GIB
        candidates = [s for s in candidates if s.unified_memory or _memory_matches(s, gib)]
        return min(candidates, key=lambda s: abs(s.memory_bytes / GIB - gib), default=None)
    return min(candidates, key=lambda s: s.memory_bytes, default=None)


def _matches(spec: GpuSpec, words: frozenset[str]) -> bool:
    if not words:
        return False
    return any(_name_key(n)[0] == words for n in (spec.name, *spec.aliases))


# --------------------------------------------------------------------------
# What-if hardware profiles
# --------------------------------------------------------------------------


def what_if_profile_dict(
    spec: GpuSpec, ram_bytes: int, base: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A hardware profile (the ``hardware --json`` shape) for a machine with ``spec``'s GPU.

    ``ram_bytes`` is the system RAM; for a unified-memory chip (Apple, Strix Halo) it is the
    one memory pool, so pick one of ``spec.memory_options_bytes``. ``base`` is the person's
    real profile: its CPU (and its measured RAM bandwidth, for a discrete card) are kept, the
    GPUs are replaced. The profile assumes a llama.cpp build that can drive the card (CUDA
    for NVIDIA, Metal for Apple, ...) and says so in ``warnings``.
    """
    if ram_bytes <= 0:
        raise ValueError(f"ram_bytes must be positive, got {ram_bytes}")
    profile: dict[str, Any] = copy.deepcopy(dict(base)) if base is not None else {}
    raw_memory = profile.get("memory")
    base_memory: Mapping[str, Any] = raw_memory if isinstance(raw_memory, Mapping) else {}
    backend = _BACKEND_FOR_VENDOR[spec.vendor]

    memory: dict[str, Any] = {"total_bytes": ram_bytes, "available_bytes": ram_bytes}
    if spec.unified_memory:
        # CPU and GPU read the same memory: its bandwidth is the chip's.
        bandwidth = spec.bandwidth_for_memory(ram_bytes)
        memory["bandwidth_bytes_per_s"] = bandwidth
        memory["bandwidth_source"] = "manual"
        # Apple: what Metal lets the GPU use; elsewhere the BIOS/OS decide, the pool at most.
        apple = spec.vendor == "apple"
        vram = apple_recommended_working_set(ram_bytes) if apple else ram_bytes
    else:
        bandwidth = spec.bandwidth_bytes_per_s
        memory["bandwidth_bytes_per_s"] = base_memory.get("bandwidth_bytes_per_s")
        memory["bandwidth_source"] = base_memory.get("bandwidth_source", "unknown")
        vram = spec.memory_bytes

    profile["cpu"] = profile.get("cpu") or {
        "brand": "unknown CPU",
        "architecture": "unknown",
        "physical_cores": None,
        "logical_cores": None,
        "features": [],
    }
    profile["memory"] = memory
    profile["gpus"] = [
        {
            "index": 0,
            "name": spec.name,
            "vendor": spec.vendor,
            "vram_total_bytes": vram,
            "vram_free_bytes": vram,
            "vram_used_bytes": 0,
            "unified_memory": spec.unified_memory,
            "bandwidth_bytes_per_s": bandwidth,
            "bandwidth_source": "manual",
            "unknown_reasons": [],
        }
    ]
    profile["backends"] = _what_if_backends(profile.get("backends"), backend)
    warnings = [w for w in profile.get("warnings") or [] if isinstance(w, str)]
    warnings.append(
        f"What-if machine: {spec.name} from the GPU table with {ram_bytes / GIB:.0f} GiB of "
        f"RAM, assuming a llama.cpp build with {backend.upper()} support."
    )
    profile["warnings"] = warnings
    return profile


def _what_if_backends(raw: object, backend: str) -> dict[str, Any]:
    names: list[str] = ["cpu"]
    result: dict[str, Any] = {}
    if isinstance(raw, Mapping):
        result = dict(raw)
        listed = raw.get("backends")
        if isinstance(listed, list):
            names += [n for n in listed if isinstance(n, str)]
    elif isinstance(raw, list):
        names += [n for n in raw if isinstance(n, str)]
    names.append(backend)
    result["backends"] = list(dict.fromkeys(names))
    result["gpu_offload_supported"] = True
    result["checked"] = True
    return result
