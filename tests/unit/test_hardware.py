"""Tests for the hardware probes and profile (desktop.core.hardware, desktop.core.units).

Hardware this machine does not have is faked at the source each probe takes
as a parameter: a fake NVML object that raises pynvml's real NVMLError
subclasses, sysfs trees under tmp_path, sysctl dictionaries, /proc/cpuinfo
texts, and a fake ``llama_cpp`` package on PYTHONPATH for the child-process
backend check. What this machine does have (its CPU, RAM, bandwidth and the
installed llama-cpp-python) is probed for real at the end.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from desktop.core.hardware import (
    GPU_VENDORS,
    NON_OFFLOAD_BACKENDS,
    BackendInfo,
    CpuInfo,
    GpuInfo,
    HardwareProfile,
    MemoryInfo,
    Nvml,
    apple_recommended_working_set,
    cached_ram_bandwidth,
    detect,
    measure_ram_bandwidth,
    probe_apple,
    probe_backends,
    probe_cpu,
    probe_memory,
    probe_nvidia,
    probe_sysfs_gpus,
    summary_lines,
)
from desktop.core.hardware import backends as hardware_backends
from desktop.core.hardware import memory as hardware_memory
from desktop.core.hardware.detect import _backend_warnings
from desktop.core.units import GIB, MIB, format_bandwidth, format_bytes

# --------------------------------------------------------------------------
# A fake NVML
# --------------------------------------------------------------------------

MISSING = object()  # a device field whose NVML function does not exist at all


class Err:
    """A device field that fails with this NVML return code."""

    def __init__(self, code: int) -> None:
        self.code = code


def rtx_4090(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": "NVIDIA GeForce RTX 4090",
        "total": 24564 * MIB,
        "free": 23652 * MIB,
        "used": 912 * MIB,
        "cc": (8, 9),
        "bus": 384,
        "clock": 10501,
        "pcie_gen": 4,
        "pcie_width": 16,
    }
    fields.update(overrides)
    return fields


def rtx_3060(**overrides: Any) -> dict[str, Any]:
    return rtx_4090(
        name="NVIDIA GeForce RTX 3060",
        total=12288 * MIB,
        free=11800 * MIB,
        used=488 * MIB,
        cc=(8, 6),
        bus=192,
        clock=7501,
        **overrides,
    )


class FakeNvml:
    """Just enough of pynvml, with failures injected per field."""

    NVMLError = pynvml.NVMLError
    nvmlMemory_v2 = pynvml.nvmlMemory_v2

    def __init__(
        self,
        devices: list[dict[str, Any]] | None = None,
        *,
        init_error: int | None = None,
        count_error: int | None = None,
        driver: Any = "550.54.14",
        cuda: Any = 12040,
    ) -> None:
        self.devices = devices or []
        self.init_error = init_error
        self.count_error = count_error
        self.driver = driver
        self.cuda = cuda
        self.init_calls = 0
        self.shutdown_calls = 0
        self.memory_versions: list[Any] = []

    def _field(self, handle: int, key: str) -> Any:
        value = self.devices[handle].get(key)
        if isinstance(value, Err):
            raise pynvml.NVMLError(value.code)
        if isinstance(value, Exception):
            raise value
        return value

    def nvmlInit(self) -> None:
        self.init_calls += 1
        if self.init_error is not None:
            raise pynvml.NVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        self.shutdown_calls += 1

    def nvmlDeviceGetCount(self) -> int:
        if self.count_error is not None:
            raise pynvml.NVMLError(self.count_error)
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if isinstance(self.devices[index].get("handle"), Err):
            raise pynvml.NVMLError(self.devices[index]["handle"].code)
        return index

    def nvmlDeviceGetName(self, handle: int) -> Any:
        return self._field(handle, "name")

    def nvmlDeviceGetMemoryInfo(self, handle: int, version: Any = None) -> Any:
        self.memory_versions.append(version)
        memory = self._field(handle, "memory") if "memory" in self.devices[handle] else MISSING
        if memory is not MISSING:
            return memory
        return SimpleNamespace(
            total=self._field(handle, "total"),
            free=self._field(handle, "free"),
            used=self._field(handle, "used"),
        )

    def nvmlSystemGetDriverVersion(self) -> Any:
        return self.driver

    def nvmlSystemGetCudaDriverVersion_v2(self) -> Any:
        return self.cuda

    def nvmlDeviceGetCudaComputeCapability(self, handle: int) -> Any:
        return self._field(handle, "cc")

    def nvmlDeviceGetMemoryBusWidth(self, handle: int) -> Any:
        return self._field(handle, "bus")

    def nvmlDeviceGetMaxClockInfo(self, handle: int, clock_type: int) -> Any:
        assert clock_type == pynvml.NVML_CLOCK_MEM
        return self._field(handle, "clock")

    def nvmlDeviceGetMaxPcieLinkGeneration(self, handle: int) -> Any:
        return self._field(handle, "pcie_gen")

    def nvmlDeviceGetMaxPcieLinkWidth(self, handle: int) -> Any:
        return self._field(handle, "pcie_width")


class OldNvml(FakeNvml):
    """An old nvidia-ml-py: no memory v2, no bus width, only the v1 CUDA version call."""

    nvmlMemory_v2 = None
    nvmlDeviceGetMemoryBusWidth = None  # type: ignore[assignment]
    nvmlSystemGetCudaDriverVersion_v2 = None  # type: ignore[assignment]

    def nvmlSystemGetCudaDriverVersion(self) -> Any:
        return self.cuda

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:  # type: ignore[override]
        return super().nvmlDeviceGetMemoryInfo(handle)


def reasons_text(gpu: GpuInfo) -> str:
    return "\n".join(gpu.unknown_reasons)


# --------------------------------------------------------------------------
# NVIDIA through NVML
# --------------------------------------------------------------------------


def test_one_nvidia_gpu_reads_every_field_and_computes_bandwidth() -> None:
    nvml = FakeNvml([rtx_4090()])
    gpus, notes = probe_nvidia(nvml)
    assert notes == []
    assert len(gpus) == 1
    gpu = gpus[0]
    assert gpu.vendor == "nvidia"
    assert gpu.name == "NVIDIA GeForce RTX 4090"
    assert gpu.vram_total_bytes == 24564 * MIB
    assert gpu.vram_free_bytes == 23652 * MIB
    assert gpu.vram_used_bytes == 912 * MIB
    assert gpu.unified_memory is False
    assert gpu.driver_version == "550.54.14"
    assert gpu.cuda_version == "12.4"
    assert gpu.compute_capability == "8.9"
    assert gpu.memory_bus_width_bits == 384
    assert gpu.max_memory_clock_mhz == 10501
    # 2 (DDR) x 10501 MHz x 384 bit / 8 = 1008.096 GB/s, the RTX 4090's spec.
    assert gpu.bandwidth_bytes_per_s == 1_008_096_000_000
    assert gpu.bandwidth_source == "nvml"
    assert format_bandwidth(gpu.bandwidth_bytes_per_s) == "1008 GB/s"
    assert (gpu.pcie_generation, gpu.pcie_width) == (4, 16)
    assert gpu.unknown_reasons == ()
    assert nvml.memory_versions == [pynvml.nvmlMemory_v2]
    assert (nvml.init_calls, nvml.shutdown_calls) == (1, 1)


@pytest.mark.parametrize(
    ("bus_bits", "clock_mhz", "spec_gb_per_s"),
    [
        (384, 10501, 1008),  # RTX 4090, GDDR6X
        (384, 9751, 936),  # RTX 3090, GDDR6X
        (192, 7501, 360),  # RTX 3060 12 GB, GDDR6
        (5120, 1215, 1555),  # A100 40 GB, HBM2
    ],
)
def test_nvml_bandwidth_matches_spec_sheets(
    bus_bits: int, clock_mhz: int, spec_gb_per_s: int
) -> None:
    gpus, _ = probe_nvidia(FakeNvml([rtx_4090(bus=bus_bits, clock=clock_mhz)]))
    assert gpus[0].bandwidth_bytes_per_s is not None
    assert round(gpus[0].bandwidth_bytes_per_s / 1e9) == spec_gb_per_s


def test_two_nvidia_gpus_of_different_sizes_are_listed_separately() -> None:
    nvml = FakeNvml([rtx_4090(), rtx_3060()])
    profile = detect(
        nvml=nvml,
        sysfs_root=Path("/nonexistent"),
        system="Linux",
        measure_bandwidth=False,
        check_backends=False,
    )
    assert [g.index for g in profile.gpus] == [0, 1]
    assert [g.name for g in profile.gpus] == ["NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 3060"]
    assert [g.vram_total_bytes for g in profile.gpus] == [24564 * MIB, 12288 * MIB]
    assert profile.gpus[1].bandwidth_bytes_per_s == 360_048_000_000
    assert nvml.shutdown_calls == 1


@pytest.mark.parametrize(
    ("code", "words", "warns_without_card"),
    [
        (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "install the NVIDIA driver", False),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "installed but not running", True),
        (pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH, "version mismatch", True),
        (pynvml.NVML_ERROR_UNINITIALIZED, "could not be initialised", True),
        (pynvml.NVML_ERROR_NO_PERMISSION, "permission denied", True),
        (pynvml.NVML_ERROR_UNKNOWN, "Reading NVIDIA GPUs failed", True),
    ],
)
def test_nvml_init_failures_become_a_note_and_no_gpus(
    code: int, words: str, warns_without_card: bool
) -> None:
    nvml = FakeNvml([rtx_4090()], init_error=code)
    gpus, notes = probe_nvidia(nvml)
    assert gpus == []
    assert len(notes) == 1
    assert words in notes[0]
    assert nvml.shutdown_calls == 0  # nothing to shut down after a failed init

    # Without any NVIDIA card in sysfs, "no NVML library" is normal and stays
    # quiet; a driver that is there but broken is always worth a warning.
    profile = detect(
        nvml=FakeNvml(init_error=code),
        sysfs_root=Path("/nonexistent"),
        system="Linux",
        measure_bandwidth=False,
        check_backends=False,
    )
    assert profile.gpus == ()
    assert (notes[0] in profile.warnings) is warns_without_card


def test_nvidia_ml_py_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    gpus, notes = probe_nvidia()
    assert gpus == []
    assert "nvidia-ml-py is not installed" in notes[0]


def test_not_supported_bus_width_and_clock_leave_bandwidth_unknown_with_reasons() -> None:
    nvml = FakeNvml(
        [
            rtx_4090(
                bus=Err(pynvml.NVML_ERROR_NOT_SUPPORTED), clock=Err(pynvml.NVML_ERROR_NOT_SUPPORTED)
            )
        ]
    )
    (gpu,), _ = probe_nvidia(nvml)
    assert gpu.memory_bus_width_bits is None
    assert gpu.max_memory_clock_mhz is None
    assert gpu.bandwidth_bytes_per_s is None
    assert gpu.bandwidth_source == "unknown"
    assert "memory bus width: not supported by this GPU or driver" in gpu.unknown_reasons
    assert "memory clock: not supported by this GPU or driver" in gpu.unknown_reasons
    assert any(r.startswith("memory bandwidth:") for r in gpu.unknown_reasons)
    # Everything else is still read.
    assert gpu.vram_total_bytes == 24564 * MIB
    assert gpu.compute_capability == "8.9"
    assert nvml.shutdown_calls == 1


def test_windows_wddm_none_for_used_memory() -> None:
    (gpu,), _ = probe_nvidia(FakeNvml([rtx_4090(used=None)]))
    assert gpu.vram_used_bytes is None
    assert gpu.vram_total_bytes == 24564 * MIB
    assert gpu.vram_free_bytes == 23652 * MIB
    assert "VRAM used: not reported by the driver" in gpu.unknown_reasons


def test_memory_info_none_and_not_available_sentinel() -> None:
    nvml = FakeNvml([rtx_4090(memory=None), rtx_4090(free=2**64 - 1)])
    first, second = probe_nvidia(nvml)[0]
    assert (first.vram_total_bytes, first.vram_free_bytes, first.vram_used_bytes) == (None,) * 3
    assert "VRAM: not reported by the driver" in first.unknown_reasons
    assert second.vram_free_bytes is None
    assert "VRAM free: not reported by the driver" in second.unknown_reasons


def test_names_and_driver_version_as_bytes_are_decoded() -> None:
    nvml = FakeNvml([rtx_4090(name=b"NVIDIA GeForce RTX 4090")], driver=b"470.256.02")
    (gpu,), _ = probe_nvidia(nvml)
    assert gpu.name == "NVIDIA GeForce RTX 4090"
    assert gpu.driver_version == "470.256.02"


def test_old_nvidia_ml_py_without_memory_v2_bus_width_or_cuda_v2() -> None:
    nvml = OldNvml([rtx_4090()], cuda=11040)
    (gpu,), _ = probe_nvidia(nvml)
    assert gpu.vram_total_bytes == 24564 * MIB  # read through v1
    assert nvml.memory_versions == [None]
    assert gpu.cuda_version == "11.4"
    assert gpu.memory_bus_width_bits is None
    assert any(
        r.startswith("memory bus width: not available in this nvidia-ml-py version")
        for r in gpu.unknown_reasons
    )


def test_memory_v2_refused_by_driver_falls_back_to_v1() -> None:
    class V2Refused(FakeNvml):
        def nvmlDeviceGetMemoryInfo(self, handle: int, version: Any = None) -> Any:
            if version is not None:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
            return super().nvmlDeviceGetMemoryInfo(handle)

    (gpu,), _ = probe_nvidia(V2Refused([rtx_4090()]))
    assert gpu.vram_free_bytes == 23652 * MIB
    assert not any(r.startswith("VRAM") for r in gpu.unknown_reasons)


def test_pcie_max_unsupported_falls_back_to_current_link() -> None:
    class CurrentOnly(FakeNvml):
        def nvmlDeviceGetMaxPcieLinkGeneration(self, handle: int) -> Any:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

        def nvmlDeviceGetCurrPcieLinkGeneration(self, handle: int) -> Any:
            return 3

    (gpu,), _ = probe_nvidia(CurrentOnly([rtx_4090()]))
    assert gpu.pcie_generation == 3
    assert not any(r.startswith("PCIe") for r in gpu.unknown_reasons)


def test_device_count_failure_and_lost_handle() -> None:
    gpus, notes = probe_nvidia(FakeNvml([rtx_4090()], count_error=pynvml.NVML_ERROR_UNKNOWN))
    assert gpus == []
    assert "could not count" in notes[0]

    nvml = FakeNvml([rtx_4090(handle=Err(pynvml.NVML_ERROR_GPU_IS_LOST)), rtx_3060()])
    gpus, notes = probe_nvidia(nvml)
    assert [g.name for g in gpus] == ["NVIDIA GPU 0", "NVIDIA GeForce RTX 3060"]
    assert "stopped responding" in reasons_text(gpus[0])
    assert gpus[0].vram_total_bytes is None


def test_unexpected_exceptions_never_escape_and_shutdown_always_runs() -> None:
    class Exploding(FakeNvml):
        def nvmlShutdown(self) -> None:
            super().nvmlShutdown()
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)

    nvml = Exploding([rtx_4090(cc=RuntimeError("ctypes went wrong"), name=ValueError("bad"))])
    (gpu,), notes = probe_nvidia(nvml)
    assert notes == []
    assert gpu.name == "NVIDIA GPU 0"
    assert "compute capability: RuntimeError: ctypes went wrong" in gpu.unknown_reasons
    assert nvml.shutdown_calls == 1

    class InitOSError(FakeNvml):
        def nvmlInit(self) -> None:
            raise OSError("libnvidia-ml.so.1: cannot open shared object file")

    gpus, notes = probe_nvidia(InitOSError())
    assert gpus == []
    assert "OSError" in notes[0]


class ProcessNvml(FakeNvml):
    """FakeNvml whose GPUs list processes: ``procs`` is [(pid, used bytes or None)] or an Err."""

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[SimpleNamespace]:
        procs = self._field(handle, "procs")
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in procs]


def test_nvml_wrapper_per_process_vram_is_none_unless_reported() -> None:
    me, other = 4242, 7
    fake = ProcessNvml(
        [
            rtx_4090(procs=[(me, 2 * GIB), (other, 1 * GIB)]),
            rtx_4090(procs=[(other, 1 * GIB)]),  # no context of ours on this card
            rtx_4090(procs=Err(pynvml.NVML_ERROR_NOT_SUPPORTED)),
            rtx_4090(procs=[(me, None)]),  # Windows WDDM does not say
            rtx_4090(procs=[(me, 2**64 - 1)]),  # NVML's "not available"
        ]
    )
    nvml = Nvml(fake)
    assert fake.init_calls == 0  # initialised lazily, by the first call
    handles = nvml.handles()
    assert handles == [0, 1, 2, 3, 4]
    assert [nvml.process_vram(h, me) for h in handles] == [2 * GIB, None, None, None, None]
    assert nvml.process_vram_total(me) == 2 * GIB
    assert nvml.process_vram_total(99) is None  # on no GPU: unknown, not 0
    assert nvml.name(0) == "NVIDIA GeForce RTX 4090"
    assert fake.init_calls == 1
    nvml.shutdown()
    assert fake.shutdown_calls == 1


def test_nvml_wrapper_without_nvml_or_with_a_broken_driver_answers_none() -> None:
    for nvml in (Nvml(None), Nvml(FakeNvml([rtx_4090()], init_error=pynvml.NVML_ERROR_UNKNOWN))):
        assert nvml.handles() == []
        assert nvml.call("nvmlDeviceGetCount") is None
        assert nvml.process_vram_total(1) is None
        assert nvml.init() is False
        nvml.shutdown()  # nothing to shut down: no call, no exception


# --------------------------------------------------------------------------
# sysfs: AMD, Intel, driverless NVIDIA
# --------------------------------------------------------------------------


def make_card(
    root: Path,
    card: str,
    *,
    vendor: int,
    device: int,
    files: dict[str, str] | None = None,
    pci_class: int = 0x030000,
    drm: bool = True,
) -> Path:
    """A PCI display device under root/devices, linked from class/drm and bus/pci."""
    devices = root / "devices"
    slot = (
        f"0000:{len(list(devices.glob('*'))) + 1:02x}:00.0" if devices.exists() else "0000:01:00.0"
    )
    dev = devices / slot
    dev.mkdir(parents=True)
    (dev / "vendor").write_text(f"{vendor:#06x}\n")
    (dev / "device").write_text(f"{device:#06x}\n")
    (dev / "class").write_text(f"{pci_class:#08x}\n")
    for name, text in (files or {}).items():
        (dev / name).write_text(text + "\n")
    pci = root / "bus" / "pci" / "devices"
    pci.mkdir(parents=True, exist_ok=True)
    (pci / slot).symlink_to(dev)
    if drm:
        card_dir = root / "class" / "drm" / card
        card_dir.mkdir(parents=True)
        (card_dir / "device").symlink_to(dev)
        # Connectors and render nodes sit beside the card and are not GPUs.
        connector = root / "class" / "drm" / f"{card}-DP-1"
        connector.mkdir()
        (connector / "device").symlink_to(dev)
    return dev


def test_amd_discrete_gpu_from_sysfs(tmp_path: Path) -> None:
    make_card(
        tmp_path,
        "card1",
        vendor=0x1002,
        device=0x744C,
        files={
            "mem_info_vram_total": str(24 * GIB),
            "mem_info_vram_used": str(1 * GIB),
            "mem_info_vis_vram_total": str(24 * GIB),
            "product_name": "Radeon RX 7900 XTX",
            "current_link_speed": "16.0 GT/s PCIe",
            "current_link_width": "16",
        },
    )
    (tmp_path / "class" / "drm" / "renderD128").mkdir()
    gpus = probe_sysfs_gpus(tmp_path)
    assert len(gpus) == 1
    gpu = gpus[0]
    assert gpu.vendor == "amd"
    assert gpu.name == "Radeon RX 7900 XTX"
    assert gpu.vram_total_bytes == 24 * GIB
    assert gpu.vram_used_bytes == 1 * GIB
    assert gpu.vram_free_bytes == 23 * GIB
    assert gpu.unified_memory is False
    assert (gpu.pcie_generation, gpu.pcie_width) == (4, 16)
    assert gpu.bandwidth_bytes_per_s is None
    assert "memory bandwidth" in reasons_text(gpu)


def test_amd_apu_small_carve_out_is_unified_and_nameless_card_uses_pci_id(tmp_path: Path) -> None:
    make_card(
        tmp_path,
        "card0",
        vendor=0x1002,
        device=0x15BF,
        files={"mem_info_vram_total": str(512 * MIB), "mem_info_vram_used": str(100 * MIB)},
    )
    (gpu,) = probe_sysfs_gpus(tmp_path)
    assert gpu.unified_memory is True
    assert gpu.name == "AMD Radeon GPU (PCI device 0x15bf)"
    assert "model name" in reasons_text(gpu)


def test_intel_igpu_without_vram_files_is_unified(tmp_path: Path) -> None:
    make_card(tmp_path, "card0", vendor=0x8086, device=0x46A6)
    (gpu,) = probe_sysfs_gpus(tmp_path)
    assert gpu.vendor == "intel"
    assert gpu.unified_memory is True
    assert gpu.vram_total_bytes is None
    assert "shares system RAM" in reasons_text(gpu)


def test_intel_arc_is_discrete(tmp_path: Path) -> None:
    make_card(tmp_path, "card0", vendor=0x8086, device=0x56A0)
    (gpu,) = probe_sysfs_gpus(tmp_path)
    assert gpu.unified_memory is False
    assert "Arc" in gpu.name
    assert "VRAM: not reported by the Intel driver" in gpu.unknown_reasons


def test_nvidia_in_sysfs_only_when_nvml_found_none(tmp_path: Path) -> None:
    make_card(tmp_path, "card0", vendor=0x10DE, device=0x2684)
    assert probe_sysfs_gpus(tmp_path) == []
    (gpu,) = probe_sysfs_gpus(tmp_path, include_nvidia=True)
    assert gpu.vendor == "nvidia"
    assert gpu.unknown_reasons == ("NVIDIA driver/NVML not available",)

    # detect: NVML library missing, but the card is there -> listed, and the
    # person is told why it cannot be read.
    profile = detect(
        nvml=FakeNvml(init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND),
        sysfs_root=tmp_path,
        system="Linux",
        measure_bandwidth=False,
        check_backends=False,
    )
    assert [g.vendor for g in profile.gpus] == ["nvidia"]
    assert any("install the NVIDIA driver" in w for w in profile.warnings)


def test_driverless_card_found_on_pci_bus_and_other_vendors_ignored(tmp_path: Path) -> None:
    # An NVIDIA "3D controller" with no driver has no DRM card at all.
    make_card(tmp_path, "card0", vendor=0x10DE, device=0x2330, pci_class=0x030200, drm=False)
    make_card(tmp_path, "card1", vendor=0x1A03, device=0x2000)  # ASPEED BMC VGA
    gpus = probe_sysfs_gpus(tmp_path, include_nvidia=True)
    assert [(g.vendor, g.name) for g in gpus] == [("nvidia", "NVIDIA GPU (PCI device 0x2330)")]


def test_nvidia_and_amd_together_get_consecutive_indices(tmp_path: Path) -> None:
    make_card(tmp_path, "card0", vendor=0x10DE, device=0x2684)
    make_card(
        tmp_path,
        "card1",
        vendor=0x1002,
        device=0x73BF,
        files={"mem_info_vram_total": str(16 * GIB), "mem_info_vram_used": "0"},
    )
    profile = detect(
        nvml=FakeNvml([rtx_4090()]),
        sysfs_root=tmp_path,
        system="Linux",
        measure_bandwidth=False,
        check_backends=False,
    )
    assert [(g.index, g.vendor) for g in profile.gpus] == [(0, "nvidia"), (1, "amd")]


def test_missing_sysfs_means_no_gpus(tmp_path: Path) -> None:
    assert probe_sysfs_gpus(tmp_path / "nothing-here") == []


# --------------------------------------------------------------------------
# Apple Silicon
# --------------------------------------------------------------------------


def fake_sysctl(values: dict[str, str]) -> Callable[[str], str | None]:
    return values.get


def m2_pro(memsize: int, **extra: str) -> dict[str, str]:
    values = {
        "machdep.cpu.brand_string": "Apple M2 Pro",
        "hw.memsize": str(memsize),
        "hw.physicalcpu": "12",
        "hw.logicalcpu": "12",
        "hw.optional.arm64": "1",
        "hw.optional.neon": "1",
        "hw.optional.arm.FEAT_DotProd": "1",
        "hw.optional.arm.FEAT_I8MM": "0",
        "hw.optional.arm.FEAT_BF16": "1",
        "iogpu.wired_limit_mb": "0",
        "kern.osproductversion": "14.5",
    }
    values.update(extra)
    return values


@pytest.mark.parametrize(
    ("ram_gib", "usable_gib"),
    [(8, 16 / 3), (16, 32 / 3), (32, 64 / 3), (36, 27), (64, 48), (128, 96)],
)
def test_apple_working_set_rule(ram_gib: int, usable_gib: float) -> None:
    assert apple_recommended_working_set(ram_gib * GIB) == pytest.approx(usable_gib * GIB, abs=1)


def test_apple_m_series_is_one_unified_gpu() -> None:
    (gpu,) = probe_apple(fake_sysctl(m2_pro(16 * GIB)))
    assert gpu.vendor == "apple"
    assert gpu.name == "Apple M2 Pro GPU"
    assert gpu.unified_memory is True
    assert gpu.vram_total_bytes == 16 * GIB * 2 // 3
    assert gpu.bandwidth_bytes_per_s is None
    assert "memory bandwidth" in reasons_text(gpu)
    assert gpu.driver_version == "Metal (macOS 14.5)"


def test_apple_wired_limit_overrides_the_default() -> None:
    (gpu,) = probe_apple(fake_sysctl(m2_pro(32 * GIB, **{"iogpu.wired_limit_mb": "28672"})))
    assert gpu.vram_total_bytes == 28 * GIB


def test_not_an_apple_silicon_mac() -> None:
    intel_mac = {"machdep.cpu.brand_string": "Intel(R) Core(TM) i9-9880H CPU @ 2.30GHz"}
    assert probe_apple(fake_sysctl(intel_mac)) == []
    assert probe_apple(fake_sysctl({})) == []

    def broken(name: str) -> str | None:
        raise RuntimeError("sysctl exploded")

    assert probe_apple(broken) == []


def test_detect_on_a_mac_uses_sysctl_and_shares_ram() -> None:
    fake_psutil = SimpleNamespace(
        virtual_memory=lambda: SimpleNamespace(total=16 * GIB, available=9 * GIB),
        swap_memory=lambda: SimpleNamespace(total=2 * GIB, free=2 * GIB),
    )
    profile = detect(
        sysctl=fake_sysctl(m2_pro(16 * GIB)),
        system="Darwin",
        memory_source=fake_psutil,
        measure_bandwidth=False,
        check_backends=False,
    )
    assert profile.cpu.brand == "Apple M2 Pro"
    assert profile.cpu.physical_cores == 12
    assert profile.cpu.features == ("neon", "dotprod", "bf16")
    (gpu,) = profile.gpus
    assert gpu.vram_total_bytes == 16 * GIB * 2 // 3
    # Free GPU memory on a unified machine is the RAM that is actually free.
    assert gpu.vram_free_bytes == 9 * GIB
    assert not any(r.startswith("VRAM free") for r in gpu.unknown_reasons)


def test_python_under_rosetta_on_apple_silicon_is_warned_about() -> None:
    values = m2_pro(16 * GIB, **{"sysctl.proc_translated": "1"})
    profile = detect(
        sysctl=fake_sysctl(values), system="Darwin", measure_bandwidth=False, check_backends=False
    )
    assert profile.cpu.architecture == "arm64"
    assert any("Rosetta" in w for w in profile.warnings)


# --------------------------------------------------------------------------
# CPU and RAM
# --------------------------------------------------------------------------

X86_TWO_SOCKETS_HT = "\n\n".join(
    f"processor\t: {cpu}\nvendor_id\t: GenuineIntel\n"
    f"model name\t: Intel(R) Xeon(R) Gold 6430\nphysical id\t: {cpu // 4}\n"
    f"core id\t\t: {(cpu % 4) // 2}\n"
    "flags\t\t: fpu sse2 pni ssse3 fma avx f16c avx2 bmi2 avx512f avx512bw avx512_vnni "
    "avx512_bf16 amx_tile amx_int8 amx_bf16 avx_vnni"
    for cpu in range(8)
)

ARM_GRAVITON = "\n\n".join(
    f"processor\t: {cpu}\nBogoMIPS\t: 243.75\n"
    "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp asimddp "
    "sve asimdfhm sve2 i8mm bf16\nCPU implementer\t: 0x41\nCPU part\t: 0xd4f"
    for cpu in range(4)
)


def test_cpuinfo_x86_two_sockets_with_hyperthreading(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(X86_TWO_SOCKETS_HT)
    cpu = probe_cpu(path, system="Linux", machine="x86_64")
    assert cpu.brand == "Intel(R) Xeon(R) Gold 6430"
    assert cpu.architecture == "x86_64"
    assert (cpu.physical_cores, cpu.logical_cores) == (4, 8)
    assert cpu.features == (
        "sse3",
        "ssse3",
        "avx",
        "avx_vnni",
        "avx2",
        "f16c",
        "fma",
        "bmi2",
        "avx512f",
        "avx512bw",
        "avx512vnni",
        "avx512_bf16",
        "amx_tile",
        "amx_int8",
        "amx_bf16",
    )
    assert "AVX2 AVX-512 (VNNI, BF16) AMX" in summary_lines(HardwareProfile(cpu=cpu))[0]


def test_cpuinfo_arm64(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(ARM_GRAVITON)
    cpu = probe_cpu(path, system="Linux", machine="aarch64")
    assert cpu.architecture == "arm64"
    assert (cpu.physical_cores, cpu.logical_cores) == (4, 4)
    assert cpu.features == ("neon", "fp16", "dotprod", "i8mm", "bf16", "sve", "sve2")
    assert cpu.brand == "arm64 CPU"


def test_cpu_fallback_when_cpuinfo_is_missing(tmp_path: Path) -> None:
    cpu = probe_cpu(tmp_path / "missing", system="Linux", machine="AMD64")
    assert cpu.architecture == "x86_64"
    assert cpu.logical_cores == os.cpu_count()
    assert cpu.features == ()


def test_probe_memory_with_fake_and_broken_psutil() -> None:
    fake = SimpleNamespace(
        virtual_memory=lambda: SimpleNamespace(total=32 * GIB, available=20 * GIB),
        swap_memory=lambda: SimpleNamespace(total=8 * GIB, free=7 * GIB),
    )
    memory = probe_memory(fake)
    assert (memory.total_bytes, memory.available_bytes) == (32 * GIB, 20 * GIB)
    assert (memory.swap_total_bytes, memory.swap_free_bytes) == (8 * GIB, 7 * GIB)
    assert memory.bandwidth_source == "unknown"

    def fail() -> Any:
        raise PermissionError("no /proc/meminfo")

    broken = SimpleNamespace(virtual_memory=fake.virtual_memory, swap_memory=fail)
    memory = probe_memory(broken)
    assert memory.total_bytes == 32 * GIB
    assert memory.swap_total_bytes == 0
    assert any(r.startswith("swap:") for r in memory.unknown_reasons)


def test_bandwidth_cache_is_used_and_damage_is_tolerated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []

    def fake_benchmark(budget_s: float, array_bytes: int, threads: int | None) -> int:
        calls.append(budget_s)
        return 12_300_000_000

    monkeypatch.setattr(hardware_memory, "_copy_benchmark", fake_benchmark)
    assert measure_ram_bandwidth(tmp_path, "CPU A") == 12_300_000_000
    assert measure_ram_bandwidth(tmp_path, "CPU A") == 12_300_000_000
    assert len(calls) == 1  # second answer came from the cache
    assert cached_ram_bandwidth(tmp_path, "CPU B") is None
    assert measure_ram_bandwidth(tmp_path, "CPU A", refresh=True) == 12_300_000_000
    assert len(calls) == 2

    (tmp_path / "ram_bandwidth.json").write_text("{ not json")
    assert cached_ram_bandwidth(tmp_path, "CPU A") is None
    assert measure_ram_bandwidth(tmp_path, "CPU A") == 12_300_000_000
    assert json.loads((tmp_path / "ram_bandwidth.json").read_text())["CPU A"]["bytes_per_s"] == (
        12_300_000_000
    )


# --------------------------------------------------------------------------
# llama.cpp backends (child process)
# --------------------------------------------------------------------------


def fake_llama_cpp(root: Path, body: str) -> dict[str, str]:
    """A fake llama_cpp package first on PYTHONPATH; returns the child's environment."""
    package = root / "llama_cpp"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('__version__ = "9.9.9"\nfrom . import llama_cpp\n')
    (package / "llama_cpp.py").write_text(body)
    return {**os.environ, "PYTHONPATH": str(root)}


