"""Stacked memory bars: per device, weights + KV cache + compute + overhead against capacity.

The picture a hobbyist needs: each bar is one device (a GPU's VRAM, the system RAM), its
length is what the device has free for the model, and the coloured parts are what the model
would use there. What does not fit spills past the capacity line in red hatching.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, Qt
from PySide6.QtGui import (
    QBrush,
    QFont,
    QFontMetrics,
    QHelpEvent,
    QPainter,
    QPalette,
    QPen,
    QResizeEvent,
)
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from desktop.core.estimate import DevicePlan
from desktop.core.units import format_bytes
from desktop.ui import theme

__all__ = ["BarData", "MemoryBars", "device_label"]

_BAR_HEIGHT = 18
_ROW_GAP = 14
_LEGEND_GAP = 12


def device_label(plan: DevicePlan) -> str:
    """ "System RAM (CPU)" or "NVIDIA GeForce RTX 4090 (CUDA)"."""
    if plan.kind == "cpu":
        return "System RAM (CPU)"
    return f"{plan.name} ({plan.kind.upper()})"


@dataclass(frozen=True)
class BarData:
    """One device's bar, in bytes."""

    label: str
    layers: int
    parts: tuple[tuple[str, int], ...]  # (segment key, bytes) in SEGMENTS order
    capacity_bytes: int

    @property
    def total_bytes(self) -> int:
        return sum(b for _, b in self.parts)

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.capacity_bytes

    @classmethod
    def from_plan(cls, plan: DevicePlan) -> BarData:
        return cls(
            label=device_label(plan),
            layers=plan.layers,
            parts=(
                ("weights", plan.weights_bytes),
                ("kv", plan.kv_bytes),
                # The logits buffer is a compute-time buffer to a person.
                ("compute", plan.compute_bytes + plan.output_bytes),
                ("overhead", plan.overhead_bytes),
            ),
            capacity_bytes=plan.capacity_bytes,
        )

    def summary(self) -> str:
        text = f"{format_bytes(self.total_bytes)} of {format_bytes(self.capacity_bytes)}"
        if not self.fits:
            text += f" ({format_bytes(self.total_bytes - self.capacity_bytes)} too much)"
        return text

    def tooltip(self) -> str:
        names = dict(theme.SEGMENTS)
        lines = [f"<b>{self.label}</b>"]
        lines += [f"{names[key]}: {format_bytes(size)}" for key, size in self.parts if size]
        lines.append(f"Total: {format_bytes(self.total_bytes)}")
        lines.append(f"Free for the model: {format_bytes(self.capacity_bytes)}")
        if self.layers:
            lines.append(f"Layers here: {self.layers}")
        return "<br>".join(lines)


