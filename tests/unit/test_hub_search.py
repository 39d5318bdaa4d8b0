"""Hugging Face search (desktop.core.hub_search) through the real huggingface_hub client.

The local test Hub (hub_server.serving_search_world) answers ``HfApi.list_models`` as
huggingface.co does: the query parameters it sends, only the expanded fields, the ``gguf``
summary, paging by the ``Link`` header. Every failure path a person can meet is checked for its
sentence: gated (401), missing (404), rate limited (429), slow, a dropped connection, offline.
The command line (``search --json``) runs in a child process against the same server.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from hub_server import (
    GATED_REPO,
    LLAMA_REPO,
    MISSING_REPO,
    QWEN8B_REPO,
    QWEN_TINY_REPO,
    HubServer,
    free_port_url,
    serving_search_world,
    write_search_models,
)

from desktop.core import hub_search
from desktop.core.catalog import Catalog, load_catalog
from desktop.core.estimate import Device, Settings, Verdict, estimate
from desktop.core.hub import HubAccessError, HubError, HubNotFoundError, HubOfflineError
from desktop.core.units import GIB


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_search_models(tmp_path_factory.mktemp("search-models"))


@pytest.fixture
def hub(files: dict[str, Path]) -> Iterator[HubServer]:
    with serving_search_world(files) as running:
        yield running


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _let_searches_end() -> None:
    """Wait for search threads given up on (huggingface_hub still retrying) to finish while
    the server is up: a retry against a stopped server would close huggingface_hub's shared
    HTTP client under the next test."""
    import threading

    for thread in threading.enumerate():
        if thread.name == "hub-search":
            thread.join(timeout=20)


def _gpu(vram_gib: float) -> list[Device]:
    from desktop.core.estimate import devices_from_profile
    from desktop.core.hardware import HardwareProfile

    profile = HardwareProfile.from_json(
        json.dumps(
            {
                "memory": {"total_bytes": 32 * GIB, "available_bytes": 28 * GIB},
                "gpus": [
                    {
                        "name": "Test GPU",
                        "vendor": "nvidia",
                        "vram_total_bytes": int(vram_gib * GIB),
                        "bandwidth_bytes_per_s": 448_000_000_000,
                    }
                ],
            }
        )
    )
    return devices_from_profile(profile)


def test_search_sends_what_list_models_sends_and_reads_the_summary(hub: HubServer) -> None:
    found = hub_search.search("qwen", endpoint=hub.url, limit=10)
    ids = [repo.repo_id for repo in found.repos]
    # "qwen" in the name, most downloads first; the llama repo has more downloads but no match.
    assert ids == [QWEN8B_REPO, GATED_REPO, QWEN_TINY_REPO, MISSING_REPO]
    assert LLAMA_REPO not in ids and not found.has_more
    query = parse_qs(hub.searches()[0].query)
    assert query["filter"] == ["gguf"] and query["search"] == ["qwen"]
    assert query["sort"] == ["downloads"]
    assert {"downloads", "likes", "lastModified", "gated", "gguf"} <= set(query["expand"])
    first = found.repos[0]
    assert (first.params, first.architecture, first.context_length) == (
        8_190_735_360,
        "qwen3",
        40960,
    )
    assert (first.downloads, first.likes, first.author) == (52_000, 310, "test")
    assert first.last_modified is not None and first.last_modified.year == 2025
    assert first.gated is None and found.repos[1].gated == "manual"


@pytest.mark.parametrize(
    ("sort", "hub_sort", "first"),
    [
        ("downloads", "downloads", QWEN8B_REPO),
        ("trending", "trendingScore", QWEN_TINY_REPO),
        ("updated", "lastModified", QWEN_TINY_REPO),
        ("likes", "likes", QWEN8B_REPO),
    ],
)
def test_sorts(hub: HubServer, sort: str, hub_sort: str, first: str) -> None:
    found = hub_search.search("qwen", sort, endpoint=hub.url, limit=2)
    assert found.repos[0].repo_id == first
    assert parse_qs(hub.searches()[-1].query)["sort"] == [hub_sort]


def test_pages_follow_the_link_header(hub: HubServer) -> None:
    hub.page_size = 1  # the Hub pages; huggingface_hub follows rel="next"
    page0 = hub_search.search("qwen", endpoint=hub.url, limit=2)
    assert len(hub.searches()) == 3  # limit 3 (one more than shown): three pages of one
    assert all("cursor=" in s.query for s in hub.searches()[1:])
    page1 = hub_search.search("qwen", endpoint=hub.url, limit=2, page=1)
    assert [r.repo_id for r in page0.repos] == [QWEN8B_REPO, GATED_REPO] and page0.has_more
    assert [r.repo_id for r in page1.repos] == [QWEN_TINY_REPO, MISSING_REPO]
    assert not page1.has_more


def test_about_verdict_from_the_summary_and_the_catalog(hub: HubServer, catalog: Catalog) -> None:
    found = hub_search.search("qwen", endpoint=hub.url)
    by_id = {repo.repo_id: repo for repo in found.repos}
    qwen8b = hub_search.repo_row(by_id[QWEN8B_REPO], catalog)
    assert qwen8b.is_hub_repo and qwen8b.spec is not None
    assert qwen8b.spec.source == "catalog" and qwen8b.spec.n_layer == 36
    assert qwen8b.note.startswith("About:") and "Qwen3 8B" in qwen8b.note
    assert qwen8b.quant == "~Q4_K_M"
    family = hub_search.catalog_family("qwen3", 8_190_735_360, catalog)
    assert family is not None and family.id == "qwen3-8b"
    # A family the catalog has no numbers for: no verdict until a header is read.
    tiny = hub_search.repo_row(by_id[QWEN_TINY_REPO], catalog)
    assert tiny.spec is None and "no numbers" in tiny.note
    gated = hub_search.repo_row(by_id[GATED_REPO], catalog)
    assert "accept its license on the model page, then add a token in Settings" in gated.note
    plan = estimate(qwen8b.spec, Settings(n_ctx=4096), _gpu(8))
    assert plan.estimate_kind == "catalog" and plan.verdict is Verdict.FULL_GPU


def test_expanding_a_repo_then_exact_verdicts_from_headers_only(
    hub: HubServer, catalog: Catalog, tmp_path: Path
) -> None:
    repo = next(r for r in hub_search.search("qwen3-8b", endpoint=hub.url).repos)
    opened = hub_search.expand_repo(QWEN8B_REPO, catalog, repo, endpoint=hub.url)
    assert opened.projectors == ("mmproj-Qwen3-8B-F16.gguf",)
    assert [(r.quant, r.spec is not None) for r in opened.rows] == [
        ("Q4_K_M", True),
        ("Q8_0", True),
    ]
    assert all(r.spec is not None and r.spec.source == "catalog" for r in opened.rows)
    assert all("mmproj-Qwen3-8B-F16.gguf" in r.note for r in opened.rows)
    hub.reset_counters()
    cache = tmp_path / "cache"
    exact = [
        hub_search.exact_row(f, repo, endpoint=hub.url, cache_dir=cache)
        for f in opened.files
        if not f.is_projector
    ]
    assert all(message == "" for _, message in exact)
    rows = [row for row, _ in exact]
    assert [r.spec.source if r.spec else None for r in rows] == ["header", "header"]
    sizes = sum(r.file_size_bytes or 0 for r in rows)
    assert hub.bytes_sent < 0.01 * sizes  # the headers, not the 13 GB of the files
    plans = [estimate(r.spec, Settings(n_ctx=4096), _gpu(8)) for r in rows if r.spec]
    assert plans[0].verdict is Verdict.FULL_GPU  # Q4_K_M fits 8 GB
    assert plans[1].verdict is Verdict.PARTIAL  # Q8_0 (8.7 GB) does not
    # Again: from the header cache, no request at all.
    hub.reset_counters()
    again = hub_search.exact_row(opened.files[0], repo, endpoint=hub.url, cache_dir=cache)
    assert again[0].spec is not None and hub.requests == 0


def test_gated_and_missing_repos_say_what_to_do(hub: HubServer, catalog: Catalog) -> None:
    with pytest.raises(HubAccessError) as gated:
        hub_search.expand_repo(GATED_REPO, catalog, endpoint=hub.url)
    assert "accept its license on the model page, then add a token in Settings" in str(
        gated.value
    )
    with pytest.raises(HubNotFoundError) as missing:
        hub_search.expand_repo(MISSING_REPO, catalog, endpoint=hub.url)
    assert "There is no model" in str(missing.value)


def test_a_rate_limit_once_is_retried_and_a_lasting_one_is_a_sentence(hub: HubServer) -> None:
    hub.faults.search_statuses = [429]
    found = hub_search.search("qwen", endpoint=hub.url)  # huggingface_hub waits, retries
    assert found.repos and [s.status for s in hub.searches()] == [429, 200]
    hub.faults.search_statuses = [429, 429]  # twice: reported, then the retry succeeds
    start = time.monotonic()
    with pytest.raises(HubError, match="limiting requests from this computer"):
        hub_search.search("qwen", endpoint=hub.url)
    assert time.monotonic() - start < 5  # told at once, not after every retry
    _let_searches_end()


def test_server_errors_and_404_search(hub: HubServer) -> None:
    hub.faults.search_statuses = [503, 503]
    with pytest.raises(HubError, match="server errors"):
        hub_search.search("qwen", endpoint=hub.url)
    _let_searches_end()
    hub.faults.search_statuses = [404]
    with pytest.raises(HubError, match="has no model search"):
        hub_search.search("qwen", endpoint=hub.url)


def test_slow_answers_wait_up_to_the_deadline(hub: HubServer) -> None:
    hub.faults.search_delay_s = 0.5
    assert hub_search.search("qwen", endpoint=hub.url, timeout_s=10).repos
    hub.faults.search_delay_s = 4.0
    start = time.monotonic()
    with pytest.raises(HubError, match="did not answer the search within 1 s"):
        hub_search.search("qwen", endpoint=hub.url, timeout_s=1)
    assert time.monotonic() - start < 2.5
    _let_searches_end()
    hub.faults.search_delay_s = 0.0


def test_dropped_connections(hub: HubServer) -> None:
    hub.faults.search_drops = 1
    assert hub_search.search("qwen", endpoint=hub.url).repos  # retried once
    hub.faults.search_drops = 3
    with pytest.raises(HubError, match="keeps dropping"):
        hub_search.search("qwen", endpoint=hub.url)
    _let_searches_end()


def test_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    start = time.monotonic()
    with pytest.raises(HubOfflineError, match="You are offline"):
        hub_search.search("qwen", endpoint=free_port_url())
    assert time.monotonic() - start < 5
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubOfflineError, match="HF_HUB_OFFLINE"):
        hub_search.search("qwen", endpoint=free_port_url())


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "desktop", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, **env},
    )


def test_cli_search_json(hub: HubServer, tmp_path: Path) -> None:
    hw = tmp_path / "hw.json"
    hw.write_text(
        json.dumps(
            {
                "memory": {"total_bytes": 32 * GIB, "available_bytes": 28 * GIB},
                "gpus": [{"name": "8 GB", "vendor": "nvidia", "vram_total_bytes": 8 * GIB}],
            }
        )
    )
    env = {"HF_ENDPOINT": hub.url, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = _cli(["search", "qwen", "--json", "--hardware", str(hw), "--limit", "3"], env)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["query"] == "qwen" and data["has_more"] is True
    first = data["repos"][0]
    assert first["repo"] == QWEN8B_REPO and first["estimate_kind"] == "about"
    assert first["verdict"] == "FULL_GPU" and "files" not in first
    assert data["repos"][2]["verdict"] is None  # the tiny family: not in the catalog

    done = _cli(
        ["search", "qwen", "--exact", "--json", "--hardware", str(hw), "--sort", "likes"], env
    )
    assert done.returncode == 0, done.stderr
    repos = {r["repo"]: r for r in json.loads(done.stdout)["repos"]}
    qwen8b = repos[QWEN8B_REPO]
    assert qwen8b["estimate_kind"] == "exact" and qwen8b["best_file"] == "Qwen3-8B-Q4_K_M.gguf"
    assert [f["verdict"] for f in qwen8b["files"]] == ["FULL_GPU", "PARTIAL", None]
    assert qwen8b["files"][-1]["projector"] is True
    assert repos[QWEN_TINY_REPO]["estimate_kind"] == "exact"  # read from its header
    assert "add a token in Settings" in repos[GATED_REPO]["error"]
    assert "There is no model" in repos[MISSING_REPO]["error"]

    text = _cli(["search", "qwen", "--hardware", str(hw)], env)
    assert text.returncode == 0 and "about: Full GPU" in text.stdout


def test_cli_search_offline_is_one_sentence(tmp_path: Path) -> None:
    done = _cli(["search", "qwen"], {"HF_ENDPOINT": free_port_url()})
    assert done.returncode == 1
    assert "llm-workbench: You are offline" in done.stderr and "Traceback" not in done.stderr
