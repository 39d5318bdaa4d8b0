"""Memory plans, verdicts and speed predictions on hand-written machines (no llama.cpp)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synth import ACCURACY_MODELS, DENSE_14B_Q8, LLAMA_8B_Q4, write_header_only

from desktop.core.calibration import DEFAULT_FIGURES
from desktop.core.estimate import (
    Device,
    Settings,
    Verdict,
    capped_context,
    devices_from_profile,
    estimate,
    kv_cache_bytes,
    max_ctx_full_gpu,
    max_gpu_layers,
    padded_ctx,
    plan_memory,
    remote_devices,
)
from desktop.core.gguf import read_header_file
from desktop.core.hardware import HardwareProfile
from desktop.core.modelspec import ModelSpec, spec_from_header
from desktop.core.rpc import RemoteDevice
from desktop.core.units import GIB, MIB

GPU_8GB = {
    "cpu": {"brand": "Test CPU", "physical_cores": 8, "logical_cores": 16, "features": ["avx2"]},
    "memory": {
        "total_bytes": 32 * GIB,
        "available_bytes": 28 * GIB,
        "bandwidth_bytes_per_s": 60 * 10**9,
    },
    "gpus": [
        {
            "name": "Test GPU 8GB",
            "vendor": "nvidia",
            "vram_total_bytes": 8 * GIB,
            "vram_free_bytes": 8 * GIB,
            "bandwidth_bytes_per_s": 448 * 10**9,
        }
    ],
}


@pytest.fixture(scope="module")
def big_specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelSpec]:
    folder = tmp_path_factory.mktemp("big")
    return {
        name: spec_from_header(read_header_file(write_header_only(folder / f"{name}.gguf", m)))
        for name, m in {"llama8b": LLAMA_8B_Q4, "dense14b": DENSE_14B_Q8}.items()
    }


def profile(data: dict[str, object]) -> HardwareProfile:
    return HardwareProfile.from_json(json.dumps(data))


def test_hand_written_8gb_gpu_gives_full_and_partial(
    big_specs: dict[str, ModelSpec], tmp_path: Path
) -> None:
    devices = devices_from_profile(profile(GPU_8GB))
    small = estimate(big_specs["llama8b"], Settings(n_ctx=4096), devices)
    assert small.verdict is Verdict.FULL_GPU, small.reason
    assert small.gpu_layers == 33 and small.verdict_label == "Full GPU"
    big = estimate(big_specs["dense14b"], Settings(n_ctx=4096), devices)
    assert big.verdict is Verdict.PARTIAL, big.reason
    assert 0 < big.gpu_layers < 49
    assert big.verdict_label == f"Partial {big.gpu_layers}/49"
    assert f"{big.gpu_layers} of 49 layers" in big.reason
    gpu = big.devices[0]
    assert gpu.total_bytes <= gpu.capacity_bytes
    # One more layer would not fit: the answer is the maximum, not just a safe guess.
    plans, _ = plan_memory(big_specs["dense14b"], Settings(n_ctx=4096), devices, big.gpu_layers + 1)
    assert not plans[0].fits


def test_same_through_the_command_line(
    big_specs: dict[str, ModelSpec], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from desktop.cli import main

    hw = tmp_path / "gpu8.json"
    hw.write_text(json.dumps(GPU_8GB))
    path = write_header_only(tmp_path / "m.gguf", DENSE_14B_Q8)
    assert main(["estimate", str(path), "--hardware", str(hw), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "PARTIAL"
    for key in (
        "name",
        "weights_bytes",
        "kv_bytes",
        "compute_bytes",
        "overhead_bytes",
        "total_bytes",
        "capacity_bytes",
    ):
        assert key in out["devices"][0]
    assert out["predicted_tokens_per_s"] > 0


def test_no_gpu_is_cpu_only_and_too_large_when_ram_is_short(
    big_specs: dict[str, ModelSpec],
) -> None:
    data = dict(GPU_8GB, gpus=[])
    plan = estimate(big_specs["llama8b"], Settings(), devices_from_profile(profile(data)))
    assert plan.verdict is Verdict.CPU_ONLY and plan.gpu_layers == 0
    tiny_ram = dict(
        data,
        memory={
            "total_bytes": 8 * GIB,
            "available_bytes": 4 * GIB,
            "bandwidth_bytes_per_s": 20 * 10**9,
        },
    )
    plan = estimate(big_specs["dense14b"], Settings(), devices_from_profile(profile(tiny_ram)))
    assert plan.verdict is Verdict.TOO_LARGE
    assert "available" in plan.reason and plan.suggestion


def test_kv_cache_type_and_context_change_the_kv_bytes(big_specs: dict[str, ModelSpec]) -> None:
    spec = big_specs["llama8b"]
    f16 = kv_cache_bytes(spec, Settings(n_ctx=8192))
    # Llama 3.1 8B: 32 layers x 8 KV heads x 128 x (K+V) x 2 bytes = 128 KiB per token.
    assert f16 == 8192 * 32 * 8 * 128 * 2 * 2
    q8 = kv_cache_bytes(spec, Settings(n_ctx=8192, kv_type="q8_0", flash_attn=True))
    assert q8 == f16 * 34 // 64  # q8_0: 34 bytes per 32 values
    assert kv_cache_bytes(spec, Settings(n_ctx=8000)) == f16  # padded to 256


def test_sliding_window_layers_use_a_small_cache_without_swa_full(tmp_path: Path) -> None:
    from synth import write_model

    path = write_model(tmp_path / "g.gguf", ACCURACY_MODELS["gemma3-swa"])
    spec = spec_from_header(read_header_file(path))
    assert spec.swa_layers == (0, 1, 2, 3, 4, 6, 7, 8, 9, 10)  # every 6th layer is global
    full = kv_cache_bytes(spec, Settings(n_ctx=32768))
    window = kv_cache_bytes(spec, Settings(n_ctx=32768, swa_full=False))
    per_cell = 128 * 2 * 2  # one KV head of 128, K and V, f16
    assert window == (2 * 32768 + 10 * 1024) * per_cell  # pad256(512 + 512) cells for SWA
    assert full == 12 * 32768 * per_cell


def test_offload_goes_from_the_last_layer_down_output_last(big_specs: dict[str, ModelSpec]) -> None:
    spec = big_specs["llama8b"]
    devices = devices_from_profile(profile(GPU_8GB))
    one, _ = plan_memory(spec, Settings(), devices, 1)
    assert one[0].layers == 1  # the output layer alone
    assert one[0].weights_bytes >= spec.output_bytes
    assert one[0].kv_bytes == 0  # the output layer has no KV cache
    two, _ = plan_memory(spec, Settings(), devices, 2)
    assert two[0].kv_bytes > 0 and two[-1].layers == 31  # 32 blocks, one offloaded


def test_two_gpus_are_listed_separately_and_share_layers(big_specs: dict[str, ModelSpec]) -> None:
    data = dict(
        GPU_8GB,
        gpus=[
            {
                "name": "Big",
                "vendor": "nvidia",
                "vram_total_bytes": 24 * GIB,
                "vram_free_bytes": 24 * GIB,
                "bandwidth_bytes_per_s": 10**12,
            },
            {
                "name": "Small",
                "vendor": "nvidia",
                "vram_total_bytes": 8 * GIB,
                "vram_free_bytes": 8 * GIB,
                "bandwidth_bytes_per_s": 448 * 10**9,
            },
        ],
    )
    plan = estimate(big_specs["dense14b"], Settings(), devices_from_profile(profile(data)))
    assert plan.verdict is Verdict.FULL_GPU
    big, small = plan.devices[0], plan.devices[1]
    assert big.name == "Big" and small.name == "Small"
    assert big.layers > small.layers > 0  # split in proportion to free memory
    assert big.layers + small.layers == 49


def test_unified_memory_gpu_counts_against_ram(big_specs: dict[str, ModelSpec]) -> None:
    data = {
        "cpu": {"brand": "Apple M2 Pro", "physical_cores": 10, "features": ["neon", "dotprod"]},
        "memory": {
            "total_bytes": 16 * GIB,
            "available_bytes": 12 * GIB,
            "bandwidth_bytes_per_s": 200 * 10**9,
        },
        "gpus": [
            {
                "name": "Apple M2 Pro",
                "vendor": "apple",
                "unified_memory": True,
                "vram_total_bytes": 10 * GIB + 512 * MIB,
                "vram_free_bytes": 10 * GIB + 512 * MIB,
                "bandwidth_bytes_per_s": 200 * 10**9,
            }
        ],
    }
    devices = devices_from_profile(profile(data))
    assert devices[0].kind == "metal" and devices[0].unified_memory
    assert devices[-1].capacity_bytes == 12 * GIB - 10 * GIB  # RAM left beside the GPU share
    plan = estimate(big_specs["llama8b"], Settings(), devices)
    assert plan.verdict is Verdict.FULL_GPU


def test_speed_prediction_follows_bandwidth(big_specs: dict[str, ModelSpec]) -> None:
    spec = big_specs["llama8b"]
    fast = dict(GPU_8GB, gpus=[dict(GPU_8GB["gpus"][0], bandwidth_bytes_per_s=896 * 10**9)])  # type: ignore[call-overload]
    slow_plan = estimate(spec, Settings(), devices_from_profile(profile(GPU_8GB)))
    fast_plan = estimate(spec, Settings(), devices_from_profile(profile(fast)))
    assert slow_plan.predicted_tokens_per_s and fast_plan.predicted_tokens_per_s
    # All on the GPU: double bandwidth halves the bandwidth part of a token's time; the fixed
    # per-token cost (graph, sampling, launches: desktop.core.calibration) stays. The CPU
    # still reads one embedding row per token, a few KiB: "almost" exactly half.
    fixed = DEFAULT_FIGURES.per_token_seconds
    slow_s = 1 / slow_plan.predicted_tokens_per_s - fixed
    fast_s = 1 / fast_plan.predicted_tokens_per_s - fixed
    assert 1.99 < slow_s / fast_s <= 2.0
    cpu_only = estimate(spec, Settings(n_gpu_layers=0), devices_from_profile(profile(GPU_8GB)))
    assert cpu_only.predicted_tokens_per_s is not None
    assert cpu_only.predicted_tokens_per_s < slow_plan.predicted_tokens_per_s / 4


def test_moe_reads_only_active_experts(tmp_path: Path) -> None:
    from synth import write_model

    spec = spec_from_header(
        read_header_file(write_model(tmp_path / "moe.gguf", ACCURACY_MODELS["qwen3moe"]))
    )
    expert = sum(lay.expert_bytes for lay in spec.layers)
    assert expert > 0 and spec.n_expert == 16 and spec.n_expert_used == 4
    assert spec.weight_bytes - spec.active_weight_bytes_per_token >= expert * 3 // 4 - MIB


@settings(max_examples=60, deadline=None)
@given(
    ctx=st.integers(256, 65536),
    extra=st.integers(1, 65536),
    layers=st.integers(0, 48),
    kv=st.sampled_from(["f16", "q8_0", "q4_0"]),
    fa=st.booleans(),
)
def test_more_context_or_layers_never_needs_less(
    big_specs: dict[str, ModelSpec], ctx: int, extra: int, layers: int, kv: str, fa: bool
) -> None:
    spec = big_specs["dense14b"]
    devices = [Device("GPU", "cuda", 100 * GIB, 10**12), Device("CPU", "cpu", 100 * GIB, 10**10)]
    s1 = Settings(n_ctx=ctx, kv_type=kv, flash_attn=fa or kv != "f16")
    s2 = Settings(n_ctx=ctx + extra, kv_type=kv, flash_attn=fa or kv != "f16")
    a, _ = plan_memory(spec, s1, devices, layers)
    b, _ = plan_memory(spec, s2, devices, layers)
    assert sum(p.total_bytes for p in b) >= sum(p.total_bytes for p in a)
    c, _ = plan_memory(spec, s1, devices, layers + 1)
    assert c[0].total_bytes >= a[0].total_bytes


def test_auto_layers_is_the_largest_that_fits(big_specs: dict[str, ModelSpec]) -> None:
    spec = big_specs["dense14b"]
    for vram_gib in (2, 4, 6, 8, 12, 16):
        devices = [
            Device("GPU", "cuda", vram_gib * GIB, 10**12),
            Device("CPU", "cpu", 64 * GIB, 10**10),
        ]
        best = max_gpu_layers(spec, Settings(), devices)
        fits = [n for n in range(50) if plan_memory(spec, Settings(), devices, n)[0][0].fits]
        assert best == max(fits)


def test_a_better_fitting_quantization_is_named(big_specs: dict[str, ModelSpec]) -> None:
    from desktop.core.estimate import sibling_suggestion

    devices = devices_from_profile(profile(GPU_8GB))
    partial = estimate(big_specs["dense14b"], Settings(), devices)
    full = estimate(big_specs["llama8b"], Settings(), devices)
    siblings = [("Q8_0", partial), ("Q4_K_M", full)]
    assert sibling_suggestion(partial, siblings) == "Q4_K_M fits fully on the GPU."
    assert sibling_suggestion(full, siblings) is None  # nothing fits better than full GPU


def test_verdicts_rank_in_the_order_they_are_written() -> None:
    assert [v.rank for v in Verdict] == [0, 1, 2, 3]
    assert Verdict.FULL_GPU.rank < Verdict.PARTIAL.rank < Verdict.CPU_ONLY.rank
    assert Verdict.CPU_ONLY.rank < Verdict.TOO_LARGE.rank


def test_the_context_is_capped_at_the_trained_length() -> None:
    assert capped_context(8192, 2048) == 2048
    assert capped_context(2048, 131072) == 2048
    assert capped_context(8192, 0) == capped_context(8192, None) == 8192  # not known: as asked


def test_partial_suggests_a_context_in_whole_thousands(big_specs: dict[str, ModelSpec]) -> None:
    devices = devices_from_profile(profile(GPU_8GB))
    plan = estimate(big_specs["llama8b"], Settings(n_ctx=65536), devices)
    assert plan.verdict is Verdict.PARTIAL
    assert plan.max_ctx_full_gpu is not None and plan.max_ctx_full_gpu < 65536
    shown = plan.max_ctx_full_gpu // 1024
    assert f"lower the context to {shown}k to fit fully" in plan.suggestion.lower()


def test_every_catalog_variant_estimates_and_grows_with_context() -> None:
    """Every complete catalog entry gives a plan; bigger contexts never need less memory and
    more GPU layers never need less VRAM (on an 8 GB and a 24 GB card)."""
    from desktop.core.catalog import load_catalog
    from desktop.core.modelspec import spec_from_catalog

    catalog = load_catalog()
    estimated = 0
    for vram in (8, 24):
        devices = [
            Device("GPU", "cuda", vram * GIB, 500 * 10**9, 3e13),
            Device("CPU", "cpu", 64 * GIB, 60 * 10**9, 5e11, cpu_features=("avx2",)),
        ]
        for model, variant in catalog.variants():
            try:
                spec = spec_from_catalog(model, variant)
            except ValueError:
                # Only entries the catalog itself marks incomplete or without a size may refuse.
                assert not model.arch_complete or variant.size_bytes is None, model.id
                continue
            estimated += 1
            totals = []
            for n_ctx in (2048, 8192, 32768):
                plan = estimate(spec, Settings(n_ctx=n_ctx), devices)
                assert plan.reason and plan.suggestion, (model.id, variant.quant)
                totals.append(plan.total_bytes)
            assert totals == sorted(totals), (model.id, variant.quant)
            vram_use = [
                plan_memory(spec, Settings(), devices, n)[0][0].total_bytes
                for n in range(0, spec.n_layer + 2, 4)
            ]
            assert vram_use == sorted(vram_use), (model.id, variant.quant)
    assert estimated >= 2 * 100


def test_repacking_follows_the_build_not_the_cpu_flags() -> None:
    from desktop.core.estimate import build_cpu_features, repack_rules

    portable = profile(
        {
            "cpu": {"features": ["avx", "avx2", "avx512f", "fma"]},
            "memory": {"total_bytes": GIB},
            "backends": {
                "backends": ["cpu"],
                "checked": True,
                "system_info": "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | "
                "FMA = 1 | AVX512 = 0 | REPACK = 1 |",
            },
        }
    )
    features = build_cpu_features(portable)
    assert "avx2" in features and "avx512f" not in features  # the build has no AVX-512
    assert set(repack_rules(features)) == {"Q4_0", "Q4_K", "IQ4_NL", "MXFP4"}
    unknown_build = profile(
        {"cpu": {"features": ["neon", "dotprod"]}, "memory": {"total_bytes": GIB}}
    )
    assert "Q6_K" in repack_rules(build_cpu_features(unknown_build))  # ARM dot-product kernels


def test_gpu_builds_do_not_repack_and_copy_cpu_weights_for_prompts(
    big_specs: dict[str, ModelSpec],
) -> None:
    """llama.cpp with a CUDA device: CPU weights in the (mapped) host buffer, never repacked;
    big prompt batches run CPU-layer matmuls on the GPU, whose compute buffer holds the copies."""
    spec = big_specs["llama8b"]  # Q4_K weights: repacked on an AVX2 CPU-only build
    cpu = Device("CPU", "cpu", 64 * GIB, 60 * 10**9, 5e11, cpu_features=("avx2",))
    gpu = Device("GPU", "cuda", 6 * GIB, 448 * 10**9, 3e13)
    _, cpu_only = plan_memory(spec, Settings(), [cpu], 0)
    assert any(b.device == "CPU_REPACK" for b in cpu_only)
    partial, with_gpu = plan_memory(spec, Settings(), [gpu, cpu], 20)
    assert not any(b.device == "CPU_REPACK" for b in with_gpu)
    # The output layer stayed on the CPU: its matrix is the biggest copy the GPU makes.
    full, _ = plan_memory(spec, Settings(), [gpu, cpu], 33)
    output = spec.output_bytes
    small_batch, _ = plan_memory(spec, Settings(n_ubatch=16, n_batch=16), [gpu, cpu], 20)
    assert partial[0].compute_bytes >= output
    assert small_batch[0].compute_bytes < output  # batches under 32 stay on the CPU
    assert full[0].compute_bytes < partial[0].compute_bytes  # nothing left on the CPU to copy


def _reference_max_layers(spec: ModelSpec, s: Settings, devices: list[Device]) -> int:
    """The layer search as it was first written: halving, each probe a whole plan."""

    def fits(n: int) -> bool:
        return all(p.fits for p in plan_memory(spec, s, devices, n)[0][:-1])

    lo, hi = 0, spec.n_layer + 1
    if fits(hi):
        return hi
    while lo < hi - 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def _reference_max_ctx(spec: ModelSpec, s: Settings, devices: list[Device]) -> int:
    """The context search as it was first written: halving over 256-cell steps."""
    full = spec.n_layer + 1

    def fits(n_ctx: int) -> bool:
        at = replace(s, n_ctx=n_ctx)
        return all(p.fits for p in plan_memory(spec, at, devices, full)[0][:-1])

    limit = padded_ctx(max(spec.n_ctx_train, 256))
    if not fits(256):
        return 0
    if fits(limit):
        return limit
    lo, hi = 1, limit // 256
    while lo < hi - 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid * 256) else (lo, mid)
    return lo * 256


def test_the_fast_searches_find_what_whole_plans_find(
    tmp_path: Path, big_specs: dict[str, ModelSpec]
) -> None:
    """The layer and context searches (estimate's _Fit: margins, secant steps) against plans
    made one by one, on one GPU of several sizes and backends, two GPUs and another
    computer's device."""
    specs = [
        *big_specs.values(),
        *(
            spec_from_header(read_header_file(write_header_only(tmp_path / f"{n}.gguf", m)))
            for n, m in ACCURACY_MODELS.items()
        ),
    ]
    cpu = Device("CPU", "cpu", 64 * GIB, 60 * 10**9, cpu_features=("avx2",))
    remote = remote_devices(
        [RemoteDevice("10.0.0.2:50052", 0, 3 * GIB, 4 * GIB, 32, 0.001)], 0
    )
    machines: list[list[Device]] = [
        [Device("GPU", kind, int(gib * GIB), 10**12), cpu]
        for kind in ("cuda", "vulkan", "metal")
        for gib in (0.5, 6)
    ]
    machines += [
        [Device("A", "cuda", 6 * GIB, 10**12), Device("B", "cuda", 3 * GIB, 10**12), cpu],
        [*remote, Device("GPU", "cuda", 4 * GIB, 10**12), cpu],
    ]
    choices = [
        Settings(n_ctx=4096),
        Settings(n_ctx=32768, kv_type="q8_0", flash_attn=True, swa_full=False),
        Settings(n_ctx=8192, offload_kqv=False, n_ubatch=16),
    ]
    for spec in specs:
        scale = 64 if spec.file_size < 2 * GIB else 1  # the small models: GPUs to their size
        for machine in machines:
            devices = [
                replace(d, capacity_bytes=d.capacity_bytes // scale) if d.is_gpu else d
                for d in machine
            ]
            for s in choices:
                got = (max_gpu_layers(spec, s, devices), max_ctx_full_gpu(spec, s, devices))
                want = (
                    _reference_max_layers(spec, s, devices),
                    _reference_max_ctx(spec, s, devices),
                )
                assert got == want, (spec.name, devices[0], s)