def test_backends_from_system_info_when_ggml_symbols_are_absent(tmp_path: Path) -> None:
    env = fake_llama_cpp(
        tmp_path,
        "def llama_backend_init(): pass\n"
        "def llama_supports_gpu_offload(): return True\n"
        "def llama_print_system_info():\n"
        "    return b'CUDA : ARCHS = 890 | USE_GRAPHS = 1 | CPU : SSE3 = 1 | AVX2 = 1 | '\n",
    )
    info = probe_backends(env=env)
    assert info.error is None
    assert info.checked
    assert info.backends == ("cpu", "cuda")
    assert info.llama_cpp_version == "9.9.9"
    assert info.gpu_offload_supported is True
    assert info.system_info is not None and info.system_info.startswith("CUDA")


def test_backends_import_error_crash_timeout_and_missing_python(tmp_path: Path) -> None:
    broken = fake_llama_cpp(tmp_path / "a", "raise ImportError('libllama.so: cannot open')\n")
    info = probe_backends(env=broken)
    assert info.backends == ()
    assert info.error is not None and "cannot be imported" in info.error

    sigill = fake_llama_cpp(
        tmp_path / "b", "import os, signal\nos.kill(os.getpid(), signal.SIGILL)\n"
    )
    info = probe_backends(env=sigill)
    assert info.error is not None and "CPU instructions" in info.error

    hang = fake_llama_cpp(tmp_path / "c", "import time\ntime.sleep(30)\n")
    started = time.monotonic()
    info = probe_backends(env=hang, timeout=1)
    assert time.monotonic() - started < 10
    assert info.error is not None and "did not answer" in info.error

    info = probe_backends(python=str(tmp_path / "no-such-python"))
    assert info.error is not None and "could not start Python" in info.error


