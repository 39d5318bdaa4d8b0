"""The Hugging Face lookup without Qt (desktop.core.hub_lookup) against the local Hub server.

What the Models tab's repo box runs on its pool threads: repo names from what a person types,
rows from the headers read over HTTP (a broken header becomes a row without an estimate and a
note), the cap on header reads, and the summary sentence. The box itself is tested in
tests/ui/test_hub_box.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_server import (
    TWO_GGUF_LLAMA,
    TWO_GGUF_QWEN,
    TWO_GGUF_REPO,
    HubServer,
    serving_two_gguf,
    write_two_gguf_models,
)

from desktop.core.hub import list_gguf_files
from desktop.core.hub_lookup import header_reads, parse_repo_id, read_remote_rows, summary

REPO = TWO_GGUF_REPO
QWEN = TWO_GGUF_QWEN
LLAMA = TWO_GGUF_LLAMA


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_two_gguf_models(tmp_path_factory.mktemp("hub-lookup-models"))


@pytest.fixture
def server(model_files: dict[str, Path]) -> Iterator[HubServer]:
    with serving_two_gguf(model_files) as running:
        yield running


def test_unreadable_headers_and_the_read_cap(
    server: HubServer, model_files: dict[str, Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken-Q4_K_M.gguf"
    broken.write_bytes(b"<!doctype html><html>Sign in to continue</html>" * 100)
    server.add_file(REPO, broken.name, broken)
    models = list_gguf_files(REPO, endpoint=server.url)
    cache = tmp_path / "header-cache"

    found = read_remote_rows(REPO, models, endpoint=server.url, cache_dir=cache)
    by_file = {row.file: row for row in found.rows}
    assert set(by_file) == {broken.name, LLAMA, QWEN}
    assert by_file[broken.name].spec is None
    assert by_file[broken.name].note.startswith("Could not read its header:")
    assert len(found.failed) == 1
    assert "1 header was unreadable" in summary(found)

    capped = read_remote_rows(REPO, models, endpoint=server.url, cache_dir=cache, max_reads=1)
    assert capped.unread == 2
    assert "Read the first header; 2 more have no estimate" in summary(capped)
    assert [row.spec is not None for row in capped.rows] == [False, False, False]  # broken first
    assert all("was not read" in row.note for row in capped.rows[1:])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bartowski/Qwen_Qwen3-8B-GGUF", "bartowski/Qwen_Qwen3-8B-GGUF"),
        ("  owner/name  ", "owner/name"),
        ("https://huggingface.co/owner/name/blob/main/x.gguf", "owner/name"),
        ("huggingface.co/owner/name", "owner/name"),
        ("notarepo", None),
        ("owner/", None),
        ("a/b/c", None),
        ("owner/na--me", None),
        ("owner/name with space", None),
        ("https://example.com/owner/name", None),
    ],
)
def test_parse_repo_id(text: str, expected: str | None) -> None:
    assert parse_repo_id(text) == expected


def test_the_header_reads_announced_are_the_ones_made(server: HubServer) -> None:
    models = list_gguf_files(REPO, endpoint=server.url)
    assert len(models) == 4  # two models, a projector, half a split set
    assert header_reads(models) == 2
    assert header_reads(models, max_reads=1) == 1