class MemoryBars(QWidget):
    """The bars of one plan. ``set_plans(plan.devices)``; an empty list shows a hint."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._bars: list[BarData] = []
        self._placeholder = "Select a model to see where its memory goes."
        policy = QSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        policy.setHeightForWidth(True)  # the legend wraps on narrow panes
        self.setSizePolicy(policy)
        self.setAccessibleName("Memory per device")
        self.setMouseTracking(True)

    @property
    def bars(self) -> list[BarData]:
        return list(self._bars)

    def set_plans(self, devices: Sequence[DevicePlan]) -> None:
        # A GPU the plan does not use still shows (empty), so the picture stays put.
        self._bars = [BarData.from_plan(d) for d in devices]
        self.setAccessibleDescription(
            "; ".join(f"{b.label}: {b.summary()}" for b in self._bars) or self._placeholder
        )
        self.updateGeometry()
        self.update()

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        if not self._bars:
            self.update()

    # ------------------------------------------------------------------ geometry

    def _line_height(self) -> int:
        return QFontMetrics(self.font()).height()

    def _row_height(self) -> int:
        return self._line_height() + 4 + _BAR_HEIGHT

    def _legend_items(self) -> list[tuple[str, str]]:
        """(segment key or "over", label) of the legend entries worth showing."""
        present = {key for bar in self._bars for key, size in bar.parts if size > 0}
        items = [(key, label) for key, label in theme.SEGMENTS if key in present]
        if any(not b.fits for b in self._bars):
            items.append(("over", "Does not fit"))
        return items

    def _legend_layout(self, width: int) -> list[tuple[float, int, str, str]]:
        """(x, line, key, label) per legend entry, wrapping at ``width``."""
        metrics = QFontMetrics(self.font())
        swatch = metrics.height() * 0.7
        x, line = 0.0, 0
        placed = []
        for key, label in self._legend_items():
            item_width = swatch + 5 + metrics.horizontalAdvance(label)
            if x > 0 and x + item_width > width:
                x, line = 0.0, line + 1
            placed.append((x, line, key, label))
            x += item_width + 16
        return placed

    def _legend_height(self, width: int) -> int:
        placed = self._legend_layout(width)
        lines = (max(p[1] for p in placed) + 1) if placed else 1
        return lines * (self._line_height() + 4)

    def _height_for(self, width: int) -> int:
        if not self._bars:
            return self._line_height() * 3
        rows = len(self._bars)
        height = rows * self._row_height() + (rows - 1) * _ROW_GAP
        return height + _LEGEND_GAP + self._legend_height(width) + 2

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._height_for(width)

    def sizeHint(self) -> QSize:
        width = self.width() if self.width() > 100 else 360
        return QSize(360, self._height_for(width))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self._height_for(event.size().width()) != self._height_for(event.oldSize().width()):
            self.updateGeometry()

    def minimumSizeHint(self) -> QSize:
        return QSize(220, self.sizeHint().height())

    def _row_rect(self, i: int) -> QRectF:
        top = i * (self._row_height() + _ROW_GAP)
        return QRectF(0, top, self.width(), self._row_height())

    # ------------------------------------------------------------------ painting

    def paintEvent(self, event: QEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        text_color = pal.color(QPalette.ColorRole.WindowText)
        hint_color = theme.secondary_text(pal)
        if not self._bars:
            painter.setPen(hint_color)
            painter.drawText(QRectF(self.rect()), Qt.AlignmentFlag.AlignCenter, self._placeholder)
            painter.end()
            return
        metrics = QFontMetrics(self.font())
        bold = QFont(self.font())
        bold.setBold(True)
        for i, bar in enumerate(self._bars):
            row = self._row_rect(i)
            label_rect = QRectF(row.left(), row.top(), row.width(), metrics.height())
            summary = bar.summary()
            if bar.layers:
                summary = f"{bar.layers} layers · {summary}"
            summary_width = metrics.horizontalAdvance(summary) + 4
            painter.setPen(text_color if bar.fits else theme.over_capacity_color(pal))
            painter.drawText(label_rect, Qt.AlignmentFlag.AlignRight, summary)
            painter.setPen(text_color)
            painter.setFont(bold)
            name_rect = label_rect.adjusted(0, 0, -summary_width - 8, 0)
            elided = QFontMetrics(bold).elidedText(
                bar.label, Qt.TextElideMode.ElideRight, int(name_rect.width())
            )
            painter.drawText(name_rect, Qt.AlignmentFlag.AlignLeft, elided)
            painter.setFont(self.font())
            bar_rect = QRectF(
                row.left(), row.top() + metrics.height() + 4, row.width() - 1, _BAR_HEIGHT
            )
            self._paint_bar(painter, bar, bar_rect, pal)
        self._paint_legend(painter, pal)
        painter.end()

    def _paint_bar(self, painter: QPainter, bar: BarData, rect: QRectF, pal: QPalette) -> None:
        scale = max(bar.capacity_bytes, bar.total_bytes, 1)
        radius = 4.0
        trough = theme.mix(
            pal.color(QPalette.ColorRole.Window), pal.color(QPalette.ColorRole.WindowText), 0.10
        )
        edge = theme.mix(
            pal.color(QPalette.ColorRole.Window), pal.color(QPalette.ColorRole.WindowText), 0.30
        )
        capacity_width = rect.width() * bar.capacity_bytes / scale
        capacity_rect = QRectF(rect.left(), rect.top(), capacity_width, rect.height())
        painter.setPen(QPen(edge, 1))
        painter.setBrush(trough)
        painter.drawRoundedRect(capacity_rect, radius, radius)

        # Segments, clipped to a rounded bar so the ends stay round.
        painter.save()
        x = rect.left()
        for key, size in bar.parts:
            if size <= 0:
                continue
            width = rect.width() * size / scale
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(theme.segment_color(key, pal))
            painter.drawRect(QRectF(x, rect.top() + 1, width, rect.height() - 2))
            x += width
        painter.restore()

        if not bar.fits:
            over = QRectF(
                rect.left() + capacity_width,
                rect.top(),
                rect.width() - capacity_width,
                rect.height(),
            )
            red = theme.over_capacity_color(pal)
            painter.setPen(Qt.PenStyle.NoPen)
            hatch = QBrush(red, Qt.BrushStyle.BDiagPattern)
            painter.setBrush(hatch)
            painter.drawRect(over)
            painter.setPen(QPen(red, 2))
            painter.drawLine(
                QPointF(over.left(), rect.top() - 3), QPointF(over.left(), rect.bottom() + 3)
            )

    def _paint_legend(self, painter: QPainter, pal: QPalette) -> None:
        metrics = QFontMetrics(self.font())
        top = len(self._bars) * self._row_height() + (len(self._bars) - 1) * _ROW_GAP
        top += _LEGEND_GAP
        swatch = metrics.height() * 0.7
        line_height = self._line_height() + 4
        red = theme.over_capacity_color(pal)
        for x, line, key, label in self._legend_layout(self.width()):
            y = top + line * line_height
            box = QRectF(x, y + (metrics.height() - swatch) / 2, swatch, swatch)
            if key == "over":
                painter.setPen(QPen(red, 1))
                painter.setBrush(QBrush(red, Qt.BrushStyle.BDiagPattern))
                painter.drawRect(box)
                painter.setPen(red)
            else:
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(theme.segment_color(key, pal))
                painter.drawRoundedRect(box, 2, 2)
                painter.setPen(pal.color(QPalette.ColorRole.WindowText))
            painter.drawText(QPointF(x + swatch + 5, y + metrics.ascent()), label)

    # ------------------------------------------------------------------ tooltips

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            for i, bar in enumerate(self._bars):
                if self._row_rect(i).contains(QPointF(event.pos())):
                    QToolTip.showText(event.globalPos(), bar.tooltip(), self)
                    return True
            QToolTip.hideText()
            event.ignore()
            return True
        return super().event(event)
