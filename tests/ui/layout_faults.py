"""What a person would see cut off in a window: the checks the window-size tests share.

:func:`layout_faults` walks every visible widget of a window and names each one whose content
does not fit the room it was given:

* a label whose text needs more height (wrapped) or width (one line) than it has;
* a button narrower than its text and icon;
* a widget reaching past the visible part of its parent (cut at an edge), unless it scrolls;
* a scroll area showing a horizontal scroll bar (a pane that only scrolls up and down);
* a widget smaller than its own layout needs (its parts overlap).

Each fault is one line naming the widget (its accessible name, or its class and text) and what
was cut, so a failing test says where to look.
"""

from __future__ import annotations

from PySide6.QtCore import QRect
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractScrollArea,
    QLabel,
    QScrollArea,
    QWidget,
)

__all__ = ["layout_faults"]


def _describe(widget: QWidget) -> str:
    name = widget.accessibleName()
    text = ""
    if isinstance(widget, QLabel | QAbstractButton):
        text = widget.text()[:50]
    return f"{type(widget).__name__} {name or text!r}"


def _inside_scroll_area(widget: QWidget) -> bool:
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QAbstractScrollArea):
            return True
        parent = parent.parentWidget()
    return False


def _label_fault(label: QLabel) -> str | None:
    if not label.text() or (label.pixmap() is not None and not label.pixmap().isNull()):
        return None
    if label.wordWrap():
        needed = label.heightForWidth(label.width())
        if needed > label.height() + 1:
            return f"needs {needed} px of height, has {label.height()}"
        return None
    needed_width = label.sizeHint().width()
    if label.textFormat().name == "RichText" or "<" in label.text():
        return None  # rich text's width hint is its unwrapped width: not a measure of a cut
    if needed_width > label.width() + 1:
        return f"needs {needed_width} px of width, has {label.width()}"
    if label.sizeHint().height() > label.height() + 1:
        return f"needs {label.sizeHint().height()} px of height, has {label.height()}"
    return None


def layout_faults(window: QWidget) -> list[str]:
    """One line per widget that is cut off (see the module docstring); [] when none is."""
    faults: list[str] = []
    for widget in window.findChildren(QWidget):
        if not widget.isVisible() or widget.width() <= 0 or widget.height() <= 0:
            continue
        problem: str | None = None
        if isinstance(widget, QLabel):
            problem = _label_fault(widget)
        elif isinstance(widget, QAbstractButton) and widget.text():
            needed = widget.sizeHint().width()
            if needed > widget.width() + 1:
                problem = f"needs {needed} px of width, has {widget.width()}"
        layout = widget.layout()
        if problem is None and layout is not None and not widget.isWindow():
            # Smaller than its own layout needs: its parts overlap or are cut (a minimum
            # size set by hand below what the layout holds lets a splitter squeeze it).
            need = layout.totalMinimumSize()
            if widget.height() < need.height() - 1 or widget.width() < need.width() - 1:
                problem = (
                    f"is {widget.width()}x{widget.height()} but its layout needs "
                    f"{need.width()}x{need.height()}"
                )
        if problem is None and isinstance(widget, QScrollArea):
            bar = widget.horizontalScrollBar()
            if bar.isVisible() and bar.maximum() > 0:
                problem = f"scrolls sideways by {bar.maximum()} px"
        parent = widget.parentWidget()
        if problem is None and parent is not None and not _inside_scroll_area(widget):
            room = QRect(0, 0, parent.width(), parent.height())
            if not room.contains(widget.geometry()) and room.intersects(widget.geometry()):
                problem = f"reaches past its parent ({widget.geometry()} in {room})"
        if problem is not None:
            faults.append(f"{_describe(widget)}: {problem}")
    return faults
