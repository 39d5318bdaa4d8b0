"""The Downloads tab: one row per download with its progress, speed, time left and checksum.

:class:`DownloadsPanel` is handed a :class:`~desktop.services.download_manager.DownloadManager`
and follows its signals; its buttons call the manager (cancel, resume, remove). Each row
says in words where the download stands, including the checksum: "verifying…" while the last
bytes are checked, "verified" once the file is in place, "checksum mismatch" when the bytes
arrived damaged (the partial file is deleted, Retry downloads it again).
"""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import QEvent, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QFont, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.downloads import Progress
from desktop.core.units import format_bytes
from desktop.services.download_manager import DownloadItem, DownloadManager
from desktop.ui import theme
from desktop.ui.icons import GlyphLabel
from desktop.ui.widgets import HintLabel

__all__ = ["DownloadRow", "DownloadsPanel", "format_time_left", "status_text"]


def format_time_left(seconds: float | None) -> str:
    """Time left as a person says it: "18 s left", "3 min left"; "" when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    seconds = round(seconds)
    if seconds < 60:
        return f"{max(seconds, 1)} s left"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min left"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min left" if minutes else f"{hours} h left"


def _amount(progress: Progress | None, item: DownloadItem) -> str:
    if progress is None:
        return format_bytes(item.expected_size) if item.expected_size else ""
    return f"{format_bytes(progress.bytes_done)} of {format_bytes(progress.bytes_total)}"


def _short_path(path: Path) -> str:
    """The path with the home folder as "~" (shorter, and the same on every machine)."""
    try:
        return str(Path("~") / path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def status_text(item: DownloadItem) -> str:
    """The row's status line for a person, e.g. "48 MB of 253 MB · 12 MB/s · 18 s left"."""
    progress = item.progress
    parts_note = ""
    if progress is not None and progress.parts > 1:
        parts_note = f" · part {progress.part_index + 1} of {progress.parts}"
    state = item.state
    if state == "queued":
        size = _amount(None, item)
        return "Queued: starts when the download before it ends" + (f" · {size}" if size else "")
    if state == "checking":
        percent = round(100 * progress.fraction) if progress else 0
        return f"Checking the part downloaded earlier… {percent}%"
    if state == "downloading":
        if progress is None:
            return "Connecting…"
        bits = [_amount(progress, item)]
        if progress.rate_bytes_per_s:
            bits.append(f"{format_bytes(round(progress.rate_bytes_per_s))}/s")
        left = format_time_left(progress.eta_s)
        if left:
            bits.append(left)
        return " · ".join(bits) + parts_note
    if state == "verifying":
        return f"{_amount(progress, item)} · checking the checksum…"
    if state == "verified":
        return f"Downloaded and verified · {_short_path(item.path or item.dest_dir)}"
    if state == "cancelled":
        kept = f" · {_amount(progress, item)} kept" if progress is not None else ""
        return f"Paused{kept}. Resume continues where it stopped."
    return item.message or "The download failed."


#: Checksum state shown in the small label at the row's right: (text, colour kind).
_CHECKSUM = {
    "checking": ("Checksum: re-reading…", "neutral"),
    "verifying": ("Checksum: verifying…", "neutral"),
    "verified": ("Checksum verified", "good"),
    "checksum_mismatch": ("Checksum mismatch", "bad"),
}


def _checksum_colors(kind: str, palette: QPalette) -> tuple[str, str]:
    """(text colour, border colour) of the checksum label."""
    dark = theme.is_dark(palette)
    if kind == "good":
        return ("#81c784", "#2e7d32") if dark else ("#1b5e20", "#66bb6a")
    if kind == "bad":
        return ("#ef9a9a", "#c62828") if dark else ("#b71c1c", "#e57373")
    faded = theme.secondary_text(palette).name()
    return faded, palette.color(QPalette.ColorRole.Mid).name()


