"""One model file as the app lists it: from the catalog, this computer, or Hugging Face.

A :class:`ModelRow` is plain data (no Qt): what the models table and ``llm-workbench models``
show, and what the estimator needs. Three kinds share the one type so the table, the detail
pane, the load controls and the command line never ask where a row came from:

* ``catalog`` - a variant in models.json, estimated from its architecture numbers
  (:func:`catalog_rows`);
* ``local`` - a GGUF file on disk, estimated exactly from its header (:meth:`ModelRow.local`);
* ``remote`` - a file in a Hugging Face repo whose header was read over HTTP
  (:meth:`ModelRow.remote`).

Rows of one model share a ``group`` key; the detail pane shows a group's other
quantizations side by side, and :func:`sibling_suggestions` names the one that fits better.

How rows are ranked lives here too, once: :func:`verdict_sort_key` (the table's "Fits?"
column) and :func:`best_fit_key` (the command line's "best fit first"), both in the verdict
order :class:`~desktop.core.estimate.Verdict` defines.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from desktop.core.catalog import Catalog, CatalogModel, CatalogVariant
from desktop.core.estimate import Plan, Verdict, sibling_suggestion
from desktop.core.library import LocalModel
from desktop.core.modelspec import ModelSpec, spec_from_catalog

if TYPE_CHECKING:  # hub_search builds rows; rows only name its type
    from desktop.core.hub_search import HubRepo

__all__ = [
    "NO_ESTIMATE_RANK",
    "ModelRow",
    "RowSource",
    "best_fit_key",
    "catalog_rows",
    "file_key",
    "file_labels",
    "format_params",
    "library_rows",
    "sibling_suggestions",
    "verdict_sort_key",
]

RowSource = Literal["catalog", "local", "remote"]

#: Where a row without a plan ranks: after every verdict.
NO_ESTIMATE_RANK: Final = 9


@dataclass(frozen=True)
class ModelRow:
    """What one line of the models table stands for.

    ``location`` identifies the row across runs (settings' ``last_model``): the file path for
    a local file, ``repo:file`` otherwise. ``spec`` is None when no estimate is possible,
    with the reason in ``note``.
    """

    name: str  # "Llama 3.1 8B Instruct"
    params: int | None  # total parameters
    quant: str  # "Q4_K_M"
    file_size_bytes: int | None  # the whole download (all parts of a split file)
    source: RowSource
    spec: ModelSpec | None
    location: str  # path, or "repo:file"
    group: str  # rows of the same model share it
    repo: str | None = None
    file: str | None = None  # file name in the repo (first part of a split file)
    parts: tuple[str, ...] = field(default=())  # every part of a split file, in order
    path: Path | None = None  # on this computer, when downloaded
    size_exact: bool = True  # False: the catalog has a rounded or estimated size
    publisher: str = ""  # who made the model ("Meta"); the GGUF's uploader is `uploader`
    note: str = ""  # why there is no estimate, or what to know about it
    tags: tuple[str, ...] = field(default=())
    # Why there is no estimate in the estimator's own words, where they differ from `note`
    # (the command line's "problem"); "" means `note` says it.
    problem: str = ""
    # A local file that cannot be read at all (damaged, cut short, not a GGUF file): the
    # table shows a red "Broken" badge and `note` says why in one sentence.
    broken: bool = False
    # A Hugging Face search result (downloads, likes, gated, ...); None for other rows.
    hub: HubRepo | None = None

    @property
    def is_hub_repo(self) -> bool:
        """A search result not opened into its files yet (no file to download or load)."""
        return self.hub is not None and self.file is None and self.path is None

    @property
    def download_files(self) -> tuple[str, ...]:
        """What to download: every part of a split file, or the one file."""
        return self.parts or ((self.file,) if self.file else ())

    @property
    def is_downloaded(self) -> bool:
        return self.path is not None

    @property
    def uploader(self) -> str:
        """Who made the GGUF: the repo owner ("bartowski"), or "" for a local file."""
        return self.repo.split("/", maxsplit=1)[0] if self.repo else ""

    @property
    def file_name(self) -> str:
        if self.file:
            return self.file
        return self.path.name if self.path is not None else self.location

    def with_path(self, path: Path | None) -> ModelRow:
        return replace(self, path=path)

    @classmethod
    def local(
        cls,
        path: Path,
        spec: ModelSpec | None,
        *,
        note: str = "",
        size_bytes: int | None = None,
        repo: str | None = None,
        broken: bool = False,
    ) -> ModelRow:
        """A GGUF file on this computer (``spec`` from its header; None if unreadable).

        ``size_bytes`` defaults to the file's size on disk; ``repo`` is the Hugging Face repo
        of a file found in the Hugging Face cache.
        """
        size = size_bytes
        if size is None:
            try:
                size = path.stat().st_size
            except OSError:
                size = None
        name = (spec.name if spec is not None and spec.name else "") or path.stem
        return cls(
            name=name,
            params=spec.total_params if spec is not None else None,
            quant=spec.quant_label if spec is not None and spec.quant_label else "?",
            file_size_bytes=size,
            source="local",
            spec=spec,
            location=str(path),
            group=f"local:{name.lower()}",
            repo=repo,
            path=path,
            note=note,
            broken=broken,
        )

    @classmethod
    def remote(
        cls,
        repo: str,
        file: str,
        spec: ModelSpec | None,
        size_bytes: int | None,
        *,
        note: str = "",
        parts: tuple[str, ...] = (),
    ) -> ModelRow:
        """A file in a Hugging Face repo (``spec`` from its header read over HTTP)."""
        name = (spec.name if spec is not None and spec.name else "") or repo.rsplit(
            "/", maxsplit=1
        )[-1]
        return cls(
            name=name,
            params=spec.total_params if spec is not None else None,
            quant=spec.quant_label if spec is not None and spec.quant_label else "?",
            file_size_bytes=size_bytes,
            source="remote",
            spec=spec,
            location=f"{repo}:{file}",
            group=f"remote:{repo}",
            repo=repo,
            file=file,
            parts=parts,
            note=note,
        )


def library_rows(found: Iterable[LocalModel], *, projectors: bool = False) -> list[ModelRow]:
    """Rows for the files desktop.core.library found. Vision projectors are left out (they
    are loaded beside a model, never on their own) unless ``projectors``: a listing of every
    file on disk keeps them, without an estimate."""
    return [
        ModelRow.local(
            model.path,
            model.spec if model.runnable else None,
            note=model.problem or "",
            size_bytes=model.size_bytes,
            repo=model.repo_id,
            broken=model.status == "corrupt",
        )
        for model in found
        if projectors or model.status != "projector"
    ]


def file_key(row: ModelRow) -> str:
    """Which file a row stands for: a local row's resolved path (a file reached through a
    symlink and through its target is one file, one row), else its location."""
    if row.source != "local" or row.path is None:
        return row.location
    try:
        return str(row.path.resolve())
    except OSError:
        return row.location


def file_labels(rows: Iterable[ModelRow]) -> dict[str, str]:
    """How each local row's file is told apart from the others, by location: its file name
    ("Llama-3.2-1B-Q4_K_M.gguf"), or with its folder when two folders hold that name
    ("models/Llama-3.2-1B-Q4_K_M.gguf" beside "Downloads/Llama-3.2-1B-Q4_K_M.gguf")."""
    local = [r for r in rows if r.source == "local" and r.path is not None]
    counts: dict[str, int] = {}
    for row in local:
        assert row.path is not None
        counts[row.path.name] = counts.get(row.path.name, 0) + 1
    labels: dict[str, str] = {}
    for row in local:
        assert row.path is not None
        name = row.path.name
        labels[row.location] = f"{row.path.parent.name}/{name}" if counts[name] > 1 else name
    return labels


def format_params(params: int | None) -> str:
    """8_030_261_248 -> "8.0B", 268_098_176 -> "268M", None -> "?"."""
    if not params:
        return "?"
    if params >= 999_500_000:  # 999.9M reads better as "1.0B"
        value = params / 10**9
        return f"{value:.0f}B" if value >= 100 else f"{value:.1f}B"
    return f"{params / 10**6:.0f}M"


def _catalog_spec(
    model: CatalogModel, variant: CatalogVariant
) -> tuple[ModelSpec | None, str, str]:
    """The catalog estimate for one variant, or None, the reason in a sentence and the
    estimator's own words."""
    try:
        return spec_from_catalog(model, variant), "", ""
    except ValueError as exc:
        if variant.size_bytes is None:
            note = "The catalog does not know this file's size; no estimate before download."
        else:
            note = f"No estimate before download: {exc}"
        return None, note, str(exc)