def test_crash_descriptions() -> None:
    assert "CPU instructions" in hardware_backends._describe_crash(0xC000001D)
    assert "SIGSEGV" in hardware_backends._describe_crash(-signal.SIGSEGV)
    assert "exit code 3" in hardware_backends._describe_crash(3)


def test_probe_is_started_like_the_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert hardware_backends.probe_command("py") == ["py", "-m", "desktop.engine.probe"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert hardware_backends.probe_command() == [sys.executable, "--probe-backends"]
    monkeypatch.undo()

    # The frozen app's flag goes through the same dispatch as `--worker` (desktop.cli.main).
    env = fake_llama_cpp(tmp_path, "def llama_print_system_info(): return b'CPU : SSE3 = 1'\n")
    env["PYTHONPATH"] += os.pathsep + str(Path(__file__).resolve().parents[2])
    done = subprocess.run(
        [sys.executable, "-m", "desktop", "--probe-backends"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    marker = hardware_backends.BACKEND_MARKER
    (line,) = [x for x in done.stdout.splitlines() if x.startswith(marker)]
    answer = json.loads(line[len(marker) :])
    assert answer["version"] == "9.9.9"
    assert answer["system_info"] == "CPU : SSE3 = 1"


# --------------------------------------------------------------------------
# Warnings, summary, JSON
# --------------------------------------------------------------------------

CPU_ONLY = BackendInfo(backends=("cpu",), llama_cpp_version="0.3.16", checked=True)
WITH_CUDA = BackendInfo(
    backends=("cpu", "cuda"), llama_cpp_version="0.3.16", gpu_offload_supported=True, checked=True
)


def test_gpu_with_cpu_only_build_warns_with_the_fix() -> None:
    gpu = probe_nvidia(FakeNvml([rtx_4090()]))[0][0]
    (warning,) = _backend_warnings([gpu], CPU_ONLY)
    assert warning == (
        "An NVIDIA GPU is present but this llama.cpp build is CPU-only: reinstall "
        "llama-cpp-python with CMAKE_ARGS=-DGGML_CUDA=on to use it."
    )
    assert _backend_warnings([gpu], WITH_CUDA) == []
    vulkan = BackendInfo(backends=("cpu", "vulkan"), checked=True)
    assert _backend_warnings([gpu, gpu], vulkan) == []
    igpu = GpuInfo(vendor="intel", name="Intel iGPU", unified_memory=True)
    assert _backend_warnings([igpu], CPU_ONLY) == []
    assert _backend_warnings([gpu], BackendInfo()) == []  # not checked
    broken = BackendInfo(error="llama-cpp-python cannot be imported", checked=True)
    assert "cannot be used" in _backend_warnings([], broken)[0]


def test_summary_lines_for_a_gaming_pc() -> None:
    gpu = probe_nvidia(FakeNvml([rtx_4090()]))[0][0]
    profile = HardwareProfile(
        cpu=CpuInfo("AMD Ryzen 9 7950X", "x86_64", 16, 32, ("avx", "avx2", "avx512f")),
        memory=MemoryInfo(
            total_bytes=64 * GIB,
            available_bytes=50 * GIB,
            bandwidth_bytes_per_s=61_500_000_000,
            bandwidth_source="measured",
        ),
        gpus=(gpu,),
        backends=CPU_ONLY,
        warnings=tuple(_backend_warnings([gpu], CPU_ONLY)),
    )
    assert summary_lines(profile) == [
        "CPU: AMD Ryzen 9 7950X (16 cores / 32 threads, AVX2 AVX-512)",
        "RAM: 64.0 GB total, 50.0 GB available, 61.5 GB/s measured",
        "GPU 0: NVIDIA GeForce RTX 4090, 24.0 GB VRAM (23.1 GB free), 1008 GB/s",
        "llama.cpp: 0.3.16, CPU only",
        "Warning: " + profile.warnings[0],
    ]
    with_cuda = summary_lines(HardwareProfile(backends=WITH_CUDA))
    assert "GPU: none found (models will run on the CPU)" in with_cuda
    assert "llama.cpp: 0.3.16, CPU + CUDA" in with_cuda


def test_minimal_what_if_profile_loads() -> None:
    text = json.dumps(
        {
            "gpus": [
                {
                    "name": "Test 8GB",
                    "vram_total_bytes": 8589934592,
                    "bandwidth_bytes_per_s": 448000000000,
                }
            ],
            "memory": {"total_bytes": 32 * GIB},
        }
    )
    profile = HardwareProfile.from_json(text)
    (gpu,) = profile.gpus
    assert gpu.vram_total_bytes == 8 * GIB
    assert gpu.bandwidth_bytes_per_s == 448_000_000_000
    assert gpu.bandwidth_source == "manual"
    assert gpu.index == 0
    assert gpu.unified_memory is False
    assert profile.memory.available_bytes == 32 * GIB  # an idle machine
    assert profile.backends.checked is False
    assert HardwareProfile.from_dict({"gpus": [{"name": "GeForce RTX 3060"}]}).gpus[0].vendor == (
        "nvidia"
    )
    assert HardwareProfile.from_dict({"backends": ["cpu", "cuda"]}).backends.gpu_offload_supported


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"gpus": [{"vram_total_bytes": "8GB"}]}, "gpus[0].vram_total_bytes"),
        ({"gpus": [{"vendor": "3dfx"}]}, "gpus[0].vendor"),
        ({"memory": {"total_bytes": True}}, "memory.total_bytes"),
        ({"gpus": {"name": "x"}}, "'gpus'"),
        ({"cpu": []}, "'cpu'"),
    ],
)
def test_bad_hand_written_profiles_name_the_field(data: dict[str, Any], where: str) -> None:
    with pytest.raises(ValueError, match=where.replace("[", r"\[").replace("]", r"\]")):
        HardwareProfile.from_dict(data)
    with pytest.raises(ValueError, match="not valid JSON"):
        HardwareProfile.from_json("{")