class DownloadRow(QFrame):
    """One download: name, repository, progress bar, status line, checksum, buttons.

    It shows a :class:`DownloadItem`; the panel calls :meth:`show_item` with each update.
    """

    def __init__(self, manager: DownloadManager, item: DownloadItem, parent: QWidget | None = None):
        super().__init__(parent)
        self._manager = manager
        self._item = item
        self.setObjectName("downloadRow")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAccessibleName(f"Download {item.name}")

        icon = GlyphLabel("download", 22, self)
        self.name_label = QLabel(item.name, self)
        bold = QFont(self.name_label.font())
        bold.setBold(True)
        self.name_label.setFont(bold)
        self.name_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.repo_label = HintLabel(item.repo_id, self)
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(8)
        self.bar.setAccessibleName(f"Progress of {item.name}")
        self.percent_label = HintLabel("", self)
        self.percent_label.setMinimumWidth(40)
        self.percent_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.status_label = QLabel(self)
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status_label.setAccessibleName(f"Status of {item.name}")
        self.checksum_label = QLabel(self)
        self.checksum_label.setAccessibleName(f"Checksum of {item.name}")
        self.checksum_label.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setAccessibleName(f"Cancel {item.name}")
        self.cancel_button.clicked.connect(self._cancel)
        self.resume_button = QPushButton("Resume", self)
        self.resume_button.setAccessibleName(f"Resume {item.name}")
        self.resume_button.clicked.connect(self._resume)
        self.show_button = QPushButton("Show in folder", self)
        self.show_button.setAccessibleName(f"Show {item.name} in its folder")
        self.show_button.clicked.connect(self._show_in_folder)
        self.remove_button = QToolButton(self)
        self.remove_button.setText("✕")
        self.remove_button.setAutoRaise(True)
        self.remove_button.setToolTip("Remove from this list (the file stays)")
        self.remove_button.setAccessibleName(f"Remove {item.name} from the list")
        self.remove_button.clicked.connect(lambda: self._manager.remove(self._item.id))

        top = QHBoxLayout()
        top.setSpacing(8)
        top.addWidget(self.name_label)
        top.addWidget(self.repo_label)
        top.addStretch(1)
        top.addWidget(self.checksum_label)
        buttons = QHBoxLayout()
        buttons.setSpacing(6)
        for button in (self.cancel_button, self.resume_button, self.show_button):
            buttons.addWidget(button)
        buttons.addWidget(self.remove_button)
        bar_line = QHBoxLayout()
        bar_line.addWidget(self.bar, 1)
        bar_line.addWidget(self.percent_label)

        grid = QGridLayout(self)
        grid.setContentsMargins(12, 10, 12, 10)
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(4)
        grid.addWidget(icon, 0, 0, 3, 1, Qt.AlignmentFlag.AlignTop)
        grid.addLayout(top, 0, 1)
        grid.addLayout(buttons, 0, 2, 2, 1, Qt.AlignmentFlag.AlignTop)
        grid.addLayout(bar_line, 1, 1)
        grid.addWidget(self.status_label, 2, 1, 1, 2)
        grid.setColumnStretch(1, 1)
        self.show_item(item)

    @property
    def item(self) -> DownloadItem:
        return self._item

    def show_item(self, item: DownloadItem) -> None:
        """Show the newest state of the download."""
        self._item = item
        progress = item.progress
        fraction = progress.fraction if progress is not None else 0.0
        if item.state == "verified":
            fraction = 1.0
        self.bar.setValue(round(1000 * fraction))
        self.bar.setVisible(item.state not in ("queued", "verified", "checksum_mismatch", "failed"))
        self.percent_label.setVisible(self.bar.isVisibleTo(self))
        self.percent_label.setText(f"{100 * fraction:.0f}%" if progress is not None else "")
        text = status_text(item)
        self.status_label.setText(text)
        self.setAccessibleDescription(text)
        self._show_checksum()
        self.cancel_button.setVisible(item.active)
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("Cancel")
        self.resume_button.setVisible(item.resumable)
        self.resume_button.setText("Retry" if item.state == "checksum_mismatch" else "Resume")
        self.show_button.setVisible(item.state == "verified")
        self.remove_button.setVisible(not item.active)
        failed = item.state in ("failed", "checksum_mismatch")
        self._color_status(failed)

    def _show_checksum(self) -> None:
        text, kind = _CHECKSUM.get(self._item.state, ("", "neutral"))
        self.checksum_label.setVisible(bool(text))
        self.checksum_label.setText(text)
        color, border = _checksum_colors(kind, QApplication.palette())
        self.checksum_label.setStyleSheet(
            f"QLabel {{ color: {color}; border: 1px solid {border}; border-radius: 8px;"
            " padding: 1px 8px; }"
        )

    def _color_status(self, failed: bool) -> None:
        pal = self.status_label.palette()
        base = QApplication.palette()
        color = (
            theme.over_capacity_color(base) if failed else base.color(QPalette.ColorRole.WindowText)
        )
        pal.setColor(QPalette.ColorRole.WindowText, color)
        self.status_label.setPalette(pal)

    def _cancel(self) -> None:
        if self._manager.cancel(self._item.id) and self._item.state != "cancelled":
            # A running download stops at its next chunk; say so until it has.
            self.cancel_button.setEnabled(False)
            self.cancel_button.setText("Cancelling…")

    def _resume(self) -> None:
        self._manager.resume(self._item.id)

    def _show_in_folder(self) -> None:
        folder = self._item.path.parent if self._item.path is not None else self._item.dest_dir
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(folder))))

    def changeEvent(self, event: QEvent) -> None:
        # Qt 6 tells widgets of a new application palette with PaletteChange.
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._show_checksum()
            self._color_status(self._item.state in ("failed", "checksum_mismatch"))
        super().changeEvent(event)


