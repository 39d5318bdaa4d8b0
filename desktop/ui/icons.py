"""Small line icons drawn with QPainter in the palette's text colour.

Qt's standard icons are black in some styles (Fusion without an icon theme), which
disappears on a dark window. These glyphs are painted at the moment they are shown, by a
:class:`QIconEngine`, in the current application palette: they follow light and dark themes
with no refresh code, and cost nothing to ship.

    button.setIcon(glyph_icon("download"))
"""

from __future__ import annotations

import math
from collections.abc import Callable

from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QIcon,
    QIconEngine,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPalette,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import QApplication, QWidget

from desktop.ui import theme

__all__ = ["GLYPHS", "GlyphLabel", "glyph_icon"]

# Each glyph draws in a 16 x 16 box with the painter's pen already set.
_Draw = Callable[[QPainter], None]


def _cpu(p: QPainter) -> None:
    p.drawRoundedRect(QRectF(3.5, 3.5, 9, 9), 1.5, 1.5)
    p.drawRect(QRectF(6, 6, 4, 4))
    for x in (5.5, 8, 10.5):
        p.drawLine(QPointF(x, 1), QPointF(x, 3.5))
        p.drawLine(QPointF(x, 12.5), QPointF(x, 15))
        p.drawLine(QPointF(1, x), QPointF(3.5, x))
        p.drawLine(QPointF(12.5, x), QPointF(15, x))


def _ram(p: QPainter) -> None:
    p.drawRoundedRect(QRectF(1, 4.5, 14, 7), 1, 1)
    for x in (3, 6.5, 10):
        p.drawRect(QRectF(x, 6.5, 2.5, 3))
    for x in (2.5, 5, 7.5, 10, 12.5):
        p.drawLine(QPointF(x + 0.5, 11.5), QPointF(x + 0.5, 13.5))


def _gpu(p: QPainter) -> None:
    p.drawRoundedRect(QRectF(1, 4, 14, 8), 1.5, 1.5)
    p.drawEllipse(QPointF(6, 8), 2.3, 2.3)
    p.drawLine(QPointF(10, 6.5), QPointF(13, 6.5))
    p.drawLine(QPointF(10, 9.5), QPointF(13, 9.5))
    p.drawLine(QPointF(3, 12), QPointF(3, 14.5))
    p.drawLine(QPointF(3, 14.5), QPointF(9, 14.5))


def _engine(p: QPainter) -> None:
    p.drawEllipse(QPointF(8, 8), 6.5, 6.5)
    _triangle(p, QRectF(6.3, 5, 4.5, 6))


def _triangle(p: QPainter, box: QRectF) -> None:
    path = QPainterPath()
    path.moveTo(box.left(), box.top())
    path.lineTo(box.right(), box.center().y())
    path.lineTo(box.left(), box.bottom())
    path.closeSubpath()
    brush = p.brush()
    p.setBrush(p.pen().color())
    p.drawPath(path)
    p.setBrush(brush)


def _play(p: QPainter) -> None:
    _triangle(p, QRectF(4, 2.5, 9, 11))


def _download(p: QPainter) -> None:
    p.drawLine(QPointF(8, 1.5), QPointF(8, 10))
    p.drawLine(QPointF(4, 6.5), QPointF(8, 10.5))
    p.drawLine(QPointF(12, 6.5), QPointF(8, 10.5))
    p.drawLine(QPointF(2.5, 14), QPointF(13.5, 14))


def _back(p: QPainter) -> None:
    p.drawLine(QPointF(10, 3), QPointF(5, 8))
    p.drawLine(QPointF(5, 8), QPointF(10, 13))


def _gear(p: QPainter) -> None:
    p.drawEllipse(QPointF(8, 8), 2.2, 2.2)
    path = QPainterPath()
    teeth = 8
    for i in range(teeth * 2):
        angle = math.pi * i / teeth
        radius = 6.8 if i % 2 == 0 else 5.0
        # Each tooth is flat-topped: two points per step.
        for offset in (-0.22, 0.22):
            a = angle + offset
            point = QPointF(8 + radius * math.cos(a), 8 + radius * math.sin(a))
            if not path.elementCount():
                path.moveTo(point)
            else:
                path.lineTo(point)
    path.closeSubpath()
    p.drawPath(path)


