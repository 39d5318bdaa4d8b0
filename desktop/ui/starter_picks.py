"""Starter picks above the models table: what to try first, by size class, before typing.

Sections from :func:`desktop.core.starter_picks.starter_picks` (tiny, laptop, 8-12 GB GPU,
24 GB GPU, workstation), each saying whom it is for; under each, its picks with the file shown,
its size, its verdict on this machine (the models table's own plan for that catalog row) and
why it is there. Clicking a pick selects its row in the table (``pickChosen(location)``). The
models panel hides the picks while its search box has text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QHeaderView, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from desktop.core.starter_picks import StarterPick, starter_picks
from desktop.core.units import format_bytes
from desktop.services.signals import emit
from desktop.ui.search_rows import _load_catalog_once

if TYPE_CHECKING:  # models_table builds this panel
    from desktop.ui.models_table import ModelsTableModel

__all__ = ["StarterPicksPanel"]

_LOCATION_ROLE = Qt.ItemDataRole.UserRole + 1


class StarterPicksPanel(QWidget):
    """The sections and picks in one tree; ``pickChosen(str location)`` on a click."""

    pickChosen = Signal(str)

    def __init__(self, table: ModelsTableModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._table = table
        self._picks: list[tuple[QTreeWidgetItem, StarterPick]] = []
        self.tree = QTreeWidget(self)
        self.tree.setAccessibleName("Starter picks")
        self.tree.setColumnCount(4)
        self.tree.setHeaderLabels(["Starter picks", "File", "Fits?", "Why"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(False)
        header = self.tree.header()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(0, 250)
        header.resizeSection(1, 150)
        header.resizeSection(2, 110)
        self.tree.itemClicked.connect(self._on_clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        self._fill()
        for signal in (table.modelReset, table.dataChanged, table.rowsInserted):
            signal.connect(self._update_verdicts)
        self.setMaximumHeight(self.tree.sizeHintForRow(0) * 12 + 30)

    def _fill(self) -> None:
        catalog = _load_catalog_once()
        if catalog is None:
            return
        bold = QFont(self.font())
        bold.setBold(True)
        for section, picks in starter_picks(catalog):
            head = QTreeWidgetItem([section.title, "", "", section.why])
            head.setFont(0, bold)
            head.setFlags(Qt.ItemFlag.ItemIsEnabled)
            self.tree.addTopLevelItem(head)
            for pick in picks:
                size = format_bytes(pick.variant.size_bytes) if pick.variant.size_bytes else "?"
                item = QTreeWidgetItem(
                    [f"   {pick.model.name}", f"{pick.variant.quant} · {size}", "", pick.why]
                )
                item.setData(0, _LOCATION_ROLE, pick.location)
                item.setToolTip(3, pick.why)
                self.tree.addTopLevelItem(item)
                self._picks.append((item, pick))
        self._update_verdicts()

    def _update_verdicts(self, *_: object) -> None:
        for item, pick in self._picks:
            index = self._table.index_of(pick.location)
            plan = self._table.plan_at(index) if index is not None else None
            item.setText(2, plan.verdict_label if plan is not None else "")

    def _on_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        location = item.data(0, _LOCATION_ROLE)
        if isinstance(location, str):
            emit(self.pickChosen, location)