def _catalog_row(model: CatalogModel, variant: CatalogVariant) -> ModelRow:
    spec, note, problem = _catalog_spec(model, variant)
    if not note and not model.arch_complete:
        note = "Some architecture numbers are unknown, so this estimate is rough."
    params = model.arch.total_params or (spec.total_params if spec is not None else None)
    return ModelRow(
        name=model.name,
        params=params,
        quant=variant.quant,
        file_size_bytes=variant.size_bytes,
        source="catalog",
        spec=spec,
        location=f"{variant.repo}:{variant.file}",
        group=f"catalog:{model.id}",
        repo=variant.repo,
        file=variant.file,
        parts=variant.files if variant.is_split else (),
        size_exact=variant.size_is_exact,
        publisher=model.publisher,
        note=note,
        tags=model.tags,
        problem=problem,
    )


def catalog_rows(catalog: Catalog | Iterable[CatalogModel]) -> list[ModelRow]:
    """One row per catalog variant, in file order."""
    models = catalog.models if isinstance(catalog, Catalog) else tuple(catalog)
    return [_catalog_row(model, variant) for model in models for variant in model.variants]


# --------------------------------------------------------------------------- ranking


def verdict_sort_key(plan: Plan | None) -> float:
    """Full GPU first, then partial (more layers on the GPU first), CPU only, too large, and
    rows without a plan last."""
    if plan is None:
        return float(NO_ESTIMATE_RANK)
    rank = float(plan.verdict.rank)
    if plan.verdict is Verdict.PARTIAL and plan.offloadable_layers:
        rank += 1.0 - plan.gpu_layers / plan.offloadable_layers
    return rank


def best_fit_key(row: ModelRow, plan: Plan | None) -> tuple[int, int]:
    """Best fit first: the verdict (full GPU, partial, CPU only, too large, no plan), then the
    biggest file, since the largest model that still fits is usually the one a person wants."""
    rank = plan.verdict.rank if plan is not None else NO_ESTIMATE_RANK
    return rank, -(row.file_size_bytes or 0)


def sibling_suggestions(evaluated: Sequence[tuple[ModelRow, Plan | None]]) -> list[str | None]:
    """For each (row, plan): "Q4_K_M fits fully on the GPU." when another quantization of the
    same model (the same ``group``) fits better, else None."""
    by_group: dict[str, list[tuple[str, Plan]]] = {}
    for row, plan in evaluated:
        if plan is not None:
            by_group.setdefault(row.group, []).append((row.quant, plan))
    return [
        sibling_suggestion(plan, by_group[row.group]) if plan is not None else None
        for row, plan in evaluated
    ]
