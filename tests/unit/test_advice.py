"""Suggestions ranked by the speed a person would get (desktop.core.advice), on the catalog's
Llama 3.1 8B with a what-if RTX 4060 in a typical desktop (issue 15, item 6)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from desktop.core.advice import lead_sentence, ranked_alternatives
from desktop.core.catalog import load_catalog
from desktop.core.estimate import Device, Settings, Verdict, devices_from_profile, estimate
from desktop.core.gpu_specs import load_gpu_specs, what_if_profile_dict
from desktop.core.hardware import HardwareProfile
from desktop.core.machine_classes import DEFAULT_CLASS, apply_class
from desktop.core.rows import ModelRow, catalog_rows

GIB = 1024**3


@pytest.fixture(scope="module")
def rows() -> list[ModelRow]:
    return catalog_rows(load_catalog())


@pytest.fixture(scope="module")
def rtx_4060_desktop() -> list[Device]:
    spec = next(s for s in load_gpu_specs() if s.name == "GeForce RTX 4060")
    profile = apply_class(what_if_profile_dict(spec, 16 * GIB), DEFAULT_CLASS)
    return devices_from_profile(HardwareProfile.from_dict(profile), 512 * 1024**2)


def _row(rows: list[ModelRow], model: str, quant: str) -> ModelRow:
    return next(r for r in rows if r.group == f"catalog:{model}" and r.quant == quant)


def test_the_quantization_that_fits_fully_leads_with_its_speed(
    rows: list[ModelRow], rtx_4060_desktop: list[Device]
) -> None:
    q8 = _row(rows, "llama-3.1-8b-instruct", "Q8_0")
    assert q8.spec is not None
    settings = Settings(n_ctx=4096)
    plan = estimate(q8.spec, settings, rtx_4060_desktop)
    assert plan.verdict is Verdict.PARTIAL
    siblings = [
        (r.quant, estimate(r.spec, settings, rtx_4060_desktop))
        for r in rows
        if r.group == q8.group and r.spec is not None and r is not q8
    ]
    ranked = ranked_alternatives(q8.spec, plan, rtx_4060_desktop, siblings)
    speeds = [a.tokens_per_s for a in ranked]
    assert speeds == sorted(speeds, reverse=True)
    assert all(s > (plan.predicted_tokens_per_s or 0) for s in speeds)
    best = ranked[0]
    assert best.kind == "quant" and best.change == "Q6_K"  # the best quality that fits fully
    assert best.plan.verdict is Verdict.FULL_GPU
    sentence = lead_sentence(plan, ranked)
    assert sentence is not None
    assert sentence.startswith("Q6_K fits fully on the GPU at ~")
    assert f"(as it is: ~{plan.predicted_tokens_per_s:.0f} tok/s)" in sentence
    # The plan's own one-step tip (one more layer with q8_0 KV) is still offered, ranked lower.
    assert [a.kind for a in ranked][1:] == ["kv"]


def test_a_shorter_context_can_be_the_best_change(
    rows: list[ModelRow], rtx_4060_desktop: list[Device]
) -> None:
    q4 = _row(rows, "llama-3.1-8b-instruct", "Q4_K_M")
    assert q4.spec is not None
    plan = estimate(q4.spec, Settings(n_ctx=65536), rtx_4060_desktop)
    assert plan.verdict is Verdict.PARTIAL
    ranked = ranked_alternatives(q4.spec, plan, rtx_4060_desktop)
    assert ranked and ranked[0].kind == "context"
    assert ranked[0].plan.verdict is Verdict.FULL_GPU
    sentence = lead_sentence(plan, ranked)
    assert sentence is not None and sentence.startswith("Lowering the context to ")
    assert "fits it fully on the GPU at ~" in sentence


def test_nothing_to_say_when_nothing_is_faster(
    rows: list[ModelRow], rtx_4060_desktop: list[Device]
) -> None:
    q4 = _row(rows, "llama-3.1-8b-instruct", "Q4_K_M")
    assert q4.spec is not None
    plan = estimate(q4.spec, Settings(n_ctx=4096), rtx_4060_desktop)
    assert plan.verdict is Verdict.FULL_GPU
    assert ranked_alternatives(q4.spec, plan, rtx_4060_desktop) == []
    assert lead_sentence(plan, []) is None
    # Fewer layers chosen by hand: "as many as fit" is the faster change.
    few = estimate(q4.spec, replace(plan.settings, n_gpu_layers=8), rtx_4060_desktop)
    ranked = ranked_alternatives(q4.spec, few, rtx_4060_desktop)
    assert ranked[0].kind == "layers"
    assert ranked[0].plan.gpu_layers == plan.gpu_layers