class DownloadsPanel(QWidget):
    """Every download of this session, newest last, following the manager's signals."""

    def __init__(self, manager: DownloadManager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._manager = manager
        self._rows: dict[str, DownloadRow] = {}
        self.setAccessibleName("Downloads")
        # A minimum of its own: rows coming and going never resize the window around it.
        self.setMinimumSize(480, 260)

        title = QLabel("Downloads", self)
        font = QFont(title.font())
        font.setPointSizeF(font.pointSizeF() * 1.15)
        font.setBold(True)
        title.setFont(font)
        self.count_label = HintLabel("", self)
        self.clear_button = QPushButton("Clear finished", self)
        self.clear_button.setAccessibleName("Clear finished downloads")
        self.clear_button.clicked.connect(manager.clear_finished)
        header = QHBoxLayout()
        header.addWidget(title)
        header.addWidget(self.count_label)
        header.addStretch(1)
        header.addWidget(self.clear_button)

        self._list = QWidget(self)
        self._list_layout = QVBoxLayout(self._list)
        self._list_layout.setContentsMargins(0, 0, 0, 0)
        self._list_layout.setSpacing(8)
        self._list_layout.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self._list)
        scroll.setAccessibleName("Download list")

        self.empty = _EmptyDownloads(self)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.empty)
        self.stack.addWidget(scroll)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 10, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.stack, 1)

        manager.added.connect(self._on_added)
        manager.stateChanged.connect(self._on_changed)
        manager.progress.connect(self._on_changed)
        manager.finished.connect(self._on_changed)
        manager.failed.connect(self._on_changed)
        manager.cancelled.connect(self._on_changed)
        manager.removed.connect(self._on_removed)
        for item in manager.items():
            self._on_added(item.id)
        self._update_header()

    def row(self, download_id: str) -> DownloadRow:
        """The row of a download (for tests and the window's "show me" actions)."""
        return self._rows[download_id]

    def _on_added(self, download_id: str) -> None:
        row = DownloadRow(self._manager, self._manager.item(download_id), self._list)
        self._rows[download_id] = row
        self._list_layout.insertWidget(self._list_layout.count() - 1, row)
        self._update_header()

    def _on_changed(self, download_id: str, *_args: object) -> None:
        row = self._rows.get(download_id)
        if row is not None:
            row.show_item(self._manager.item(download_id))
            self._update_header()

    def _on_removed(self, download_id: str) -> None:
        row = self._rows.pop(download_id, None)
        if row is not None:
            self._list_layout.removeWidget(row)
            row.deleteLater()
        self._update_header()

    def _update_header(self) -> None:
        items = [row.item for row in self._rows.values()]
        queued = sum(item.state == "queued" for item in items)
        active = sum(item.active for item in items) - queued
        done = sum(item.state == "verified" for item in items)
        bits = []
        if active:
            bits.append(f"{active} downloading")
        if queued:
            bits.append(f"{queued} queued")
        if done:
            bits.append(f"{done} finished")
        self.count_label.setText(" · ".join(bits))
        self.clear_button.setEnabled(done > 0)
        self.stack.setCurrentIndex(1 if self._rows else 0)


class _EmptyDownloads(QWidget):
    """What the tab says before anything was downloaded."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("No downloads")
        picture = GlyphLabel("download", 44, self, QPalette.ColorRole.PlaceholderText)
        heading = QLabel("No downloads", self)
        font = QFont(heading.font())
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        heading.setFont(font)
        heading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        body = HintLabel(
            "Files you download from the Models tab show their progress here. A download "
            "that stops can be resumed; every file is checked against its checksum.",
            self,
        )
        body.setWordWrap(True)
        body.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # A fixed width lets the wrapped text report its true height: with only a maximum
        # width and an alignment flag the layout gave it one line's height, and the tab
        # showed the middle of three lines, cut at the top and the bottom.
        body.setFixedWidth(440)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(picture, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(heading)
        body_row = QHBoxLayout()
        body_row.addStretch(1)
        body_row.addWidget(body)
        body_row.addStretch(1)
        layout.addLayout(body_row)
        layout.addStretch(2)
