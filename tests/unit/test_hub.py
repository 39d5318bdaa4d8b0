"""Tests for desktop.core.hub against a real HTTP server that speaks the Hub's protocol.

No part of huggingface_hub is mocked: its client talks to ``hub_server.HubServer`` on
127.0.0.1, which serves real GGUF files (the synthetic ones and Gemma 3 270M) and counts
every request and byte, so "reads only the header" is measured, not assumed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import huggingface_hub.constants
import pytest
from hub_server import (
    HubServer,
    free_port_url,
    gemma_sha256,
    running_hub,
    write_split_model,
)
from real_models import gemma_file
from synth import SynthModel, write_model

from desktop.core import hub
from desktop.core.gguf import GGUFError, read_header_file
from desktop.core.modelspec import spec_from_header

GEMMA_REPO = "unsloth/gemma-3-270m-it-GGUF"
GEMMA_NAME = "gemma-3-270m-it-Q4_K_M.gguf"
SYNTH_REPO = "test/synth-GGUF"
SMALL = SynthModel()  # a 3.5 MB llama


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hub-models")
    paths = {"small": write_model(folder / "small-Q8_0.gguf", SMALL)}
    split_dir = folder / "split"
    split_dir.mkdir()
    parts = write_split_model(split_dir / "small-Q8_0.gguf", SMALL, max_tensors=16)
    for index, part in enumerate(parts, start=1):
        paths[f"part{index}"] = part
    not_gguf = folder / "broken.gguf"
    not_gguf.write_bytes(b"<!doctype html><html>Sign in to continue</html>" * 100)
    paths["broken"] = not_gguf
    return paths


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    with running_hub() as running:
        monkeypatch.setenv("HF_ENDPOINT", running.url)  # for subprocesses; in-process: endpoint=
        yield running


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "header-cache"


def test_list_groups_split_parts_and_reports_lfs_hashes(
    server: HubServer, models: dict[str, Path]
) -> None:
    small = server.add_file(SYNTH_REPO, "small-Q8_0.gguf", models["small"])
    parts = sorted(k for k in models if k.startswith("part"))
    for key in parts:
        server.add_file(SYNTH_REPO, f"Q8_0/{models[key].name}", models[key])
    server.add_file(SYNTH_REPO, "mmproj-small-F16.gguf", models["small"])
    server.add_file(SYNTH_REPO, "README.md", models["broken"])
    # A split set whose second part is missing on the Hub.
    server.add_file(SYNTH_REPO, "half-Q2_K-00001-of-00002.gguf", models["part1"])

    listed = hub.list_gguf_files(SYNTH_REPO, endpoint=server.url)

    assert [m.path for m in listed] == [
        "Q8_0/small-Q8_0-00001-of-00003.gguf",
        "half-Q2_K-00001-of-00002.gguf",
        "mmproj-small-F16.gguf",
        "small-Q8_0.gguf",
    ]
    by_name = {m.name: m for m in listed}
    split = next(m for m in listed if m.is_split and m.is_complete)
    assert split.path == "Q8_0/small-Q8_0-00001-of-00003.gguf"
    assert split.filenames == tuple(f"Q8_0/{models[k].name}" for k in parts)
    assert split.size_bytes == sum(models[k].stat().st_size for k in parts)
    assert split.quant == "Q8_0"
    single = next(m for m in listed if m.path == "small-Q8_0.gguf")
    assert single.parts[0].sha256 == small.sha256
    assert single.parts[0].size_bytes == small.size
    assert single.commit == server.repos[SYNTH_REPO].commit
    assert by_name["mmproj-small-F16.gguf"].is_projector
    assert not by_name["half-Q2_K.gguf"].is_complete
    assert by_name["half-Q2_K.gguf"].quant == "Q2_K"
    assert server.requests == 1


def test_remote_gemma_header_reads_only_the_header(server: HubServer, cache_dir: Path) -> None:
    path = gemma_file()
    server.add_file(GEMMA_REPO, GEMMA_NAME, path, sha256=gemma_sha256())
    local = read_header_file(path)

    header = hub.read_remote_header(
        GEMMA_REPO, GEMMA_NAME, endpoint=server.url, cache_dir=cache_dir
    )

    assert header.data_offset == local.data_offset  # 6.5 MB of a 253 MB file
    assert header.tensors == local.tensors
    assert dict(header.metadata) == dict(local.metadata)
    assert header.file_size == path.stat().st_size
    assert spec_from_header(header) == spec_from_header(local)
    assert server.bytes_sent < 2 * local.data_offset
    assert server.bytes_sent < local.file_size // 20
    assert server.requests <= 6  # one HEAD, then 1 + 2 + 4 MiB ranges
    assert all(s.status == 206 for s in server.file_gets())


def test_second_read_comes_from_the_cache_without_a_request(
    server: HubServer, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.add_file(GEMMA_REPO, GEMMA_NAME, gemma_file(), sha256=gemma_sha256())
    first = hub.read_remote_header(GEMMA_REPO, GEMMA_NAME, endpoint=server.url, cache_dir=cache_dir)
    server.reset_counters()

    again = hub.read_remote_header(GEMMA_REPO, GEMMA_NAME, endpoint=server.url, cache_dir=cache_dir)
    commit = server.repos[GEMMA_REPO].commit
    pinned = hub.read_remote_header(
        GEMMA_REPO, GEMMA_NAME, commit, endpoint=server.url, cache_dir=cache_dir
    )
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    offline = hub.read_remote_header(
        GEMMA_REPO, GEMMA_NAME, endpoint=server.url, cache_dir=cache_dir
    )

    assert server.requests == 0
    assert again.tensors == first.tensors == pinned.tensors == offline.tensors
    assert again.data_offset == first.data_offset


def test_refresh_reads_again(server: HubServer, cache_dir: Path, models: dict[str, Path]) -> None:
    server.add_file(SYNTH_REPO, "small-Q8_0.gguf", models["small"])
    hub.read_remote_header(SYNTH_REPO, "small-Q8_0.gguf", endpoint=server.url, cache_dir=cache_dir)
    server.reset_counters()
    hub.read_remote_header(
        SYNTH_REPO, "small-Q8_0.gguf", endpoint=server.url, cache_dir=cache_dir, refresh=True
    )
    assert server.requests >= 2


def test_server_ignoring_range_does_not_send_the_whole_file(
    server: HubServer, cache_dir: Path
) -> None:
    path = gemma_file()
    server.add_file(GEMMA_REPO, GEMMA_NAME, path, sha256=gemma_sha256())
    server.faults.ignore_range = True

    header = hub.read_remote_header(
        GEMMA_REPO, GEMMA_NAME, endpoint=server.url, cache_dir=cache_dir
    )

    assert header.data_offset == read_header_file(path).data_offset
    assert all(s.status == 200 for s in server.file_gets())
    # The client hangs up once it has what it asked for; the kernel's socket buffers let the
    # server write a little more than that, but nowhere near the 253 MB file.
    assert server.bytes_sent < 48 * 1024 * 1024


def test_split_model_headers_are_merged(
    server: HubServer, cache_dir: Path, models: dict[str, Path]
) -> None:
    names = []
    for key in sorted(k for k in models if k.startswith("part")):
        server.add_file(SYNTH_REPO, models[key].name, models[key])
        names.append(models[key].name)
    assert len(names) == 3

    merged = hub.read_remote_header(SYNTH_REPO, names, endpoint=server.url, cache_dir=cache_dir)

    whole = read_header_file(models["small"])
    assert {t.name for t in merged.tensors} == {t.name for t in whole.tensors}
    assert merged.tensor_bytes == whole.tensor_bytes
    spec, expected = spec_from_header(merged), spec_from_header(whole)
    assert spec.n_layer == expected.n_layer
    assert spec.weight_bytes == expected.weight_bytes
    assert [lay.weight_bytes for lay in spec.layers] == [
        lay.weight_bytes for lay in expected.layers
    ]


def test_split_parts_that_do_not_belong_together_are_refused(models: dict[str, Path]) -> None:
    first = read_header_file(models["part1"])
    with pytest.raises(GGUFError, match="3 parts, but 2"):
        hub.merge_split_headers([first, read_header_file(models["part3"])])


def test_token_goes_to_the_hub_but_not_to_the_cdn(
    server: HubServer, cache_dir: Path, models: dict[str, Path]
) -> None:
    server.add_file(SYNTH_REPO, "small-Q8_0.gguf", models["small"])
    hub.read_remote_header(
        SYNTH_REPO, "small-Q8_0.gguf", endpoint=server.url, cache_dir=cache_dir, token="hf_test"
    )
    assert [s.authorized for s in server.seen if s.server == "hub"] == [True]
    assert server.file_gets()
    assert not any(s.authorized for s in server.seen if s.server == "cdn")


def test_not_a_gguf_file_passes_the_reader_message_through(
    server: HubServer, cache_dir: Path, models: dict[str, Path]
) -> None:
    server.add_file(SYNTH_REPO, "broken.gguf", models["broken"])
    with pytest.raises(hub.HubBadFileError) as caught:
        hub.read_remote_header(SYNTH_REPO, "broken.gguf", endpoint=server.url, cache_dir=cache_dir)
    with pytest.raises(GGUFError) as local:
        read_header_file(models["broken"])
    assert isinstance(caught.value, GGUFError)
    assert str(caught.value) == str(local.value).replace(
        str(models["broken"]), f"{SYNTH_REPO}/broken.gguf"
    )
    assert "web page" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "code", "error", "words"),
    [
        (401, "GatedRepo", hub.HubAccessError, "gated: accept its license"),
        (403, None, hub.HubAccessError, "gated: accept its license"),
        (401, "RepoNotFound", hub.HubAccessError, "gated or private, or it does not exist"),
        (404, "RepoNotFound", hub.HubNotFoundError, "no model"),
    ],
)
def test_http_errors_become_plain_sentences(
    server: HubServer,
    cache_dir: Path,
    models: dict[str, Path],
    status: int,
    code: str | None,
    error: type[hub.HubError],
    words: str,
) -> None:
    server.add_file(SYNTH_REPO, "small-Q8_0.gguf", models["small"])
    server.faults.status[SYNTH_REPO] = (status, code)
    with pytest.raises(error, match=words):
        hub.list_gguf_files(SYNTH_REPO, endpoint=server.url)
    with pytest.raises(error, match=words):
        hub.read_remote_header(
            SYNTH_REPO, "small-Q8_0.gguf", endpoint=server.url, cache_dir=cache_dir
        )


def test_missing_repo_file_and_revision(
    server: HubServer, cache_dir: Path, models: dict[str, Path]
) -> None:
    server.add_file(SYNTH_REPO, "small-Q8_0.gguf", models["small"])
    with pytest.raises(hub.HubNotFoundError, match="no model 'test/nothing-here'"):
        hub.list_gguf_files("test/nothing-here", endpoint=server.url)
    with pytest.raises(hub.HubNotFoundError, match=r"has no file 'gone\.gguf'"):
        hub.read_remote_header(SYNTH_REPO, "gone.gguf", endpoint=server.url, cache_dir=cache_dir)
    with pytest.raises(hub.HubNotFoundError, match="no such branch, tag or commit"):
        hub.list_gguf_files(SYNTH_REPO, revision="v9", endpoint=server.url)
    with pytest.raises(hub.HubNotFoundError, match="not a valid Hugging Face model name"):
        hub.list_gguf_files("no slash at all??", endpoint=server.url)


def test_offline_mode_and_refused_connections(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nowhere = free_port_url()
    with pytest.raises(hub.HubOfflineError, match="You are offline"):
        hub.list_gguf_files(SYNTH_REPO, endpoint=nowhere)
    with pytest.raises(hub.HubOfflineError, match="You are offline"):
        hub.read_remote_header(SYNTH_REPO, "x.gguf", endpoint=nowhere, cache_dir=cache_dir)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(hub.HubOfflineError, match="You are offline: HF_HUB_OFFLINE is set"):
        hub.list_gguf_files(SYNTH_REPO, endpoint=nowhere)


@pytest.mark.parametrize(
    ("filename", "quant"),
    [
        ("gemma-3-270m-it-Q4_K_M.gguf", "Q4_K_M"),
        ("Qwen3-8B-UD-IQ3_XXS.gguf", "IQ3_XXS"),
        ("Q8_0/Llama-3.3-70B-Instruct-Q8_0-00001-of-00002.gguf", "Q8_0"),
        ("model-bf16.gguf", "BF16"),
        ("Qwen2.5-7B-Instruct.gguf", None),
        ("gpt-oss-20b-MXFP4.gguf", "MXFP4"),
    ],
)
def test_guess_quant(filename: str, quant: str | None) -> None:
    assert hub.guess_quant(filename) == quant


def test_split_part_info() -> None:
    assert hub.split_part_info("a/b-00002-of-00003.gguf") == ("a/b", 2, 3)
    assert hub.split_part_info("b-00004-of-00003.gguf") is None
    assert hub.split_part_info("b.gguf") is None
