"""Model files a person adds by hand: opened with File > Open model or dropped on the window.

:func:`check_added_path` says in one sentence why a path cannot be added (not a file, not a
``.gguf``, not a GGUF inside); :func:`scan_local` lists the folders' files and the added
ones together, each file once, as :mod:`desktop.core.library` reads them (a damaged file is
listed with its reason, never hidden). Pure Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import suppress
from pathlib import Path

from desktop.core.hub import split_part_info
from desktop.core.library import LocalModel, _scan_folder, scan

__all__ = ["GGUF_MAGIC", "check_added_path", "inside_folders", "scan_files", "scan_local"]

GGUF_MAGIC = b"GGUF"


def check_added_path(path: Path) -> str | None:
    """None when ``path`` can be listed as a model; else the sentence that says why not."""
    name = path.name or str(path)
    if path.is_dir():
        return (
            f"{name} is a folder. To list every model in a folder, add it in Settings under "
            "Other model folders."
        )
    if not path.is_file():
        return f"{name} cannot be found; it may have been moved or deleted."
    if path.suffix.lower() != ".gguf":
        return (
            f"{name} is not a GGUF model file. LLM Workbench runs .gguf files, the format "
            "llama.cpp reads."
        )
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        return f"{name} cannot be read ({exc.strerror or exc})."
    if magic != GGUF_MAGIC:
        return (
            f"{name} is named .gguf but is not a GGUF file inside (it does not start with "
            '"GGUF"); download it again.'
        )
    return None


def _key(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


def inside_folders(path: Path, folders: Iterable[Path]) -> bool:
    """True when ``path`` lies in one of ``folders`` (at any depth), so a scan finds it."""
    target = _key(path)
    return any(target.is_relative_to(_key(folder)) for folder in folders)


def scan_files(paths: Iterable[Path], known: Iterable[Path] = ()) -> list[LocalModel]:
    """The GGUF files ``paths`` (skipping those in ``known`` and repeats), read by the
    library's own folder reader; a file that is gone is left out (its entry stays in the
    settings, and comes back when the file does). A part of a split model stands for the
    whole set beside it (one entry; missing parts are named, as the folder scan does)."""
    seen: set[object] = set()
    for path in known:
        seen.update(_identity(path))
    found: list[LocalModel] = []
    for path in paths:
        if not path.is_file():
            continue
        names = [path.name]
        info = split_part_info(path.name)
        if info is not None:
            stem, _index, count = info
            with suppress(OSError):  # an unreadable folder: the one part is read
                names = sorted(
                    entry.name
                    for entry in path.parent.iterdir()
                    if (part := split_part_info(entry.name)) is not None
                    and (part[0], part[2]) == (stem, count)
                )
        found += _scan_folder(path.parent, names, "folder", seen, None)
    return found


def _identity(path: Path) -> list[object]:
    """How the library's scan knows a file it has seen: its resolved path and its inode."""
    keys: list[object] = []
    try:
        keys.append(path.resolve())
        info = path.stat()
        keys.append((info.st_dev, info.st_ino))
    except OSError:
        keys.append(path)
    return keys


def scan_local(
    folders: Sequence[Path],
    files: Sequence[Path] = (),
    *,
    include_hf_cache: bool = True,
    include_lm_studio: bool = True,
) -> list[LocalModel]:
    """Every model in ``folders`` (and the Hugging Face cache and LM Studio's folders unless
    told not to), then the added ``files`` that no folder holds."""
    found = scan(folders, include_hf_cache=include_hf_cache, include_lm_studio=include_lm_studio)
    known = [path for model in found for path in (model.parts or (model.path,))]
    found += scan_files(files, known=known)
    return found
