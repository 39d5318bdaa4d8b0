"""The models table: every GGUF file we know of, with a fit verdict for the current machine.

* :class:`ModelsTableModel` - one QAbstractTableModel over :class:`~desktop.core.rows.ModelRow`
  objects (catalog variants now; local files and Hugging Face files through
  :meth:`~ModelsTableModel.set_source_rows`). It keeps one plan per row and re-evaluates all of
  them when the :class:`~desktop.ui.state.WorkbenchState` says an input changed.
* :class:`ModelsFilterProxy` - sorting by the real numbers (not the text), the search box and
  the "hide what does not fit" switch.
* :class:`ModelsPanel` - the search box, the context control and the view, with a badge
  delegate for the verdict column, and the Hugging Face repo box
  (:class:`~desktop.ui.hub_box.HubBox`): the box looks a repo up and hands over its rows, the
  panel puts them into the table as its ``remote`` rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from enum import IntEnum
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QEvent,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QFont, QKeyEvent, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from desktop.core.estimate import Plan, Verdict
from desktop.core.rows import (
    ModelRow,
    RowSource,
    file_key,
    file_labels,
    format_params,
    verdict_sort_key,
)
from desktop.core.units import format_bytes
from desktop.services.signals import emit
from desktop.ui import theme
from desktop.ui.hub_box import HubBox
from desktop.ui.icons import glyph_icon
from desktop.ui.search_rows import HubSearch, hub_secondary
from desktop.ui.starter_picks import StarterPicksPanel
from desktop.ui.state import CONTEXT_CHOICES, WorkbenchState, context_label
from desktop.ui.widgets import (
    SECONDARY_ROLE,
    VERDICT_ROLE,
    HintLabel,
    NameDelegate,
    VerdictDelegate,
)

__all__ = [
    "ROW_ROLE",
    "SORT_ROLE",
    "Column",
    "ModelsFilterProxy",
    "ModelsPanel",
    "ModelsTableModel",
    "format_speed",
]

#: The ModelRow of an index (any column).
ROW_ROLE = Qt.ItemDataRole.UserRole + 1
#: A number (or lower-case text) to sort a column by.
SORT_ROLE = Qt.ItemDataRole.UserRole + 2
#: The row's Plan, or None.
PLAN_ROLE = Qt.ItemDataRole.UserRole + 3


class Column(IntEnum):
    NAME = 0
    PARAMS = 1
    QUANT = 2
    SIZE = 3
    VERDICT = 4
    MEMORY = 5
    SPEED = 6
    LOCAL = 7


_HEADERS = {
    Column.NAME: "Model",
    Column.PARAMS: "Params",
    Column.QUANT: "Quant",
    Column.SIZE: "File size",
    Column.VERDICT: "Fits?",
    Column.MEMORY: "Memory",
    Column.SPEED: "Speed",
    Column.LOCAL: "On disk",
}
_HEADER_TIPS = {
    Column.PARAMS: "Parameters (B = billions)",
    Column.QUANT: "Quantization: fewer bits per weight = smaller and faster, a little less exact",
    Column.SIZE: "Size of the download",
    Column.VERDICT: "Where the model runs on this machine at the chosen context",
    Column.MEMORY: "VRAM and RAM the model needs, all devices together",
    Column.SPEED: "Predicted speed of writing the answer (tokens per second)",
    Column.LOCAL: "Whether the file is on this computer",
}
_NUMERIC = {Column.PARAMS, Column.SIZE, Column.MEMORY, Column.SPEED}
_ESTIMATE_COLUMNS = (Column.VERDICT, Column.MEMORY, Column.SPEED)


def plan_speed(plan: Plan | None) -> float | None:
    """The predicted speed worth showing: none for a model that cannot run at all."""
    if plan is None or plan.verdict is Verdict.TOO_LARGE:
        return None
    return plan.predicted_tokens_per_s


def format_speed(tokens_per_s: float | None) -> str:
    """ "~42 tok/s", "~3.5 tok/s", "" when unknown."""
    if tokens_per_s is None:
        return ""
    if tokens_per_s >= 10:
        return f"~{tokens_per_s:.0f} tok/s"
    return f"~{tokens_per_s:.1f} tok/s"


def _alignment(column: Column) -> int:
    if column in _NUMERIC:
        return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    if column == Column.LOCAL:
        return int(Qt.AlignmentFlag.AlignCenter)
    return int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)


class ModelsTableModel(QAbstractTableModel):
    """Rows of models with their plans for the current machine and context.

    ``rowsEvaluated(seconds)`` follows every re-evaluation (the time it took, for the status
    bar and the performance test).
    """

    rowsEvaluated = Signal(float)

    def __init__(
        self,
        state: WorkbenchState,
        rows: Iterable[ModelRow] = (),
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._state = state
        self._rows: list[ModelRow] = []
        # Every source's rows as given, before repeated locations are dropped: a Hugging Face
        # lookup of a catalog repo hides the catalog rows of the same files, and clearing it
        # must bring them back.
        self._given: dict[RowSource, list[ModelRow]] = {}
        self._plans: list[Plan | None] = []
        self._local_names: set[str] = set()
        self._file_labels: dict[str, str] = {}  # local rows' file names, by location
        self._repeated_quants: set[tuple[str, str]] = set()
        self._loading = False
        state.estimatesChanged.connect(self.reevaluate)
        if rows:
            self.set_rows(rows)

    # ------------------------------------------------------------------ rows

    def set_rows(self, rows: Iterable[ModelRow]) -> None:
        """Replace every row."""
        rows = list(rows)
        self._given = {}
        for row in rows:
            self._given.setdefault(row.source, []).append(row)
        self._show_rows(rows)

    def _show_rows(self, rows: Iterable[ModelRow]) -> None:
        self.beginResetModel()
        # Rows are immutable and the plans are current (reevaluate() follows every change of
        # machine or context), so a row already shown keeps its plan: a Hugging Face search
        # adding a few rows plans those, not the whole table again. `shown` keeps the old rows
        # alive while their ids are looked up.
        shown = self._rows
        planned = {id(row): plan for row, plan in zip(shown, self._plans, strict=False)}
        self._rows = _unique(rows)
        self._update_local_names()
        self._update_repeated_quants()
        self._plans = [
            planned[id(row)] if id(row) in planned else self._evaluate(row) for row in self._rows
        ]
        del shown
        self._loading = False
        self.endResetModel()

    def set_source_rows(self, source: RowSource, rows: Iterable[ModelRow]) -> None:
        """Replace the rows of one source: the catalog, the library after a rescan, the
        Hugging Face box. Rows keep the order catalog, local, remote."""
        self._given[source] = [r for r in rows if r.source == source]
        order: tuple[RowSource, ...] = ("catalog", "local", "remote")
        self._show_rows([r for name in order for r in self._given.get(name, [])])

    def add_rows(self, rows: Iterable[ModelRow]) -> None:
        """Append rows (one whose location is already present replaces the old one)."""
        new = _unique(rows)
        files = {file_key(r) for r in new}
        for source, given in self._given.items():
            self._given[source] = [r for r in given if file_key(r) not in files]
        for row in new:
            self._given.setdefault(row.source, []).append(row)
        if any(file_key(r) in files for r in self._rows):
            self._show_rows([*(r for r in self._rows if file_key(r) not in files), *new])
            return
        if not new:
            return
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
        self._rows += new
        self._plans += [self._evaluate(row) for row in new]
        self._update_repeated_quants()
        self.endInsertRows()
        if self._update_local_names():
            self._emit_column_changed(Column.LOCAL)

    def set_loading(self, loading: bool) -> None:
        """Show "Loading..." in the empty table while rows are read in the background."""
        self._loading = loading

    @property
    def loading(self) -> bool:
        return self._loading

    def rows(self) -> list[ModelRow]:
        return list(self._rows)

    def row_at(self, row: int) -> ModelRow:
        return self._rows[row]

    def plan_at(self, row: int) -> Plan | None:
        return self._plans[row]

    def index_of(self, location: str) -> int | None:
        for i, row in enumerate(self._rows):
            if row.location == location:
                return i
        return None

    def group_rows(self, group: str) -> list[tuple[ModelRow, Plan | None]]:
        """Every row of one model (its quantizations), with plans, in table order."""
        return [(r, p) for r, p in zip(self._rows, self._plans, strict=True) if r.group == group]

    def is_downloaded(self, row: ModelRow) -> bool:
        return self.local_path(row) is not None

    def local_path(self, row: ModelRow) -> Path | None:
        """Where the row's file is on this computer: its own path, or a local row's."""
        if row.path is not None:
            return row.path
        if row.file_name not in self._local_names:
            return None
        for other in self._rows:
            if other.source == "local" and other.file_name == row.file_name:
                return other.path
        return None

    # ------------------------------------------------------------------ estimates

    def reevaluate(self) -> None:
        """Recompute every plan (context, machine or reserve changed)."""
        if not self._rows:
            return
        start = time.perf_counter()
        self._plans = [self._evaluate(row) for row in self._rows]
        first = self.index(0, min(_ESTIMATE_COLUMNS))
        last = self.index(len(self._rows) - 1, max(_ESTIMATE_COLUMNS))
        emit(self.dataChanged, first, last)
        emit(self.rowsEvaluated, time.perf_counter() - start)

    def _evaluate(self, row: ModelRow) -> Plan | None:
        if row.spec is None:
            return None
        return self._state.estimate(row.spec)

    def file_label(self, row: ModelRow) -> str:
        """The file name that tells a local row apart ("" for other rows)."""
        return self._file_labels.get(row.location, "")

    def _update_local_names(self) -> bool:
        self._file_labels = file_labels(self._rows)
        names = {r.file_name for r in self._rows if r.source == "local"}
        changed = names != self._local_names
        self._local_names = names
        return changed

    def _update_repeated_quants(self) -> None:
        seen: set[tuple[str, str]] = set()
        repeated: set[tuple[str, str]] = set()
        for row in self._rows:
            key = (row.group, row.quant)
            (repeated if key in seen else seen).add(key)
        self._repeated_quants = repeated

    def uploader_matters(self, row: ModelRow) -> bool:
        """True when the same model and quant come from several uploaders."""
        return (row.group, row.quant) in self._repeated_quants

    def _emit_column_changed(self, column: Column) -> None:
        if self._rows:
            emit(self.dataChanged, self.index(0, column), self.index(len(self._rows) - 1, column))

    # ------------------------------------------------------------------ Qt model

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex | None = None) -> int:
        if parent is not None and parent.isValid():
            return 0
        return len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex | None = None) -> int:
        if parent is not None and parent.isValid():
            return 0
        return len(Column)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(Column):
            return None
        column = Column(section)
        if role == Qt.ItemDataRole.DisplayRole:
            return _HEADERS[column]
        if role == Qt.ItemDataRole.ToolTipRole:
            return _HEADER_TIPS.get(column)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _alignment(column)
        return None

    def data(
        self,
        index: QModelIndex | QPersistentModelIndex,
        role: int = Qt.ItemDataRole.DisplayRole,
    ) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        plan = self._plans[index.row()]
        column = Column(index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, plan, column)
        if role == SORT_ROLE:
            return self._sort_value(row, plan, column, index.row())
        if role == ROW_ROLE:
            return row
        if role == PLAN_ROLE:
            return plan
        if role == VERDICT_ROLE:
            if plan is None and row.broken:
                return theme.BROKEN
            return plan.verdict if plan is not None else None
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, plan, column)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _alignment(column)
        if role == SECONDARY_ROLE and column == Column.NAME and row.hub is not None:
            return hub_secondary(row)  # a Hugging Face search result: uploader, downloads, ...
        if role == SECONDARY_ROLE and column == Column.NAME:
            # A local file by its file name (two copies of one model read apart); an uploader
            # only where it tells two otherwise identical rows apart.
            if row.source == "local":
                label = self._file_labels.get(row.location, "")
                return "" if label == f"{row.name}.gguf" else label  # not the name twice
            return row.uploader if self.uploader_matters(row) else ""
        if role == Qt.ItemDataRole.FontRole and column == Column.NAME:
            font = QFont()
            font.setWeight(QFont.Weight.DemiBold)
            return font
        if role == Qt.ItemDataRole.AccessibleTextRole:
            text = self._display(row, plan, column) or _HEADERS[column] + ": none"
            if column == Column.NAME and row.uploader:
                text += f", by {row.uploader}"
            return text
        return None

    def _display(self, row: ModelRow, plan: Plan | None, column: Column) -> str:
        if column == Column.NAME:
            return row.name
        if column == Column.PARAMS:
            return format_params(row.params)
        if column == Column.QUANT:
            return row.quant
        if column == Column.SIZE:
            if row.file_size_bytes is None:
                return "?"
            return ("" if row.size_exact else "≈ ") + format_bytes(row.file_size_bytes)
        if column == Column.VERDICT:
            if plan is not None:
                return plan.verdict_label
            if row.broken:
                return "Broken"
            if row.spec is None:
                return "No estimate"
            return "Checking…"
        if column == Column.MEMORY:
            return format_bytes(plan.total_bytes) if plan is not None else ""
        if column == Column.SPEED:
            return format_speed(plan_speed(plan))
        if column == Column.LOCAL:
            if row.source == "local":
                return "Local file"
            return "Downloaded" if self.is_downloaded(row) else ""
        return ""

    def _sort_value(self, row: ModelRow, plan: Plan | None, column: Column, position: int) -> Any:
        if column == Column.NAME:
            return f"{row.name.lower()}\t{row.quant.lower()}"
        if column == Column.PARAMS:
            return float(row.params or -1)
        if column == Column.QUANT:
            return row.quant.lower()
        if column == Column.SIZE:
            return float(row.file_size_bytes if row.file_size_bytes is not None else -1)
        if column == Column.VERDICT:
            # Within one verdict, the table's own order (a stable sort would be nicer).
            return verdict_sort_key(plan) + position * 1e-6
        if column == Column.MEMORY:
            return float(plan.total_bytes) if plan is not None else float("inf")
        if column == Column.SPEED:
            speed = plan_speed(plan)
            return float(speed) if speed is not None else -1.0
        if column == Column.LOCAL:
            return 1 if row.source == "local" else (2 if self.is_downloaded(row) else 3)
        return 0

    def _tooltip(self, row: ModelRow, plan: Plan | None, column: Column) -> str | None:
        if column == Column.NAME:
            where = row.repo or str(row.path or row.location)
            text = f"{row.name}\n{where}"
            if row.file:
                text += f"\n{row.file}"
            return text
        if column == Column.SIZE and not row.size_exact:
            return "The catalog gives a rounded size; the exact size is known after download."
        if column == Column.VERDICT:
            if plan is None:
                return row.note or "Waiting for the hardware check."
            text = f"{plan.reason}\n{plan.suggestion}"
            if row.note:
                text += f"\n{row.note}"
            return text
        if column == Column.MEMORY and plan is not None:
            return "\n".join(
                f"{'System RAM' if d.kind == 'cpu' else d.name}: {format_bytes(d.total_bytes)}"
                f" of {format_bytes(d.capacity_bytes)} free"
                for d in plan.devices
            )
        if column == Column.SPEED and plan is not None:
            if plan.verdict is Verdict.TOO_LARGE:
                return "It does not fit in memory, so it would not run."
            if plan.predicted_tokens_per_s is None:
                return "Unknown: the memory bandwidth of this machine is not known."
            text = f"About {plan.predicted_tokens_per_s:.1f} tokens per second while answering"
            if plan.predicted_prompt_tokens_per_s:
                text += f"; reading the prompt ~{plan.predicted_prompt_tokens_per_s:.0f} tok/s"
            return text
        return None


def _unique(rows: Iterable[ModelRow]) -> list[ModelRow]:
    """Rows in order, the last of any repeated location (or local file reached by two paths,
    rows.file_key) winning its place."""
    by_file: dict[str, ModelRow] = {}
    for row in rows:
        by_file[file_key(row)] = row
    return list(by_file.values())


class ModelsFilterProxy(QSortFilterProxyModel):
    """Sorts by SORT_ROLE; filters by search words and, optionally, hides "Too large"."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._words: tuple[str, ...] = ()
        self._hide_too_large = False
        self._full_gpu_only = False
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(True)
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def set_search(self, text: str) -> None:
        words = tuple(text.lower().split())
        if words == self._words:
            return
        self.beginFilterChange()
        self._words = words
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_full_gpu_only(self, only: bool) -> None:
        """Show only the rows that fit fully on the GPU (every layer offloaded)."""
        if only == self._full_gpu_only:
            return
        self.beginFilterChange()
        self._full_gpu_only = only
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_hide_too_large(self, hide: bool) -> None:
        if hide == self._hide_too_large:
            return
        self.beginFilterChange()
        self._hide_too_large = hide
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(
        self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex
    ) -> bool:
        model = self.sourceModel()
        index = model.index(source_row, 0, source_parent)
        row = index.data(ROW_ROLE)
        if not isinstance(row, ModelRow):
            return True
        if self._full_gpu_only and (
            index.siblingAtColumn(Column.VERDICT).data(VERDICT_ROLE) != Verdict.FULL_GPU
        ):
            return False
        if self._hide_too_large and index.siblingAtColumn(Column.VERDICT).data(VERDICT_ROLE) in (
            Verdict.TOO_LARGE,
        ):
            return False
        if not self._words:
            return True
        haystack = " ".join(
            (row.name, row.quant, row.repo or "", row.file_name, row.publisher, *row.tags)
        ).lower()
        return all(word in haystack for word in self._words)


