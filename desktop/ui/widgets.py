"""Small painted widgets shared by the panels: verdict badges, usage bars, banners.

Each paints with the palette (and :mod:`desktop.ui.theme` for colours that carry meaning),
so it reads in light and dark themes alike.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QModelIndex, QPersistentModelIndex, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QFont, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from desktop.core.estimate import Verdict
from desktop.ui import theme

__all__ = [
    "SECONDARY_ROLE",
    "VERDICT_ROLE",
    "Banner",
    "HintLabel",
    "NameDelegate",
    "UsageBar",
    "VerdictBadge",
    "VerdictDelegate",
    "paint_badge",
]

#: Item data role holding a row's Verdict (or None) for the badge delegate.
VERDICT_ROLE = Qt.ItemDataRole.UserRole + 10
#: Secondary text painted after the display text in a fainter colour (the uploader).
SECONDARY_ROLE = Qt.ItemDataRole.UserRole + 11


def paint_badge(
    painter: QPainter,
    rect: QRect | QRectF,
    text: str,
    verdict: Verdict | str | None,
    palette: QPalette,
    font: QFont,
) -> None:
    """A rounded pill with the verdict's colour and its text (colour *and* words)."""
    colors = theme.verdict_colors(verdict, palette)
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    box = QRectF(rect)
    radius = min(box.height() / 2, 9.0)
    painter.setPen(colors.border)
    painter.setBrush(colors.fill)
    painter.drawRoundedRect(box.adjusted(0.5, 0.5, -0.5, -0.5), radius, radius)
    painter.setPen(colors.text)
    bold = QFont(font)
    bold.setBold(True)
    painter.setFont(bold)
    painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)
    painter.restore()


def badge_width(text: str, font: QFont) -> int:
    bold = QFont(font)
    bold.setBold(True)
    return QFontMetrics(bold).horizontalAdvance(text) + 20


class VerdictDelegate(QStyledItemDelegate):
    """Paints the verdict column as a coloured badge with the verdict's words."""

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        # The selection / hover background first, as the style draws it, then the badge.
        style = option.widget.style() if option.widget is not None else None
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, option.widget)
        text = index.data(Qt.ItemDataRole.DisplayRole) or ""
        verdict = index.data(VERDICT_ROLE)
        if not text:
            return
        metrics = QFontMetrics(option.font)
        height = min(option.rect.height() - 6, metrics.height() + 6)
        width = min(option.rect.width() - 8, badge_width(text, option.font))
        rect = QRect(0, 0, width, height)
        rect.moveCenter(option.rect.center())
        rect.moveLeft(option.rect.left() + 4)
        paint_badge(painter, rect, text, verdict, option.palette, option.font)

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        text = index.data(Qt.ItemDataRole.DisplayRole) or ""
        metrics = QFontMetrics(option.font)
        return QSize(badge_width(text, option.font) + 8, metrics.height() + 10)


class NameDelegate(QStyledItemDelegate):
    """The display text (its own font), then SECONDARY_ROLE text in a fainter colour."""

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        secondary = index.data(SECONDARY_ROLE) or ""
        if not secondary:
            super().paint(painter, option, index)
            return
        text = opt.text
        opt.text = ""
        widget = option.widget
        style = widget.style() if widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)
        rect = style.subElementRect(QStyle.SubElement.SE_ItemViewItemText, opt, widget)
        rect = rect.adjusted(3, 0, -3, 0)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        main_color = opt.palette.color(role)
        faded = theme.mix(
            main_color,
            opt.palette.color(
                QPalette.ColorRole.Highlight if selected else QPalette.ColorRole.Base
            ),
            0.4,
        )
        main_metrics = QFontMetrics(opt.font)
        small = QFont(option.font)
        small_metrics = QFontMetrics(small)
        gap = 8
        secondary_width = small_metrics.horizontalAdvance(secondary)
        # The secondary text tells rows apart, so it keeps its room and the name is elided;
        # but a name stays whole while the secondary text keeps a few letters ("Gemma 3 27…"
        # would read as another model), and the secondary text gives way in its middle,
        # keeping its end ("gemma-3-2…Q4_K_M.gguf": the part that tells two files apart).
        needed = main_metrics.horizontalAdvance(text)
        least_secondary = small_metrics.horizontalAdvance("abc…gguf")
        main_room = max(
            rect.width() - gap - secondary_width,
            min(needed, rect.width() - gap - least_secondary),
            rect.width() // 2,
        )
        elided = main_metrics.elidedText(text, Qt.TextElideMode.ElideRight, main_room)
        main_width = main_metrics.horizontalAdvance(elided)
        painter.save()
        painter.setFont(opt.font)
        painter.setPen(main_color)
        align = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        painter.drawText(rect, align, elided)
        painter.setFont(small)
        painter.setPen(faded)
        rest = rect.adjusted(main_width + gap, 0, 0, 0)
        painter.drawText(
            rest,
            align,
            small_metrics.elidedText(secondary, Qt.TextElideMode.ElideMiddle, rest.width()),
        )
        painter.restore()