def test_json_has_the_keys_the_cli_contract_promises() -> None:
    gpu = probe_nvidia(FakeNvml([rtx_4090()]))[0][0]
    data = json.loads(HardwareProfile(gpus=(gpu,), backends=CPU_ONLY).to_json())
    assert {"cpu", "memory", "gpus", "backends"} <= data.keys()
    assert {"logical_cores", "physical_cores"} <= data["cpu"].keys()
    assert {"total_bytes", "available_bytes", "bandwidth_bytes_per_s"} <= data["memory"].keys()
    assert {"vram_total_bytes", "vram_free_bytes", "bandwidth_bytes_per_s", "unknown_reasons"} <= (
        data["gpus"][0].keys()
    )


opt_int = st.none() | st.integers(min_value=0, max_value=2**64)
opt_text = st.none() | st.text(max_size=20)
texts = st.lists(st.text(max_size=30), max_size=3).map(tuple)
profiles = st.builds(
    HardwareProfile,
    cpu=st.builds(
        CpuInfo,
        brand=st.text(max_size=30),
        architecture=st.sampled_from(["x86_64", "arm64", ""]),
        physical_cores=st.none() | st.integers(1, 256),
        logical_cores=st.none() | st.integers(1, 512),
        features=texts,
    ),
    memory=st.builds(
        MemoryInfo,
        total_bytes=st.integers(0, 2**50),
        available_bytes=st.integers(0, 2**50),
        swap_total_bytes=st.integers(0, 2**40),
        swap_free_bytes=st.integers(0, 2**40),
        bandwidth_bytes_per_s=opt_int,
        bandwidth_source=st.sampled_from(["measured", "cached", "manual", "unknown"]),
        unknown_reasons=texts,
    ),
    gpus=st.lists(
        st.builds(
            GpuInfo,
            index=st.integers(0, 16),
            vendor=st.sampled_from(GPU_VENDORS),
            name=st.text(max_size=30),
            vram_total_bytes=opt_int,
            vram_free_bytes=opt_int,
            vram_used_bytes=opt_int,
            unified_memory=st.booleans(),
            driver_version=opt_text,
            cuda_version=opt_text,
            compute_capability=opt_text,
            memory_bus_width_bits=opt_int,
            max_memory_clock_mhz=opt_int,
            bandwidth_bytes_per_s=opt_int,
            bandwidth_source=st.sampled_from(["nvml", "manual", "unknown"]),
            pcie_generation=st.none() | st.integers(1, 6),
            pcie_width=st.none() | st.integers(1, 16),
            unknown_reasons=texts,
        ),
        max_size=3,
    ).map(tuple),
    backends=st.builds(
        BackendInfo,
        backends=texts,
        llama_cpp_version=opt_text,
        gpu_offload_supported=st.booleans(),
        devices=texts,
        system_info=opt_text,
        error=opt_text,
        checked=st.booleans(),
    ),
    warnings=texts,
    os=st.text(max_size=20),
    created_at=st.text(max_size=25),
)


