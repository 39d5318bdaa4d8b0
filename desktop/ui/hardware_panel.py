"""The hardware bar: CPU, RAM, each GPU with its VRAM, the llama.cpp backend, and "what if".

Always visible at the top of the window. It shows the machine the estimates are for
(:attr:`WorkbenchState.profile`): this computer, or a what-if machine picked in the
:class:`WhatIfSelector` from resources/gpus.json. Warnings a person can act on ("an NVIDIA
GPU is present but this llama.cpp build is CPU-only") show in a banner below.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from PySide6.QtCore import QEvent, QRectF, Qt, Signal
from PySide6.QtGui import QFont, QPainter, QPalette, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from desktop.core.gpu_specs import GpuSpec, what_if_profile_dict
from desktop.core.hardware import GpuInfo, HardwareProfile
from desktop.core.machine_classes import (
    DEFAULT_CLASS,
    MACHINE_CLASSES,
    THIS_COMPUTER,
    apply_class,
    machine_class,
)
from desktop.core.units import GIB, format_bandwidth, format_bytes
from desktop.services.signals import emit
from desktop.ui import theme
from desktop.ui.icons import GlyphLabel, glyph_icon
from desktop.ui.state import WorkbenchState
from desktop.ui.widgets import Banner, HintLabel, UsageBar

__all__ = ["HardwarePanel", "WhatIfSelector", "backend_text", "cpu_text"]

_VENDOR_TITLES = {"nvidia": "NVIDIA", "amd": "AMD", "intel": "Intel", "apple": "Apple"}
_RAM_CHOICES_GB = (8, 16, 32, 48, 64, 96, 128, 192, 256)
# Backends that cannot hold model layers (see desktop.core.hardware._NON_OFFLOAD_BACKENDS).
_CPU_BACKENDS = {"cpu", "blas", "rpc"}


_BRAND_NOISE = re.compile(
    r"\((?:R|TM|tm|r)\)|\bCPU\b|@\s*[\d.]+\s*GHz|\b\d+-Core Processor\b|\bProcessor\b"
)


def short_cpu_name(brand: str) -> str:
    """ "AMD Ryzen 7 7700X 8-Core Processor" -> "AMD Ryzen 7 7700X"."""
    short = " ".join(_BRAND_NOISE.sub(" ", brand).split())
    return short or brand


def cpu_text(profile: HardwareProfile) -> tuple[str, str]:
    """(title, detail) of the CPU card."""
    cpu = profile.cpu
    cores = []
    if cpu.physical_cores:
        cores.append(f"{cpu.physical_cores} cores")
    if cpu.logical_cores and cpu.logical_cores != cpu.physical_cores:
        cores.append(f"{cpu.logical_cores} threads")
    have = set(cpu.features)
    simd = ""
    if "avx512f" in have:
        simd = "AVX-512"
    elif "avx2" in have:
        simd = "AVX2"
    elif "avx" in have:
        simd = "AVX"
    elif {"neon", "asimd"} & have:
        simd = "NEON"
    detail = " · ".join(p for p in (", ".join(cores), simd) if p)
    return short_cpu_name(cpu.brand), detail or cpu.architecture


def backend_text(profile: HardwareProfile, what_if: bool = False) -> tuple[str, str]:
    """(title, detail) of the llama.cpp card."""
    backends = profile.backends
    gpu_backends = [b for b in backends.backends if b not in _CPU_BACKENDS]
    shown = " + ".join(b.upper() if len(b) <= 4 else b.title() for b in gpu_backends)
    if what_if:
        return f"llama.cpp · {shown or 'CPU'}", "assumed for the what-if machine"
    if not backends.checked:
        return "llama.cpp", "not checked"
    if backends.error:
        return "llama.cpp", "not usable (see the warning)"
    version = backends.llama_cpp_version or "unknown version"
    if not gpu_backends:
        return "llama.cpp · CPU only", version
    return f"llama.cpp · {shown}", version


class Card(QFrame):
    """A rounded tile with an icon, a bold title and a detail line; painted from the palette."""

    def __init__(self, glyph: str, accessible_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName(accessible_name)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 12, 6)
        layout.setSpacing(8)
        self.icon = GlyphLabel(glyph, 22, self)
        text = QVBoxLayout()
        text.setSpacing(1)
        self.title = QLabel(self)
        font = QFont(self.title.font())
        font.setBold(True)
        self.title.setFont(font)
        self.detail = HintLabel("", self)
        self.bar = UsageBar(self)
        self.bar.hide()
        text.addWidget(self.title)
        text.addWidget(self.bar)
        text.addWidget(self.detail)
        layout.addWidget(self.icon)
        layout.addLayout(text, 1)

    def set_text(self, title: str, detail: str, tooltip: str = "") -> None:
        self.title.setText(title)
        self.detail.setText(detail)
        self.setToolTip(tooltip)
        self.setAccessibleDescription(f"{title}. {detail}")

    def paintEvent(self, event: QEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        window = pal.color(QPalette.ColorRole.Window)
        text = pal.color(QPalette.ColorRole.WindowText)
        painter.setPen(theme.mix(window, text, 0.16))
        painter.setBrush(theme.mix(window, pal.color(QPalette.ColorRole.Base), 0.6))
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 7, 7)
        painter.end()


class WhatIfSelector(QWidget):
    """ "This computer" or a GPU from the table, with a RAM size: swaps the estimated machine."""

    changed = Signal(str)  # the label of the machine now shown ("" = this computer)

    def __init__(
        self, state: WorkbenchState, gpu_specs: Sequence[GpuSpec], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._state = state
        self._specs = list(gpu_specs)
        self.gpu_combo = QComboBox(self)
        self.gpu_combo.setAccessibleName("What-if GPU")
        self.gpu_combo.setToolTip(
            "See what fits, and how fast, on a machine you do not have (yet)."
        )
        self.gpu_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.gpu_combo.setMinimumContentsLength(22)
        self.gpu_combo.setMaxVisibleItems(24)
        model = QStandardItemModel(self.gpu_combo)
        this = QStandardItem(glyph_icon("computer"), "This computer")
        this.setData(-1, Qt.ItemDataRole.UserRole)
        model.appendRow(this)
        vendor = None
        for position, spec in sorted(
            enumerate(self._specs), key=lambda p: (_vendor_order(p[1].vendor), p[0])
        ):
            if spec.vendor != vendor:
                vendor = spec.vendor
                header = QStandardItem(_VENDOR_TITLES.get(vendor, vendor.title()))
                header.setFlags(Qt.ItemFlag.NoItemFlags)
                font = header.font()
                font.setBold(True)
                header.setFont(font)
                model.appendRow(header)
            item = QStandardItem("    " + _spec_label(spec))
            item.setData(position, Qt.ItemDataRole.UserRole)
            model.appendRow(item)
        self.gpu_combo.setModel(model)
        # The list may be wider than the closed box: long names stay readable in it.
        self.gpu_combo.view().setMinimumWidth(
            max(self.gpu_combo.view().sizeHintForColumn(0) + 24, 320)
        )

        self.ram_combo = QComboBox(self)
        self.ram_combo.setAccessibleName("What-if RAM size")
        self.ram_combo.setToolTip("System RAM of the what-if machine (unified memory on Apple)")
        self.ram_combo.setVisible(False)

        # The rest of the machine around a discrete GPU: a CPU and RAM class with sourced
        # bandwidth (desktop.core.machine_classes), a typical desktop unless chosen otherwise.
        self.cpu_combo = QComboBox(self)
        self.cpu_combo.setAccessibleName("What-if CPU and RAM")
        for machine in MACHINE_CLASSES:
            self.cpu_combo.addItem(machine.label, machine.key)
            self.cpu_combo.setItemData(
                self.cpu_combo.count() - 1,
                f"{machine.description}.\nSource: {machine.source}",
                Qt.ItemDataRole.ToolTipRole,
            )
        self.cpu_combo.addItem("This computer's CPU and RAM", THIS_COMPUTER)
        self.cpu_combo.setCurrentIndex(self.cpu_combo.findData(DEFAULT_CLASS))
        self.cpu_combo.setVisible(False)
        self._update_cpu_tooltip()

        label = QLabel("What if:", self)
        label.setBuddy(self.gpu_combo)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(label)
        layout.addWidget(self.gpu_combo)
        layout.addWidget(self.ram_combo)
        layout.addWidget(self.cpu_combo)

        self.gpu_combo.currentIndexChanged.connect(self._on_gpu_chosen)
        self.ram_combo.currentIndexChanged.connect(self._apply)
        self.cpu_combo.currentIndexChanged.connect(self._on_cpu_chosen)
        state.realProfileChanged.connect(self._on_real_profile)

    # ------------------------------------------------------------------ public

    def specs(self) -> list[GpuSpec]:
        return list(self._specs)

    def choose(
        self, gpu_name: str | None, ram_bytes: int | None = None, cpu_class: str | None = None
    ) -> None:
        """Pick a GPU by name (None: this computer), optionally the RAM size and the CPU and
        RAM class (a ``machine_classes`` key, or ``THIS_COMPUTER``)."""
        if gpu_name is None:
            self.gpu_combo.setCurrentIndex(0)
            return
        for i in range(self.gpu_combo.count()):
            position = self.gpu_combo.itemData(i, Qt.ItemDataRole.UserRole)
            if (
                isinstance(position, int)
                and position >= 0
                and self._specs[position].name == gpu_name
            ):
                self.gpu_combo.setCurrentIndex(i)
                break
        else:
            raise KeyError(gpu_name)
        if ram_bytes is not None:
            i = self.ram_combo.findData(ram_bytes)
            if i < 0:
                self.ram_combo.addItem(format_bytes(ram_bytes) + " RAM", ram_bytes)
                i = self.ram_combo.count() - 1
            self.ram_combo.setCurrentIndex(i)
        if cpu_class is not None:
            i = self.cpu_combo.findData(cpu_class)
            if i < 0:
                raise KeyError(cpu_class)
            self.cpu_combo.setCurrentIndex(i)  # applies it (a change of class alone, too)

    # ------------------------------------------------------------------ slots

    def _current_spec(self) -> GpuSpec | None:
        position = self.gpu_combo.currentData(Qt.ItemDataRole.UserRole)
        if isinstance(position, int) and position >= 0:
            return self._specs[position]
        return None

    def _on_gpu_chosen(self) -> None:
        spec = self._current_spec()
        blocked = self.ram_combo.blockSignals(True)
        self.ram_combo.clear()
        if spec is not None:
            options = (
                list(spec.memory_options_bytes)
                if spec.unified_memory and spec.memory_options_bytes
                else [gb * GIB for gb in _RAM_CHOICES_GB]
            )
            for size in options:
                label = "unified memory" if spec.unified_memory else "RAM"
                self.ram_combo.addItem(f"{format_bytes(size)} {label}", size)
            self.ram_combo.setCurrentIndex(self._default_ram_position(spec, options))
        self.ram_combo.setVisible(spec is not None)
        self.ram_combo.blockSignals(blocked)
        # A unified-memory chip is the whole machine (its RAM is the chip's): no class.
        self.cpu_combo.setVisible(spec is not None and not spec.unified_memory)
        self._apply()

    def _on_cpu_chosen(self) -> None:
        self._update_cpu_tooltip()
        self._apply()

    def _update_cpu_tooltip(self) -> None:
        chosen = machine_class(str(self.cpu_combo.currentData()))
        self.cpu_combo.setToolTip(
            f"CPU and RAM of the what-if machine: {chosen.description}.\n"
            f"Source: {chosen.source}"
            if chosen is not None
            else "CPU and RAM of the what-if machine: this computer's, with its measured "
            "RAM bandwidth."
        )

    def _default_ram_position(self, spec: GpuSpec, options: list[int]) -> int:
        if spec.unified_memory:
            return len(options) - 1
        real = self._state.real_profile
        wanted = real.memory.total_bytes if real is not None else 32 * GIB
        # The listed size nearest to this computer's RAM (31.3 GB usable -> "32 GB").
        return min(range(len(options)), key=lambda i: abs(options[i] - wanted))

    def _apply(self) -> None:
        spec = self._current_spec()
        if spec is None:
            self._state.set_what_if(None)
            emit(self.changed, "")
            return
        ram = self.ram_combo.currentData()
        if not isinstance(ram, int):
            return
        real = self._state.real_profile
        data = what_if_profile_dict(spec, ram, base=real.to_dict() if real is not None else None)
        label = (
            f"{spec.name} with {format_bytes(ram)} of {'memory' if spec.unified_memory else 'RAM'}"
        )
        chosen = None if spec.unified_memory else machine_class(str(self.cpu_combo.currentData()))
        if chosen is not None:
            data = apply_class(data, chosen.key)
            gbps = chosen.bandwidth_bytes_per_s / 1e9
            kind = chosen.label.split(" · ")[0].lower()
            label += f" in a {kind} ({chosen.physical_cores} cores, {gbps:.1f} GB/s RAM)"
        self._state.set_what_if(HardwareProfile.from_dict(data), label)
        emit(self.changed, label)

    def _on_real_profile(self) -> None:
        # The what-if machine borrows this computer's CPU and RAM speed: rebuild it.
        if self._current_spec() is not None:
            self._apply()


def _vendor_order(vendor: str) -> int:
    order = ("nvidia", "amd", "intel", "apple")
    return order.index(vendor) if vendor in order else len(order)


def _spec_label(spec: GpuSpec) -> str:
    name = spec.name
    if spec.unified_memory:
        return f"{name} (unified memory)"
    size = f"{spec.memory_bytes / GIB:.0f} GB"
    return name if size.replace(" ", "") in name.replace(" ", "") else f"{name} · {size}"


class HardwarePanel(QWidget):
    """CPU / RAM / GPU / llama.cpp cards for the state's profile, and warning banners.

    ``calibrateRequested``: the person asked to measure this computer's speed.
    """

    calibrateRequested = Signal()

    def __init__(self, state: WorkbenchState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state = state
        self.setAccessibleName("Hardware")
        self._calibrating = False

        self.cpu_card = Card("cpu", "Processor", self)
        self.ram_card = Card("ram", "System memory", self)
        self.backend_card = Card("engine", "llama.cpp backend", self)
        self.gpu_cards: list[Card] = []

        self._cards = QHBoxLayout()
        self._cards.setSpacing(8)
        self._cards.addWidget(self.cpu_card)
        self._cards.addWidget(self.ram_card)
        self._gpu_slot = self._cards.count()
        self._cards.addWidget(self.backend_card)
        # Where speed predictions come from, and the button that measures this computer.
        self.speed_card = Card("monitor", "Where speed predictions come from", self)
        self.calibrate_button = QPushButton("Measure", self.speed_card)
        self.calibrate_button.setAccessibleName("Measure this computer's speed")
        self.calibrate_button.setToolTip(
            "Runs the starter model and a sized test model for about a minute, so predicted "
            "speeds fit this computer"
        )
        self.calibrate_button.clicked.connect(self._on_calibrate)
        card_layout = self.speed_card.layout()
        assert card_layout is not None
        card_layout.addWidget(self.calibrate_button)
        self._cards.addWidget(self.speed_card)
        self._cards.addStretch(1)

        self.warning_banner = Banner("warning", self)
        self.warning_banner.hide()
        self.info_banner = Banner("info", self)
        self.info_banner.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addLayout(self._cards)
        layout.addWidget(self.info_banner)
        layout.addWidget(self.warning_banner)

        state.profileChanged.connect(self._show_profile)
        state.detectionFailed.connect(self._show_detection_failed)
        state.figuresChanged.connect(lambda _figures: self._show_speed_source())
        self._show_profile(state.profile)

    # ------------------------------------------------------------------ public

    def warnings_text(self) -> str:
        return self.warning_banner.text() if self.warning_banner.isVisibleTo(self) else ""

    def summary_text(self) -> str:
        """Every card's text, for tests and screen readers."""
        cards = [self.cpu_card, self.ram_card, *self.gpu_cards, self.backend_card]
        return "\n".join(f"{c.title.text()} {c.detail.text()}" for c in cards)

    def set_live_vram(
        self, gpu_index: int, used_bytes: int | None, total_bytes: int | None
    ) -> None:
        """Update one GPU's VRAM bar from the monitor's samples (this computer only)."""
        if self._state.is_what_if or not 0 <= gpu_index < len(self.gpu_cards):
            return
        self.gpu_cards[gpu_index].bar.set_usage(used_bytes, total_bytes)

    def set_calibration_progress(self, text: str, *, running: bool) -> None:
        """What the calibration is doing (``running``), or how it ended."""
        self._calibrating = running
        self._show_speed_source(text)

    # ------------------------------------------------------------------ slots

    def _on_calibrate(self) -> None:
        self._calibrating = True
        self._show_speed_source("Measuring this computer… (about a minute)")
        emit(self.calibrateRequested)

    def speed_text(self) -> str:
        """The speed card's title and detail, for tests and screen readers."""
        return f"{self.speed_card.title.text()} · {self.speed_card.detail.text()}"

    def _show_speed_source(self, text: str = "") -> None:
        what_if = self._state.is_what_if
        figures = self._state.figures
        measured = figures.calibrated and not what_if
        if measured:
            runs = f"{figures.runs} run{'s' if figures.runs != 1 else ''}"
            title, detail = "Speeds calibrated", f"from {runs} on this computer"
        else:
            title = "Speeds estimated"
            detail = "from bandwidth" if what_if else "not measured here yet"
        self.speed_card.set_text(title, text or detail, self._state.prediction_source)
        self.calibrate_button.setText("Measure again" if measured else "Measure")
        self.calibrate_button.setVisible(not what_if and self._state.real_profile is not None)
        self.calibrate_button.setEnabled(not self._calibrating)

    def _show_profile(self, profile: HardwareProfile | None) -> None:
        if profile is None:
            self.cpu_card.set_text("Checking your hardware…", "CPU, memory, GPUs, llama.cpp")
            self.ram_card.set_text("System RAM", "…")
            self.backend_card.set_text("llama.cpp", "…")
            self._set_gpu_cards([])
            self.warning_banner.set_text("")
            self.info_banner.set_text("")
            return
        what_if = self._state.is_what_if
        title, detail = cpu_text(profile)
        self.cpu_card.set_text(title, detail, "\n".join(profile.cpu.features[:40]))

        mem = profile.memory
        bandwidth = (
            f"{format_bandwidth(mem.bandwidth_bytes_per_s)}"
            if mem.bandwidth_bytes_per_s is not None
            else "speed unknown"
        )
        ram_detail = (
            f"{format_bytes(mem.available_bytes)} free · {bandwidth}"
            if not what_if
            else f"{bandwidth}"
        )
        self.ram_card.set_text(
            f"{format_bytes(mem.total_bytes)} RAM",
            ram_detail,
            f"Memory bandwidth {bandwidth} ({mem.bandwidth_source}); decides how fast the part "
            "of a model that stays in RAM runs.",
        )
        self.ram_card.bar.setVisible(not what_if and mem.total_bytes > 0)
        self.ram_card.bar.set_usage(mem.total_bytes - mem.available_bytes, mem.total_bytes)

        self._set_gpu_cards(list(profile.gpus))
        title, detail = backend_text(profile, what_if)
        self.backend_card.set_text(title, detail, profile.backends.system_info or "")

        self.info_banner.set_text(
            f"What if: estimates below are for {self._state.what_if_label}, with a llama.cpp "
            "build that can use that GPU. Pick “This computer” to go back."
            if what_if
            else ""
        )
        self.warning_banner.set_text("" if what_if else "\n".join(profile.warnings))
        self._show_speed_source()

    def _show_detection_failed(self, message: str) -> None:
        self.cpu_card.set_text("Hardware check failed", "estimates are not available")
        self.warning_banner.set_text(message)

    def _set_gpu_cards(self, gpus: list[GpuInfo]) -> None:
        while len(self.gpu_cards) > max(len(gpus), 1):
            card = self.gpu_cards.pop()
            self._cards.removeWidget(card)
            card.deleteLater()
        while len(self.gpu_cards) < max(len(gpus), 1):
            card = Card("gpu", "GPU", self)
            self._cards.insertWidget(self._gpu_slot + len(self.gpu_cards), card)
            self.gpu_cards.append(card)
        if not gpus:
            card = self.gpu_cards[0]
            profile = self._state.profile
            if profile is None:
                card.set_text("GPU", "…")
            else:
                card.set_text("No GPU found", "models run on the CPU")
            card.bar.hide()
            return
        for card, gpu in zip(self.gpu_cards, gpus, strict=True):
            title, detail, tip = _gpu_text(gpu)
            card.set_text(title, detail, tip)
            card.setAccessibleName(f"GPU {gpu.index}")
            total = gpu.vram_total_bytes
            used = gpu.vram_used_bytes
            if used is None and total is not None and gpu.vram_free_bytes is not None:
                used = total - gpu.vram_free_bytes
            card.bar.setVisible(total is not None)
            card.bar.set_usage(used, total)


def _gpu_text(gpu: GpuInfo) -> tuple[str, str, str]:
    total = gpu.vram_total_bytes
    free = gpu.vram_free_bytes
    kind = "shared" if gpu.unified_memory else "VRAM"
    if total is None:
        memory = "VRAM unknown"
    elif free is not None:
        memory = f"{format_bytes(free)} free of {format_bytes(total)}"
    else:
        memory = f"{format_bytes(total)} {kind}"
    bandwidth = (
        format_bandwidth(gpu.bandwidth_bytes_per_s)
        if gpu.bandwidth_bytes_per_s is not None
        else "bandwidth unknown"
    )
    name = gpu.name
    for prefix in ("NVIDIA ", "AMD "):
        name = name.removeprefix(prefix)
    tip_lines = [gpu.name, memory, f"Memory bandwidth: {bandwidth}"]
    if gpu.driver_version:
        tip_lines.append(f"Driver {gpu.driver_version}")
    tip_lines += [f"Unknown: {r}" for r in gpu.unknown_reasons]
    title = f"{name} · {format_bytes(total)} {kind}" if total is not None else name
    return title, f"{memory} · {bandwidth}", "\n".join(tip_lines)
