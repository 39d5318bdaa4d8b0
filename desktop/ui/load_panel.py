"""Load controls: GPU layers, context, KV cache type, threads, flash attention, and Load.

Every change re-plans the memory at once (``plan_memory`` and ``predict_speed`` take well
under a millisecond), so the bars and the predicted speed follow the slider as it moves.
"Load" emits ``loadRequested(LoadRequest)``: the path, the settings and the plan the person
saw. The window hands it to the engine client, the one owner of loading; the panel follows
the client's loads of its model (:meth:`LoadPanel.follow`): the progress and, once loaded,
what llama.cpp really allocated beside the request's own plan.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.core.estimate import (
    Device,
    DevicePlan,
    Settings,
    max_gpu_layers,
    plan_memory,
    predict_speed,
)
from desktop.core.rows import ModelRow
from desktop.engine import protocol
from desktop.services.engine_api import EngineLike
from desktop.services.load_request import LoadRequest
from desktop.services.signals import emit
from desktop.ui import theme
from desktop.ui.base_model_note import BaseModelBanner
from desktop.ui.icons import glyph_icon
from desktop.ui.load_parts import (
    KV_CHOICES,
    ComparisonTable,
    comparison_rows,
    context_choices,
    fit_sentence,
)
from desktop.ui.memory_bars import MemoryBars
from desktop.ui.models_table import ModelsTableModel, format_speed
from desktop.ui.state import WorkbenchState
from desktop.ui.widgets import Banner, HintLabel

__all__ = ["LoadPanel", "LoadRequest"]


class LoadPanel(QWidget):
    """Settings for loading one model, with live memory bars and speed.

    Signals: ``loadRequested(LoadRequest)``, ``backRequested()``.
    :meth:`follow` shows an engine's loads of this model; the same slots can be driven by
    hand: :meth:`set_load_progress`, :meth:`set_loaded`, :meth:`set_load_failed`,
    :meth:`show_allocated`.
    """

    loadRequested = Signal(object)  # LoadRequest
    backRequested = Signal()

    def __init__(
        self, state: WorkbenchState, table: ModelsTableModel, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._state = state
        self._table = table
        self._row: ModelRow | None = None
        self._plans: list[DevicePlan] = []
        self._speed: float | None = None
        self._requested: LoadRequest | None = None  # the load this panel shows
        self._waiting_for = ""  # the engine load id whose progress and answer this shows
        self.setAccessibleName("Load controls")
        self._build_header()
        self._build_controls()
        self._build_results()
        self._build_loading()
        self._lay_out()
        self.layers_slider.valueChanged.connect(self._on_layers_moved)
        self.auto_layers.toggled.connect(self._on_auto_toggled)
        self.context_combo.currentIndexChanged.connect(self.replan)
        self.kv_combo.currentIndexChanged.connect(self._on_kv_changed)
        self.flash_attn.toggled.connect(self.replan)
        self.threads.valueChanged.connect(self.replan)
        state.estimatesChanged.connect(self.replan)
        table.modelReset.connect(self._on_rows_changed)
        self.set_row(None)

    # ------------------------------------------------------------------ building

    def _build_header(self) -> None:
        self.back_button = QPushButton("Details", self)
        self.back_button.setIcon(glyph_icon("back", QPalette.ColorRole.ButtonText))
        self.back_button.setAccessibleName("Back to the model details")
        self.back_button.setFlat(True)
        self.back_button.clicked.connect(self.backRequested)
        self.title = QLabel(self)
        title_font = QFont(self.title.font())
        title_font.setPointSizeF(title_font.pointSizeF() * 1.35)
        title_font.setBold(True)
        self.title.setFont(title_font)
        self.title.setWordWrap(True)
        self.subtitle = HintLabel("", self)
        self.subtitle.setWordWrap(True)
        self.base_banner = BaseModelBanner(self)  # a base model says so where it is loaded
        # Loading runs on this computer: while a what-if machine is shown, the controls of a
        # file on disk plan for this computer and say so.
        self.what_if_note = Banner("info", self)
        self.what_if_note.setAccessibleName("Planned for this computer")
        self.what_if_note.hide()

    def _build_controls(self) -> None:
        self.layers_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.layers_slider.setAccessibleName("GPU layers")
        self.layers_slider.setToolTip(
            "Layers kept in VRAM run fast; the rest run from system RAM, which is slower."
        )
        self.layers_slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.layers_slider.setPageStep(4)
        self.layers_value = QLabel(self)
        self.layers_value.setMinimumWidth(self.fontMetrics().horizontalAdvance("000 / 000"))
        self.layers_value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.auto_layers = QCheckBox("Auto (the most that fit)", self)
        self.auto_layers.setAccessibleName("Automatic GPU layers")
        self.auto_layers.setChecked(True)

        self.context_combo = QComboBox(self)
        self.context_combo.setAccessibleName("Context length")
        self.kv_combo = QComboBox(self)
        self.kv_combo.setAccessibleName("KV cache type")
        for value, label in KV_CHOICES:
            self.kv_combo.addItem(label, value)
        self.kv_combo.setToolTip(
            "The KV cache holds the conversation. q8_0 and q4_0 shrink it and need flash attention."
        )
        self.flash_attn = QCheckBox("Flash attention", self)
        self.flash_attn.setAccessibleName("Flash attention")
        self.flash_attn.setToolTip("Less memory for attention; needed by a quantized KV cache.")
        self.threads = QSpinBox(self)
        self.threads.setAccessibleName("CPU threads")
        self.threads.setRange(0, max(os.cpu_count() or 1, 1))
        self.threads.setSpecialValueText("Auto")
        self.threads.setToolTip("CPU threads for the layers that run on the CPU")

    def _build_results(self) -> None:
        self.bars = MemoryBars(self)
        self.speed_label = QLabel(self)
        speed_font = QFont(self.speed_label.font())
        speed_font.setPointSizeF(speed_font.pointSizeF() * 1.2)
        speed_font.setBold(True)
        self.speed_label.setFont(speed_font)
        self.speed_label.setAccessibleName("Predicted speed")
        # Wrapped: on one line, "~40 tok/s  ·  prompt ~160 tok/s" beside its title made the
        # pane wider than a 1280 px window gives it, and the sideways scroll bar that followed
        # hid the layer count ("0 /") and the Load button.
        self.speed_label.setWordWrap(True)
        self.speed_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.fit_label = QLabel(self)
        self.fit_label.setWordWrap(True)
        self.fit_label.setAccessibleName("Fit")

    def _build_loading(self) -> None:
        self.load_button = QPushButton("Load model", self)
        self.load_button.setIcon(glyph_icon("play", QPalette.ColorRole.ButtonText))
        self.load_button.setAccessibleName("Load the model")
        self.load_button.setDefault(True)
        self.load_button.clicked.connect(self._on_load_clicked)
        self.progress = QProgressBar(self)
        self.progress.setAccessibleName("Load progress")
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(8)
        self.progress.hide()
        self.status_label = HintLabel("", self)
        self.status_label.setWordWrap(True)
        self.status_label.setAccessibleName("Load status")

        self.comparison_title = QLabel("Estimate vs. what llama.cpp allocated", self)
        bold = QFont(self.comparison_title.font())
        bold.setBold(True)
        self.comparison_title.setFont(bold)
        self.comparison = ComparisonTable(self)
        self.comparison_title.hide()
        self.comparison.hide()

    def _lay_out(self) -> None:
        top = QHBoxLayout()
        top.addWidget(self.back_button)
        top.addStretch(1)

        layers_row = QHBoxLayout()
        layers_row.addWidget(self.layers_slider, 1)
        layers_row.addWidget(self.layers_value)
        layers_box = QVBoxLayout()
        layers_box.setSpacing(2)
        layers_box.addLayout(layers_row)
        layers_box.addWidget(self.auto_layers)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        form.setHorizontalSpacing(12)
        form.setVerticalSpacing(8)
        layers_label = QLabel("GPU &layers:", self)
        layers_label.setBuddy(self.layers_slider)
        form.addRow(layers_label, layers_box)
        form.addRow("&Context:", self.context_combo)
        form.addRow("&KV cache:", self.kv_combo)
        form.addRow("", self.flash_attn)
        form.addRow("CPU &threads:", self.threads)

        result_head = QHBoxLayout()
        result_title = QLabel("Where the memory goes", self)
        result_title.setFont(self.comparison_title.font())  # bold
        result_head.addWidget(result_title)
        result_head.addStretch(1)
        result_head.addWidget(self.speed_label)

        load_row = QHBoxLayout()
        load_row.addWidget(self.status_label, 1)
        load_row.addWidget(self.load_button)

        line = QFrame(self)
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)

        content = QWidget(self)
        body = QVBoxLayout(content)
        body.setContentsMargins(16, 8, 16, 14)
        body.setSpacing(10)
        body.addLayout(top)
        body.addWidget(self.title)
        body.addWidget(self.subtitle)
        body.addWidget(self.base_banner)
        body.addWidget(self.what_if_note)
        body.addLayout(form)
        body.addWidget(line)
        body.addLayout(result_head)
        body.addWidget(self.bars)
        body.addWidget(self.fit_label)
        body.addWidget(self.comparison_title)
        body.addWidget(self.comparison)
        body.addStretch(1)

        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        # The Load button stays in view under the scrolling settings: on a 720-pixel screen
        # the settings, a note and the memory bars pushed it below the fold.
        footer = QVBoxLayout()
        footer.setContentsMargins(16, 6, 16, 10)
        footer.setSpacing(6)
        footer.addLayout(load_row)
        footer.addWidget(self.progress)
        outer.addLayout(footer)

    # ------------------------------------------------------------------ public

    @property
    def row(self) -> ModelRow | None:
        return self._row

    @property
    def device_plans(self) -> list[DevicePlan]:
        return list(self._plans)

    @property
    def predicted_tokens_per_s(self) -> float | None:
        return self._speed

    def set_row(self, row: ModelRow | None) -> None:
        """Show the controls for ``row`` (its context starts at the table's choice)."""
        self._row = row
        self._requested = None
        self.progress.hide()
        self.comparison_title.hide()
        self.comparison.hide()
        self.status_label.setText("")
        enabled = row is not None and row.spec is not None
        self.base_banner.show_spec(row.spec if row is not None else None)
        for widget in (
            self.layers_slider,
            self.auto_layers,
            self.context_combo,
            self.kv_combo,
            self.flash_attn,
            self.threads,
        ):
            widget.setEnabled(enabled)
        if row is None or row.spec is None:
            self.what_if_note.set_text("")
            self.title.setText(row.name if row is not None else "No model selected")
            self.subtitle.setText(row.note if row is not None else "")
            self.bars.set_plans([])
            self._plans = []
            self._speed = None
            self.speed_label.setText("")
            self.fit_label.setText("")
            self.load_button.setEnabled(False)
            return
        spec = row.spec
        self.title.setText(f"Load {row.name}")
        self.subtitle.setText(f"{row.quant} · {row.file_name}")
        blocked = self.context_combo.blockSignals(True)
        self.context_combo.clear()
        choices, position = context_choices(spec.n_ctx_train, self._state.n_ctx)
        for label, n_ctx in choices:
            self.context_combo.addItem(label, n_ctx)
        self.context_combo.setCurrentIndex(position)
        self.context_combo.blockSignals(blocked)
        blocked = self.layers_slider.blockSignals(True)
        self.layers_slider.setRange(0, spec.offloadable_layers)
        self.layers_slider.setTickInterval(max(1, spec.offloadable_layers // 8))
        self.layers_slider.blockSignals(blocked)
        self.auto_layers.setChecked(True)
        self.replan()

    @property
    def requested(self) -> LoadRequest | None:
        """The load this panel shows (asked for here, or the engine's load of this model)."""
        return self._requested

    def load_request(self) -> LoadRequest | None:
        """The current choices as a load of the local file, planned; None when not loadable."""
        path = self._local_path()
        settings = self._current_settings()
        if path is None or settings is None or self._row is None or self._row.spec is None:
            return None
        return LoadRequest.planned(path, settings, self._row.spec, self._plan_devices(), self._row)

    def _plan_devices(self) -> Sequence[Device]:
        """The machine the controls plan for: a file on disk is loaded on this computer, so
        it is planned there even while a what-if machine is shown; anything else follows the
        machine shown (trying settings before a download)."""
        if self._state.is_what_if and self._local_path() is not None:
            return self._state.real_devices()
        return self._state.devices()

    def follow(self, engine: EngineLike) -> None:
        """Show ``engine``'s loads of this panel's file: progress, the result, a failure.

        Every load goes through the engine client, whoever asked for it (this panel's Load
        button, the chat's "reload with fewer layers"), so the panel follows the client's
        ``loadStarted`` rather than its own button.
        """
        engine.loadStarted.connect(self._on_load_started)
        engine.loadProgress.connect(self._on_engine_progress)
        engine.loaded.connect(self._on_engine_loaded)
        engine.error.connect(self._on_engine_error)
        engine.crashed.connect(self._on_engine_crashed)

    def set_gpu_layers(self, n: int) -> None:
        """Move the slider (turns Auto off), as a person dragging it would."""
        self.auto_layers.setChecked(False)
        self.layers_slider.setValue(n)

    # -------------------------------------------------------------- engine feedback

    def set_load_progress(self, fraction: float) -> None:
        """llama.cpp's load progress, 0.0 .. 1.0."""
        self.progress.show()
        self.progress.setValue(round(max(0.0, min(fraction, 1.0)) * 1000))
        self.status_label.setText(f"Loading… {fraction * 100:.0f}%")

    def set_loaded(
        self,
        by_device: Mapping[str, Mapping[str, int]],
        n_gpu_layers: int | None = None,
        load_seconds: float | None = None,
    ) -> None:
        """The model is loaded: say so and compare the estimate with llama.cpp's buffers."""
        self.progress.setValue(1000)
        self.progress.hide()
        self.load_button.setEnabled(True)
        parts = ["Loaded"]
        if load_seconds is not None:
            parts.append(f"in {load_seconds:.1f} s")
        if n_gpu_layers:
            parts.append(f"with {n_gpu_layers} layers on the GPU")
        elif n_gpu_layers is not None:
            parts.append("on the CPU")
        self.status_label.setText(" ".join(parts) + ".")
        self.show_allocated(by_device)

    def set_load_failed(self, message: str) -> None:
        self.progress.hide()
        self.load_button.setEnabled(self._row is not None and self._local_path() is not None)
        self.status_label.setText(message)

    def show_allocated(self, by_device: Mapping[str, Mapping[str, int]]) -> None:
        """Estimate vs. llama.cpp, per component; ``by_device`` as LlamaLoadReport.by_device()."""
        # The plan of the request this load was made from; before any, the current choices'.
        request = self._requested or self.load_request()
        plan = request.plan if request is not None else None
        if plan is None:
            return
        self.comparison.set_rows(comparison_rows(plan, by_device))
        self.comparison_title.show()
        self.comparison.show()

    # ------------------------------------------------------------------ planning

    def _current_settings(self) -> Settings | None:
        if self._row is None or self._row.spec is None:
            return None
        return replace(self._settings(), n_gpu_layers=self.layers_slider.value())

    def _settings(self) -> Settings:
        assert self._row is not None and self._row.spec is not None
        n_ctx = self.context_combo.currentData()
        kv_type = self.kv_combo.currentData() or "f16"
        return self._state.settings_for(
            self._row.spec,
            n_ctx=n_ctx if isinstance(n_ctx, int) else None,
            kv_type=kv_type,
            flash_attn=self.flash_attn.isChecked(),
            n_threads=self.threads.value() or None,  # the speed depends on the threads
        )

    def replan(self) -> None:
        """Recompute the bars and the speed for the current choices (cheap: every move)."""
        row = self._row
        if row is None or row.spec is None:
            return
        devices = self._plan_devices()
        self._show_machine_note()
        if not devices:
            self.bars.set_plans([])
            self.bars.set_placeholder("Waiting for the hardware check to finish…")
            self.fit_label.setText("")
            self.speed_label.setText("")
            self.load_button.setEnabled(False)
            return
        spec = row.spec
        settings = self._settings()
        has_gpu = any(d.is_gpu for d in devices)
        self.layers_slider.setEnabled(has_gpu)
        self.auto_layers.setEnabled(has_gpu)
        if not has_gpu:
            layers = 0
        elif self.auto_layers.isChecked():
            layers = max_gpu_layers(spec, settings, devices)
        else:
            layers = self.layers_slider.value()
        if self.layers_slider.value() != layers:
            blocked = self.layers_slider.blockSignals(True)
            self.layers_slider.setValue(layers)
            self.layers_slider.blockSignals(blocked)
        self.layers_value.setText(f"{layers} / {spec.offloadable_layers}")
        settings = replace(settings, n_gpu_layers=layers)
        plans, _buffers = plan_memory(spec, settings, devices, layers)
        decode, prompt = predict_speed(spec, settings, devices, layers)
        self._plans = list(plans)
        self._speed = decode
        self.bars.set_plans(plans)
        self.speed_label.setText(
            (format_speed(decode) or "speed unknown")
            + (f"  ·  prompt ~{prompt:.0f} tok/s" if prompt else "")
        )
        self._show_fit(plans, layers, has_gpu, spec.offloadable_layers)
        path = self._local_path()
        fits = all(p.fits for p in plans)
        self.load_button.setEnabled(path is not None and fits)
        if self._requested is not None:
            return  # loading or loaded: the status line speaks for the engine
        if path is None:
            self.status_label.setText(
                "Not downloaded yet: try the settings now, download the file to load it."
            )
            self.load_button.setToolTip("Download the file first")
        elif not fits:
            self.status_label.setText("")
            self.load_button.setToolTip("This would not fit: lower the GPU layers or context.")
        else:
            self.status_label.setText(f"File: {path}")
            self.load_button.setToolTip(f"Load {path}")

    def _show_machine_note(self) -> None:
        shown = self._state.what_if_label
        if shown and self._local_path() is not None:
            self.what_if_note.set_text(
                f"“What if” shows {shown}, but a model is loaded on this computer: these "
                "settings, the memory and the speed below are planned for this computer."
            )
        else:
            self.what_if_note.set_text("")

    def _show_fit(
        self, plans: list[DevicePlan], layers: int, has_gpu: bool, offloadable: int
    ) -> None:
        red = theme.over_capacity_color(self.palette()).name()
        self.fit_label.setText(fit_sentence(plans, layers, has_gpu, offloadable, red))

    def _local_path(self) -> Path | None:
        return self._table.local_path(self._row) if self._row is not None else None

    # ------------------------------------------------------------------ slots

    def _on_layers_moved(self, _value: int) -> None:
        if self.auto_layers.isChecked():
            blocked = self.auto_layers.blockSignals(True)
            self.auto_layers.setChecked(False)
            self.auto_layers.blockSignals(blocked)
        self.replan()

    def _on_auto_toggled(self, _checked: bool) -> None:
        self.replan()

    def _on_kv_changed(self) -> None:
        # llama.cpp needs flash attention for a quantized V cache.
        quantized = self.kv_combo.currentData() != "f16"
        if quantized:
            self.flash_attn.setChecked(True)
        self.flash_attn.setEnabled(not quantized and self._row is not None)
        self.replan()

    def _on_rows_changed(self) -> None:
        if self._row is None:
            return
        index = self._table.index_of(self._row.location)
        if index is None:
            self.set_row(None)
        else:
            self._row = self._table.row_at(index)
            self.replan()

    def _on_load_clicked(self) -> None:
        request = self.load_request()
        if request is None:
            return
        self._show_starting(request)
        emit(self.loadRequested, request)

    def _show_starting(self, request: LoadRequest) -> None:
        self._requested = request
        self.load_button.setEnabled(False)
        self.comparison_title.hide()
        self.comparison.hide()
        self.set_load_progress(0.0)
        self.status_label.setText("Starting llama.cpp…")

    # ------------------------------------------------------------------ the engine's loads

    def _on_load_started(self, request: LoadRequest) -> None:
        path = self._local_path()
        if path is None or Path(request.path) != path:
            self._waiting_for = ""
            return  # another model's load: the chat and the status bar speak for it
        self._waiting_for = request.load.id
        if request is not self._requested:  # the chat's "reload with fewer layers", say
            self.set_gpu_layers(request.n_gpu_layers)
            self._show_starting(request)

    def _on_engine_progress(self, fraction: float) -> None:
        if self._waiting_for:
            self.set_load_progress(fraction)

    def _on_engine_loaded(self, loaded: protocol.Loaded) -> None:
        if not self._waiting_for or loaded.id != self._waiting_for:
            return
        self._waiting_for = ""
        self.set_loaded(loaded.report().by_device(), loaded.n_gpu_layers, loaded.load_seconds)

    def _on_engine_error(self, error: protocol.Error) -> None:
        if self._waiting_for and error.id == self._waiting_for:
            self._waiting_for = ""
            self.set_load_failed(error.message)

    def _on_engine_crashed(self, _kind: str, message: str, suggestion: str) -> None:
        if self._waiting_for:
            self._waiting_for = ""
            self.set_load_failed(f"{message} {suggestion}")