@settings(max_examples=60, deadline=None)
@given(profiles)
def test_json_round_trip(profile: HardwareProfile) -> None:
    assert HardwareProfile.from_json(profile.to_json()) == profile
    assert HardwareProfile.from_dict(profile.to_dict()) == profile


def test_units() -> None:
    assert format_bytes(24 * GIB) == "24.0 GB"
    assert format_bytes(int(23.44 * GIB)) == "23.4 GB"
    assert format_bytes(512 * MIB) == "512 MB"
    assert format_bytes(2 * 1024**4) == "2.0 TB"
    assert format_bytes(100) == "100 B"
    assert format_bytes(None) == "unknown"
    assert format_bandwidth(936_096_000_000) == "936 GB/s"
    assert format_bandwidth(12_345_000_000) == "12.3 GB/s"
    assert format_bandwidth(None) == "unknown"


# --------------------------------------------------------------------------
# This machine, for real
# --------------------------------------------------------------------------


def test_real_bandwidth_measurement_is_cached(tmp_path: Path) -> None:
    # How long the first measurement takes (target < 1.5 s) is a benchmark figure:
    # tests/bench/bench_quick_paths.py.
    first = detect(cache_dir=tmp_path, check_backends=False)
    assert first.memory.bandwidth_source == "measured"
    assert first.memory.bandwidth_bytes_per_s is not None
    assert first.memory.bandwidth_bytes_per_s > 1e9

    second = detect(cache_dir=tmp_path, check_backends=False)
    assert second.memory.bandwidth_source == "cached"
    assert second.memory.bandwidth_bytes_per_s == first.memory.bandwidth_bytes_per_s

    assert first.cpu.logical_cores == os.cpu_count()
    assert first.cpu.physical_cores is not None and first.cpu.physical_cores >= 1
    assert first.memory.total_bytes > first.memory.available_bytes > 0
    assert HardwareProfile.from_json(first.to_json()) == first


@pytest.mark.skipif(
    Path("/dev/nvidiactl").exists() or Path("/sys/class/drm").exists(),
    reason="this machine has a GPU driver; the no-GPU check is for GPU-less machines",
)
def test_real_machine_without_gpu_lists_none(tmp_path: Path) -> None:
    profile = detect(cache_dir=tmp_path, measure_bandwidth=False, check_backends=False)
    assert profile.gpus == ()
    assert profile.warnings == ()


@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python is not installed in this environment",
)
def test_real_llama_cpp_build_answers(llama_build: BackendInfo) -> None:
    info = llama_build  # probe_backends() of the installed build
    assert info.error is None, info.error
    assert info.checked
    assert info.backends[0] == "cpu"
    assert info.llama_cpp_version


@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python is not installed in this environment",
)
def test_real_cpu_only_build_says_so(llama_build: BackendInfo, cpu_only_build: None) -> None:
    # No GPU backend; the build may carry RPC (remote devices), and then llama.cpp says it
    # supports offload (to those devices).
    assert set(llama_build.backends) <= NON_OFFLOAD_BACKENDS, llama_build.backends
    assert llama_build.gpu_offload_supported is ("rpc" in llama_build.backends)
