"""The main window's small parts: the app icon, the tabs' empty states, the header row, the
status line's sentence and the saved geometry's encoding.

Each is a plain function or widget so :class:`~desktop.ui.main_window.MainWindow` is left
with the layout and the wiring.
"""

from __future__ import annotations

import base64
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QFont, QIcon, QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from desktop.core.units import GIB
from desktop.engine.protocol import Loaded
from desktop.ui.icons import GlyphLabel, glyph_icon
from desktop.ui.state import WorkbenchState, context_label
from desktop.ui.widgets import HintLabel

__all__ = [
    "TAB_NAMES",
    "EmptyState",
    "app_icon",
    "decode_bytes",
    "encode_bytes",
    "header_row",
    "placeholder_for",
    "settings_button",
    "status_sentence",
]

#: Tab keys for :meth:`MainWindow.show_tab`, in order.
TAB_NAMES = ("models", "chat", "monitor", "downloads")

_ICON_PATH = Path(__file__).resolve().parents[2] / "resources" / "icons" / "llm-workbench.svg"

#: What each tab shows before its part of the app fills it in: glyph, title, sentence.
_PLACEHOLDERS = {
    "chat": (
        "chat",
        "No model loaded",
        "Pick a model in Models, press Load…, and chat with it here.",
    ),
    "monitor": (
        "monitor",
        "Nothing to watch yet",
        "Once a model runs, live tokens per second and VRAM and RAM use appear here, "
        "beside the prediction.",
    ),
    "downloads": (
        "download",
        "No downloads",
        "Files you download from the Models tab show their progress here.",
    ),
}


def app_icon() -> QIcon:
    """The app icon from resources/ (an empty icon if it is missing, never an error)."""
    return QIcon(str(_ICON_PATH)) if _ICON_PATH.is_file() else QIcon()


class EmptyState(QWidget):
    """A centred icon, title and sentence: what a tab will show and how to get there."""

    def __init__(self, glyph: str, title: str, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName(title)
        picture = GlyphLabel(glyph, 44, self, QPalette.ColorRole.PlaceholderText)
        heading = QLabel(title, self)
        font = QFont(heading.font())
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        heading.setFont(font)
        heading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        body = HintLabel(text, self)
        body.setWordWrap(True)
        body.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # A fixed width lets the wrapped text report its true height (an alignment flag would
        # give it its one-line height and clip it).
        body.setFixedWidth(440)
        body_row = QHBoxLayout()
        body_row.addStretch(1)
        body_row.addWidget(body)
        body_row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setSpacing(8)
        layout.addStretch(1)
        layout.addWidget(picture, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(heading)
        layout.addLayout(body_row)
        layout.addStretch(2)


def placeholder_for(tab: str) -> EmptyState:
    """The empty state of the "chat", "monitor" or "downloads" tab."""
    glyph, title, text = _PLACEHOLDERS[tab]
    return EmptyState(glyph, title, text)


def settings_button(parent: QWidget) -> QToolButton:
    """The header's Settings button (the caller connects it)."""
    button = QToolButton(parent)
    button.setText("Settings")
    button.setIcon(glyph_icon("settings"))
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    button.setAutoRaise(True)
    button.setAccessibleName("Settings")
    return button


def header_row(parent: QWidget, what_if: QWidget, settings: QToolButton) -> QHBoxLayout:
    """Icon, name and tagline on the left; the "what if" selector and Settings on the right."""
    icon = QLabel(parent)
    icon.setPixmap(app_icon().pixmap(30, 30))
    title = QLabel("LLM Workbench", parent)
    font = QFont(title.font())
    font.setPointSizeF(font.pointSizeF() * 1.45)
    font.setBold(True)
    title.setFont(font)
    title.setAccessibleName("LLM Workbench")
    subtitle = HintLabel("Which models this computer can run, and how fast", parent)
    header = QHBoxLayout()
    header.setSpacing(10)
    header.addWidget(icon)
    header.addWidget(title)
    header.addSpacing(6)
    header.addWidget(subtitle, 0, Qt.AlignmentFlag.AlignBottom)
    header.addStretch(1)
    header.addWidget(what_if)
    header.addSpacing(10)
    header.addWidget(settings)
    return header


def status_sentence(
    state: WorkbenchState, loaded: Loaded | None = None, loaded_file: str = ""
) -> str:
    """The status line: the model that is loaded (its file, the context it runs with and
    where its layers are), then what the estimates are for, or why there are none yet. The
    VRAM reserve is mentioned only where the machine shown has a GPU."""
    if state.detection_error:
        return "The hardware check failed: " + state.detection_error
    if state.profile is None:
        return "Checking your hardware…"
    running = ""
    if loaded is not None:
        layers = (
            f"{loaded.n_gpu_layers} layers on the GPU"
            if loaded.n_gpu_layers
            else "every layer on the CPU"
        )
        name = loaded_file or "A model"
        running = (
            f"Loaded: {name}, {context_label(loaded.n_ctx)} tokens of context, {layers}. "
        )
    machine = state.what_if_label or "this computer"
    text = f"{running}Estimates for {machine} at {context_label(state.n_ctx)} tokens of context"
    if state.profile.gpus:
        text += f"; {state.reserve_bytes / GIB:.2g} GB of VRAM kept free"
    return text + "."


def encode_bytes(data: QByteArray) -> str:
    """Saved window geometry as text for the settings file."""
    return base64.b64encode(bytes(data.data())).decode("ascii")


def decode_bytes(text: str) -> QByteArray | None:
    """The geometry back; None when there is none or it is not valid base64."""
    if not text:
        return None
    try:
        return QByteArray(base64.b64decode(text.encode("ascii"), validate=True))
    except ValueError:
        return None
