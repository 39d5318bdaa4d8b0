"""The shipped model catalog and GPU table: valid, sourced, and loaded by hand-written checks
that agree with the JSON Schema."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import desktop
from desktop.core import catalog as catalog_module
from desktop.core.catalog import Catalog, CatalogError, load_catalog, parse_catalog
from desktop.core.gpu_specs import (
    GpuSpec,
    find_gpu_spec,
    load_gpu_specs,
    what_if_profile_dict,
)
from desktop.core.hardware import HardwareProfile

ROOT = Path(desktop.__file__).resolve().parent.parent
MODELS_JSON = ROOT / "models.json"
SCHEMA_JSON = ROOT / "desktop" / "core" / "catalog_schema.json"
GPUS_JSON = ROOT / "resources" / "gpus.json"
GIB = 1024**3


@pytest.fixture(scope="module")
def raw_catalog() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(MODELS_JSON.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def small_catalog(raw_catalog: dict[str, Any]) -> dict[str, Any]:
    """Two shipped models; the second with one rounded, one exact, one estimated variant."""
    by_id = {m["id"]: m for m in raw_catalog["models"]}
    first = copy.deepcopy(by_id["llama-3.2-1b-instruct"])
    second = copy.deepcopy(by_id["llama-3.2-3b-instruct"])
    second["variants"] = [
        next(v for v in second["variants"] if v["size_source"] == kind)
        for kind in ("rounded", "exact", "estimated")
    ]
    return {**raw_catalog, "models": [first, second]}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_JSON.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def shipped() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="module")
def gpu_specs() -> list[GpuSpec]:
    return load_gpu_specs()


# --------------------------------------------------------------------------
# The shipped catalog
# --------------------------------------------------------------------------


def test_shipped_catalog_matches_the_schema(
    raw_catalog: dict[str, Any], validator: jsonschema.Draft202012Validator
) -> None:
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(raw_catalog)]
    assert errors == []
    assert raw_catalog["$schema"] == "./desktop/core/catalog_schema.json"


def test_default_load_finds_the_shipped_file(shipped: Catalog) -> None:
    assert shipped.path == MODELS_JSON.resolve()
    # The research behind the file covers 33 downloadable models; each has 1+ quantizations.
    assert len(shipped.models) >= 30
    assert sum(1 for _ in shipped.variants()) >= 40
    assert shipped.notes


REQUIRED_IDS = [
    "llama-3.2-1b-instruct",
    "llama-3.2-3b-instruct",
    "llama-3.1-8b-instruct",
    "llama-3.3-70b-instruct",
    "qwen2.5-7b-instruct",
    "qwen3-8b",
    "qwen3-30b-a3b",
    "gemma-3-270m-it",
    "gemma-3-1b-it",
    "gemma-3-4b-it",
    "gemma-3-12b-it",
    "gemma-3-27b-it",
    "mistral-7b-instruct-v0.3",
    "mistral-nemo-instruct-2407",
    "mistral-small-24b-instruct-2501",
    "phi-4",
    "gpt-oss-20b",
    "smollm2-1.7b-instruct",
]


@pytest.mark.parametrize("model_id", REQUIRED_IDS)
def test_required_families_are_present(shipped: Catalog, model_id: str) -> None:
    model = shipped.find(model_id)
    assert model is not None
    assert model.variants


def test_every_figure_has_a_source(shipped: Catalog) -> None:
    for model in shipped.models:
        assert model.sources, model.id
        assert model.license and model.publisher, model.id
        for variant in model.variants:
            assert variant.source.strip(), (model.id, variant.file)


def test_sizes_say_how_they_were_obtained(shipped: Catalog) -> None:
    counts = dict.fromkeys(("exact", "rounded", "estimated", "unknown"), 0)
    for model, variant in shipped.variants():
        counts[variant.size_source] += 1
        where = (model.id, variant.repo, variant.file)
        if variant.size_source == "unknown":
            assert variant.size_bytes is None, where
        else:
            assert variant.size_bytes is not None and variant.size_bytes > 0, where
        if variant.size_source in ("estimated", "unknown"):
            assert variant.size_method, where
        if variant.size_source == "rounded":
            # "4.92 GB" -> 4.92e9 bytes (HF decimal units), +/- half the last digit shown.
            assert variant.size_shown and variant.size_precision_bytes, where
            shown = sum(_parse_shown(part) for part in variant.size_shown.split(" + "))
            assert shown == variant.size_bytes, where
    assert counts["exact"] > 0 and counts["rounded"] > 0 and counts["estimated"] > 0


def _parse_shown(text: str) -> int:
    number, unit = text.replace("GB", " GB").replace("MB", " MB").split()
    return int(Decimal(number) * (10**9 if unit == "GB" else 10**6))


def test_known_exact_figures(shipped: Catalog) -> None:
    model = shipped.find("llama-3.2-1b-instruct")
    assert model is not None
    q4 = next(v for v in model.variants if v.file == "Llama-3.2-1B-Instruct-Q4_K_M.gguf")
    assert (q4.size_bytes, q4.size_source) == (807694464, "exact")
    assert model.arch.total_params == 1235814432
    assert model.arch.total_params_source == "sourced"


def test_architecture_numbers(shipped: Catalog) -> None:
    moe = shipped.find("qwen3-30b-a3b")
    assert moe is not None and moe.arch.is_moe and moe.arch_complete
    assert (moe.arch.expert_count, moe.arch.expert_used_count) == (128, 8)

    gemma = shipped.find("gemma-3-27b-it")
    assert gemma is not None and gemma.arch.architecture == "gemma3"
    assert gemma.arch.sliding_window == 1024 and gemma.arch.sliding_window_pattern == 6
    # llama.cpp set_swa_pattern(6): layers 5, 11, 17, ... have full attention.
    full = [il for il in range(12) if not gemma.arch.uses_sliding_window(il)]
    assert full == [5, 11]

    oss = shipped.find("gpt-oss-20b")
    assert oss is not None and oss.arch.sliding_window_pattern == 2
    assert not oss.arch.uses_sliding_window(1) and oss.arch.uses_sliding_window(0)

    dense = shipped.find("llama-3.1-8b-instruct")
    assert dense is not None and not dense.arch.is_moe
    assert not dense.arch.uses_sliding_window(0) and dense.arch.kv_heads(3) == 8


def test_unknown_numbers_are_listed_and_none_the_estimator_needs(shipped: Catalog) -> None:
    """Entries the research could not source were dropped (the catalog's notes name them): every
    model left has the numbers a verdict needs; what is still unknown is listed and null."""
    from desktop.core.rows import catalog_rows

    for model in shipped.models:
        for name in model.arch_unknown:
            assert getattr(model.arch, name) is None, (model.id, name)
        assert model.arch_complete, model.id
    assert all(row.spec is not None for row in catalog_rows(shipped))
    dropped = ("deepseek-r1-distill-qwen-7b", "gpt-oss-120b", "mistral-small-3.2-24b-instruct-2506")
    assert all(shipped.find(model_id) is None for model_id in dropped)
    assert any("DeepSeek-R1-Distill-Qwen 7B" in note for note in shipped.notes)


def test_split_variant(shipped: Catalog) -> None:
    model = shipped.find("llama-3.3-70b-instruct")
    assert model is not None
    split = next(v for v in model.variants if v.is_split)
    assert split.quant == "Q5_K_M" and len(split.files) == len(split.parts_sha256) == 2
    assert split.file.endswith("-00001-of-00002.gguf")


def test_frozen_build_copy_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_copy = tmp_path / "data" / "models.json"
    data_copy.parent.mkdir()
    data_copy.write_bytes(MODELS_JSON.read_bytes())
    monkeypatch.setattr(
        catalog_module, "default_catalog_paths", lambda: (tmp_path / "models.json", data_copy)
    )
    assert load_catalog().path == data_copy

    data_copy.unlink()
    with pytest.raises(CatalogError, match="missing"):
        load_catalog()


def test_not_json(tmp_path: Path) -> None:
    broken = tmp_path / "models.json"
    broken.write_text('{"version": 1,\n  "models": [', encoding="utf-8")
    with pytest.raises(CatalogError, match=r"models\.json is not valid JSON \(line 2"):
        load_catalog(broken)


# --------------------------------------------------------------------------
# A broken catalog: the loader names the entry and field, and the schema agrees
# --------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _model(data: dict[str, Any], index: int = 1) -> dict[str, Any]:
    model: dict[str, Any] = data["models"][index]
    return model


def _set(path: tuple[Any, ...], value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _delete(path: tuple[Any, ...]) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


def _duplicate_id(data: dict[str, Any]) -> None:
    _model(data)["id"] = data["models"][0]["id"]


def _file_and_parts(data: dict[str, Any]) -> None:
    variant = _model(data)["variants"][0]
    variant["parts"] = ["a-00001-of-00002.gguf", "a-00002-of-00002.gguf"]
    variant["parts_sha256"] = [None, None]


# (mutation, what the loader says, whether a JSON Schema can see it too)
BROKEN: dict[str, tuple[Mutation, str, bool]] = {
    "missing quant": (
        _delete(("models", 1, "variants", 1, "quant")),
        r"entry 2 \(llama-3\.2-3b-instruct\): variant 2: missing field 'quant'",
        True,
    ),
    "negative size": (
        _set(("models", 1, "variants", 1, "size_bytes"), -5),
        r"entry 2 \(llama-3\.2-3b-instruct\): variant 2: size_bytes must be a positive integer",
        True,
    ),
    "size as text": (
        _set(("models", 1, "variants", 0, "size_bytes"), "2 GB"),
        r"entry 2 \(llama-3\.2-3b-instruct\): variant 1: size_bytes must be a positive integer",
        True,
    ),
    "size as bool": (
        _set(("models", 1, "variants", 0, "size_bytes"), True),
        r"variant 1: size_bytes must be a positive integer",
        True,
    ),
    "block_count as text": (
        _set(("models", 1, "arch", "block_count"), "28"),
        r"entry 2 \(llama-3\.2-3b-instruct\): arch: block_count must be a positive integer",
        True,
    ),
    "missing arch field": (
        _delete(("models", 1, "arch", "vocab_size")),
        r"entry 2 \(llama-3\.2-3b-instruct\): arch: missing field 'vocab_size'",
        True,
    ),
    "missing sources": (
        _delete(("models", 1, "sources")),
        r"entry 2 \(llama-3\.2-3b-instruct\): missing field 'sources'",
        True,
    ),
    "empty variant source": (
        _set(("models", 1, "variants", 2, "source"), ""),
        r"variant 3: source must be non-empty text",
        True,
    ),
    "unknown tag": (
        _set(("models", 1, "tags"), ["chat", "poetry"]),
        r"entry 2 \(llama-3\.2-3b-instruct\): tags: unknown tag 'poetry'",
        True,
    ),
    "unknown field": (
        _set(("models", 1, "variants", 0, "sizes"), 1),
        r"variant 1: unknown field 'sizes'",
        True,
    ),
    "bad size_source": (
        _set(("models", 1, "variants", 0, "size_source"), "guessed"),
        r"variant 1: size_source must be one of",
        True,
    ),
    "rounded without precision": (
        _delete(("models", 1, "variants", 0, "size_precision_bytes")),
        r"variant 1: missing field 'size_precision_bytes'",
        True,
    ),
    "estimated without method": (
        _delete(("models", 1, "variants", 2, "size_method")),
        r"entry 2 \(llama-3\.2-3b-instruct\): variant 3: missing field 'size_method'",
        True,
    ),
    "bad sha256": (
        _set(("models", 1, "variants", 0, "sha256"), "ABC"),
        r"variant 1: sha256 must be 64 lower-case hex digits",
        True,
    ),
    "file and parts": (
        _file_and_parts,
        r"variant 1: give either 'file' or 'parts'",
        True,
    ),
    "no variants": (
        _set(("models", 1, "variants"), []),
        r"entry 2 \(llama-3\.2-3b-instruct\): variants must have at least 1 item",
        True,
    ),
    "bad id": (
        _set(("models", 1, "id"), "Llama 3.2"),
        r"entry 2 \(Llama 3\.2\): id must be lower-case",
        True,
    ),
    "wrong version": (_set(("version",), 2), r"version must be 1", True),
    # Only the loader can see these: a schema cannot compare one entry with another.
    "duplicate id": (
        _duplicate_id,
        r"entry 2 \(llama-3\.2-1b-instruct\): id 'llama-3\.2-1b-instruct' is already used by "
        r"entry 1",
        False,
    ),
    "complete but unknown": (
        _set(("models", 1, "arch_unknown"), ["context_length"]),
        r"entry 2 \(llama-3\.2-3b-instruct\): arch_unknown lists context_length but "
        r"arch\.context_length has a value",
        False,
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_catalog_names_the_entry(
    case: str, small_catalog: dict[str, Any], validator: jsonschema.Draft202012Validator
) -> None:
    assert validator.is_valid(small_catalog)
    parse_catalog(small_catalog)
    mutate, message, schema_sees_it = BROKEN[case]
    data = copy.deepcopy(small_catalog)
    mutate(data)
    with pytest.raises(CatalogError, match=message):
        parse_catalog(data)
    assert validator.is_valid(data) is not schema_sees_it


def test_duplicate_file_is_rejected(small_catalog: dict[str, Any]) -> None:
    data = copy.deepcopy(small_catalog)
    data["models"][1]["variants"].append(copy.deepcopy(data["models"][1]["variants"][0]))
    with pytest.raises(
        CatalogError, match=r"entry 2 \(llama-3\.2-3b-instruct\): variant 4: .* is already listed"
    ):
        parse_catalog(data)


# --------------------------------------------------------------------------
# GPU table
# --------------------------------------------------------------------------


def test_gpu_table_loads_with_sources(gpu_specs: list[GpuSpec]) -> None:
    assert len(gpu_specs) >= 60
    raw = json.loads(GPUS_JSON.read_text(encoding="utf-8"))
    for spec, device in zip(gpu_specs, raw["devices"], strict=True):
        assert spec.source.strip(), spec.name
        # Bytes per second straight from the published decimal GB/s.
        assert spec.bandwidth_bytes_per_s == int(Decimal(str(device["bandwidth_gbps"])) * 10**9)
        if spec.vendor == "apple":
            assert spec.unified_memory and spec.memory_options_bytes
            assert spec.memory_bytes == max(spec.memory_options_bytes)


def test_known_gpu_figures(gpu_specs: list[GpuSpec]) -> None:
    rtx4090 = find_gpu_spec("NVIDIA GeForce RTX 4090", specs=gpu_specs)
    assert rtx4090 is not None and rtx4090.name == "GeForce RTX 4090"
    assert rtx4090.memory_bytes == 24 * GIB
    assert rtx4090.bandwidth_bytes_per_s == 1008 * 10**9
    m4max = find_gpu_spec("Apple M4 Max", specs=gpu_specs)
    assert m4max is not None
    assert m4max.bandwidth_for_memory(36 * GIB) == 410 * 10**9  # the binned chip
    assert m4max.bandwidth_for_memory(128 * GIB) == 546 * 10**9


@pytest.mark.parametrize(
    ("reported", "memory_bytes", "expected"),
    [
        ("NVIDIA GeForce RTX 4090", None, "GeForce RTX 4090"),
        ("GeForce RTX 4070 Ti SUPER", None, "GeForce RTX 4070 Ti SUPER"),
        ("NVIDIA GeForce RTX 4090 Laptop GPU", None, None),  # a different chip
        ("NVIDIA H200", None, None),
        ("NVIDIA GeForce RTX 2060", None, "GeForce RTX 2060 (6GB)"),
        ("NVIDIA GeForce RTX 2060", 12 * GIB, "GeForce RTX 2060 12GB"),
        ("NVIDIA GeForce RTX 3060", 8 * GIB, None),  # only the 12 GB card is listed
        ("NVIDIA A100-SXM4-80GB", None, "A100 SXM4 80GB"),
        ("NVIDIA A100 80GB PCIe", None, "A100 PCIe 80GB"),
        ("NVIDIA H100 80GB HBM3", None, "H100 SXM5 80GB"),
        ("AMD Radeon RX 7900 XTX (RADV NAVI31)", None, "Radeon RX 7900 XTX"),
        ("Intel(R) Arc(TM) A770 Graphics", 16 * GIB, "Arc A770 16GB"),
        ("Apple M2 Max GPU", None, "Apple M2 Max"),
        ("Apple M2", None, "Apple M2"),
        ("", None, None),
    ],
)
def test_find_gpu_spec(
    gpu_specs: list[GpuSpec], reported: str, memory_bytes: int | None, expected: str | None
) -> None:
    found = find_gpu_spec(reported, memory_bytes, specs=gpu_specs)
    assert (found.name if found else None) == expected


def test_what_if_profile_reads_back(gpu_specs: list[GpuSpec]) -> None:
    spec = find_gpu_spec("GeForce RTX 3060", specs=gpu_specs)
    assert spec is not None
    base = {
        "cpu": {"brand": "Test CPU", "logical_cores": 8},
        "memory": {"total_bytes": 8 * GIB, "bandwidth_bytes_per_s": 50 * 10**9},
        "backends": ["cpu"],
    }
    data = what_if_profile_dict(spec, 32 * GIB, base=base)
    assert set(data) >= {"cpu", "memory", "gpus", "backends"}
    assert base["backends"] == ["cpu"]  # the base profile is not changed
    profile = HardwareProfile.from_dict(data)
    assert profile.cpu.brand == "Test CPU"
    assert profile.memory.total_bytes == 32 * GIB
    assert profile.memory.bandwidth_bytes_per_s == 50 * 10**9  # measured RAM bandwidth kept
    (gpu,) = profile.gpus
    assert (gpu.name, gpu.vendor, gpu.vram_total_bytes) == (
        "GeForce RTX 3060 12GB",
        "nvidia",
        12 * GIB,
    )
    assert gpu.bandwidth_bytes_per_s == 360 * 10**9 and not gpu.unified_memory
    assert profile.backends.backends == ("cpu", "cuda") and profile.backends.gpu_offload_supported


def test_what_if_unified_memory(gpu_specs: list[GpuSpec]) -> None:
    spec = find_gpu_spec("Apple M4 Max", specs=gpu_specs)
    assert spec is not None
    profile = HardwareProfile.from_dict(what_if_profile_dict(spec, 36 * GIB))
    (gpu,) = profile.gpus
    assert gpu.unified_memory and gpu.vendor == "apple"
    assert gpu.vram_total_bytes is not None and gpu.vram_total_bytes < 36 * GIB  # Metal's share
    assert gpu.bandwidth_bytes_per_s == profile.memory.bandwidth_bytes_per_s == 410 * 10**9
    assert "metal" in profile.backends.backends
