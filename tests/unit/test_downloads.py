"""Tests for desktop.core.downloads against the local Hub server (real HTTP, real GGUF files).

Each failure a download can meet is produced for real: the server hangs up mid-file, ignores
Range on resume, lists a wrong checksum, refuses access; the disk is "full" by patching
shutil.disk_usage. After each one the test checks what is on disk: never a file under its
final name unless it was verified, and a .part that the next call resumes.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from hub_server import HubServer, free_port_url, running_hub, sha256_file, write_split_model
from synth import ACCURACY_MODELS, SynthModel, write_model

from desktop.core import downloads, hub
from desktop.core.downloads import (
    CancelToken,
    ChecksumError,
    DiskSpaceError,
    DownloadCancelled,
    DownloadError,
    Progress,
    download,
    part_path,
    sidecar_path,
)
from desktop.core.gguf import read_header_file

REPO = "test/models-GGUF"
BIG = "moe-Q4_K.gguf"  # about 20 MB: room for a drop at 41%
SMALL = "small-Q8_0.gguf"  # about 3.5 MB


class Files(NamedTuple):
    big: Path
    small: Path
    parts: list[Path]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    folder = tmp_path_factory.mktemp("download-sources")
    big = write_model(folder / BIG, ACCURACY_MODELS["qwen3moe"])
    small = write_model(folder / SMALL, SynthModel())
    split_dir = folder / "split"
    split_dir.mkdir()
    parts = write_split_model(split_dir / "small-Q8_0.gguf", SynthModel(), max_tensors=16)
    return Files(big, small, parts)


@pytest.fixture
def server(files: Files) -> Iterator[HubServer]:
    with running_hub() as running:
        running.add_file(REPO, BIG, files.big)
        running.add_file(REPO, SMALL, files.small)
        for part in files.parts:
            running.add_file(REPO, f"split/{part.name}", part)
        yield running


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "models"


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_verifies_and_renames(server: HubServer, files: Files, dest: Path) -> None:
    reports: list[Progress] = []
    path = download(REPO, BIG, dest, progress=reports.append, endpoint=server.url)

    assert path == dest / BIG
    assert sha256_file(path) == sha256_file(files.big)
    assert listing(dest) == [BIG]  # no .part, no sidecar
    size = files.big.stat().st_size
    assert reports[-1].bytes_done == reports[-1].bytes_total == size
    done = [r.bytes_done for r in reports]
    assert done == sorted(done)
    assert server.bytes_sent == size
    # The token never travels to the CDN (the fake Hub redirects file reads there).
    assert {s.server for s in server.file_gets()} == {"cdn"}


def test_dropped_connection_leaves_a_part_that_resumes(
    server: HubServer, files: Files, dest: Path
) -> None:
    size = files.big.stat().st_size
    server.faults.drop_after_bytes = int(0.41 * size)

    with pytest.raises(DownloadError) as caught:
        download(REPO, BIG, dest, endpoint=server.url)

    match = re.fullmatch(
        r"The connection dropped at (\d+)%; press Resume to continue\.", str(caught.value)
    )
    assert match, str(caught.value)
    assert 35 <= int(match.group(1)) <= 41  # the last partly-received MiB is not kept
    part = part_path(dest / BIG)
    kept = part.stat().st_size
    assert 0 < kept <= int(0.41 * size)
    assert listing(dest) == [part.name, sidecar_path(part).name]
    assert files.big.read_bytes()[:kept] == part.read_bytes()

    # "Restart the app": a new call finds the .part and asks only for the rest.
    server.reset_counters()
    reports: list[Progress] = []
    path = download(REPO, BIG, dest, progress=reports.append, endpoint=server.url)

    assert sha256_file(path) == sha256_file(files.big)
    assert server.bytes_sent == size - kept
    assert [s.range for s in server.file_gets()] == [f"bytes={kept}-"]
    fetching = [r for r in reports if r.phase == "downloading"]
    assert fetching[0].bytes_done == kept  # progress starts where the last attempt stopped
    assert {r.phase for r in reports} == {"checking", "downloading"}  # re-hashed the .part
    assert listing(dest) == [BIG]


def test_server_ignoring_range_on_resume_restarts_cleanly(
    server: HubServer, files: Files, dest: Path
) -> None:
    size = files.big.stat().st_size
    server.faults.drop_after_bytes = size // 2
    with pytest.raises(DownloadError, match="press Resume"):
        download(REPO, BIG, dest, endpoint=server.url)
    server.reset_counters()
    server.faults.ignore_range = True

    path = download(REPO, BIG, dest, endpoint=server.url)

    assert [s.status for s in server.file_gets()] == [200]
    assert server.bytes_sent == size
    assert path.stat().st_size == size
    assert sha256_file(path) == sha256_file(files.big)
    assert listing(dest) == [BIG]


def test_wrong_checksum_leaves_nothing_that_looks_complete(server: HubServer, dest: Path) -> None:
    server.report_wrong_sha256(REPO, SMALL)

    with pytest.raises(ChecksumError, match=r"arrived damaged.*deleted"):
        download(REPO, SMALL, dest, endpoint=server.url)

    assert listing(dest) == []


def test_catalog_checksum_is_checked_too(server: HubServer, dest: Path) -> None:
    with pytest.raises(ChecksumError):
        download(REPO, SMALL, dest, expected_sha256="0" * 64, endpoint=server.url)
    assert listing(dest) == []


def test_catalog_size_that_differs_stops_before_downloading(
    server: HubServer, files: Files, dest: Path
) -> None:
    with pytest.raises(DownloadError, match="probably replaced"):
        download(
            REPO, SMALL, dest, expected_size=files.small.stat().st_size + 1, endpoint=server.url
        )
    assert server.file_gets() == []


@pytest.mark.parametrize(
    ("status", "code", "error", "words"),
    [
        (401, "GatedRepo", hub.HubAccessError, "gated: accept its license"),
        (403, None, hub.HubAccessError, "gated: accept its license"),
        (404, "RepoNotFound", hub.HubNotFoundError, "no model"),
    ],
)
def test_refusals_are_plain_sentences(
    server: HubServer,
    dest: Path,
    status: int,
    code: str | None,
    error: type[hub.HubError],
    words: str,
) -> None:
    server.faults.status[REPO] = (status, code)
    with pytest.raises(error, match=words):
        download(REPO, SMALL, dest, endpoint=server.url)
    assert listing(dest) == []


def test_missing_file_and_offline(server: HubServer, dest: Path) -> None:
    with pytest.raises(hub.HubNotFoundError, match="has no file"):
        download(REPO, "nope.gguf", dest, endpoint=server.url)
    with pytest.raises(hub.HubOfflineError, match="You are offline"):
        download(REPO, SMALL, dest, endpoint=free_port_url())
    assert listing(dest) == []


def test_cancel_keeps_the_part_for_later(server: HubServer, files: Files, dest: Path) -> None:
    server.faults.chunk_delay_s = 0.002  # about a second for 20 MB: time to press Cancel
    token = CancelToken()
    reports: list[Progress] = []

    def on_progress(report: Progress) -> None:
        reports.append(report)
        if report.bytes_done > 0:
            token.cancel()

    with pytest.raises(DownloadCancelled):
        download(REPO, BIG, dest, progress=on_progress, cancel=token, endpoint=server.url)

    size = files.big.stat().st_size
    part = part_path(dest / BIG)
    kept = part.stat().st_size
    assert 0 < kept < size
    assert not (dest / BIG).exists()
    assert any(r.rate_bytes_per_s and r.eta_s is not None for r in reports)

    server.faults.chunk_delay_s = 0.0
    server.reset_counters()
    path = download(REPO, BIG, dest, endpoint=server.url)
    assert sha256_file(path) == sha256_file(files.big)
    assert server.bytes_sent == size - kept


def test_not_enough_disk_space(
    server: HubServer, files: Files, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = files.big.stat().st_size
    usage = shutil.disk_usage(dest.parent)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=size // 2))

    with pytest.raises(DiskSpaceError, match=r"Not enough disk space.*needs 20 MB more"):
        download(REPO, BIG, dest, endpoint=server.url)
    assert server.file_gets() == []
    assert listing(dest) == []

    # With most of the file already in the .part, only the rest has to fit.
    monkeypatch.undo()
    server.faults.drop_after_bytes = int(0.6 * size)
    with pytest.raises(DownloadError):
        download(REPO, BIG, dest, endpoint=server.url)
    kept = part_path(dest / BIG).stat().st_size
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=size - kept))
    assert download(REPO, BIG, dest, endpoint=server.url).stat().st_size == size


def test_split_model_downloads_every_part(server: HubServer, files: Files, dest: Path) -> None:
    names = [f"split/{p.name}" for p in files.parts]
    hashes = [sha256_file(p) for p in files.parts]
    reports: list[Progress] = []

    first = download(
        REPO, names, dest, expected_sha256=hashes, progress=reports.append, endpoint=server.url
    )

    assert first == dest / files.parts[0].name
    assert listing(dest) == sorted(p.name for p in files.parts)
    for part in files.parts:
        assert sha256_file(dest / part.name) == sha256_file(part)
    assert {r.part_index for r in reports} == {0, 1, 2}
    assert all(r.parts == 3 for r in reports)
    assert reports[-1].bytes_done == sum(p.stat().st_size for p in files.parts)
    assert read_header_file(first).get("split.count") == 3


def test_existing_download_is_not_fetched_again(server: HubServer, dest: Path) -> None:
    download(REPO, SMALL, dest, endpoint=server.url)
    server.reset_counters()
    download(REPO, SMALL, dest, endpoint=server.url)
    assert server.file_gets() == []


def test_two_downloads_of_one_file_do_not_interleave(server: HubServer, dest: Path) -> None:
    final = dest / SMALL
    with downloads._claimed(final), pytest.raises(DownloadError, match="already being"):
        download(REPO, SMALL, dest, endpoint=server.url)
