"""Model rows without Qt (desktop.core.rows): how they are built, named and ranked.

The models table and ``llm-workbench models`` show the same rows, so these rules are tested
once, here: the table's own behaviour is in tests/ui, the command's in tests/unit/test_cli.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from desktop.core.catalog import default_catalog_paths, parse_catalog
from desktop.core.estimate import DevicePlan, Plan, Settings, Verdict
from desktop.core.library import LocalModel
from desktop.core.modelspec import spec_from_catalog
from desktop.core.rows import (
    NO_ESTIMATE_RANK,
    ModelRow,
    best_fit_key,
    catalog_rows,
    format_params,
    library_rows,
    sibling_suggestions,
    verdict_sort_key,
)


def plan(verdict: Verdict, gpu_layers: int = 0, offloadable: int = 33, total: int = 1) -> Plan:
    """A plan with only what ranking reads: the verdict, the layers and the bytes."""
    device = DevicePlan("GPU", "cuda", gpu_layers, total, 0, 0, 0, 0, 8 * total)
    return Plan(
        model_name="m",
        estimate_kind="exact",
        settings=Settings(),
        n_ctx=4096,
        gpu_layers=gpu_layers,
        offloadable_layers=offloadable,
        devices=(device,),
        buffers=(),
        verdict=verdict,
        reason="",
        suggestion="",
        max_gpu_layers=gpu_layers,
        max_ctx_full_gpu=None,
        predicted_tokens_per_s=None,
        predicted_prompt_tokens_per_s=None,
    )


def row(quant: str, size: int, group: str = "catalog:m") -> ModelRow:
    return ModelRow(
        name="M",
        params=None,
        quant=quant,
        file_size_bytes=size,
        source="catalog",
        spec=None,
        location=f"o/m:{quant}",
        group=group,
    )


def test_params_are_written_the_way_people_say_them() -> None:
    assert format_params(8_030_261_248) == "8.0B"
    assert format_params(999_885_952) == "1.0B"
    assert format_params(268_098_176) == "268M"
    assert format_params(120_000_000_000) == "120B"
    assert format_params(None) == "?"


def test_a_split_remote_file_downloads_every_part() -> None:
    row = ModelRow.remote(
        "someone/big-GGUF",
        "big-00001-of-00002.gguf",
        None,
        10,
        parts=("big-00001-of-00002.gguf", "big-00002-of-00002.gguf"),
    )
    assert row.download_files == ("big-00001-of-00002.gguf", "big-00002-of-00002.gguf")
    single = ModelRow.remote("someone/small-GGUF", "small.gguf", None, 5)
    assert single.download_files == ("small.gguf",)


def test_catalog_rows_without_an_estimate_say_why_in_two_registers() -> None:
    """A sentence for the table (``note``), the estimator's own words for the command line."""
    # The shipped catalog gives every row an estimate (issue 12), so the two ways a row can
    # lack one are made here: a file of unknown size, and a model missing a number.
    path = next(p for p in default_catalog_paths() if p.is_file())
    data = json.loads(path.read_text(encoding="utf-8"))
    unsized_variant = data["models"][0]["variants"][0]
    unsized_variant.update(
        size_bytes=None, size_source="unknown", size_method="not in any source (test)"
    )
    for key in ("size_precision_bytes", "size_shown"):
        unsized_variant.pop(key, None)
    lacking = data["models"][1]
    lacking["arch"]["vocab_size"] = None
    lacking["arch_unknown"] = [*lacking["arch_unknown"], "vocab_size"]
    lacking["arch_complete"] = False
    catalog = parse_catalog(data)
    rows = catalog_rows(catalog)
    unsized = [r for r in rows if r.spec is None and r.file_size_bytes is None]
    assert unsized, "the catalog has variants whose size is unknown"
    assert any(r.spec is None and r.file_size_bytes is not None for r in rows)
    for (model, variant), r in zip(catalog.variants(), rows, strict=True):
        if r.spec is not None:
            assert r.problem == ""
            continue
        with pytest.raises(ValueError) as refused:
            spec_from_catalog(model, variant)
        assert r.problem == str(refused.value) != ""
        if r in unsized:
            assert r.note == (
                "The catalog does not know this file's size; no estimate before download."
            )
        else:
            assert r.note == f"No estimate before download: {r.problem}"


def test_library_rows_leave_projectors_out_unless_asked(tmp_path: Path) -> None:
    def found(name: str, status: Any, problem: str | None) -> LocalModel:
        return LocalModel(tmp_path / name, 10, status, problem, None, None, "folder")

    files = [
        found("mmproj-F16.gguf", "projector", "A vision projector."),
        found("broken.gguf", "corrupt", "not a GGUF file"),
    ]
    assert [r.file_name for r in library_rows(files)] == ["broken.gguf"]
    listed = library_rows(files, projectors=True)
    assert [r.file_name for r in listed] == ["mmproj-F16.gguf", "broken.gguf"]
    assert [r.note for r in listed] == ["A vision projector.", "not a GGUF file"]
    assert all(r.spec is None and r.source == "local" for r in listed)


def test_the_table_ranks_partial_rows_by_the_layers_on_the_gpu() -> None:
    keys = [
        verdict_sort_key(plan(Verdict.FULL_GPU, 33)),
        verdict_sort_key(plan(Verdict.PARTIAL, 30)),
        verdict_sort_key(plan(Verdict.PARTIAL, 10)),
        verdict_sort_key(plan(Verdict.CPU_ONLY)),
        verdict_sort_key(plan(Verdict.TOO_LARGE)),
        verdict_sort_key(None),
    ]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert keys[-1] == NO_ESTIMATE_RANK


def test_best_fit_first_is_the_verdict_then_the_biggest_file() -> None:
    evaluated = [
        (row("Q2_K", 3), plan(Verdict.FULL_GPU)),
        (row("none", 99), None),
        (row("Q8_0", 9), plan(Verdict.PARTIAL, 10)),
        (row("Q4_K_M", 5), plan(Verdict.FULL_GPU)),
        (row("Q6_K", 7), plan(Verdict.PARTIAL, 30)),  # more layers, same rank: size decides
    ]
    ranked = sorted(evaluated, key=lambda rp: best_fit_key(*rp))
    assert [r.quant for r, _ in ranked] == ["Q4_K_M", "Q2_K", "Q8_0", "Q6_K", "none"]


def test_sibling_suggestions_name_a_better_quantization_of_the_same_model() -> None:
    evaluated = [
        (row("Q8_0", 9), plan(Verdict.PARTIAL, 10, total=9)),
        (row("Q4_K_M", 5), plan(Verdict.FULL_GPU, 33, total=5)),
        (row("Q3_K", 4), plan(Verdict.FULL_GPU, 33, total=4)),
        (row("Q8_0", 9, group="catalog:other"), plan(Verdict.CPU_ONLY, total=9)),
        (row("none", 1), None),
    ]
    assert sibling_suggestions(evaluated) == [
        "Q4_K_M fits fully on the GPU.",  # the largest of the better ones
        None,
        None,
        None,  # another model's rows are no siblings
        None,
    ]
