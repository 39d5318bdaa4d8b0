"""CPU and RAM classes for a "what if" machine: the rest of the computer around a GPU.

A what-if GPU alone keeps this computer's CPU and RAM speed, and on a small virtual machine
(2 cores, ~15-25 GB/s) every partial offload then looks dire. A person who buys an RTX 4060
puts it in a typical desktop, so picking a GPU picks :data:`DEFAULT_CLASS` too, and they can
choose another class or keep this computer's CPU and RAM.

Every figure is sourced. Bandwidth is derived, not measured: the JEDEC transfer rate
(DDR4-3200 is 3200 MT/s, JESD79-4; DDR5-5200 is 5200 MT/s, JESD79-5) times the memory
channels times 8 bytes (a channel is 64 bits wide: one DDR4 DIMM channel, or a DDR5 DIMM's two
32-bit subchannels). It is the theoretical peak, as the GPU table's figures are. Each class is
one reference CPU whose vendor specification gives its cores, threads, channels and supported
memory speed. Apple's chips are unified-memory GPUs in the GPU table (their bandwidth is the
chip's, from resources/gpus.json), so they need no class here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "DEFAULT_CLASS",
    "MACHINE_CLASSES",
    "THIS_COMPUTER",
    "MachineClass",
    "apply_class",
    "machine_class",
]

BYTES_PER_TRANSFER: Final = 8  # one 64-bit channel


@dataclass(frozen=True)
class MachineClass:
    """The CPU and RAM of a typical machine of one kind."""

    key: str
    label: str  # what the selector shows
    example_cpu: str
    physical_cores: int
    logical_cores: int
    memory: str  # "DDR5-5200"
    transfer_rate_mt_s: int  # JEDEC, million transfers per second
    channels: int
    source: str  # where the cores, channels and memory speed come from

    @property
    def bandwidth_bytes_per_s(self) -> int:
        """Transfer rate x channels x 8 bytes (the theoretical peak)."""
        return self.transfer_rate_mt_s * 1_000_000 * self.channels * BYTES_PER_TRANSFER

    @property
    def description(self) -> str:
        """ "8 cores and DDR5-5200 × 2 channels = 83.2 GB/s, as in an AMD Ryzen 7 7700X"."""
        gbps = self.bandwidth_bytes_per_s / 1e9
        return (
            f"{self.physical_cores} cores and {self.memory} × {self.channels} channels = "
            f"{gbps:.1f} GB/s, as in an {self.example_cpu}"
        )


#: Keep this computer's CPU and its measured RAM bandwidth.
THIS_COMPUTER: Final = "this"

MACHINE_CLASSES: Final = (
    MachineClass(
        key="laptop-ddr4",
        label="Laptop · DDR4",
        example_cpu="Intel Core i7-1165G7",
        physical_cores=4,
        logical_cores=8,
        memory="DDR4-3200",
        transfer_rate_mt_s=3200,
        channels=2,
        source="Intel ARK, Core i7-1165G7 specifications (4 cores, 8 threads; memory "
        "DDR4-3200, 2 channels): https://www.intel.com/content/www/us/en/products/sku/208921/"
        "intel-core-i71165g7-processor-12m-cache-up-to-4-70-ghz/specifications.html; "
        "DDR4-3200 = 3200 MT/s (JEDEC JESD79-4)",
    ),
    MachineClass(
        key="desktop-ddr5",
        label="Desktop · DDR5",
        example_cpu="AMD Ryzen 7 7700X",
        physical_cores=8,
        logical_cores=16,
        memory="DDR5-5200",
        transfer_rate_mt_s=5200,
        channels=2,
        source="AMD, Ryzen 7 7700X specifications (8 cores, 16 threads; 2x1R DDR5-5200, 2 "
        "channels): https://www.amd.com/en/products/processors/desktops/ryzen/7000-series/"
        "amd-ryzen-7-7700x.html; DDR5-5200 = 5200 MT/s (JEDEC JESD79-5)",
    ),
    MachineClass(
        key="workstation-ddr5",
        label="Workstation · 8-channel DDR5",
        example_cpu="AMD Ryzen Threadripper PRO 7975WX",
        physical_cores=32,
        logical_cores=64,
        memory="DDR5-5200",
        transfer_rate_mt_s=5200,
        channels=8,
        source="AMD, Ryzen Threadripper PRO 7975WX specifications (32 cores, 64 threads; "
        "8 channels of DDR5-5200 RDIMM): https://www.amd.com/en/products/processors/"
        "workstations/ryzen-threadripper/7000-series/amd-ryzen-threadripper-pro-7975wx.html; "
        "DDR5-5200 = 5200 MT/s (JEDEC JESD79-5)",
    ),
)

#: What picking a discrete GPU assumes: the typical desktop it would go in.
DEFAULT_CLASS: Final = "desktop-ddr5"


def machine_class(key: str) -> MachineClass | None:
    """The class called ``key``; None for :data:`THIS_COMPUTER` or an unknown key."""
    return next((c for c in MACHINE_CLASSES if c.key == key), None)


def apply_class(profile: dict[str, Any], key: str) -> dict[str, Any]:
    """``profile`` (a what-if profile dict, ``hardware --json`` shape) with the CPU and RAM
    bandwidth of class ``key``; unchanged for :data:`THIS_COMPUTER`. The GPUs, the RAM size
    and a unified-memory chip's bandwidth (its RAM is the chip's) are left as they are."""
    chosen = machine_class(key)
    if chosen is None:
        return profile
    result = dict(profile)
    cpu = dict(result.get("cpu") or {})
    cpu.update(
        brand=f"{chosen.label} ({chosen.example_cpu})",
        physical_cores=chosen.physical_cores,
        logical_cores=chosen.logical_cores,
    )
    result["cpu"] = cpu
    memory = dict(result.get("memory") or {})
    if not any(g.get("unified_memory") for g in result.get("gpus") or []):
        memory["bandwidth_bytes_per_s"] = chosen.bandwidth_bytes_per_s
        memory["bandwidth_source"] = "manual"
    result["memory"] = memory
    warnings = list(result.get("warnings") or [])
    warnings.append(f"What-if CPU and RAM: {chosen.description}. Source: {chosen.source}.")
    result["warnings"] = warnings
    return result
