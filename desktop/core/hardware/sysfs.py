"""AMD and Intel GPUs (and NVIDIA cards without a working driver) from Linux sysfs.

``probe_sysfs_gpus`` takes the sysfs root as a parameter, so tests build a fake
machine under a temporary folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from pathlib import Path

from desktop.core.hardware.profile import GpuInfo
from desktop.core.hardware.readers import parse_int, read_text
from desktop.core.units import GIB

_PCI_VENDOR_NAMES = {0x10DE: "nvidia", 0x1002: "amd", 0x8086: "intel"}
# An AMD "VRAM" smaller than this is an APU's BIOS carve-out: the GPU really
# works from system RAM (GTT), like an integrated GPU.
_APU_CARVE_OUT_LIMIT = 1 * GIB
# PCIe link speed per lane -> generation (sysfs gives "16.0 GT/s PCIe").
_PCIE_GT_TO_GEN = {2.5: 1, 5.0: 2, 8.0: 3, 16.0: 4, 32.0: 5, 64.0: 6}


def _intel_is_discrete(device_id: int) -> bool:
    """Intel's discrete cards by PCI id: DG1 (Iris Xe MAX), Arc A (DG2), Arc B (Battlemage)."""
    return (
        0x4905 <= device_id <= 0x4909
        or 0x5690 <= device_id <= 0x56FF
        or 0xE200 <= device_id <= 0xE2FF
    )


def _sysfs_gpu_devices(root: Path) -> list[tuple[Path, bool]]:
    """(PCI device folder, has a DRM card) for every display controller, in a stable order.

    DRM cards (class/drm/cardN) are where amdgpu publishes VRAM; the PCI bus
    listing adds GPUs that no graphics driver has claimed, such as an NVIDIA
    card whose driver is missing, which is exactly what a person must be told.
    Connector entries such as card0-DP-1 and render nodes are skipped.
    """
    found: list[tuple[Path, bool]] = []
    seen: set[Path] = set()

    def add(device: Path, has_drm: bool) -> None:
        try:
            real = device.resolve()
        except OSError:
            return
        if real not in seen:
            seen.add(real)
            found.append((device, has_drm))

    drm = root / "class" / "drm"
    cards: list[tuple[int, Path]] = []
    with contextlib.suppress(OSError):
        for entry in drm.iterdir():
            match = re.fullmatch(r"card(\d+)", entry.name)
            if match and (entry / "device").is_dir():
                cards.append((int(match.group(1)), entry / "device"))
    for _, device in sorted(cards):
        add(device, True)

    pci = root / "bus" / "pci" / "devices"
    with contextlib.suppress(OSError):
        for device in sorted(pci.iterdir()):
            device_class = parse_int(read_text(device / "class"), 16)
            # PCI class 0x03xxxx: VGA, XGA and "3D controller" (headless compute cards).
            if device_class is not None and device_class >> 16 == 0x03:
                add(device, False)
    return found


def probe_sysfs_gpus(root: Path = Path("/sys"), *, include_nvidia: bool = False) -> list[GpuInfo]:
    """AMD and Intel GPUs from Linux sysfs; NVIDIA ones only with ``include_nvidia``.

    NVML is the source for NVIDIA cards; pass ``include_nvidia=True`` when NVML
    found none, so a card without a working driver is still listed, with the
    reason. Other vendors (a server's ASPEED BMC, a VM's virtual VGA) are not
    GPUs anyone runs a model on and are left out. Never raises.
    """
    gpus: list[GpuInfo] = []
    for device, has_drm in _sysfs_gpu_devices(root):
        try:
            gpu = _sysfs_gpu(device, has_drm, include_nvidia)
        except Exception:  # one odd device must not hide the others
            continue
        if gpu is not None:
            gpus.append(dataclasses.replace(gpu, index=len(gpus)))
    return gpus


def _sysfs_gpu(device: Path, has_drm: bool, include_nvidia: bool) -> GpuInfo | None:
    vendor_id = parse_int(read_text(device / "vendor"), 16)
    device_id = parse_int(read_text(device / "device"), 16) or 0
    vendor = _PCI_VENDOR_NAMES.get(vendor_id or 0)
    if vendor is None or (vendor == "nvidia" and not include_nvidia):
        return None
    reasons: list[str] = []
    pci_name = f"PCI device {device_id:#06x}"
    driver: str | None = None
    with contextlib.suppress(OSError):
        driver = (device / "driver").resolve(strict=True).name
    if vendor == "nvidia":
        return GpuInfo(
            vendor="nvidia",
            name=f"NVIDIA GPU ({pci_name})",
            driver_version=driver,
            pcie_generation=_pcie_generation(device),
            pcie_width=parse_int(read_text(device / "current_link_width")),
            unknown_reasons=("NVIDIA driver/NVML not available",),
        )
    if not has_drm:
        reasons.append("no graphics driver is using this GPU, so it cannot run models")

    vram_total = parse_int(read_text(device / "mem_info_vram_total"))
    vram_used = parse_int(read_text(device / "mem_info_vram_used"))
    vram_free = vram_total - vram_used if vram_total is not None and vram_used is not None else None
    product = read_text(device / "product_name")

    if vendor == "amd":
        name = product or f"AMD Radeon GPU ({pci_name})"
        unified = vram_total is not None and vram_total < _APU_CARVE_OUT_LIMIT
        if vram_total is None:
            reasons.append("VRAM: not reported by the driver (mem_info_vram_total missing)")
        if not product:
            reasons.append("model name: not reported by amdgpu; shown by PCI id")
        reasons.append("memory bandwidth: amdgpu does not report the memory bus width")
    else:  # intel
        name = (
            product
            or f"Intel {'Arc' if _intel_is_discrete(device_id) else 'integrated'} GPU ({pci_name})"
        )
        discrete = _intel_is_discrete(device_id) or (
            vram_total is not None and vram_total >= _APU_CARVE_OUT_LIMIT
        )
        unified = not discrete
        if vram_total is None:
            reasons.append(
                "VRAM: not reported by the Intel driver"
                if discrete
                else "VRAM: none of its own; it shares system RAM"
            )
        reasons.append("memory bandwidth: the Intel driver does not report it")
    return GpuInfo(
        vendor=vendor,
        name=name,
        vram_total_bytes=vram_total,
        vram_free_bytes=vram_free,
        vram_used_bytes=vram_used,
        unified_memory=unified,
        driver_version=driver,
        pcie_generation=None if unified else _pcie_generation(device),
        pcie_width=None if unified else parse_int(read_text(device / "current_link_width")),
        unknown_reasons=tuple(reasons),
    )


def _pcie_generation(device: Path) -> int | None:
    """PCIe generation from sysfs "current_link_speed" ("16.0 GT/s PCIe" -> 4)."""
    text = read_text(device / "current_link_speed")
    match = re.match(r"\s*([\d.]+)\s*GT/s", text or "")
    if not match:
        return None
    return _PCIE_GT_TO_GEN.get(float(match.group(1)))
