"""Local files a person can tell apart, and broken ones said in one clean sentence.

Real files on disk: a synthetic GGUF written by the app's own writer, copies of it, links to it
(a symlink, a hard link, the Hugging Face cache's snapshot link into its blob), and damaged
files (another format's signature, a zip, a file cut short, an empty one).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hub_server import sha256_file
from synth import SynthModel, write_model

from desktop.core.gguf import GGUFError, read_header_file
from desktop.core.library import LocalModel, scan
from desktop.core.rows import file_key, file_labels, library_rows

SMALL = SynthModel()


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(tmp_path_factory.mktemp("sources") / "small-Q8_0.gguf", SMALL)


def only(*folders: Path, hf_cache: Path | None = None) -> list[LocalModel]:
    return scan(
        list(folders),
        include_hf_cache=hf_cache is not None,
        hf_cache=hf_cache,
        include_lm_studio=False,
    )


def test_the_reader_names_a_wrong_signature_in_words_not_python_literals(
    tmp_path: Path, good: Path
) -> None:
    ggml = tmp_path / "old.gguf"
    ggml.write_bytes(b"GGML" + bytes(100))
    zipped = tmp_path / "archive.gguf"
    zipped.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(GGUFError) as letters:
        read_header_file(ggml)
    assert str(letters.value).endswith('is not a GGUF file: it starts with "GGML", not "GGUF".')
    with pytest.raises(GGUFError) as binary:
        read_header_file(zipped)
    assert 'it starts with the bytes 50 4b 03 04, not "GGUF".' in str(binary.value)
    for message in (str(letters.value), str(binary.value)):
        assert "b'" not in message and '\\x' not in message


def test_broken_files_are_rows_marked_broken_with_one_sentence(tmp_path: Path, good: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "not-a-model.gguf").write_bytes(b"GGML" + bytes(4096))
    (folder / "archive.gguf").write_bytes(b"PK\x03\x04" + bytes(4096))
    (folder / "cut-short.gguf").write_bytes(good.read_bytes()[:300])
    (folder / "empty.gguf").write_bytes(b"")
    (folder / "fine.gguf").write_bytes(good.read_bytes())
    rows = {r.file_name: r for r in library_rows(only(folder))}
    assert set(rows) == {
        "not-a-model.gguf",
        "archive.gguf",
        "cut-short.gguf",
        "empty.gguf",
        "fine.gguf",
    }
    assert not rows["fine.gguf"].broken and rows["fine.gguf"].spec is not None
    for name in ("not-a-model.gguf", "archive.gguf", "cut-short.gguf", "empty.gguf"):
        row = rows[name]
        assert row.broken and row.spec is None, name
        note = row.note
        # One sentence that names the file as the row does (the row shows the folder).
        assert note.startswith(name), note
        assert note.endswith("."), note
        assert "\n" not in note and str(folder) not in note, note
        assert "b'" not in note and "\\x" not in note, note
    assert rows["not-a-model.gguf"].note == (
        'not-a-model.gguf is not a GGUF file: it starts with "GGML", not "GGUF".'
    )


def test_one_file_through_a_symlink_a_hard_link_and_the_hf_cache_is_one_row(
    tmp_path: Path, good: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    original = models / "small-Q8_0.gguf"
    original.write_bytes(good.read_bytes())
    (models / "link-to-small.gguf").symlink_to(original)
    other = tmp_path / "other"
    other.mkdir()
    os.link(original, other / "hard-linked.gguf")
    # The Hugging Face cache: a snapshot's file links into the blob, and the blob is the
    # same inode as the app folder's file (hard-linked there, as some tools do).
    repo = tmp_path / "hf" / "models--someone--small-GGUF"
    (repo / "blobs").mkdir(parents=True)
    blob = repo / "blobs" / sha256_file(original)
    os.link(original, blob)
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "small-Q8_0.gguf").symlink_to(os.path.relpath(blob, snapshot))
    found = only(models, other, hf_cache=tmp_path / "hf")
    assert len(found) == 1, [m.path for m in found]
    assert found[0].path.resolve() == original and found[0].status == "ready"
    assert len(library_rows(found)) == 1


def test_copies_read_apart_by_file_name_and_folder(tmp_path: Path, good: Path) -> None:
    first = tmp_path / "models"
    second = tmp_path / "Downloads"
    for folder in (first, second):
        folder.mkdir()
    (first / "small-Q8_0.gguf").write_bytes(good.read_bytes())
    (first / "small-Q8_0-copy.gguf").write_bytes(good.read_bytes())
    (second / "small-Q8_0.gguf").write_bytes(good.read_bytes())
    rows = library_rows(only(first, second))
    assert len(rows) == 3
    assert len({r.name for r in rows}) == 1  # the same model name inside every copy
    labels = file_labels(rows)
    assert sorted(labels.values()) == [
        "Downloads/small-Q8_0.gguf",
        "models/small-Q8_0.gguf",
        "small-Q8_0-copy.gguf",
    ]
    assert labels[str(first / "small-Q8_0-copy.gguf")] == "small-Q8_0-copy.gguf"
    assert len(set(labels.values())) == 3
    assert len({file_key(r) for r in rows}) == 3
