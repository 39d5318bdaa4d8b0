"""The hardware bar's "Share this computer" and "Add a computer", with real RPC servers.

The share switch starts the real llama.cpp RPC server (desktop.engine.rpc_server) on
127.0.0.1; adding its address asks it through the real probe child; the plans of a real
model then span both "computers"; an address where nothing listens is a sentence in its row.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import make_profile
from rpc_cases import free_port

from desktop.core.gguf import read_header_file
from desktop.core.modelspec import spec_from_header
from desktop.services.remote_devices import RemoteDevices, ShareService
from desktop.ui.remote_devices import RemoteDevicesBox
from desktop.ui.state import WorkbenchState

pytestmark = pytest.mark.engine


@pytest.fixture
def box(qtbot: Any) -> Any:
    state = WorkbenchState()
    state.set_real_profile(make_profile(gpu=None, backends=("cpu",)))
    remote = RemoteDevices(state.set_remote_devices)
    share = ShareService()
    widget = RemoteDevicesBox(remote, share)
    qtbot.addWidget(widget)
    yield widget, state
    share.stop()
    remote.shutdown()


def test_share_add_plan_and_stop(qtbot: Any, box: Any, gemma_path: Any) -> None:
    widget, state = box
    port = free_port()
    widget.share_port.setValue(port)
    with qtbot.waitSignal(widget.share.started, timeout=30_000):
        widget.share_switch.setChecked(True)
    assert f"127.0.0.1:{port}" in widget.share_status.text()
    assert "no computer connected" in widget.share_status.text()
    assert "On the network" not in widget.share_status.text()  # loopback: no warning

    spec = spec_from_header(read_header_file(gemma_path))
    before = state.estimate(spec)
    assert before is not None and "computers" not in before.reason
    widget.add_field.setText(f"127.0.0.1:{port}")
    with qtbot.waitSignal(state.estimatesChanged, timeout=30_000):
        widget.add_button.click()
    (device,) = state.remote_devices
    assert device.endpoint == f"127.0.0.1:{port}" and device.free_bytes > 0
    row = widget._rows[device.endpoint]
    assert "free of" in row.detail.text() and "round trip" in row.detail.text()
    after = state.estimate(spec)
    assert after is not None and after.reason.startswith("Fits across 2 computers")
    assert any(d.endpoint == device.endpoint and d.layers for d in after.devices)

    with qtbot.waitSignal(state.estimatesChanged, timeout=5_000):
        row.remove.click()
    assert state.remote_devices == ()
    with qtbot.waitSignal(widget.share.stopped, timeout=10_000) as stopped:
        widget.share_switch.setChecked(False)
    assert stopped.args == [""]
    assert widget.share_status.text() == "" and widget.share_status.isHidden()
    assert not widget.share.running


def test_unreachable_computer_and_bad_address_are_sentences(qtbot: Any, box: Any) -> None:
    widget, state = box
    endpoint = f"127.0.0.1:{free_port()}"
    widget.add_field.setText(endpoint)
    widget.add_button.click()
    assert "Asking it" in widget._rows[endpoint].detail.text()
    qtbot.waitUntil(lambda: widget.remote.answer(endpoint) is not None, timeout=30_000)
    assert "nothing is listening" in widget._rows[endpoint].detail.text()
    assert state.remote_devices == ()
    widget.add_field.setText("not an address!")
    widget.add_button.click()
    assert "host:port" in widget.add_error.text()


def test_a_public_address_is_refused(qtbot: Any, box: Any) -> None:
    widget, _state = box
    widget.share_host.setText("8.8.8.8")
    widget.share_switch.setChecked(True)
    assert not widget.share_switch.isChecked()
    assert "public address" in widget.share_status.text()
    assert not widget.share.running


def test_a_device_this_computer_lacks_stops_sharing_with_a_sentence(qtbot: Any, box: Any) -> None:
    widget, _state = box
    widget.set_shareable_devices(["CPU: AMD EPYC", "CUDA0: NVIDIA GeForce RTX 4090"])
    assert [widget.share_device.itemText(i) for i in range(widget.share_device.count())] == [
        "CPU",
        "CUDA0",
    ]
    assert not widget.share_device.isHidden()
    widget.share_device.setCurrentText("CUDA0")  # this test machine has no such device
    widget.share_port.setValue(free_port())
    with qtbot.waitSignal(widget.share.stopped, timeout=30_000) as stopped:
        widget.share_switch.setChecked(True)
    assert "no device 'CUDA0'" in stopped.args[0]
    assert not widget.share_switch.isChecked()
    assert "no device 'CUDA0'" in widget.share_status.text()
    assert not widget.share.running  # the process has ended: nothing clears the sentence
