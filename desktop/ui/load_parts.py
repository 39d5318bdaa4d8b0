"""The load controls' smaller parts: the context choices, the fit sentence, and the table of
the estimate beside what llama.cpp allocated.

Plain functions and one widget, so :class:`~desktop.ui.load_panel.LoadPanel` is left with its
controls, the planning and the wiring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from desktop.core.estimate import (
    ComparisonRow,
    DevicePlan,
    Plan,
    capped_context,
    compare_with_llama,
)
from desktop.core.llama_log import BufferLine, LlamaLoadReport
from desktop.core.units import format_bytes
from desktop.ui.state import CONTEXT_CHOICES, context_label

__all__ = [
    "KV_CHOICES",
    "ComparisonTable",
    "comparison_rows",
    "context_choices",
    "fit_sentence",
]

KV_CHOICES = (
    ("f16", "f16 - full quality"),
    ("q8_0", "q8_0 - half the memory"),
    ("q4_0", "q4_0 - a quarter, some quality loss"),
)
_COMPONENT_NAMES = {
    "weights": "Model weights",
    "kv": "KV cache",
    "recurrent": "Recurrent state",
    "output": "Output (logits)",
    "compute": "Compute buffers",
    "total": "Total",
}


def context_choices(n_ctx_train: int | None, chosen: int) -> tuple[list[tuple[str, int]], int]:
    """The context lengths to offer a model (label, tokens) and the position to select.

    Every standard length up to the trained one, and the trained one itself; ``chosen``
    (the table's context) is capped at the trained length and offered as it is when it is
    none of them, rather than jumping to the largest, which could need far more memory.
    """
    trained = n_ctx_train or max(CONTEXT_CHOICES)  # not known: offer every choice
    wanted = capped_context(chosen, trained)
    choices = [(f"{context_label(n)} tokens", n) for n in CONTEXT_CHOICES if n <= trained]
    if trained not in CONTEXT_CHOICES:
        choices.append((f"{context_label(trained)} tokens (trained)", trained))
    for position, (_label, n_ctx) in enumerate(choices):
        if n_ctx == wanted:
            return choices, position
    position = sum(1 for _label, n_ctx in choices if n_ctx < wanted)
    choices.insert(position, (f"{context_label(wanted)} tokens", wanted))
    return choices, position


def fit_sentence(
    plans: Sequence[DevicePlan], layers: int, has_gpu: bool, offloadable: int, red: str
) -> str:
    """Whether the plan fits, in one sentence (rich text; ``red`` colours "Does not fit")."""
    over = [p for p in plans if not p.fits]
    if over:
        worst = over[0]
        where = "system RAM" if worst.kind == "cpu" else worst.name
        advice = (
            "Lower the GPU layers or the context."
            if worst.kind != "cpu"
            else "Pick a smaller quantization or a shorter context."
        )
        return (
            f"<span style='color:{red}'><b>Does not fit:</b></span> "
            f"{format_bytes(worst.total_bytes - worst.capacity_bytes)} more than "
            f"{where} has free. llama.cpp would fail to load it. {advice}"
        )
    if not has_gpu:
        return "No usable GPU: every layer runs on the CPU from system RAM."
    if layers >= offloadable:
        return "Every layer is on the GPU: the fastest this machine can do."
    if layers == 0:
        return "All layers on the CPU: slow, but it leaves the GPU free."
    return (
        f"{layers} of {offloadable} layers on the GPU; the rest are read from system "
        "RAM for every token, which is slower."
    )


def comparison_rows(plan: Plan, by_device: Mapping[str, Mapping[str, int]]) -> list[ComparisonRow]:
    """Estimate vs. llama.cpp per component; ``by_device`` as LlamaLoadReport.by_device()."""
    report = LlamaLoadReport(
        tuple(
            BufferLine(device, component, int(size))
            for device, parts in by_device.items()
            for component, size in parts.items()
        ),
        None,
        None,
        None,
    )
    return compare_with_llama(plan, report)


class ComparisonTable(QTableWidget):
    """One line per component: estimated, llama.cpp's, the difference; the total in bold."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, 4, parent)
        self.setAccessibleName("Estimate compared with llama.cpp")
        self.setHorizontalHeaderLabels(["", "Estimated", "llama.cpp", "Difference"])
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setShowGrid(False)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in (1, 2, 3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_rows(self, rows: Sequence[ComparisonRow]) -> None:
        self.setRowCount(len(rows))
        for i, row in enumerate(rows):
            diff = row.estimated_bytes - row.reported_bytes
            texts = [
                _COMPONENT_NAMES.get(row.component, row.component),
                format_bytes(row.estimated_bytes),
                format_bytes(row.reported_bytes),
                f"{'+' if diff >= 0 else '-'}{format_bytes(abs(diff))} ({row.error_pct:+.1f}%)",
            ]
            for column, text in enumerate(texts):
                item = QTableWidgetItem(text)
                if column:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                if row.component == "total":
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.setItem(i, column, item)
        height = self.horizontalHeader().height() + 4
        height += sum(self.rowHeight(i) for i in range(len(rows)))
        self.setFixedHeight(height)