class ModelsPanel(QWidget):
    """Search, context length, the Hugging Face repo box and the table.
    ``currentRowChanged(ModelRow | None)``.

    ``endpoint`` (default: huggingface_hub's) and ``header_cache_dir`` (default: the user's
    cache) are for the repo box; tests point them at a local Hub and a temporary folder.
    """

    currentRowChanged = Signal(object)

    def __init__(
        self,
        state: WorkbenchState,
        table: ModelsTableModel,
        parent: QWidget | None = None,
        *,
        endpoint: str | None = None,
        header_cache_dir: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self._state = state
        self._table = table
        self._hub_repo = ""  # the repo whose rows the search box was set to show
        self.proxy = ModelsFilterProxy(self)
        self.proxy.setSourceModel(table)

        title = QLabel("Models", self)
        title_font = title.font()
        title_font.setPointSizeF(title_font.pointSizeF() * 1.25)
        title_font.setBold(True)
        title.setFont(title_font)
        self.count_label = HintLabel("", self)

        self.search_box = QLineEdit(self)
        self.search_box.setPlaceholderText(
            "Search models here and on Hugging Face (or type owner/name)…  (Ctrl+F)"
        )
        self.search_box.setClearButtonEnabled(True)
        self.search_box.setAccessibleName("Search models")
        self.search_box.addAction(
            glyph_icon("search", QPalette.ColorRole.PlaceholderText),
            QLineEdit.ActionPosition.LeadingPosition,
        )
        self.search_box.textChanged.connect(self._on_search)
        # Down (or Enter) in the search box moves into the results, as in a browser's address
        # bar, so a model can be found and picked without the mouse.
        self.search_box.installEventFilter(self)
        self.search_box.returnPressed.connect(self._enter_results)

        self.context_combo = QComboBox(self)
        self.context_combo.setAccessibleName("Context length")
        self.context_combo.setToolTip(
            "How many tokens of conversation the model keeps in memory (the KV cache grows "
            "with it). Longer than a model was trained for is capped at its limit."
        )
        for n_ctx in CONTEXT_CHOICES:
            self.context_combo.addItem(f"{context_label(n_ctx)} tokens", n_ctx)
        self._show_context(state.n_ctx)
        self.context_combo.currentIndexChanged.connect(self._on_context_chosen)
        state.contextChanged.connect(self._show_context)
        context_label_widget = QLabel("&Context:", self)
        context_label_widget.setBuddy(self.context_combo)

        self.hide_too_large = QCheckBox("Hide models that don't fit", self)
        self.hide_too_large.setAccessibleName("Hide models that do not fit")
        self.hide_too_large.toggled.connect(self.proxy.set_hide_too_large)
        self.full_gpu_only = QCheckBox("Only full GPU", self)
        self.full_gpu_only.setAccessibleName("Show only models that fit fully on the GPU")
        self.full_gpu_only.setToolTip("Show only the models that fit fully on the GPU")
        self.full_gpu_only.toggled.connect(self.proxy.set_full_gpu_only)

        self.view = QTableView(self)
        self.view.setModel(self.proxy)
        self.view.setAccessibleName("Models")
        self.view.setSortingEnabled(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setAlternatingRowColors(True)
        self.view.setShowGrid(False)
        self.view.setWordWrap(False)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(self.view.fontMetrics().height() + 14)
        self.view.setItemDelegateForColumn(Column.VERDICT, VerdictDelegate(self.view))
        self.view.setItemDelegateForColumn(Column.NAME, NameDelegate(self.view))
        header = self.view.horizontalHeader()
        header.setHighlightSections(False)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(Column.NAME, QHeaderView.ResizeMode.Stretch)
        widths = {
            Column.PARAMS: 56,
            Column.QUANT: 88,
            Column.SIZE: 80,
            Column.VERDICT: 116,
            Column.MEMORY: 74,
            Column.SPEED: 84,
            Column.LOCAL: 82,
        }
        for column, width in widths.items():
            header.resizeSection(column, width)
        self.view.sortByColumn(Column.VERDICT, Qt.SortOrder.AscendingOrder)
        self.view.selectionModel().currentRowChanged.connect(self._on_current_changed)

        bar = QHBoxLayout()
        bar.setSpacing(8)
        bar.addWidget(self.search_box, 1)
        bar.addSpacing(8)
        bar.addWidget(context_label_widget)
        bar.addWidget(self.context_combo)
        bar.addSpacing(8)
        bar.addWidget(self.hide_too_large)
        bar.addWidget(self.full_gpu_only)

        self.hub_box = HubBox(self, endpoint=endpoint, header_cache_dir=header_cache_dir)
        self.hub_box.rowsFound.connect(self._on_hub_rows)
        # The search box searches Hugging Face too (desktop.ui.search_rows).
        self.hub_search = HubSearch(self, endpoint=endpoint, header_cache_dir=header_cache_dir)

        heading = QHBoxLayout()
        heading.addWidget(title)
        heading.addWidget(self.count_label)
        heading.addSpacing(16)
        heading.addWidget(self.hub_box, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        layout.addLayout(heading)
        layout.addLayout(bar)
        # What to try first, by size class, until something is typed (ui/starter_picks).
        self.starter_picks = StarterPicksPanel(table, self)
        self.starter_picks.pickChosen.connect(self.select_location)
        self.search_box.textChanged.connect(
            lambda text: self.starter_picks.setVisible(not text.strip())
        )
        layout.addWidget(self.starter_picks)
        layout.addWidget(self.view, 1)

        for sig in (
            self.proxy.rowsInserted,
            self.proxy.rowsRemoved,
            self.proxy.modelReset,
            self.proxy.layoutChanged,
        ):
            sig.connect(self._update_count)
        self._update_count()

    # ------------------------------------------------------------------ public

    @property
    def table(self) -> ModelsTableModel:
        return self._table

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            watched is self.search_box
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() == Qt.Key.Key_Down
        ):
            self._enter_results()
            return True
        return super().eventFilter(watched, event)

    def _enter_results(self) -> None:
        """Focus the table and select its first row (keeping a selection already there)."""
        if self.proxy.rowCount() == 0:
            return
        self.view.setFocus(Qt.FocusReason.TabFocusReason)
        if not self.view.selectionModel().hasSelection():
            self.view.selectRow(0)

    def focus_search(self) -> None:
        self.search_box.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search_box.selectAll()

    def current_row(self) -> ModelRow | None:
        index = self.view.currentIndex()
        row = index.data(ROW_ROLE) if index.isValid() else None
        return row if isinstance(row, ModelRow) else None

    def select_location(self, location: str) -> bool:
        """Select the row with this location (clearing the search if it hides it)."""
        source_row = self._table.index_of(location)
        if source_row is None:
            return False
        proxy_index = self.proxy.mapFromSource(self._table.index(source_row, 0))
        if not proxy_index.isValid():
            self.search_box.clear()
            self.hide_too_large.setChecked(False)
            proxy_index = self.proxy.mapFromSource(self._table.index(source_row, 0))
            if not proxy_index.isValid():
                return False
        self.view.selectionModel().setCurrentIndex(
            proxy_index,
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        self.view.scrollTo(proxy_index, QAbstractItemView.ScrollHint.EnsureVisible)
        return True

    def visible_rows(self) -> list[ModelRow]:
        """The rows as shown: filtered and sorted."""
        return [self.proxy.index(i, 0).data(ROW_ROLE) for i in range(self.proxy.rowCount())]

    # ------------------------------------------------------------------ slots

    def _on_search(self, text: str) -> None:
        self.proxy.set_search(text)
        self._update_count()

    def _on_hub_rows(self, repo_id: str, rows: tuple[ModelRow, ...]) -> None:
        """Make a looked-up repo's rows the table's remote rows and show them (search for the
        repo, select the first row); after a clear, drop the search that showed them."""
        self.hub_search.set_lookup_rows(tuple(rows))  # with the search's rows
        previous, self._hub_repo = self._hub_repo, repo_id
        if not repo_id:
            if previous and self.search_box.text() == previous:
                self.search_box.clear()
            return
        if not rows:
            return
        self.search_box.setText(repo_id)
        if not self._shown_rows_of(repo_id):  # "hide models that don't fit" hid them all
            self.hide_too_large.setChecked(False)
        shown = self._shown_rows_of(repo_id)
        if shown:
            self.select_location(shown[0].location)

    def _shown_rows_of(self, repo_id: str) -> list[ModelRow]:
        return [r for r in self.visible_rows() if r.source == "remote" and r.repo == repo_id]

    def _on_context_chosen(self, position: int) -> None:
        n_ctx = self.context_combo.itemData(position)
        if isinstance(n_ctx, int):
            self._state.set_n_ctx(n_ctx)

    def _show_context(self, n_ctx: int) -> None:
        position = self.context_combo.findData(n_ctx)
        if position < 0:
            self.context_combo.addItem(f"{context_label(n_ctx)} tokens", n_ctx)
            position = self.context_combo.count() - 1
        blocked = self.context_combo.blockSignals(True)
        self.context_combo.setCurrentIndex(position)
        self.context_combo.blockSignals(blocked)

    def _on_current_changed(
        self,
        current: QModelIndex,
        previous: QModelIndex,
    ) -> None:
        row = current.data(ROW_ROLE) if current.isValid() else None
        emit(self.currentRowChanged, row if isinstance(row, ModelRow) else None)

    def _update_count(self) -> None:
        total = self._table.rowCount()
        shown = self.proxy.rowCount()
        if total == 0:
            text = "loading the catalog…" if self._table.loading else "no models"
        elif shown == total:
            text = f"{total} files"
        else:
            text = f"{shown} of {total} files"
        self.count_label.setText(text)
