"""The selected model in detail: where its memory goes, why, what to change, its other quants.

The pane reads plans from the :class:`~desktop.ui.models_table.ModelsTableModel` (the one
place they are computed) and refreshes whenever the table re-evaluates. Its buttons only
emit signals; the window decides what Download and Load do.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.core.advice import lead_sentence, ranked_alternatives
from desktop.core.dryrun import DryRun, build_key
from desktop.core.estimate import Plan, Verdict
from desktop.core.rows import ModelRow, format_params
from desktop.core.units import format_bytes
from desktop.services.llama_check import LlamaChecker, check_key
from desktop.services.signals import emit
from desktop.ui import theme
from desktop.ui.base_model_note import BaseModelBanner
from desktop.ui.icons import glyph_icon
from desktop.ui.memory_bars import MemoryBars
from desktop.ui.models_table import ModelsTableModel, format_speed, plan_speed
from desktop.ui.state import WorkbenchState, context_label
from desktop.ui.widgets import VERDICT_ROLE, HintLabel, VerdictBadge, VerdictDelegate

__all__ = ["DetailPane"]


def section_title(text: str, parent: QWidget) -> QLabel:
    label = QLabel(text, parent)
    font = QFont(label.font())
    font.setBold(True)
    label.setFont(font)
    return label


class DetailPane(QWidget):
    """Details of one row: memory bars, reason, suggestion, sibling quants, Download / Load.

    Signals carry the :class:`ModelRow`: ``downloadRequested``, ``loadControlsRequested``
    (open the load controls for it), ``siblingSelected`` (another quant was clicked).
    """

    downloadRequested = Signal(object)
    loadControlsRequested = Signal(object)
    siblingSelected = Signal(object)

    def __init__(
        self, state: WorkbenchState, table: ModelsTableModel, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._state = state
        self._table = table
        self._row: ModelRow | None = None
        self._plan: Plan | None = None
        self._sibling_rows: list[ModelRow] = []
        self.setAccessibleName("Model details")

        # Header: name, what file, verdict badge, speed.
        self.name_label = QLabel(self)
        name_font = QFont(self.name_label.font())
        name_font.setPointSizeF(name_font.pointSizeF() * 1.35)
        name_font.setBold(True)
        self.name_label.setFont(name_font)
        self.name_label.setWordWrap(True)
        self.name_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.file_label = HintLabel("", self)
        self.file_label.setWordWrap(True)
        self.file_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.badge = VerdictBadge(self)
        self.base_banner = BaseModelBanner(self)  # a base model says so where it is picked
        self.speed_label = QLabel(self)
        speed_font = QFont(self.speed_label.font())
        speed_font.setPointSizeF(speed_font.pointSizeF() * 1.2)
        speed_font.setBold(True)
        self.speed_label.setFont(speed_font)
        self.speed_label.setAccessibleName("Predicted speed")
        self.speed_hint = HintLabel("", self)
        # Wrapped within a column's width: one long line ("not yet measured here: estimated
        # from bandwidth") would widen the pane past the window and hide the Load button.
        self.speed_hint.setWordWrap(True)
        self.speed_hint.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        self.speed_hint.setMaximumWidth(self.speed_hint.fontMetrics().horizontalAdvance("x") * 34)

        self.download_button = QPushButton("Download", self)
        self.download_button.setIcon(glyph_icon("download", QPalette.ColorRole.ButtonText))
        self.download_button.setAccessibleName("Download this file")
        self.download_button.clicked.connect(self._on_download)
        self.load_button = QPushButton("Load…", self)
        self.load_button.setIcon(glyph_icon("play", QPalette.ColorRole.ButtonText))
        self.load_button.setAccessibleName("Open the load controls")
        self.load_button.setDefault(True)
        self.load_button.clicked.connect(self._on_load)

        self.bars = MemoryBars(self)
        self.reason_label = QLabel(self)
        self.reason_label.setWordWrap(True)
        self.reason_label.setAccessibleName("Why")
        self.suggestion_label = QLabel(self)
        self.suggestion_label.setWordWrap(True)
        self.suggestion_label.setAccessibleName("Suggestion")
        self.note_label = HintLabel("", self)
        self.note_label.setWordWrap(True)
        # llama.cpp's own dry run of a local file: what it confirmed, or why it refuses.
        self.check_label = QLabel(self)
        self.check_label.setWordWrap(True)
        self.check_label.setAccessibleName("Checked by llama.cpp")
        self.check_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._checker = LlamaChecker(parent=self)
        self._checker.checked.connect(self._on_checked)
        self._check_key: str | None = None

        self.siblings = QTableWidget(0, 4, self)
        self.siblings.setAccessibleName("Other quantizations of this model")
        self.siblings.setHorizontalHeaderLabels(["Quant", "File size", "Fits?", "Speed"])
        self.siblings.verticalHeader().setVisible(False)
        self.siblings.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.siblings.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.siblings.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.siblings.setShowGrid(False)
        self.siblings.setAlternatingRowColors(True)
        # "Q8_0 · tiny-llama…-copy.gguf": two local copies differ at the end of their names.
        self.siblings.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.siblings.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.siblings.setItemDelegateForColumn(2, VerdictDelegate(self.siblings))
        self.siblings.verticalHeader().setDefaultSectionSize(
            self.siblings.fontMetrics().height() + 12
        )
        sib_header = self.siblings.horizontalHeader()
        sib_header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        sib_header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        sib_header.setSectionResizeMode(2, QHeaderView.ResizeMode.Fixed)
        sib_header.resizeSection(2, 120)
        sib_header.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        sib_header.setHighlightSections(False)
        self.siblings.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.siblings.cellClicked.connect(self._on_sibling_clicked)
        self.siblings.cellActivated.connect(self._on_sibling_clicked)

        # Layout
        header = QHBoxLayout()
        header.setSpacing(12)
        titles = QVBoxLayout()
        titles.setSpacing(2)
        titles.addWidget(self.name_label)
        titles.addWidget(self.file_label)
        header.addLayout(titles, 1)
        verdict_box = QVBoxLayout()
        verdict_box.setSpacing(4)
        verdict_box.addWidget(self.badge, 0, Qt.AlignmentFlag.AlignRight)
        verdict_box.addWidget(self.speed_label, 0, Qt.AlignmentFlag.AlignRight)
        verdict_box.addWidget(self.speed_hint, 0, Qt.AlignmentFlag.AlignRight)
        header.addLayout(verdict_box)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.load_button)

        line = QFrame(self)
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)

        content = QWidget(self)
        body = QVBoxLayout(content)
        body.setContentsMargins(16, 14, 16, 14)
        body.setSpacing(10)
        body.addLayout(header)
        body.addWidget(self.base_banner)
        body.addLayout(buttons)
        body.addWidget(line)
        self.memory_title = section_title("Where the memory goes", content)
        body.addWidget(self.memory_title)
        body.addWidget(self.bars)
        body.addSpacing(4)
        body.addWidget(self.reason_label)
        body.addWidget(self.suggestion_label)
        body.addWidget(self.note_label)
        body.addWidget(self.check_label)
        body.addSpacing(6)
        self.siblings_title = section_title("Other quantizations", content)
        body.addWidget(self.siblings_title)
        body.addWidget(self.siblings)
        body.addStretch(1)

        self.empty_label = HintLabel(
            "Select a model in the table to see whether it fits, where its memory goes, and "
            "how fast it should run.",
            self,
        )
        self.empty_label.setWordWrap(True)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)

        self._scroll = QScrollArea(self)
        self._scroll.setWidgetResizable(True)
        self._scroll.setFrameShape(QFrame.Shape.NoFrame)
        self._scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.empty_label)
        outer.addWidget(self._scroll)

        table.rowsEvaluated.connect(self.refresh)
        table.modelReset.connect(self._on_model_reset)
        table.rowsInserted.connect(self.refresh)
        self.set_row(None)

    # ------------------------------------------------------------------ public

    @property
    def row(self) -> ModelRow | None:
        return self._row

    @property
    def plan(self) -> Plan | None:
        return self._plan

    def set_row(self, row: ModelRow | None) -> None:
        self._row = row
        self.refresh()

    def refresh(self) -> None:
        row = self._row
        self.empty_label.setVisible(row is None)
        self._scroll.setVisible(row is not None)
        if row is None:
            self._plan = None
            self.bars.set_plans([])
            return
        index = self._table.index_of(row.location)
        if index is not None:
            # The table may hold a newer copy of the row (downloaded since, for example).
            row = self._row = self._table.row_at(index)
        self._plan = self._table.plan_at(index) if index is not None else None
        self._show_header(row, self._plan)
        self._show_plan(row, self._plan)
        self._show_siblings(row)

    # ------------------------------------------------------------------ parts

    def _show_header(self, row: ModelRow, plan: Plan | None) -> None:
        self.name_label.setText(row.name)
        parts = []  # what is known of it: a broken file has no quant nor parameter count
        if row.quant != "?":
            parts.append(row.quant)
        if row.params:
            parts.append(format_params(row.params) + " parameters")
        if row.file_size_bytes is not None:
            size = format_bytes(row.file_size_bytes)
            parts.append(size if row.size_exact else f"about {size}")
        lines = [" · ".join(parts)]
        if row.repo:
            lines.append(f"{row.repo}")
        lines.append(row.file or (str(row.path) if row.path else row.location))
        file_line = "\n".join(lines)
        self.file_label.setText(file_line)
        self.file_label.setToolTip(row.location)
        self.base_banner.show_spec(row.spec)

        if plan is None and row.broken:
            self.badge.set_verdict("Broken", theme.BROKEN)
            self.speed_label.setText("")
            self.speed_hint.setText("")
        elif plan is None:
            self.badge.set_verdict("No estimate" if row.spec is None else "Checking…", None)
            self.speed_label.setText("")
            self.speed_hint.setText("")
        else:
            self.badge.set_verdict(plan.verdict_label, plan.verdict)
            speed = plan_speed(plan)
            if plan.verdict is Verdict.TOO_LARGE:
                self.speed_label.setText("")
                self.speed_hint.setText(f"does not fit at {context_label(plan.n_ctx)} context")
            else:
                self.speed_label.setText(format_speed(speed) or "speed unknown")
                self.speed_hint.setText(
                    f"predicted, at {context_label(plan.n_ctx)} context"
                    if speed is not None
                    else "memory bandwidth unknown"
                )
        downloaded = self._table.is_downloaded(row)
        # A Hugging Face search result not opened yet has no file: double-click opens it.
        self.download_button.setVisible(row.source != "local" and not row.is_hub_repo)
        self.download_button.setEnabled(row.source != "local" and not downloaded)
        if downloaded:
            self.download_button.setText("Downloaded")
        elif row.file_size_bytes is not None:
            self.download_button.setText(f"Download {format_bytes(row.file_size_bytes)}")
        else:
            self.download_button.setText("Download")
        self.download_button.setToolTip(f"{row.repo} / {row.file}" if row.repo else "")
        self.load_button.setEnabled(row.spec is not None and not row.is_hub_repo)
        self.load_button.setToolTip(
            "Choose GPU layers and context, then load the model"
            if downloaded
            else "Try GPU layers and context before downloading"
        )

    def _show_plan(self, row: ModelRow, plan: Plan | None) -> None:
        # A file with no estimate has no memory to show: its reason is said once, below.
        self.memory_title.setVisible(row.spec is not None)
        self.bars.setVisible(row.spec is not None)
        if plan is None:
            self.bars.set_plans([])
            self.bars.set_placeholder("Waiting for the hardware check to finish…")
            self.reason_label.setText(row.note if row.spec is None else "")
            self.suggestion_label.setText("")
            self.note_label.setText("")
            return
        self.bars.set_plans(plan.devices)
        self.reason_label.setText(plan.reason)
        self.suggestion_label.setText(f"<b>What to do:</b> {self._advice(row, plan)}")
        notes = list(plan.notes)
        if row.note and row.note not in notes:
            notes.append(row.note)
        if row.spec is not None and plan.n_ctx < self._state.n_ctx:
            notes.append(
                f"This model was trained for {context_label(row.spec.n_ctx_train)} tokens, so "
                "the context is capped there."
            )
        if plan.predicted_tokens_per_s is not None:
            notes.append(f"Speed: {self._state.prediction_source}.")
        self.note_label.setText("\n".join(notes))
        self.note_label.setVisible(bool(notes))
        self._show_check(row, plan)

    def _advice(self, row: ModelRow, plan: Plan) -> str:
        """The change that makes this model fastest here, in plain words (core.advice ranks
        the other quantizations, context, KV cache and layers by predicted speed); the
        plan's own suggestion when nothing is faster."""
        if row.spec is None:
            return plan.suggestion
        siblings = [
            (sibling.quant, sibling_plan)
            for sibling, sibling_plan in self._table.group_rows(row.group)
            if sibling.location != row.location
        ]
        ranked = ranked_alternatives(row.spec, plan, self._state.devices(), siblings)
        return lead_sentence(plan, ranked) or plan.suggestion

    def _show_check(self, row: ModelRow, plan: Plan) -> None:
        """What llama.cpp's dry run says of this local file at these settings."""
        if row.source != "local" or row.path is None or self._state.is_what_if:
            self._check_key = None
            self.check_label.setVisible(False)
            return
        real = self._state.real_profile
        if real is not None:
            self._checker.set_build(build_key(real.backends))
        self._check_key = check_key(row.path, plan)
        self.check_label.setVisible(True)
        result = self._checker.result(row.path, plan)
        if result is None:
            self.check_label.setText("Asking llama.cpp to check this file…")
            self.check_label.setStyleSheet("")
            return
        if not result.ok:
            self.check_label.setText(f"<b>{result.reason}</b>")
            self.check_label.setStyleSheet("color: #c62828;")
            self.load_button.setEnabled(False)
            self.load_button.setToolTip(result.reason or "")
            return
        self.check_label.setStyleSheet("")
        self.check_label.setText(_check_sentence(result, plan))

    def _on_checked(self, key: str) -> None:
        if key == self._check_key:
            self.refresh()

    def _show_siblings(self, row: ModelRow) -> None:
        # Smallest file first: the quants read as a ladder of size against fit and speed.
        group = sorted(
            self._table.group_rows(row.group),
            key=lambda pair: (pair[0].file_size_bytes or 0, pair[0].quant),
        )
        self._sibling_rows = [r for r, _ in group]
        self.siblings_title.setVisible(len(group) > 1)
        self.siblings.setVisible(len(group) > 1)
        self.siblings.setRowCount(len(group))
        current = -1
        quant_counts: dict[str, int] = {}
        for sibling, _ in group:
            quant_counts[sibling.quant] = quant_counts.get(sibling.quant, 0) + 1
        for i, (sibling, plan) in enumerate(group):
            quant = sibling.quant
            if quant_counts[quant] > 1 and sibling.uploader:
                quant = f"{quant} · {sibling.uploader}"  # the same quant from two uploaders
            elif quant_counts[quant] > 1 and self._table.file_label(sibling):
                quant = f"{quant} · {self._table.file_label(sibling)}"  # two local copies
            size = "?" if sibling.file_size_bytes is None else format_bytes(sibling.file_size_bytes)
            verdict_text = plan.verdict_label if plan is not None else "No estimate"
            values = [
                quant,
                size,
                verdict_text,
                format_speed(plan_speed(plan)),
            ]
            for column, text in enumerate(values):
                item = QTableWidgetItem(text)
                if column in (1, 3):
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                if column == 2:
                    item.setData(VERDICT_ROLE, plan.verdict if plan is not None else None)
                if plan is not None:
                    item.setToolTip(plan.reason)
                self.siblings.setItem(i, column, item)
            if sibling.location == row.location:
                current = i
        blocked = self.siblings.blockSignals(True)
        if current >= 0:
            self.siblings.selectRow(current)
        self.siblings.blockSignals(blocked)
        # Show every sibling without an inner scroll bar (a model has a handful of files).
        height = self.siblings.horizontalHeader().height() + 4
        height += sum(self.siblings.rowHeight(i) for i in range(self.siblings.rowCount()))
        self.siblings.setFixedHeight(height)

    # ------------------------------------------------------------------ slots

    def _on_model_reset(self) -> None:
        if self._row is not None and self._table.index_of(self._row.location) is None:
            self._row = None
        self.refresh()

    def _on_download(self) -> None:
        if self._row is not None:
            emit(self.downloadRequested, self._row)

    def _on_load(self) -> None:
        if self._row is not None:
            emit(self.loadControlsRequested, self._row)

    def _on_sibling_clicked(self, sibling_row: int, _column: int = 0) -> None:
        if 0 <= sibling_row < len(self._sibling_rows):
            chosen = self._sibling_rows[sibling_row]
            if self._row is None or chosen.location != self._row.location:
                emit(self.siblingSelected, chosen)


def _check_sentence(result: DryRun, plan: Plan) -> str:
    """ "Checked by llama.cpp 0.3.36: ..." with the figures it confirmed and how far off the
    arithmetic was."""
    parts = []
    for component, label in (("kv", "KV cache"), ("compute", "compute buffer")):
        theirs = sum(b.size_bytes for b in result.buffers if b.component == component)
        ours = sum(b.size_bytes for b in plan.buffers if b.component == component)
        if not theirs:
            continue
        diff = 100.0 * (ours - theirs) / theirs
        exact = "exactly as estimated" if abs(diff) < 0.05 else f"estimate {diff:+.1f}%"
        parts.append(f"{label} {format_bytes(theirs)} ({exact})")
    layers = ""
    if result.offloaded_layers is not None and result.offloadable_layers:
        layers = (
            f"{result.offloaded_layers} of {result.offloadable_layers} layers on the GPU"
            if result.offloaded_layers
            else "every layer on the CPU"
        )
        if result.offloaded_layers != plan.gpu_layers and plan.gpu_layers:
            layers += f" (the estimate said {plan.gpu_layers})"
    details = "; ".join(p for p in [layers, *parts] if p)
    return f"✓ Checked by llama.cpp {result.llama_cpp_version}: {details}."