def _chat(p: QPainter) -> None:
    path = QPainterPath()
    path.addRoundedRect(QRectF(1.5, 2, 13, 9), 2.5, 2.5)
    p.drawPath(path)
    p.drawLine(QPointF(4.5, 11), QPointF(4, 14.5))
    p.drawLine(QPointF(4, 14.5), QPointF(8, 11))


def _monitor(p: QPainter) -> None:
    p.drawLine(QPointF(1.5, 14.5), QPointF(14.5, 14.5))
    p.drawLine(QPointF(1.5, 1.5), QPointF(1.5, 14.5))
    path = QPainterPath(QPointF(3, 11))
    for x, y in ((6, 7), (8.5, 9.5), (11, 4), (14, 6)):
        path.lineTo(QPointF(x, y))
    p.drawPath(path)


def _models(p: QPainter) -> None:
    for y in (3, 8, 13):
        p.drawRect(QRectF(1.5, y - 1.5, 3, 3))
        p.drawLine(QPointF(6.5, y), QPointF(14.5, y))


def _search(p: QPainter) -> None:
    p.drawEllipse(QPointF(6.5, 6.5), 4.5, 4.5)
    p.drawLine(QPointF(10, 10), QPointF(14.5, 14.5))


def _computer(p: QPainter) -> None:
    p.drawRoundedRect(QRectF(1.5, 2, 13, 9), 1, 1)
    p.drawLine(QPointF(8, 11), QPointF(8, 13.5))
    p.drawLine(QPointF(4.5, 14), QPointF(11.5, 14))


GLYPHS: dict[str, _Draw] = {
    "cpu": _cpu,
    "ram": _ram,
    "gpu": _gpu,
    "engine": _engine,
    "play": _play,
    "download": _download,
    "back": _back,
    "settings": _gear,
    "chat": _chat,
    "monitor": _monitor,
    "models": _models,
    "search": _search,
    "computer": _computer,
}


def _color(mode: QIcon.Mode, role: QPalette.ColorRole) -> QColor:
    palette = QApplication.palette()
    if mode == QIcon.Mode.Disabled:
        return theme.mix(palette.color(role), palette.color(QPalette.ColorRole.Window), 0.55)
    if mode == QIcon.Mode.Selected:
        return palette.color(QPalette.ColorRole.HighlightedText)
    return palette.color(role)


class GlyphIconEngine(QIconEngine):
    """Paints one glyph in the application palette's colour for the icon's mode."""

    def __init__(self, name: str, role: QPalette.ColorRole) -> None:
        super().__init__()
        self._name = name
        self._role = role

    def paint(self, painter: QPainter, rect: QRect, mode: QIcon.Mode, state: QIcon.State) -> None:
        side = min(rect.width(), rect.height())
        if side <= 0:
            return
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.translate(
            rect.x() + (rect.width() - side) / 2, rect.y() + (rect.height() - side) / 2
        )
        painter.scale(side / 16, side / 16)
        pen = QPen(_color(mode, self._role), 1.3)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        GLYPHS[self._name](painter)
        painter.restore()

    def pixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State) -> QPixmap:
        pixmap = QPixmap(size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        self.paint(painter, QRect(0, 0, size.width(), size.height()), mode, state)
        painter.end()
        return pixmap

    def clone(self) -> QIconEngine:
        return GlyphIconEngine(self._name, self._role)


def glyph_icon(name: str, role: QPalette.ColorRole = QPalette.ColorRole.WindowText) -> QIcon:
    """An icon that draws ``name`` (a key of GLYPHS) in the palette colour ``role``."""
    if name not in GLYPHS:
        raise KeyError(name)
    return QIcon(GlyphIconEngine(name, role))


class GlyphLabel(QWidget):
    """A glyph painted straight from the palette (follows theme changes without a refresh)."""

    def __init__(
        self,
        name: str,
        size: int = 22,
        parent: QWidget | None = None,
        role: QPalette.ColorRole = QPalette.ColorRole.WindowText,
    ) -> None:
        super().__init__(parent)
        self._icon = glyph_icon(name, role)
        self._size = size
        self.setFixedSize(size, size)

    def sizeHint(self) -> QSize:
        return QSize(self._size, self._size)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        self._icon.paint(painter, self.rect())
        painter.end()
