"""The hardware bar's other computers: "Share this computer" and "Add a computer".

Share: a switch, the address (127.0.0.1 unless the person types a home-network address; a
public one is refused), and while it runs what it offers and who is connected, with a plain
warning when it listens on the network (llama.cpp's RPC server has no password).

Add: a ``host:port`` field; each added computer is a row with its memory bar, free memory,
link round trip and a Remove button, or the sentence that says why it cannot be used. The
plans of every model follow (desktop.ui.state.WorkbenchState.set_remote_devices).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.core import rpc
from desktop.core.units import format_bytes
from desktop.services.remote_devices import RemoteDevices, ShareService

if TYPE_CHECKING:
    from desktop.ui.main_window import MainWindow
    from desktop.ui.state import WorkbenchState

__all__ = ["RemoteDevicesBox", "install_remote_devices"]


class _ServerRow(QWidget):
    """One added computer: its devices' memory and round trip, or why it cannot be used."""

    def __init__(self, endpoint: str, box: RemoteDevicesBox) -> None:
        super().__init__(box)
        self.endpoint = endpoint
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.name = QLabel(f"<b>{endpoint}</b> (RPC)")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setMaximumWidth(160)
        self.bar.setAccessibleName(f"Memory of {endpoint}")
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.remove = QPushButton("Remove")
        self.remove.setAccessibleName(f"Remove {endpoint}")
        self.remove.clicked.connect(lambda: box.remote.remove(endpoint))
        layout.addWidget(self.name)
        layout.addWidget(self.bar)
        layout.addWidget(self.detail, 1)
        layout.addWidget(self.remove)

    def show_answer(self, answer: rpc.RemoteServer | None, asking: bool) -> None:
        if answer is None or (asking and answer.ok is False):
            self.bar.setVisible(False)
            self.detail.setText("Asking it what it offers...")
            return
        if not answer.ok:
            self.bar.setVisible(False)
            self.detail.setText(answer.error or "")
            return
        free = sum(d.free_bytes for d in answer.devices)
        total = sum(d.total_bytes for d in answer.devices)
        latency = min(d.latency_s for d in answer.devices)
        self.bar.setVisible(True)
        self.bar.setValue(round(1000 * (total - free) / total) if total else 0)
        self.bar.setToolTip(f"{format_bytes(total - free)} in use of {format_bytes(total)}")
        self.detail.setText(
            f"{format_bytes(free)} free of {format_bytes(total)}, "
            f"round trip {latency * 1000:.2f} ms" + (" (asking again...)" if asking else "")
        )