class VerdictBadge(QWidget):
    """A standalone verdict badge (detail pane header)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._verdict: Verdict | str | None = None
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setAccessibleName("Verdict")

    @property
    def text(self) -> str:
        return self._text

    def set_verdict(self, text: str, verdict: Verdict | str | None) -> None:
        self._text = text
        self._verdict = verdict
        self.setAccessibleDescription(text)
        self.setToolTip(text)
        self.updateGeometry()
        self.update()

    def sizeHint(self) -> QSize:
        metrics = QFontMetrics(self.font())
        return QSize(badge_width(self._text, self.font()) + 8, metrics.height() + 10)

    def paintEvent(self, event: QEvent) -> None:
        if not self._text:
            return
        painter = QPainter(self)
        paint_badge(painter, self.rect(), self._text, self._verdict, self.palette(), self.font())
        painter.end()


class UsageBar(QWidget):
    """A thin horizontal bar: used part of a total (VRAM, RAM), with an optional marker."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._used = 0
        self._total = 0
        self.setMinimumWidth(80)
        self.setFixedHeight(8)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_usage(self, used: int | None, total: int | None) -> None:
        self._used = max(int(used or 0), 0)
        self._total = max(int(total or 0), 0)
        self.update()

    @property
    def fraction(self) -> float:
        return min(self._used / self._total, 1.0) if self._total else 0.0

    def paintEvent(self, event: QEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        box = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        radius = box.height() / 2
        trough = theme.mix(
            pal.color(QPalette.ColorRole.Window), pal.color(QPalette.ColorRole.WindowText), 0.14
        )
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(trough)
        painter.drawRoundedRect(box, radius, radius)
        if self._total:
            fill = pal.color(QPalette.ColorRole.Highlight)
            if self.fraction > 0.9:
                fill = theme.over_capacity_color(pal)
            used = QRectF(box)
            used.setWidth(max(box.width() * self.fraction, radius * 2 if self._used else 0))
            painter.setBrush(fill)
            painter.drawRoundedRect(used, radius, radius)
        painter.end()


class Banner(QFrame):
    """A one-line message strip with an icon: "warning" (amber) or "info" (blue)."""

    def __init__(self, kind: str = "warning", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._kind = kind
        self.setObjectName("banner")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(8)
        self._icon = QLabel(self)
        icon_kind = (
            QStyle.StandardPixmap.SP_MessageBoxWarning
            if kind == "warning"
            else QStyle.StandardPixmap.SP_MessageBoxInformation
        )
        self._icon.setPixmap(self.style().standardIcon(icon_kind).pixmap(18, 18))
        self._icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        layout.addWidget(self._icon)
        layout.addWidget(self.label, 1)
        self.setAccessibleName("Warning" if kind == "warning" else "Information")
        self._apply_colors()

    def set_text(self, text: str) -> None:
        self.label.setText(text)
        self.setAccessibleDescription(text)
        self.setVisible(bool(text))

    def text(self) -> str:
        return self.label.text()

    def _apply_colors(self) -> None:
        _, text, _ = theme.banner_colors(self.palette(), self._kind)
        pal = self.label.palette()
        if pal.color(QPalette.ColorRole.WindowText) != text:
            pal.setColor(QPalette.ColorRole.WindowText, text)
            self.label.setPalette(pal)

    def paintEvent(self, event: QEvent) -> None:
        # Painted, not a style sheet: a style sheet would stop palette changes reaching us.
        background, _, border = theme.banner_colors(self.palette(), self._kind)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(border)
        painter.setBrush(background)
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 6, 6)
        painter.end()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._apply_colors()
        super().changeEvent(event)


class HintLabel(QLabel):
    """Secondary text: the window text faded towards the background, in any theme."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self._apply_colors()

    def _apply_colors(self) -> None:
        faded = theme.secondary_text(QApplication.palette())
        pal = self.palette()
        if pal.color(QPalette.ColorRole.WindowText) == faded:
            return  # already right; our own setPalette() sends a PaletteChange too
        for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
            pal.setColor(group, QPalette.ColorRole.WindowText, faded)
            pal.setColor(group, QPalette.ColorRole.Text, faded)
        self.setPalette(pal)

    def changeEvent(self, event: QEvent) -> None:
        # Qt tells windows about a new app palette; children see it as a PaletteChange.
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._apply_colors()
        super().changeEvent(event)
