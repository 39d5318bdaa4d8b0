"""DownloadManager and the Downloads tab against the local Hub test server (real HTTP).

The manager runs each download on its worker thread; the tests wait for its signals (never
sleep) and click the panel's own buttons: progress, a verified finish, cancel then resume
(the resume asks only for the missing bytes), a checksum mismatch, a missing repository.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from PySide6.QtCore import Qt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))  # hub_server

from hub_server import HubServer, running_hub, sha256_file

from desktop.core.downloads import Progress, part_path
from desktop.services.download_manager import DownloadManager
from desktop.ui.downloads_panel import DownloadsPanel, format_time_left

REPO = "test/files-GGUF"
BIG = "big-Q4_K_M.gguf"  # 12 MiB: room to cancel half way
SMALL = "small-Q8_0.gguf"  # 1 MiB
SIGNAL_MS = 30_000


class Files(NamedTuple):
    big: Path
    small: Path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    # The downloader never parses the bytes, so random ones stand in for a model.
    folder = tmp_path_factory.mktemp("download-sources")
    big = folder / BIG
    big.write_bytes(os.urandom(12 * 1024 * 1024))
    small = folder / SMALL
    small.write_bytes(os.urandom(1024 * 1024))
    return Files(big, small)


@pytest.fixture
def server(files: Files) -> Iterator[HubServer]:
    with running_hub() as running:
        running.add_file(REPO, BIG, files.big)
        running.add_file(REPO, SMALL, files.small)
        yield running


@pytest.fixture
def manager(server: HubServer) -> Iterator[DownloadManager]:
    downloads = DownloadManager(endpoint=server.url)
    yield downloads
    assert downloads.shutdown(), "the download thread did not end"


@pytest.fixture
def panel(qtbot: Any, manager: DownloadManager) -> DownloadsPanel:
    widget = DownloadsPanel(manager)
    qtbot.addWidget(widget)
    widget.resize(760, 420)
    widget.show()
    return widget


def test_download_reports_progress_and_finishes_verified(
    qtbot: Any, manager: DownloadManager, panel: DownloadsPanel, files: Files, tmp_path: Path
) -> None:
    assert panel.stack.currentWidget() is panel.empty
    states: list[str] = []
    reports: list[Progress] = []
    manager.stateChanged.connect(lambda _id, state: states.append(state))
    manager.progress.connect(lambda _id, progress: reports.append(progress))

    with qtbot.waitSignal(manager.finished, timeout=SIGNAL_MS) as finished:
        download_id = manager.enqueue(REPO, BIG, tmp_path, size=files.big.stat().st_size)
        row = panel.row(download_id)
        assert "Queued" in row.status_label.text()
        assert row.cancel_button.isVisible()

    assert finished.args[0] == download_id
    path = Path(finished.args[1])
    assert path == tmp_path / BIG
    assert sha256_file(path) == sha256_file(files.big)
    assert states[0] == "queued" and states[-2:] == ["verifying", "verified"]
    assert "downloading" in states
    assert reports and reports[-1].bytes_done == reports[-1].bytes_total
    assert [r.bytes_done for r in reports] == sorted(r.bytes_done for r in reports)

    item = manager.item(download_id)
    assert item.state == "verified" and item.path == path
    assert row.checksum_label.text() == "Checksum verified"
    assert row.status_label.text().startswith("Downloaded and verified")
    assert row.show_button.isVisible() and not row.cancel_button.isVisible()
    assert "1 finished" in panel.count_label.text()

    panel.clear_button.click()
    assert manager.items() == []
    assert panel.stack.currentWidget() is panel.empty


def test_downloads_run_one_at_a_time_in_order(
    qtbot: Any, manager: DownloadManager, panel: DownloadsPanel, tmp_path: Path
) -> None:
    finished: list[str] = []
    manager.finished.connect(lambda download_id, _path: finished.append(download_id))
    first = manager.enqueue(REPO, SMALL, tmp_path / "a")
    second = manager.enqueue(REPO, SMALL, tmp_path / "b")
    assert manager.item(second).state == "queued"
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=SIGNAL_MS)
    assert finished == [first, second]
    assert (tmp_path / "a" / SMALL).is_file() and (tmp_path / "b" / SMALL).is_file()


def test_cancel_then_resume_continues_where_it_stopped(
    qtbot: Any,
    manager: DownloadManager,
    panel: DownloadsPanel,
    server: HubServer,
    files: Files,
    tmp_path: Path,
) -> None:
    server.faults.chunk_delay_s = 0.004  # about 0.8 s for the file: time to press Cancel
    with qtbot.waitSignal(
        manager.progress,
        timeout=SIGNAL_MS,
        check_params_cb=lambda _id, p: p.phase == "downloading" and p.bytes_done > 0,
    ):
        download_id = manager.enqueue(REPO, BIG, tmp_path)
    row = panel.row(download_id)
    with qtbot.waitSignal(manager.cancelled, timeout=SIGNAL_MS):
        qtbot.mouseClick(row.cancel_button, Qt.MouseButton.LeftButton)
        assert not row.cancel_button.isEnabled()  # "Cancelling…" until the thread stops

    kept = part_path(tmp_path / BIG).stat().st_size
    size = files.big.stat().st_size
    assert 0 < kept < size
    assert manager.item(download_id).state == "cancelled"
    assert row.status_label.text().startswith("Paused")
    assert row.resume_button.isVisible() and row.resume_button.text() == "Resume"
    assert not (tmp_path / BIG).exists()

    server.faults.chunk_delay_s = 0.0
    server.reset_counters()
    with qtbot.waitSignal(manager.finished, timeout=SIGNAL_MS):
        qtbot.mouseClick(row.resume_button, Qt.MouseButton.LeftButton)
    assert sha256_file(tmp_path / BIG) == sha256_file(files.big)
    assert [s.range for s in server.file_gets()] == [f"bytes={kept}-"]
    assert server.bytes_sent == size - kept
    assert row.checksum_label.text() == "Checksum verified"


def test_cancel_a_queued_download_at_once(
    qtbot: Any, manager: DownloadManager, server: HubServer, tmp_path: Path
) -> None:
    server.faults.chunk_delay_s = 0.002
    first = manager.enqueue(REPO, BIG, tmp_path)
    second = manager.enqueue(REPO, SMALL, tmp_path)
    with qtbot.waitSignal(manager.cancelled, timeout=1000) as cancelled:
        assert manager.cancel(second)
    assert cancelled.args == [second]
    assert manager.item(second).state == "cancelled"
    assert not manager.cancel(second)  # nothing left to cancel
    with qtbot.waitSignal(manager.finished, timeout=SIGNAL_MS) as finished:
        pass
    assert finished.args[0] == first
    assert not (tmp_path / SMALL).exists()


def test_checksum_mismatch_is_shown_and_retry_offered(
    qtbot: Any, manager: DownloadManager, panel: DownloadsPanel, server: HubServer, tmp_path: Path
) -> None:
    server.report_wrong_sha256(REPO, SMALL)
    with qtbot.waitSignal(manager.failed, timeout=SIGNAL_MS) as failed:
        download_id = manager.enqueue(REPO, SMALL, tmp_path)
    assert failed.args[0] == download_id
    assert "arrived damaged" in failed.args[1]
    row = panel.row(download_id)
    assert manager.item(download_id).state == "checksum_mismatch"
    assert row.checksum_label.text() == "Checksum mismatch"
    assert "arrived damaged" in row.status_label.text()
    assert row.resume_button.isVisible() and row.resume_button.text() == "Retry"
    assert not row.bar.isVisible()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # the damaged .part is gone


def test_a_failure_says_what_happened(
    qtbot: Any, manager: DownloadManager, panel: DownloadsPanel, tmp_path: Path
) -> None:
    with qtbot.waitSignal(manager.failed, timeout=SIGNAL_MS) as failed:
        download_id = manager.enqueue("test/no-such-repo", SMALL, tmp_path)
    message = failed.args[1]
    assert message.endswith(".") and "no-such-repo" in message
    row = panel.row(download_id)
    assert row.status_label.text() == message
    assert row.resume_button.isVisible() and not row.cancel_button.isVisible()
    assert row.checksum_label.text() == ""


def test_shutdown_cancels_a_running_download_and_joins_its_thread(
    qtbot: Any, server: HubServer, tmp_path: Path
) -> None:
    manager = DownloadManager(endpoint=server.url)
    server.faults.chunk_delay_s = 0.004
    with qtbot.waitSignal(
        manager.progress, timeout=SIGNAL_MS, check_params_cb=lambda _id, p: p.bytes_done > 0
    ):
        manager.enqueue(REPO, BIG, tmp_path)
    assert manager.shutdown(timeout_s=10)
    assert part_path(tmp_path / BIG).exists()  # kept for the next run
    with pytest.raises(RuntimeError):
        manager.enqueue(REPO, SMALL, tmp_path)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, ""),
        (0.2, "1 s left"),
        (42, "42 s left"),
        (150, "2 min left"),
        (3900, "1 h 5 min left"),
    ],
)
def test_time_left(seconds: float | None, text: str) -> None:
    assert format_time_left(seconds) == text
