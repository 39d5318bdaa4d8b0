"""The main window: hardware bar on top, then tabs: Models (table + details), Chat, Monitor,
Downloads.

The window is the one place that wires panels together; each panel is handed its model
objects (the :class:`WorkbenchState`, the :class:`ModelsTableModel`) and talks only through
signals. Chat, Monitor and Downloads start as empty-state placeholders: another part of the
app puts its widget in with :meth:`MainWindow.set_chat_widget` and friends.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop import __version__
from desktop.core.gpu_specs import GpuSpec
from desktop.core.rows import ModelRow
from desktop.core.settings import UserSettings, save_settings
from desktop.services.engine_api import EngineLike
from desktop.services.signals import emit
from desktop.ui.detail_pane import DetailPane
from desktop.ui.hardware_panel import HardwarePanel, WhatIfSelector
from desktop.ui.icons import glyph_icon
from desktop.ui.load_panel import LoadPanel
from desktop.ui.model_opener import ModelOpener
from desktop.ui.models_table import ModelsPanel, ModelsTableModel
from desktop.ui.settings_dialog import SettingsDialog
from desktop.ui.state import WorkbenchState
from desktop.ui.theme import apply_theme
from desktop.ui.window_parts import (
    TAB_NAMES,
    EmptyState,
    app_icon,
    decode_bytes,
    encode_bytes,
    header_row,
    placeholder_for,
    settings_button,
    status_sentence,
)

__all__ = ["TAB_NAMES", "EmptyState", "MainWindow", "app_icon"]

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    """The window. Signals for the parts other engineers build:

    * ``downloadRequested(ModelRow)`` - the Download button of the detail pane;
    * ``loadRequested(LoadRequest)`` - the Load button of the load controls (also sent
      to ``engine`` when one is given: the engine client owns every load);
    * ``settingsChanged(UserSettings)`` - after the Settings dialog is accepted;
    * ``firstShown()`` - the window is on screen for the first time.
    """

    downloadRequested = Signal(object)
    loadRequested = Signal(object)  # LoadRequest
    settingsChanged = Signal(object)
    firstShown = Signal()

    def __init__(
        self,
        state: WorkbenchState,
        table: ModelsTableModel,
        *,
        gpu_specs: Sequence[GpuSpec] = (),
        settings: UserSettings | None = None,
        settings_path: Path | None = None,  # None: settings are not saved
        engine: EngineLike | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._state = state
        self._table = table
        self._settings = settings or UserSettings()
        self._settings_path = settings_path
        self._engine = engine
        self._shown_once = False
        self._restored_last_model = False
        self.setWindowTitle("LLM Workbench")
        self.setWindowIcon(app_icon())
        self.setMinimumSize(960, 620)
        self.resize(1320, 840)

        self.hardware_panel = HardwarePanel(state, self)
        self.what_if = WhatIfSelector(state, gpu_specs, self)
        self.models_panel = ModelsPanel(state, table, self)
        self.detail_pane = DetailPane(state, table, self)
        self.load_panel = LoadPanel(state, table, self)
        self.chat_placeholder = placeholder_for("chat")
        self.monitor_placeholder = placeholder_for("monitor")
        self.downloads_placeholder = placeholder_for("downloads")
        self._lay_out()
        # File > Open model… and .gguf files dropped on the window (see ui/model_opener.py).
        self.model_opener = ModelOpener(
            self, lambda: self._settings, self.apply_settings, self._show_message
        )
        self._build_menus()

        self.status_text = QLabel(self)
        self.status_text.setAccessibleName("Status")
        self.statusBar().addWidget(self.status_text, 1)
        self.statusBar().setSizeGripEnabled(True)

        # Shortcuts: Ctrl+F filters the models (Ctrl+Enter, Esc, Ctrl+N belong to the chat).
        self.find_shortcut = QShortcut(QKeySequence(QKeySequence.StandardKey.Find), self)
        self.find_shortcut.activated.connect(self.focus_model_search)

        # Wiring
        self.models_panel.currentRowChanged.connect(self._on_row_selected)
        self.detail_pane.siblingSelected.connect(self._on_sibling_selected)
        self.detail_pane.loadControlsRequested.connect(self.open_load_controls)
        self.detail_pane.downloadRequested.connect(self.downloadRequested)
        self.load_panel.backRequested.connect(self.show_details)
        self.load_panel.loadRequested.connect(self.loadRequested)
        state.profileChanged.connect(self._update_status)
        state.contextChanged.connect(self._update_status)
        state.detectionFailed.connect(self._update_status)
        table.rowsEvaluated.connect(self._on_rows_evaluated)
        table.modelReset.connect(self._on_rows_reset)
        if engine is not None:
            self._connect_engine(engine)

        self._restore_window()
        self._update_status()

    # ------------------------------------------------------------------ building

    def _lay_out(self) -> None:
        """The header, the hardware bar, then the tabs: Models (table | details or load
        controls), and the Chat, Monitor and Downloads placeholders."""
        self.side = QStackedWidget(self)
        self.side.setAccessibleName("Selected model")
        self.side.addWidget(self.detail_pane)
        self.side.addWidget(self.load_panel)
        self.side.setMinimumWidth(380)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setObjectName("modelsSplitter")
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.models_panel)
        self.splitter.addWidget(self.side)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([820, 480])
        models_page = QWidget(self)
        models_layout = QVBoxLayout(models_page)
        models_layout.setContentsMargins(0, 10, 0, 0)
        models_layout.addWidget(self.splitter)

        self.tabs = QTabWidget(self)
        self.tabs.setDocumentMode(True)
        self.tabs.setAccessibleName("Sections")
        self.tabs.addTab(models_page, glyph_icon("models"), "Models")
        self.tabs.addTab(self.chat_placeholder, glyph_icon("chat"), "Chat")
        self.tabs.addTab(self.monitor_placeholder, glyph_icon("monitor"), "Monitor")
        self.tabs.addTab(self.downloads_placeholder, glyph_icon("download"), "Downloads")

        self.settings_button = settings_button(self)  # after the tabs: last in the tab order
        self.settings_button.clicked.connect(self.open_settings)
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(14, 10, 14, 6)
        layout.setSpacing(10)
        layout.addLayout(header_row(self, self.what_if, self.settings_button))
        layout.addWidget(self.hardware_panel)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.open_model_action = QAction("&Open model…", self)
        self.open_model_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Open))
        self.open_model_action.setStatusTip("Add a GGUF file to the models table")
        self.open_model_action.triggered.connect(self.model_opener.open_dialog)
        file_menu.addAction(self.open_model_action)
        file_menu.addSeparator()
        settings_action = QAction("&Settings…", self)
        settings_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Preferences))
        settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        settings_action.triggered.connect(self.open_settings)
        file_menu.addAction(settings_action)
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Quit))
        quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)

        view_menu = self.menuBar().addMenu("&View")
        find_action = QAction("&Find a model", self)
        find_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Find))
        # The window-wide QShortcut handles the key; the menu only shows it.
        find_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        find_action.triggered.connect(self.focus_model_search)
        view_menu.addAction(find_action)
        for position, name in enumerate(("&Models", "&Chat", "M&onitor", "&Downloads")):
            action = QAction(name, self)
            action.setShortcut(QKeySequence(f"Alt+{position + 1}"))
            action.triggered.connect(lambda _=False, p=position: self.tabs.setCurrentIndex(p))
            view_menu.addAction(action)

        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("&About LLM Workbench", self)
        about.setMenuRole(QAction.MenuRole.AboutRole)
        about.triggered.connect(self._about)
        help_menu.addAction(about)

    # ------------------------------------------------------------------ public API

    @property
    def state(self) -> WorkbenchState:
        return self._state

    @property
    def table(self) -> ModelsTableModel:
        return self._table

    @property
    def settings(self) -> UserSettings:
        return self._settings

    def set_chat_widget(self, widget: QWidget) -> None:
        """Put the chat panel in the Chat tab (replacing the placeholder)."""
        self._replace_tab(1, widget, "Chat")

    def set_monitor_widget(self, widget: QWidget) -> None:
        """Put the live plots in the Monitor tab."""
        self._replace_tab(2, widget, "Monitor")

    def set_downloads_widget(self, widget: QWidget) -> None:
        """Put the downloads list in the Downloads tab."""
        self._replace_tab(3, widget, "Downloads")

    def show_tab(self, name: str) -> None:
        """Switch to "models", "chat", "monitor" or "downloads"."""
        self.tabs.setCurrentIndex(TAB_NAMES.index(name))

    def focus_model_search(self) -> None:
        self.show_tab("models")
        self.models_panel.focus_search()

    def select_model(self, location: str) -> bool:
        """Select a row by its location (path or repo:file); False when it is not listed."""
        self.show_tab("models")
        return self.models_panel.select_location(location)

    def open_load_controls(self, row: ModelRow | None = None) -> None:
        """Show the load controls for ``row`` (default: the selected row)."""
        row = row or self.models_panel.current_row()
        self.load_panel.set_row(row)
        self.side.setCurrentWidget(self.load_panel)

    def show_details(self) -> None:
        self.side.setCurrentWidget(self.detail_pane)

    def open_settings(self) -> None:
        dialog = SettingsDialog(self._settings, self)
        if dialog.exec() == SettingsDialog.DialogCode.Accepted:
            self.apply_settings(dialog.result_settings())

    def update_settings(self, **changes: Any) -> UserSettings:
        """Change and save settings that re-evaluate nothing (the last load, for instance)."""
        self._settings = self._settings.replace(**changes)
        self._save_settings()
        return self._settings

    def apply_settings(self, settings: UserSettings) -> None:
        """Use (and save) new settings; the VRAM reserve re-evaluates every verdict."""
        theme_changed = settings.theme != self._settings.theme
        self._settings = settings
        if theme_changed and isinstance(app := QApplication.instance(), QApplication):
            apply_theme(app, settings.theme)  # light, dark, or the system's, at once
        self._state.set_reserve_bytes(settings.vram_reserve_bytes)
        self._save_settings()
        emit(self.settingsChanged, settings)

    # ------------------------------------------------------------------ engine

    def _connect_engine(self, engine: EngineLike) -> None:
        # The engine client owns loading: the load controls ask it and follow its loads.
        self.load_panel.loadRequested.connect(engine.load)
        self.load_panel.follow(engine)
        engine.loaded.connect(self._on_engine_loaded)
        # The status line says what is loaded: it follows every load, unload and crash.
        for signal in (engine.loaded, engine.unloaded, engine.crashed):
            signal.connect(self._update_status)
        engine.modelKept.connect(
            lambda kept: self._show_message(f"{kept.model_name} is still the model loaded.")
        )
        # A passing "Model loaded." must not outlive the model it was about.
        for signal in (engine.unloaded, engine.crashed):
            signal.connect(lambda *_: self.statusBar().clearMessage())

    def _show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 12_000)

    def _on_engine_loaded(self, _loaded: object) -> None:
        self.statusBar().showMessage("Model loaded.", 5000)

    # ------------------------------------------------------------------ slots

    def _on_row_selected(self, row: ModelRow | None) -> None:
        self.detail_pane.set_row(row)
        if self.side.currentWidget() is self.load_panel:
            if row is None or row.spec is None:
                self.show_details()
            else:
                self.load_panel.set_row(row)

    def _on_sibling_selected(self, row: ModelRow) -> None:
        self.models_panel.select_location(row.location)

    def _on_rows_reset(self) -> None:
        if self._restored_last_model or not self._table.rowCount():
            return
        self._restored_last_model = True
        if self._settings.last_model:
            self.models_panel.select_location(self._settings.last_model)

    def _on_rows_evaluated(self, seconds: float) -> None:
        self._update_status()
        log.debug("re-evaluated %d rows in %.1f ms", self._table.rowCount(), seconds * 1000)

    def _update_status(self, *_args: object) -> None:
        engine = self._engine
        loaded = engine.model if engine is not None else None
        last = engine.last_load if engine is not None else None
        loaded_file = Path(last.path).name if loaded is not None and last is not None else ""
        self.status_text.setText(status_sentence(self._state, loaded, loaded_file))

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "About LLM Workbench",
            f"<b>LLM Workbench {__version__}</b><p>Which GGUF models this computer can run, "
            "how fast, and running them through llama.cpp.</p>",
        )

    # ------------------------------------------------------------------ persistence

    def _replace_tab(self, position: int, widget: QWidget, title: str) -> None:
        icon = self.tabs.tabIcon(position)
        current = self.tabs.currentIndex()
        old = self.tabs.widget(position)
        self.tabs.removeTab(position)
        self.tabs.insertTab(position, widget, icon, title)
        self.tabs.setCurrentIndex(current)
        if old is not None and old is not widget:
            old.deleteLater()

    def _restore_window(self) -> None:
        geometry = decode_bytes(self._settings.window_geometry)
        if geometry is not None:
            self.restoreGeometry(geometry)
        splitter = decode_bytes(self._settings.window_state)
        if splitter is not None:
            self.splitter.restoreState(splitter)

    def remember_window(self) -> UserSettings:
        """The settings with this window's geometry, splitter and selected model."""
        row = self.models_panel.current_row()
        self._settings = self._settings.replace(
            window_geometry=encode_bytes(self.saveGeometry()),
            window_state=encode_bytes(self.splitter.saveState()),
            last_model=row.location if row is not None else self._settings.last_model,
            n_ctx=self._state.n_ctx,
        )
        return self._settings

    def _save_settings(self) -> None:
        if self._settings_path is None:
            return  # nowhere to persist (tests, or a window made without a settings file)
        try:
            save_settings(self._settings, self._settings_path)
        except OSError as exc:
            log.warning("could not save the settings: %s", exc)
            self.statusBar().showMessage(f"Could not save the settings: {exc.strerror}", 8000)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            # After this show event is handled, so "shown" means painted and on screen.
            QTimer.singleShot(0, lambda: emit(self.firstShown))

    def closeEvent(self, event: QCloseEvent) -> None:
        self.remember_window()
        self._save_settings()
        super().closeEvent(event)

    def sizeHint(self) -> QSize:
        return QSize(1320, 840)
