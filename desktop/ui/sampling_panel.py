"""The chat's sampler settings: a preset (Precise, Balanced, Creative, the model's own
recommendation where its file has one) and each value, editable; stored with each chat.

:class:`SamplingPanel` shows and edits one :class:`~desktop.core.sampling.Sampling`; the
presets, their sources and the model's recommended values come from
:mod:`desktop.core.sampling`. Editing a value makes the preset "Custom".
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.core.sampling import DEFAULT_SAMPLING, PRESETS, Sampling, preset_named
from desktop.services.signals import emit
from desktop.ui.widgets import HintLabel

__all__ = ["CUSTOM", "RECOMMENDED", "SamplingPanel"]

RECOMMENDED = "Recommended by the model"
CUSTOM = "Custom"
#: The largest seed llama.cpp takes (a uint32; 0xFFFFFFFF itself means "random").
MAX_SEED = 2**31 - 1
MAX_TOKENS_LIMIT = 131_072


class SamplingPanel(QFrame):
    """Preset and values of the chat's sampling; ``samplingChanged(Sampling)`` on each edit."""

    samplingChanged = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Sampling settings")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self._recommended: Sampling | None = None
        self._recommended_from = ""
        self._updating = False

        self.preset = QComboBox(self)
        self.preset.setAccessibleName("Sampling preset")
        self.preset.currentTextChanged.connect(self._on_preset)
        self.source = HintLabel("", self)
        self.source.setWordWrap(True)
        self.source.setAccessibleName("Where the preset's values come from")

        def double(name: str, low: float, high: float, step: float, tip: str) -> QDoubleSpinBox:
            box = QDoubleSpinBox(self)
            box.setAccessibleName(name)
            box.setRange(low, high)
            box.setSingleStep(step)
            box.setDecimals(2)
            box.setToolTip(tip)
            box.valueChanged.connect(self._on_edited)
            return box

        self.temperature = double(
            "Temperature", 0.0, 2.0, 0.05, "Higher: more varied words; 0: always the likeliest."
        )
        self.top_p = double(
            "Top-p", 0.0, 1.0, 0.01, "Sample from the likeliest words that together reach this "
            "probability (1: off)."
        )
        self.min_p = double(
            "Min-p", 0.0, 1.0, 0.01, "Leave out words less likely than this share of the "
            "likeliest word's probability (0: off)."
        )
        self.repeat_penalty = double(
            "Repeat penalty", 0.0, 2.0, 0.05, "Above 1: words used in the last 64 tokens become "
            "less likely (1: off)."
        )
        self.top_k = QSpinBox(self)
        self.top_k.setAccessibleName("Top-k")
        self.top_k.setRange(0, 1000)
        self.top_k.setSpecialValueText("Off")
        self.top_k.setToolTip("Sample from this many likeliest words (Off: all).")
        self.top_k.valueChanged.connect(self._on_edited)
        self.max_tokens = QSpinBox(self)
        self.max_tokens.setAccessibleName("Longest answer in tokens")
        self.max_tokens.setRange(0, MAX_TOKENS_LIMIT)
        self.max_tokens.setSingleStep(128)
        self.max_tokens.setSpecialValueText("Until the context is full")
        self.max_tokens.setToolTip("The answer stops after this many tokens.")
        self.max_tokens.valueChanged.connect(self._on_edited)
        self.seed = QSpinBox(self)
        self.seed.setAccessibleName("Seed")
        self.seed.setRange(-1, MAX_SEED)
        self.seed.setSpecialValueText("Random")
        self.seed.setToolTip(
            "The same seed, settings and chat give the same answer again (Random: a new seed "
            "for every answer)."
        )
        self.seed.valueChanged.connect(self._on_edited)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        form.setVerticalSpacing(6)
        for label, box in (
            ("&Temperature:", self.temperature),
            ("Top-&p:", self.top_p),
            ("Top-&k:", self.top_k),
            ("&Min-p:", self.min_p),
            ("&Repeat penalty:", self.repeat_penalty),
            ("Max &tokens:", self.max_tokens),
            ("&Seed:", self.seed),
        ):
            text = QLabel(label, self)
            text.setBuddy(box)
            form.addRow(text, box)

        title = QLabel("Sampling", self)
        font = title.font()
        font.setBold(True)
        title.setFont(font)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 10)
        layout.setSpacing(6)
        layout.addWidget(title)
        layout.addWidget(self.preset)
        layout.addWidget(self.source)
        layout.addLayout(form)
        layout.addStretch(1)
        self.setMinimumWidth(230)
        self._fill_presets()
        self.set_sampling(DEFAULT_SAMPLING, "Balanced")

    # ------------------------------------------------------------------ public API

    def sampling(self) -> Sampling:
        """The values shown."""
        return Sampling(
            temperature=round(self.temperature.value(), 2),
            top_p=round(self.top_p.value(), 2),
            top_k=self.top_k.value(),
            min_p=round(self.min_p.value(), 2),
            repeat_penalty=round(self.repeat_penalty.value(), 2),
            max_tokens=self.max_tokens.value() or None,
            seed=None if self.seed.value() < 0 else self.seed.value(),
        )

    @property
    def preset_name(self) -> str:
        return self.preset.currentText()

    @property
    def recommended(self) -> Sampling | None:
        return self._recommended

    def record(self) -> dict[str, Any]:
        """What is stored with the chat: the values and the preset's name."""
        return {**self.sampling().to_dict(), "preset": self.preset_name}

    def set_sampling(self, sampling: Sampling, preset: str | None = None) -> None:
        """Show ``sampling``; ``preset`` names it (None: the preset with these values, else
        Custom). Sends no ``samplingChanged``."""
        self._updating = True
        try:
            self._show_values(sampling)
            name = preset if preset and self._has_preset(preset) else self._matching(sampling)
            self.preset.setCurrentText(name)
            self._show_source(name)
        finally:
            self._updating = False

    def set_recommended(self, sampling: Sampling | None, model: str = "") -> None:
        """The loaded model's recommended values (None: it has none), offered as a preset."""
        self._recommended = sampling
        self._recommended_from = model
        current, values = self.preset_name, self.sampling()
        self._updating = True
        try:
            self._fill_presets()
            name = current if self._has_preset(current) else self._matching(values)
            self.preset.setCurrentText(name)
            self._show_source(name)
        finally:
            self._updating = False

    def apply_preset(self, name: str) -> None:
        """Pick a preset as the person would (sends ``samplingChanged``)."""
        self.preset.setCurrentText(name)

    # ------------------------------------------------------------------ internals

    def _fill_presets(self) -> None:
        blocked = self.preset.blockSignals(True)
        self.preset.clear()
        if self._recommended is not None:
            self.preset.addItem(RECOMMENDED)
        for preset in PRESETS:
            self.preset.addItem(preset.name)
        self.preset.addItem(CUSTOM)
        self.preset.blockSignals(blocked)

    def _has_preset(self, name: str) -> bool:
        return self.preset.findText(name) >= 0

    def _values_of(self, name: str) -> Sampling | None:
        if name == RECOMMENDED:
            return self._recommended
        preset = preset_named(name)
        return preset.sampling if preset is not None else None

    def _matching(self, sampling: Sampling) -> str:
        """The preset whose values (max tokens and seed aside) are these, else Custom."""
        keep = {"max_tokens": sampling.max_tokens, "seed": sampling.seed}
        names = [RECOMMENDED] if self._recommended is not None else []
        names += [preset.name for preset in PRESETS]
        for name in names:
            values = self._values_of(name)
            if values is not None and values.replace(**keep) == sampling:
                return name
        return CUSTOM

    def _show_values(self, sampling: Sampling) -> None:
        self.temperature.setValue(sampling.temperature)
        self.top_p.setValue(sampling.top_p)
        self.top_k.setValue(sampling.top_k)
        self.min_p.setValue(sampling.min_p)
        self.repeat_penalty.setValue(sampling.repeat_penalty)
        self.max_tokens.setValue(sampling.max_tokens or 0)
        self.seed.setValue(-1 if sampling.seed is None else min(sampling.seed, MAX_SEED))

    def _show_source(self, name: str) -> None:
        if name == RECOMMENDED:
            who = self._recommended_from or "the model"
            text = f"The values {who}'s makers wrote into its GGUF file (general.sampling.*)."
        elif name == CUSTOM:
            text = "Your own values."
        else:
            preset = preset_named(name)
            text = preset.source if preset is not None else ""
        self.source.setText(text)

    def _on_preset(self, name: str) -> None:
        if self._updating:
            return
        values = self._values_of(name)
        self._updating = True
        try:
            if values is not None:
                current = self.sampling()
                # A preset sets how words are picked; the length limit and seed stay.
                self._show_values(
                    values.replace(max_tokens=current.max_tokens, seed=current.seed)
                )
            self._show_source(name)
        finally:
            self._updating = False
        emit(self.samplingChanged, self.sampling())

    def _on_edited(self, *_args: object) -> None:
        if self._updating:
            return
        name = self._matching(self.sampling())
        self._updating = True
        try:
            self.preset.setCurrentText(name)
            self._show_source(name)
        finally:
            self._updating = False
        emit(self.samplingChanged, self.sampling())
