"""Colours that carry meaning (verdicts, memory components), chosen for light and dark themes.

Everything else comes from the palette (``palette().color(role)``), so the app follows the
system theme. The few fixed hues here are picked per theme: a badge keeps its meaning
(green fits, amber is partial, red is too large) and its text stays readable on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette

from desktop.core.estimate import Verdict

__all__ = [
    "BROKEN",
    "SEGMENTS",
    "THEME_CHOICES",
    "BadgeColors",
    "apply_theme",
    "banner_colors",
    "dark_palette",
    "is_dark",
    "light_palette",
    "mix",
    "over_capacity_color",
    "secondary_text",
    "segment_color",
    "verdict_colors",
]


def is_dark(palette: QPalette) -> bool:
    """True when the window background is dark (a dark system theme or palette)."""
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def secondary_text(palette: QPalette) -> QColor:
    """Text for hints and units: the window text faded towards the window background."""
    return mix(
        palette.color(QPalette.ColorRole.WindowText), palette.color(QPalette.ColorRole.Window), 0.38
    )


def mix(a: QColor, b: QColor, t: float) -> QColor:
    """``a`` moved the fraction ``t`` towards ``b``."""
    return QColor(
        round(a.red() + (b.red() - a.red()) * t),
        round(a.green() + (b.green() - a.green()) * t),
        round(a.blue() + (b.blue() - a.blue()) * t),
    )


@dataclass(frozen=True)
class BadgeColors:
    fill: QColor
    text: QColor
    border: QColor


# (fill, text) for light and dark themes. Dark fills are deeper so white text reads on them
# and they do not glow against a dark window.
_VERDICT_LIGHT = {
    Verdict.FULL_GPU: ("#2e7d32", "#ffffff"),
    Verdict.PARTIAL: ("#f2a900", "#1f1600"),
    Verdict.CPU_ONLY: ("#546e7a", "#ffffff"),
    Verdict.TOO_LARGE: ("#c62828", "#ffffff"),
}
_VERDICT_DARK = {
    Verdict.FULL_GPU: ("#2e7d32", "#ffffff"),
    Verdict.PARTIAL: ("#c98a00", "#160f00"),
    Verdict.CPU_ONLY: ("#4f6b79", "#ffffff"),
    Verdict.TOO_LARGE: ("#b71c1c", "#ffffff"),
}


#: The badge of a file that cannot be read (in place of a verdict): red in either theme.
BROKEN: Final = "broken"
_BROKEN = {False: ("#c62828", "#ffffff"), True: ("#b71c1c", "#ffffff")}


def verdict_colors(verdict: Verdict | str | None, palette: QPalette) -> BadgeColors:
    """The badge colours of a verdict (or :data:`BROKEN`); None (no estimate) uses neutral
    palette colours."""
    if verdict == BROKEN:
        fill, text = (QColor(c) for c in _BROKEN[is_dark(palette)])
        return BadgeColors(fill, text, fill.darker(115))
    if not isinstance(verdict, Verdict):
        base = palette.color(QPalette.ColorRole.Button)
        text = palette.color(QPalette.ColorRole.PlaceholderText)
        return BadgeColors(base, text, palette.color(QPalette.ColorRole.Mid))
    table = _VERDICT_DARK if is_dark(palette) else _VERDICT_LIGHT
    fill, text = (QColor(c) for c in table[verdict])
    return BadgeColors(fill, text, fill.darker(115))


#: Memory components in the stacked bars: (key, label shown in the legend).
SEGMENTS: tuple[tuple[str, str], ...] = (
    ("weights", "Model weights"),
    ("kv", "KV cache"),
    ("compute", "Compute buffers"),
    ("overhead", "Runtime overhead"),
)
_SEGMENT_LIGHT = {
    "weights": "#3f6fd8",
    "kv": "#8e5bd0",
    "compute": "#1b9aa0",
    "overhead": "#9aa1ab",
}
_SEGMENT_DARK = {
    "weights": "#6b93ee",
    "kv": "#b48ae8",
    "compute": "#3cc0c4",
    "overhead": "#7d8590",
}


def segment_color(key: str, palette: QPalette) -> QColor:
    table = _SEGMENT_DARK if is_dark(palette) else _SEGMENT_LIGHT
    return QColor(table[key])


def over_capacity_color(palette: QPalette) -> QColor:
    return QColor("#ef5350" if is_dark(palette) else "#d32f2f")


def banner_colors(palette: QPalette, kind: str = "warning") -> tuple[QColor, QColor, QColor]:
    """(background, text, border) of a banner; ``kind`` is "warning" or "info"."""
    dark = is_dark(palette)
    if kind == "warning":
        if dark:
            return QColor("#3d2e00"), QColor("#ffe08a"), QColor("#7a5c00")
        return QColor("#fff4ce"), QColor("#3d2e00"), QColor("#e0b400")
    if dark:
        return QColor("#0f2a44"), QColor("#cfe6ff"), QColor("#2b5d8c")
    return QColor("#e8f1fc"), QColor("#0b2d52"), QColor("#9cc2ea")


# --------------------------------------------------------------------------- light and dark

#: The theme setting's values and what the Settings dialog calls them; "system" (the default)
#: follows the desktop's light or dark preference.
THEME_CHOICES: tuple[tuple[str, str], ...] = (
    ("system", "Follow the system"),
    ("light", "Light"),
    ("dark", "Dark"),
)


def _palette(window: str, roles: dict[QPalette.ColorRole, str], disabled: str) -> QPalette:
    pal = QPalette(QColor(roles[QPalette.ColorRole.Button]), QColor(window))
    for role, color in roles.items():
        for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
            pal.setColor(group, role, QColor(color))
    for role in (
        QPalette.ColorRole.WindowText,
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
    ):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor(disabled))
    return pal


def dark_palette() -> QPalette:
    """A dark palette like a dark desktop theme gives (disabled colours derived by Qt)."""
    roles = {
        QPalette.ColorRole.Window: "#202124",
        QPalette.ColorRole.WindowText: "#e8eaed",
        QPalette.ColorRole.Base: "#17181a",
        QPalette.ColorRole.AlternateBase: "#242528",
        QPalette.ColorRole.Text: "#e8eaed",
        QPalette.ColorRole.Button: "#2d2e31",
        QPalette.ColorRole.ButtonText: "#e8eaed",
        QPalette.ColorRole.Highlight: "#3d6fd8",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: "#2d2e31",
        QPalette.ColorRole.ToolTipText: "#e8eaed",
        QPalette.ColorRole.PlaceholderText: "#9aa0a6",
        QPalette.ColorRole.Mid: "#44464a",
        QPalette.ColorRole.Link: "#8ab4f8",
    }
    return _palette("#202124", roles, "#6f7378")


def light_palette() -> QPalette:
    """A light palette (for a person who wants light on a dark desktop)."""
    roles = {
        QPalette.ColorRole.Window: "#efefef",
        QPalette.ColorRole.WindowText: "#1f1f1f",
        QPalette.ColorRole.Base: "#ffffff",
        QPalette.ColorRole.AlternateBase: "#f5f5f5",
        QPalette.ColorRole.Text: "#1f1f1f",
        QPalette.ColorRole.Button: "#efefef",
        QPalette.ColorRole.ButtonText: "#1f1f1f",
        QPalette.ColorRole.Highlight: "#308cc6",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: "#ffffdc",
        QPalette.ColorRole.ToolTipText: "#1f1f1f",
        QPalette.ColorRole.PlaceholderText: "#767676",
        QPalette.ColorRole.Mid: "#b8b8b8",
        QPalette.ColorRole.Link: "#0b57d0",
    }
    return _palette("#efefef", roles, "#9e9e9e")


_SCHEMES = {
    "system": Qt.ColorScheme.Unknown,
    "light": Qt.ColorScheme.Light,
    "dark": Qt.ColorScheme.Dark,
}


def apply_theme(app: QGuiApplication, choice: str) -> str:
    """Use the theme ``choice`` ("system", "light" or "dark"; anything else is "system") for
    the whole application, and return the choice applied.

    "system" gives the palette back to the platform (a default palette: the desktop's light
    or dark one, and its changes from then on). "light" and "dark" set the app's own palette
    and tell the platform the preference (window frames and native dialogs follow it where
    the platform supports that, Qt 6.8+). Every widget hears ``ApplicationPaletteChange``
    and the painted parts (badges, bars, plots) pick their colours from the new palette.
    """
    if choice not in _SCHEMES:
        choice = "system"
    hints = app.styleHints()
    if hasattr(hints, "setColorScheme"):
        hints.setColorScheme(_SCHEMES[choice])
    if choice == "dark":
        app.setPalette(dark_palette())
    elif choice == "light":
        app.setPalette(light_palette())
    else:
        app.setPalette(QPalette())  # no palette of our own: the platform's, as it changes
    return choice
