"""Looking up a Hugging Face repo for the models table: its GGUF files as rows, exact verdicts.

What the Models tab's repo box (:class:`desktop.ui.hub_box.HubBox`) does, without Qt:

1. :func:`parse_repo_id` - ``owner/name`` from what a person typed or pasted (the repo's
   huggingface.co address too);
2. :func:`desktop.core.hub.list_gguf_files` - one request for the file list;
3. :func:`read_remote_rows` - the header of each file over HTTP Range requests (only the
   header bytes, cached on disk), turned into :meth:`ModelRow.remote` rows with exact specs;
4. :func:`summary` - what the lookup found, in a sentence or two for the status label.

Every failure is a sentence (a :class:`~desktop.core.hub.HubError`, or a row's ``note``),
never a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from desktop.core.gguf import GGUFError
from desktop.core.hub import HubError, RemoteModelFile, read_remote_header
from desktop.core.modelspec import spec_from_header
from desktop.core.rows import ModelRow

__all__ = [
    "MAX_HEADER_READS",
    "REPO_FORMAT_MESSAGE",
    "RemoteLookup",
    "header_reads",
    "parse_repo_id",
    "read_file_row",
    "read_remote_rows",
    "skipped_files",
    "summary",
]

#: Headers read per lookup; files past this still get a row, without an estimate.
MAX_HEADER_READS: Final = 16
#: Headers read at the same time (each is a HEAD and one to three Range requests).
_PARALLEL_READS: Final = 4

# The Hub's rule for repo ids: letters, digits, "-", "_", "."; no "--" or ".." anywhere.
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_HUB_HOSTS: Final = frozenset({"huggingface.co", "www.huggingface.co", "hf.co"})

REPO_FORMAT_MESSAGE: Final = (
    "Type a Hugging Face repo as owner/name, for example bartowski/Qwen_Qwen3-8B-GGUF."
)


def parse_repo_id(text: str) -> str | None:
    """``owner/name`` from what a person typed or pasted, or None if it is not one.

    Accepts the repo's address too (``https://huggingface.co/owner/name/tree/main``).
    """
    text = text.strip()
    if "://" in text or text.lower().startswith(tuple(f"{h}/" for h in _HUB_HOSTS)):
        parts = urlsplit(text if "://" in text else f"https://{text}")
        if (parts.hostname or "").lower() not in _HUB_HOSTS:
            return None
        segments = [s for s in parts.path.split("/") if s]
        if len(segments) < 2:
            return None
        text = "/".join(segments[:2])
    owner, slash, name = text.partition("/")
    if not slash or not all(_NAME_RE.match(part) for part in (owner, name)):
        return None
    if any(bad in text for bad in ("--", "..")) or name.endswith("."):
        return None
    return f"{owner}/{name}"


@dataclass(frozen=True)
class RemoteLookup:
    """What one lookup found: rows for the table and the notes to show beside the box."""

    repo_id: str
    rows: tuple[ModelRow, ...]
    skipped: tuple[str, ...]  # "mmproj-F16.gguf (vision projector)", ...
    unread: int  # files past MAX_HEADER_READS: rows without an estimate
    failed: tuple[str, ...]  # the messages of the header reads that failed


def _usable(models: Sequence[RemoteModelFile]) -> list[RemoteModelFile]:
    """The files that are models of their own: projectors and incomplete split sets left out."""
    return [m for m in models if not m.is_projector and m.is_complete]


def header_reads(models: Sequence[RemoteModelFile], max_reads: int = MAX_HEADER_READS) -> int:
    """How many headers :func:`read_remote_rows` will read for these files."""
    return min(len(_usable(models)), max_reads)


def skipped_files(models: Sequence[RemoteModelFile]) -> list[str]:
    """The files that are no model of their own, each with the reason in brackets."""
    notes = []
    for model in models:
        if model.is_projector:
            notes.append(f"{model.name} (vision projector)")
        elif not model.is_complete:
            notes.append(f"{model.name} (only {len(model.parts)} of {model.expected_parts} parts)")
    return notes


def _parts(model: RemoteModelFile) -> tuple[str, ...]:
    """Every part of a split file, in order (empty for a single file)."""
    return tuple(model.filenames) if model.is_split else ()


def read_file_row(
    model: RemoteModelFile, endpoint: str | None, cache_dir: Path | None
) -> tuple[ModelRow, str]:
    """The row of one file from its header; spec None and the reason when it cannot be read."""
    try:
        header = read_remote_header(
            model.repo_id,
            model.filenames,
            model.commit,  # the listing's commit: the headers of exactly these files
            cache_dir=cache_dir,
            endpoint=endpoint,
        )
        spec = spec_from_header(header)
    except (HubError, GGUFError) as exc:
        note = f"Could not read its header: {exc}"
        row = ModelRow.remote(
            model.repo_id, model.path, None, model.size_bytes, note=note, parts=_parts(model)
        )
        return row, str(exc)
    return ModelRow.remote(
        model.repo_id, model.path, spec, model.size_bytes, parts=_parts(model)
    ), ""


def read_remote_rows(
    repo_id: str,
    models: Sequence[RemoteModelFile],
    *,
    endpoint: str | None = None,
    cache_dir: Path | None = None,
    max_reads: int = MAX_HEADER_READS,
) -> RemoteLookup:
    """Rows for a repo's files (projectors and incomplete split sets left out), each with an
    exact spec from its header; the first ``max_reads`` files only. Blocks on the network:
    the GUI runs it on a pool thread."""
    usable = _usable(models)
    to_read, rest = usable[:max_reads], usable[max_reads:]
    with ThreadPoolExecutor(max_workers=_PARALLEL_READS, thread_name_prefix="hub-header") as pool:
        results = list(pool.map(lambda m: read_file_row(m, endpoint, cache_dir), to_read))
    unread_note = (
        f"Its header was not read: a lookup reads the first {max_reads} files of a repo. "
        "Download it for an exact estimate."
    )
    rows = [row for row, _ in results]
    rows += [
        ModelRow.remote(m.repo_id, m.path, None, m.size_bytes, note=unread_note, parts=_parts(m))
        for m in rest
    ]
    return RemoteLookup(
        repo_id=repo_id,
        rows=tuple(rows),
        skipped=tuple(skipped_files(models)),
        unread=len(rest),
        failed=tuple(message for _, message in results if message),
    )


def summary(lookup: RemoteLookup) -> str:
    """One or two sentences for the status label about a finished lookup."""
    count = len(lookup.rows)
    if count == 0:
        text = f"{lookup.repo_id} has no GGUF model files."
    else:
        text = f"{count} file{'s' if count != 1 else ''} from {lookup.repo_id}."
    read = count - lookup.unread
    if lookup.unread:
        headers = "header" if read == 1 else f"{read} headers"
        text += f" Read the first {headers}; {lookup.unread} more have no estimate."
    if lookup.failed:
        failed = len(lookup.failed)
        if failed == read:
            text += f" No header could be read: {lookup.failed[0]}"
        else:
            were = "header was" if failed == 1 else "headers were"
            text += f" {failed} {were} unreadable (see the Fits? column)."
    if lookup.skipped:
        text += " Left out: " + ", ".join(lookup.skipped) + "."
    return text
