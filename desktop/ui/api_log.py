"""The request log: one row per request from another app, live as it waits, runs and ends.

Columns: time, client address, endpoint, status (waiting, running, 200, or the error's code
with its sentence as a tooltip), prompt and generated tokens, time to first token and
tokens per second, as the worker measured them (protocol ``ApiFinished``). The newest
request is on top; the oldest rows go past :data:`MAX_ROWS`.

:func:`monitor_page` lays out the Monitor tab: the serve bar, the live plots and this log.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.engine import protocol as p
from desktop.services.api_serving import ApiServing

__all__ = ["COLUMNS", "MAX_ROWS", "ApiLog", "monitor_page"]

MAX_ROWS = 500
COLUMNS = (
    "Time",
    "Client",
    "Endpoint",
    "Status",
    "Prompt tokens",
    "Generated",
    "First token",
    "Tokens/s",
)
_NUMERIC = frozenset({4, 5, 6, 7})
_WIDTHS = (  # the widest text each column usually holds
    "00:00:00",
    "127.0.0.1:65535",
    "/v1/chat/completions",
    "waiting (10 ahead)",
    "Prompt tokens",
    "Generated",
    "First token",
    "Tokens/s",
)


class ApiLog(QTableWidget):
    """Other apps' requests, newest first (handed the :class:`ApiServing` it follows)."""

    def __init__(self, serving: ApiServing, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setAccessibleName("Requests from other apps")
        self.setHorizontalHeaderLabels(list(COLUMNS))
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        # Fixed widths (a person may drag them): sizing to contents measures every row at
        # each change, which a long log would pay for on every token's row update.
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        metrics = self.fontMetrics()
        for column, sample in enumerate(_WIDTHS):
            header.resizeSection(column, metrics.horizontalAdvance(sample) + 24)
        self.setMinimumHeight(150)
        first_token = self.horizontalHeaderItem(6)
        if first_token is not None:
            first_token.setToolTip("From the request's arrival, its wait in the queue included")
        self._rows: dict[str, QTableWidgetItem] = {}  # request id -> its row's first item
        serving.requestArrived.connect(self._on_arrived)
        serving.requestStarted.connect(self._on_started)
        serving.requestFinished.connect(self._on_finished)

    def row_texts(self, row: int) -> list[str]:
        """The texts of one row, as shown (for tests and screenshots)."""
        return [self._text(row, column) for column in range(self.columnCount())]

    # ------------------------------------------------------------------ events

    def _on_arrived(self, request: p.ApiRequest) -> None:
        waiting = f"waiting ({request.waiting} ahead)" if request.waiting else "waiting"
        self._add(request.id, request.client, request.endpoint, waiting)

    def _on_started(self, started: p.ApiStarted) -> None:
        first = self._rows.get(started.id)
        if first is not None:
            self._set(first.row(), 3, "running")

    def _on_finished(self, done: p.ApiFinished) -> None:
        first = self._rows.pop(done.id, None)
        if first is None:  # refused at once (bad request, wrong key): it never waited
            self._add("", done.client, done.endpoint, "")
            row = 0
        else:
            row = first.row()
        status = str(done.status) if done.status != 499 else "client left"
        self._set(row, 3, status, tooltip=done.message)
        if done.status in (200, 499):
            self._set(row, 4, str(done.prompt_tokens))
            self._set(row, 5, str(done.generated_tokens))
            self._set(row, 6, _seconds(done.ttft_s) if done.ttft_s else "")
            self._set(row, 7, f"{done.gen_tokens_per_s:.1f}" if done.gen_tokens_per_s else "")

    # ------------------------------------------------------------------ rows

    def _add(self, request_id: str, client: str, endpoint: str, status: str) -> None:
        self.insertRow(0)
        self._set(0, 0, time.strftime("%H:%M:%S"))
        self._set(0, 1, client)
        self._set(0, 2, endpoint)
        self._set(0, 3, status)
        first = self.item(0, 0)
        if request_id and first is not None:
            self._rows[request_id] = first
        while self.rowCount() > MAX_ROWS:
            last = self.item(self.rowCount() - 1, 0)
            self._rows = {k: v for k, v in self._rows.items() if v is not last}
            self.removeRow(self.rowCount() - 1)

    def _set(self, row: int, column: int, text: str, *, tooltip: str = "") -> None:
        item = self.item(row, column)
        if item is None:
            item = QTableWidgetItem()
            if column in _NUMERIC:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.setItem(row, column, item)
        item.setText(text)
        if tooltip:
            item.setToolTip(tooltip)

    def _text(self, row: int, column: int) -> str:
        item = self.item(row, column)
        return item.text() if item is not None else ""


def _seconds(value: float) -> str:
    """A time to first token (waiting in the queue included): ms below 10 s."""
    return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"


def monitor_page(serve_bar: QWidget, plots: QWidget, log: QWidget) -> QWidget:
    """The Monitor tab: the serve bar on top, the plots, and the request log below them."""
    page = QWidget()
    page.setAccessibleName("Monitor page")
    splitter = QSplitter(Qt.Orientation.Vertical, page)
    splitter.setChildrenCollapsible(False)
    splitter.addWidget(plots)
    splitter.addWidget(log)
    splitter.setStretchFactor(0, 4)
    splitter.setStretchFactor(1, 1)
    layout = QVBoxLayout(page)
    layout.setContentsMargins(0, 8, 0, 0)
    layout.setSpacing(6)
    layout.addWidget(serve_bar)
    layout.addWidget(splitter, 1)
    return page
