"""The "Serve to other apps" bar: the loaded model, the switch, the address and a copy button.

Handed an :class:`~desktop.services.api_serving.ApiServing` and the engine (for the loaded
model's name), it starts and stops the server inside the worker and says what it is doing:
the address to paste into another app (``http://127.0.0.1:8080/v1``), which request runs
and how many wait, why it could not start. It listens on this computer only unless the
person ticks "Other computers may use it", which needs an API key (one is made for them)
and says plainly that anyone on the network who has the key can use the model.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from PySide6.QtGui import QFont, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.engine import protocol as p
from desktop.services.api_serving import DEFAULT_HOST, DEFAULT_PORT, ApiServing, ServingEngine
from desktop.services.engine_api import ChatEngine
from desktop.ui.widgets import HintLabel

if TYPE_CHECKING:
    from desktop.services.monitor import Monitor
    from desktop.ui.main_window import MainWindow

__all__ = ["ServePanel", "install_serving"]

NETWORK_HOST = "0.0.0.0"  # every address of this computer: only when the person asks


class ServePanel(QFrame):
    """The switch and what it says; the request log and plots are elsewhere."""

    def __init__(
        self, serving: ApiServing, engine: ChatEngine, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._serving = serving
        self._engine = engine
        self.setAccessibleName("Serving to other apps")
        self.setFrameShape(QFrame.Shape.StyledPanel)

        self.model_label = QLabel(self)
        bold = QFont(self.model_label.font())
        bold.setBold(True)
        self.model_label.setFont(bold)
        self.model_label.setAccessibleName("Loaded model")
        self.switch = QCheckBox("Serve to other apps", self)
        self.switch.setAccessibleName("Serve to other apps")
        self.switch.setToolTip(
            "Other programs on this computer (Open WebUI, SillyTavern, an editor, your own "
            "scripts) can use the loaded model through an OpenAI-compatible address."
        )
        self.address = QLineEdit(self)
        self.address.setReadOnly(True)
        self.address.setAccessibleName("Address for other apps")
        self.address.setPlaceholderText(f"http://{DEFAULT_HOST}:{DEFAULT_PORT}/v1")
        self.address.setMinimumWidth(
            self.fontMetrics().horizontalAdvance("http://127.0.0.1:65535/v1__")
        )
        self.copy_button = QPushButton("Copy", self)
        self.copy_button.setAccessibleName("Copy the address")
        self.copy_button.setEnabled(False)
        self.port = QSpinBox(self)
        self.port.setRange(1024, 65535)
        self.port.setValue(DEFAULT_PORT)
        self.port.setAccessibleName("Serving port")
        self.port.setPrefix("port ")
        self.network = QCheckBox("Other computers may use it", self)
        self.network.setAccessibleName("Let other computers use the model")
        self.network.setToolTip(
            "Listen on every network address of this computer, with an API key."
        )
        self.key = QLineEdit(self)
        self.key.setReadOnly(True)
        self.key.setAccessibleName("API key")
        self.key.setVisible(False)
        self.status = HintLabel("", self)
        self.status.setAccessibleName("Serving status")
        self.status.setWordWrap(True)

        top = QHBoxLayout()
        top.addWidget(self.model_label)
        top.addSpacing(12)
        top.addWidget(self.switch)
        top.addWidget(self.address, 1)
        top.addWidget(self.copy_button)
        top.addWidget(self.port)
        top.addWidget(self.network)
        top.addWidget(self.key)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.status)

        self.switch.toggled.connect(self._on_switch)
        self.copy_button.clicked.connect(self.copy_address)
        self.network.toggled.connect(self._on_network)
        serving.serving.connect(self._on_serving)
        serving.stopped.connect(self._on_stopped)
        serving.failed.connect(self._on_failed)
        serving.queueChanged.connect(self._on_queue)
        engine.loaded.connect(lambda *_: self._show_model())
        engine.unloaded.connect(self._show_model)
        engine.crashed.connect(lambda *_: self._show_model())
        self._show_model()
        self._show_off()

    @property
    def serving(self) -> ApiServing:
        return self._serving

    # ------------------------------------------------------------------ actions

    def copy_address(self) -> None:
        clipboard = QGuiApplication.clipboard()
        clipboard.setText(self.address.text())
        self.status.setText("Address copied. Paste it into the other app as its OpenAI base URL.")

    def _on_switch(self, on: bool) -> None:
        self.port.setEnabled(not on)
        self.network.setEnabled(not on)
        if not on:
            self._serving.stop()
            return
        host = NETWORK_HOST if self.network.isChecked() else DEFAULT_HOST
        key = self.key.text() if self.network.isChecked() else None
        self.status.setText("Starting…")
        self._serving.start(host=host, port=self.port.value(), api_key=key)

    def _on_network(self, on: bool) -> None:
        if on and not self.key.text():
            self.key.setText(secrets.token_urlsafe(18))
        self.key.setVisible(on)

    # ------------------------------------------------------------------ what it says

    def _on_serving(self, serving: p.Serving) -> None:
        self.address.setText(serving.url)
        self.copy_button.setEnabled(True)
        self._set_switch(True)
        self._describe(0, 0)

    def _on_stopped(self, reason: str) -> None:
        if reason and self._serving.wanted is not None:
            self.status.setText(f"{reason} Serving again…")
            return
        self._set_switch(False)
        self._show_off()

    def _on_failed(self, message: str) -> None:
        self._set_switch(False)
        self.copy_button.setEnabled(False)
        self.address.clear()
        self.status.setText(message)

    def _on_queue(self, running: int, waiting: int) -> None:
        if self._serving.active is not None:
            self._describe(running, waiting)

    def _describe(self, running: int, waiting: int) -> None:
        active = self._serving.active
        if active is None:
            return
        where = (
            "Other apps on this computer can use the model at this address"
            if active.host in (DEFAULT_HOST, "localhost", "::1")
            else f"Anyone on your network who has the API key can use the model (listening "
            f"on {active.host}:{active.port})"
        )
        parts = ["another app's request is running"] if running else []
        if waiting:
            parts.append(f"{waiting} waiting")
        busy = " · " + ", ".join(parts) if parts else ""
        self.status.setText(f"{where}; the chat here takes turns with them{busy}.")

    def _show_off(self) -> None:
        self.address.clear()
        self.copy_button.setEnabled(False)
        self.status.setText(
            "Off. Turn it on to use this model from other programs on this computer "
            "(OpenAI-compatible)."
        )

    def _show_model(self, *_args: object) -> None:
        model = self._engine.model
        last = self._engine.last_load
        if model is not None and last is not None:
            self.model_label.setText(Path(last.path).stem)
        else:
            self.model_label.setText("No model loaded")

    def _set_switch(self, on: bool) -> None:
        self.switch.blockSignals(True)
        self.switch.setChecked(on)
        self.switch.blockSignals(False)
        self.port.setEnabled(not on)
        self.network.setEnabled(not on)


class _ServingEngine(ServingEngine, ChatEngine, Protocol):
    """The engine client as serving and the bar use it."""


def install_serving(
    window: MainWindow, engine: _ServingEngine, monitor: Monitor, plots: QWidget
) -> ApiServing:
    """Put the serve bar, the live plots and the request log in the Monitor tab, and feed
    other apps' tokens to the monitor (their own series, marked on the plot)."""
    from desktop.ui.api_log import ApiLog, monitor_page

    serving = ApiServing(engine, window)
    serving.token.connect(monitor.add_api_token)
    serving.requestStarted.connect(monitor.start_api_generation)
    bar = ServePanel(serving, engine)
    window.set_monitor_widget(monitor_page(bar, plots, ApiLog(serving)))
    return serving
