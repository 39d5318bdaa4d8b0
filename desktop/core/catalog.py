"""Load and validate the curated model catalog (models.json).

The catalog lists GGUF models a hobbyist might run, with the architecture numbers the
estimator needs before anything is downloaded (under their GGUF metadata names) and the
quantized files on Hugging Face with their sizes. Every figure in the file carries its
source; sizes say whether they are exact, rounded (as a web page printed them), estimated
(and how) or unknown.

The file's rules are written down twice on purpose: ``catalog_schema.json`` (JSON Schema,
for editors and the test suite) and the hand-written checks below, because jsonschema is a
development tool, not a dependency of the app. The checks here also cover what a schema cannot
say: unique model ids and files, ``arch_complete`` agreeing with ``arch_unknown``. A broken
file raises ``CatalogError`` with one sentence naming the entry and the field, e.g.
``models.json entry 12 (qwen3-8b): variant 2: size_bytes must be a positive integer (got -5)``.
Entries and variants are counted from 1, as a person reading the file counts them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final, Literal, cast

import desktop

__all__ = [
    "ARCH_FIELDS",
    "ArchNumbers",
    "Catalog",
    "CatalogError",
    "CatalogModel",
    "CatalogVariant",
    "SizeSource",
    "default_catalog_paths",
    "load_catalog",
    "parse_catalog",
]

CATALOG_VERSION: Final = 1

SizeSource = Literal["exact", "rounded", "estimated", "unknown"]
TotalParamsSource = Literal["sourced", "computed"]

SIZE_SOURCES: Final[tuple[SizeSource, ...]] = ("exact", "rounded", "estimated", "unknown")
TAGS: Final = frozenset({"chat", "code", "reasoning", "small", "large", "moe", "vision"})

_TOP_KEYS: Final = frozenset({"$schema", "version", "notes", "models"})
_HEX: Final = frozenset("0123456789abcdef")
_QUANT_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_SLUG_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")


class CatalogError(ValueError):
    """The catalog file is missing or breaks a rule; the message names the entry and field."""


# --------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArchNumbers:
    """Architecture numbers under their GGUF metadata names; None = unknown or not used.

    Which None means "unknown" is in ``CatalogModel.arch_unknown``; a None sliding window or
    expert count that is not listed there means the model does not use one.
    """

    architecture: str | None  # llama.cpp general.architecture: "llama", "qwen3moe", ...
    block_count: int | None
    embedding_length: int | None
    head_count: int | None
    head_count_kv: int | tuple[int, ...] | None  # one count for all layers, or per layer
    key_length: int | None  # K head size
    value_length: int | None  # V head size
    feed_forward_length: int | None
    expert_feed_forward_length: int | None
    context_length: int | None  # trained context (tokens)
    sliding_window: int | None  # tokens a sliding-window layer attends to
    sliding_window_pattern: int | None  # llama.cpp set_swa_pattern(n)
    expert_count: int | None
    expert_used_count: int | None
    vocab_size: int | None
    total_params: int | None
    total_params_source: TotalParamsSource | None  # "computed": rule in the model's sources
    tie_word_embeddings: bool | None

    @property
    def is_moe(self) -> bool:
        return bool(self.expert_count)

    def kv_heads(self, layer: int) -> int | None:
        """KV heads of one layer (0-based), or None when unknown."""
        if isinstance(self.head_count_kv, tuple):
            return self.head_count_kv[layer] if 0 <= layer < len(self.head_count_kv) else None
        return self.head_count_kv

    def uses_sliding_window(self, layer: int) -> bool:
        """Whether layer ``layer`` (0-based) attends only to the last ``sliding_window`` tokens.

        llama.cpp's set_swa_pattern(n): layer il is a sliding-window layer iff
        il % n < n - 1, so every n-th layer (il = n-1, 2n-1, ...) has full attention.
        """
        n = self.sliding_window_pattern
        if self.sliding_window is None or n is None:
            return False
        return layer % n < n - 1


@dataclass(frozen=True, slots=True)
class CatalogVariant:
    """One downloadable quantization of a model: a GGUF file, or the parts of a split one."""

    repo: str  # Hugging Face owner/name
    files: tuple[str, ...]  # one file, or the parts of a split GGUF in order
    quant: str  # llama-quantize type name, e.g. "Q4_K_M"
    size_bytes: int | None  # whole download; None only when size_source == "unknown"
    size_source: SizeSource
    sha256: str | None  # single-file variants; per-part hashes are in parts_sha256
    source: str
    size_precision_bytes: int | None = None  # rounded sizes: true size within +/- this
    size_shown: str | None = None  # the figure as the source printed it ("4.92 GB")
    size_method: str | None = None  # estimated/unknown sizes: how, or why not
    parts_sha256: tuple[str | None, ...] = ()
    note: str | None = None

    @property
    def file(self) -> str:
        """The file to open: the only file, or the first part (llama.cpp finds the rest)."""
        return self.files[0]

    @property
    def is_split(self) -> bool:
        return len(self.files) > 1

    @property
    def size_is_exact(self) -> bool:
        return self.size_source == "exact"


@dataclass(frozen=True, slots=True)
class CatalogModel:
    """A model and its downloadable quantizations."""

    id: str
    name: str
    publisher: str
    license: str  # the original model's Hugging Face license tag
    base_model: str | None  # the unquantized Hugging Face repo
    tags: tuple[str, ...]
    arch: ArchNumbers
    arch_complete: bool  # False: estimates from the catalog alone are rough
    arch_unknown: tuple[str, ...]
    sources: tuple[str, ...]
    variants: tuple[CatalogVariant, ...]

    def has_tag(self, tag: str) -> bool:
        return tag in self.tags


@dataclass(frozen=True, slots=True)
class Catalog:
    """The whole catalog, in file order."""

    models: tuple[CatalogModel, ...]
    notes: tuple[str, ...] = ()
    path: Path | None = None

    def variants(self) -> Iterator[tuple[CatalogModel, CatalogVariant]]:
        """Every (model, variant) pair, in file order."""
        for model in self.models:
            for variant in model.variants:
                yield model, variant

    def find(self, model_id: str) -> CatalogModel | None:
        for model in self.models:
            if model.id == model_id:
                return model
        return None


# The file's field names are the dataclasses' field names (one source of truth).
ARCH_FIELDS: Final = tuple(f.name for f in fields(ArchNumbers) if f.name != "total_params_source")
_ARCH_COUNTS: Final = tuple(  # integer numbers: null when unknown or not used by the model
    n for n in ARCH_FIELDS if n not in ("architecture", "head_count_kv", "tie_word_embeddings")
)
# Needed only by MoE / sliding-window models: listed in arch_unknown -> arch_complete is false.
_NEEDED_WHEN_USED: Final = tuple(n for n in ARCH_FIELDS if n.startswith(("expert_", "sliding_")))
# The memory estimator cannot do without the rest: one unknown -> arch_complete is false.
# (total_params and tie_word_embeddings only refine size estimates.)
_ALWAYS_NEEDED: Final = tuple(
    n for n in ARCH_FIELDS if n not in (*_NEEDED_WHEN_USED, "total_params", "tie_word_embeddings")
)
_MODEL_KEYS: Final = frozenset(f.name for f in fields(CatalogModel))
_VARIANT_REQUIRED: Final = ("repo", "quant", "size_bytes", "size_source", "sha256", "source")
_VARIANT_KEYS: Final = frozenset(
    {*(f.name for f in fields(CatalogVariant) if f.name != "files"), "file", "parts"}
)


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def default_catalog_paths() -> tuple[Path, ...]:
    """Where the shipped catalog may be: beside the package (source checkout, wheel data),
    then inside it (frozen builds copy it to desktop/data/)."""
    package = Path(desktop.__file__).resolve().parent
    return (package.parent / "models.json", package / "data" / "models.json")


def load_catalog(path: Path | None = None) -> Catalog:
    """Read and validate a catalog file; None reads the one shipped with the app.

    Raises CatalogError (a sentence naming the file, entry and field) when the file is
    missing, is not JSON, or breaks a rule.
    """
    if path is None:
        candidates = default_catalog_paths()
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            looked = ", ".join(str(p) for p in candidates)
            raise CatalogError(
                f"The model catalog (models.json) is missing; looked in {looked}. "
                "Reinstall LLM Workbench, or pass the path of a models.json."
            )
        path = found
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"Could not read the model catalog {path}: {exc.strerror}.") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(
            f"{path.name} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from exc
    return parse_catalog(data, origin=path.name, path=path)


def parse_catalog(
    data: object, *, origin: str = "models.json", path: Path | None = None
) -> Catalog:
    """Validate already-decoded JSON and build the Catalog; ``origin`` prefixes messages."""
    top = _Fields(_mapping(data, origin), origin)
    top.no_unknown_keys(_TOP_KEYS)
    version = top.raw("version")
    if type(version) is not int or version != CATALOG_VERSION:
        raise CatalogError(
            f"{origin}: version must be {CATALOG_VERSION} (got {version!r}); "
            "this copy of LLM Workbench reads catalog version 1 only."
        )
    notes = top.text_list("notes")
    raw_models = top.items("models", min_items=1)

    models: list[CatalogModel] = []
    seen_ids: dict[str, int] = {}
    seen_files: dict[tuple[str, str], str] = {}
    for index, raw in enumerate(raw_models, start=1):
        model = _parse_model(raw, f"{origin} entry {index}")
        where = f"{origin} entry {index} ({model.id})"
        if model.id in seen_ids:
            raise CatalogError(
                f"{where}: id '{model.id}' is already used by entry {seen_ids[model.id]}"
            )
        seen_ids[model.id] = index
        for vindex, variant in enumerate(model.variants, start=1):
            key = (variant.repo, variant.file)
            if key in seen_files:
                raise CatalogError(
                    f"{where}: variant {vindex}: {variant.repo}/{variant.file} is already listed "
                    f"({seen_files[key]})"
                )
            seen_files[key] = f"{model.id} variant {vindex}"
        models.append(model)
    return Catalog(models=tuple(models), notes=tuple(notes), path=path)


def _parse_model(raw: object, entry: str) -> CatalogModel:
    reader = _Fields(_mapping(raw, entry), entry)
    model_id = reader.raw("id")
    if isinstance(model_id, str) and model_id:
        reader.where = f"{entry} ({model_id})"
    where = reader.where
    reader.no_unknown_keys(_MODEL_KEYS)
    model_id = reader.text("id")
    if not _is_slug(model_id):
        raise CatalogError(
            f"{where}: id must be lower-case letters, digits, '.', '_' and '-' (got {model_id!r})"
        )
    tags = reader.text_list("tags")
    for tag in tags:
        if tag not in TAGS:
            raise CatalogError(
                f"{where}: tags: unknown tag {tag!r} (known: {', '.join(sorted(TAGS))})"
            )
    if len(set(tags)) != len(tags):
        raise CatalogError(f"{where}: tags must not repeat")
    base_model = reader.opt_text("base_model")
    if base_model is not None and not _is_repo(base_model):
        raise CatalogError(f"{where}: base_model must look like owner/name (got {base_model!r})")

    arch = _parse_arch(reader.obj("arch"), f"{where}: arch")
    arch_complete = reader.flag("arch_complete")
    arch_unknown = reader.text_list("arch_unknown")
    _check_arch_unknown(arch, arch_complete, arch_unknown, where)

    sources = reader.text_list("sources", min_items=1)
    raw_variants = reader.items("variants", min_items=1)
    variants = tuple(
        _parse_variant(v, f"{where}: variant {i}") for i, v in enumerate(raw_variants, start=1)
    )
    return CatalogModel(
        id=model_id,
        name=reader.text("name"),
        publisher=reader.text("publisher"),
        license=reader.text("license"),
        base_model=base_model,
        tags=tuple(tags),
        arch=arch,
        arch_complete=arch_complete,
        arch_unknown=tuple(arch_unknown),
        sources=tuple(sources),
        variants=variants,
    )


def _parse_arch(raw: Mapping[str, Any], where: str) -> ArchNumbers:
    reader = _Fields(raw, where)
    required = (*ARCH_FIELDS, "total_params_source")
    reader.no_unknown_keys(frozenset(required))
    for key in required:
        reader.require(key)
    counts = {key: reader.opt_positive_int(key) for key in _ARCH_COUNTS}
    head_count_kv = _parse_head_count_kv(reader.raw("head_count_kv"), where)
    blocks = counts["block_count"]
    if isinstance(head_count_kv, tuple) and blocks is not None and len(head_count_kv) != blocks:
        raise CatalogError(
            f"{where}: head_count_kv lists {len(head_count_kv)} layers but block_count is {blocks}"
        )
    total_params_source = reader.raw("total_params_source")
    if total_params_source not in ("sourced", "computed", None):
        raise CatalogError(
            f"{where}: total_params_source must be 'sourced', 'computed' or null "
            f"(got {total_params_source!r})"
        )
    if (total_params_source is None) != (counts["total_params"] is None):
        raise CatalogError(
            f"{where}: total_params and total_params_source must both be set or both null"
        )
    used, total = counts["expert_used_count"], counts["expert_count"]
    if used is not None and total is not None and used > total:
        raise CatalogError(f"{where}: expert_used_count ({used}) is above expert_count ({total})")
    architecture = reader.opt_text("architecture")
    tie = reader.raw("tie_word_embeddings")
    if tie is not None and not isinstance(tie, bool):
        raise CatalogError(
            f"{where}: tie_word_embeddings must be true, false or null (got {tie!r})"
        )
    return ArchNumbers(
        architecture=architecture,
        head_count_kv=head_count_kv,
        total_params_source=total_params_source,
        tie_word_embeddings=tie,
        **counts,
    )


def _parse_head_count_kv(value: object, where: str) -> int | tuple[int, ...] | None:
    if value is None:
        return None
    if _is_int(value) and cast(int, value) >= 1:
        return cast(int, value)
    if isinstance(value, list) and value and all(_is_int(v) and cast(int, v) >= 0 for v in value):
        return tuple(cast(list[int], value))
    raise CatalogError(
        f"{where}: head_count_kv must be a positive integer, a list of per-layer counts, or null "
        f"(got {value!r})"
    )


def _check_arch_unknown(
    arch: ArchNumbers, complete: bool, unknown: Sequence[str], where: str
) -> None:
    for name in unknown:
        if name not in ARCH_FIELDS:
            raise CatalogError(f"{where}: arch_unknown: {name!r} is not an arch field")
        if getattr(arch, name) is not None:
            raise CatalogError(f"{where}: arch_unknown lists {name} but arch.{name} has a value")
    if len(set(unknown)) != len(unknown):
        raise CatalogError(f"{where}: arch_unknown must not repeat a field")
    # These are never "not used": null always means unknown, and the file must say so.
    for name in (*_ALWAYS_NEEDED, "total_params", "tie_word_embeddings"):
        if getattr(arch, name) is None and name not in unknown:
            raise CatalogError(f"{where}: arch.{name} is null but not listed in arch_unknown")
    critical = [n for n in unknown if n in _ALWAYS_NEEDED or n in _NEEDED_WHEN_USED]
    if complete and critical:
        raise CatalogError(
            f"{where}: arch_complete is true but arch_unknown lists {', '.join(critical)}"
        )
    if not complete and not critical:
        raise CatalogError(
            f"{where}: arch_complete is false but arch_unknown names no field the estimator needs"
        )
    if arch.sliding_window_pattern is not None and arch.sliding_window is None:
        raise CatalogError(
            f"{where}: arch.sliding_window_pattern is set but sliding_window is null"
        )


def _parse_variant(raw: object, where: str) -> CatalogVariant:
    reader = _Fields(_mapping(raw, where), where)
    reader.no_unknown_keys(_VARIANT_KEYS)
    for key in _VARIANT_REQUIRED:
        reader.require(key)
    repo = reader.text("repo")
    if not _is_repo(repo):
        raise CatalogError(f"{where}: repo must look like owner/name (got {repo!r})")

    has_file, has_parts = reader.has("file"), reader.has("parts")
    if has_file == has_parts:
        raise CatalogError(
            f"{where}: give either 'file' or 'parts' (a split GGUF), not both or neither"
        )
    parts_sha256: tuple[str | None, ...] = ()
    if has_file:
        if reader.has("parts_sha256"):
            raise CatalogError(f"{where}: parts_sha256 belongs to split variants ('parts') only")
        files: tuple[str, ...] = (reader.text("file"),)
    else:
        files = tuple(reader.text_list("parts", min_items=2))
        if len(set(files)) != len(files):
            raise CatalogError(f"{where}: parts must not repeat a file")
        reader.require("parts_sha256")
        hashes = reader.items("parts_sha256")
        if len(hashes) != len(files):
            raise CatalogError(
                f"{where}: parts_sha256 has {len(hashes)} entries for {len(files)} parts"
            )
        parts_sha256 = tuple(_sha256(h, f"{where}: parts_sha256") for h in hashes)

    quant = reader.text("quant")
    if not set(quant) <= _QUANT_CHARS:
        raise CatalogError(
            f"{where}: quant must be a llama-quantize type name such as Q4_K_M (got {quant!r})"
        )
    size_source_raw = reader.raw("size_source")
    if size_source_raw not in SIZE_SOURCES:
        raise CatalogError(
            f"{where}: size_source must be one of {', '.join(SIZE_SOURCES)} "
            f"(got {size_source_raw!r})"
        )
    size_source = size_source_raw
    size_raw = reader.raw("size_bytes")
    size_bytes: int | None
    if size_source == "unknown":
        if size_raw is not None:
            raise CatalogError(f"{where}: size_bytes must be null when size_source is 'unknown'")
        size_bytes = None
    else:
        if not _is_int(size_raw) or cast(int, size_raw) < 1:
            raise CatalogError(f"{where}: size_bytes must be a positive integer (got {size_raw!r})")
        size_bytes = cast(int, size_raw)

    precision: int | None = None
    if size_source == "rounded":
        reader.require("size_precision_bytes")
        reader.require("size_shown")
        precision = reader.opt_positive_int("size_precision_bytes")
    elif reader.has("size_precision_bytes"):
        raise CatalogError(f"{where}: size_precision_bytes belongs to rounded sizes only")
    if size_source in ("estimated", "unknown"):
        reader.require("size_method")

    return CatalogVariant(
        repo=repo,
        files=files,
        quant=quant,
        size_bytes=size_bytes,
        size_source=size_source,
        sha256=_sha256(reader.raw("sha256"), f"{where}: sha256"),
        source=reader.text("source"),
        size_precision_bytes=precision,
        size_shown=reader.opt_text("size_shown") if reader.has("size_shown") else None,
        size_method=reader.opt_text("size_method") if reader.has("size_method") else None,
        parts_sha256=parts_sha256,
        note=reader.opt_text("note") if reader.has("note") else None,
    )


# --------------------------------------------------------------------------
# Small checked readers
# --------------------------------------------------------------------------


class _Fields:
    """Typed access to one JSON object; every failure names ``where`` and the field."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def fail(self, key: str, what: str, value: object) -> CatalogError:
        return CatalogError(f"{self.where}: {key} must be {what} (got {value!r})")

    def has(self, key: str) -> bool:
        return key in self.data

    def require(self, key: str) -> None:
        if key not in self.data:
            raise CatalogError(f"{self.where}: missing field '{key}'")

    def no_unknown_keys(self, allowed: frozenset[str]) -> None:
        extra = sorted(k for k in self.data if k not in allowed)
        if extra:
            raise CatalogError(f"{self.where}: unknown field '{extra[0]}'")

    def raw(self, key: str) -> object:
        self.require(key)
        return self.data[key]

    def text(self, key: str) -> str:
        value = self.raw(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "non-empty text", value)
        return value

    def opt_text(self, key: str) -> str | None:
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "non-empty text or null", value)
        return value

    def flag(self, key: str) -> bool:
        value = self.raw(key)
        if not isinstance(value, bool):
            raise self.fail(key, "true or false", value)
        return value

    def opt_positive_int(self, key: str) -> int | None:
        value = self.raw(key)
        if value is None:
            return None
        if not _is_int(value) or cast(int, value) < 1:
            raise self.fail(key, "a positive integer or null", value)
        return cast(int, value)

    def obj(self, key: str) -> Mapping[str, Any]:
        value = self.raw(key)
        if not isinstance(value, Mapping):
            raise self.fail(key, "an object", value)
        return value

    def items(self, key: str, min_items: int = 0) -> list[object]:
        value = self.raw(key)
        if not isinstance(value, list):
            raise self.fail(key, "a list", value)
        if len(value) < min_items:
            raise CatalogError(f"{self.where}: {key} must have at least {min_items} item(s)")
        return value

    def text_list(self, key: str, min_items: int = 0) -> list[str]:
        items = self.items(key, min_items)
        for item in items:
            if not isinstance(item, str) or not item.strip():
                raise self.fail(key, "a list of non-empty text", item)
        return cast(list[str], items)


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise CatalogError(f"{where} must be a JSON object (got {type(value).__name__})")
    return cast(Mapping[str, Any], value)


def _is_int(value: object) -> bool:
    # bool is an int subclass, but true is never a byte count.
    return isinstance(value, int) and not isinstance(value, bool)


def _sha256(value: object, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and len(value) == 64 and set(value) <= _HEX:
        return value
    raise CatalogError(f"{where} must be 64 lower-case hex digits or null (got {value!r})")


def _is_slug(text: str) -> bool:
    return bool(text) and text[0] not in "._-" and set(text) <= _SLUG_CHARS


def _is_repo(text: str) -> bool:
    owner, slash, name = text.partition("/")
    return bool(owner and slash and name) and "/" not in name and not any(c.isspace() for c in text)