class RemoteDevicesBox(QWidget):
    """Share this computer, and the other computers whose memory plans may use."""

    def __init__(
        self, remote: RemoteDevices, share: ShareService, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.remote = remote
        self.share = share
        self._rows: dict[str, _ServerRow] = {}

        self.share_switch = QCheckBox("Share this computer")
        self.share_switch.setToolTip(
            "Lend this computer's memory and processor to another computer's LLM Workbench "
            "(llama.cpp's RPC server)."
        )
        self.share_host = QLineEdit("127.0.0.1")
        self.share_host.setAccessibleName("Address to share on")
        self.share_host.setMaximumWidth(130)
        self.share_port = QSpinBox()
        self.share_port.setRange(1, 65535)
        self.share_port.setValue(rpc.DEFAULT_PORT)
        self.share_port.setAccessibleName("Port to share on")
        self.share_device = QComboBox()
        self.share_device.addItem("CPU")
        self.share_device.setAccessibleName("Device to share")
        self.share_device.setToolTip("Which of this computer's devices the other computer uses")
        self.share_device.setVisible(False)  # shown when this computer has more than its CPU
        self.share_status = QLabel("")
        self.share_status.setVisible(False)
        self.share_status.setWordWrap(True)
        self.share_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.add_field = QLineEdit()
        self.add_field.setPlaceholderText("host:port, e.g. 192.168.1.20:50052")
        self.add_field.setAccessibleName("Another computer's address")
        self.add_field.setMinimumWidth(240)
        self.add_field.setMaximumWidth(280)
        self.add_button = QPushButton("Add a computer")
        self.add_error = QLabel()
        self.add_error.setWordWrap(True)
        self.add_error.setVisible(False)

        # One line while nothing is shared or added (the hardware bar stays short); what
        # sharing offers, a refused address and each added computer get a line of their own.
        controls = QHBoxLayout()
        controls.addWidget(self.share_switch)
        controls.addWidget(self.share_host)
        controls.addWidget(QLabel(":"))
        controls.addWidget(self.share_port)
        controls.addWidget(self.share_device)
        controls.addSpacing(24)
        controls.addWidget(self.add_field)
        controls.addWidget(self.add_button)
        controls.addStretch(1)
        self._server_rows = QVBoxLayout()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(controls)
        layout.addWidget(self.share_status)
        layout.addWidget(self.add_error)
        layout.addLayout(self._server_rows)

        self.share_switch.toggled.connect(self._on_share_toggled)
        share.started.connect(self._show_share)
        share.stopped.connect(self._on_share_stopped)
        share.clientsChanged.connect(lambda _n: self._show_share(share.info))
        self.add_button.clicked.connect(self._on_add)
        self.add_field.returnPressed.connect(self._on_add)
        remote.changed.connect(self._show_servers)
        self._show_servers()

    # ------------------------------------------------------------------ share

    def _on_share_toggled(self, on: bool) -> None:
        if not on:
            self.share.stop()
            return
        device = self.share_device.currentText()
        failed = self.share.start(
            self.share_host.text().strip(),
            self.share_port.value(),
            None if device == "CPU" else device,
        )
        if failed:
            self.share_switch.blockSignals(True)
            self.share_switch.setChecked(False)
            self.share_switch.blockSignals(False)
            self._status(failed)
            return
        self.share_host.setEnabled(False)
        self.share_port.setEnabled(False)
        self.share_device.setEnabled(False)
        self._status("Starting to share...")

    def _show_share(self, info: dict[str, object]) -> None:
        if not info:
            return
        clients = self.share.clients
        who = "a computer is connected" if clients else "no computer connected"
        text = (
            f"Shared at <b>{info['endpoint']}</b>: {info['name']} ({info['description']}), "
            f"{format_bytes(int(str(info['free_bytes'])))} free; {who}."
        )
        if self.share.warning:
            text += f"<br><b>On the network:</b> {self.share.warning}"
        self._status(text)

    def _status(self, text: str) -> None:
        self.share_status.setText(text)
        self.share_status.setVisible(bool(text))

    def _on_share_stopped(self, why: str) -> None:
        self.share_switch.blockSignals(True)
        self.share_switch.setChecked(False)
        self.share_switch.blockSignals(False)
        self.share_host.setEnabled(True)
        self.share_port.setEnabled(True)
        self.share_device.setEnabled(True)
        self._status(why)

    def set_shareable_devices(self, devices: Sequence[str]) -> None:
        """llama.cpp's devices of this computer ("CUDA0: NVIDIA ..."): the CPU and the GPUs."""
        names = ["CPU"] + [
            d.split(":", 1)[0].strip()
            for d in devices
            if d and not d.upper().startswith(("CPU", "RPC", "BLAS"))
        ]
        current = self.share_device.currentText()
        self.share_device.clear()
        self.share_device.addItems(list(dict.fromkeys(names)))
        if current in names:
            self.share_device.setCurrentText(current)
        self.share_device.setVisible(len(names) > 1)

    # ------------------------------------------------------------------ add

    def _on_add(self) -> None:
        failed = self.remote.add(self.add_field.text())
        self.add_error.setVisible(bool(failed))
        self.add_error.setText(failed or "")
        if not failed:
            self.add_field.clear()

    def _show_servers(self) -> None:
        for endpoint in list(self._rows):
            if endpoint not in self.remote.servers:
                gone = self._rows.pop(endpoint)
                self._server_rows.removeWidget(gone)
                gone.deleteLater()
        for endpoint in self.remote.servers:
            row = self._rows.get(endpoint)
            if row is None:
                row = _ServerRow(endpoint, self)
                self._rows[endpoint] = row
                self._server_rows.addWidget(row)
            row.show_answer(self.remote.answer(endpoint), self.remote.asking(endpoint))


def install_remote_devices(
    window: MainWindow, state: WorkbenchState, engine: Any = None
) -> RemoteDevicesBox:
    """Put the box in the window's hardware bar: the added computers come from the settings
    (and go back there), plans follow what they answer, sharing stops when the app quits, and
    when a computer stopped answering mid-load or mid-answer they are all asked again (the
    one that went away then says so, and plans leave it out)."""
    from PySide6.QtCore import QCoreApplication

    remote = RemoteDevices(state.set_remote_devices, window.settings.rpc_servers, parent=window)
    share = ShareService(window)
    box = RemoteDevicesBox(remote, share, window.hardware_panel)
    layout = window.hardware_panel.layout()
    if layout is not None:
        layout.addWidget(box)
    remote.serversChanged.connect(lambda servers: window.update_settings(rpc_servers=servers))
    app = QCoreApplication.instance()
    if app is not None:
        app.aboutToQuit.connect(share.stop)
        app.aboutToQuit.connect(remote.shutdown)
    window.destroyed.connect(lambda *_: share.stop())
    if remote.servers:
        window.firstShown.connect(remote.refresh)
    state.realProfileChanged.connect(
        lambda profile: box.set_shareable_devices(profile.backends.devices)
    )
    if engine is not None:

        def on_crashed(kind: str, *_words: str) -> None:
            if kind == "remote_device":
                remote.refresh()

        engine.crashed.connect(on_crashed)
    return box
