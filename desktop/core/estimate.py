"""Memory plan per device, fit verdict and predicted speed for one model on one machine.

Every component is modelled the way llama.cpp (as vendored in llama-cpp-python 0.3.36)
allocates it, so the plan can be checked against the buffer sizes llama.cpp prints:

* **Weights** (src/llama-model.cpp ``load_tensors``). Repeating layers are offloaded from the
  last block down: layer ``il`` goes to a GPU when ``il >= n_layer + 1 - n_gpu_layers``; the
  output layer counts as one more layer and moves last; the input layer (token embedding)
  always stays on the CPU. Several GPUs split the offloaded layers in proportion to their free
  memory, as llama.cpp's default ``tensor_split`` does. On the CPU, weights whose type has a
  repacked matmul kernel for this CPU (ggml-cpu/repack.cpp: Q4_0, Q4_K, IQ4_NL and MXFP4 with
  AVX2 when ``ne[1] % 8 == 0``; more types with ARM dot-product) are copied into a separate
  ``CPU_REPACK`` buffer; the rest stay in the memory-mapped file (``CPU_Mapped``, which llama.cpp
  reports as the byte span from the first to the last such tensor). A tied output layer
  (no ``output.weight``) reuses the embedding, duplicated on the output layer's device.
* **KV cache** (src/llama-kv-cache.cpp, llama-kv-cache-iswa.cpp, llama-context.cpp). The context
  is padded to a multiple of 256. Each layer with attention stores ``n_embd_k_gqa`` K values and
  ``n_embd_v_gqa`` V values per cell in the chosen cache type; sliding-window layers get their
  own cache of ``pad256(min(n_ctx, n_swa + n_ubatch))`` cells unless ``swa_full`` (llama-cpp-
  python's default) makes it full size. MLA models cache one compressed K row and no V.
  Recurrent layers keep a fixed f32 state instead.
* **Output buffer** (``llama_context::output_reserve``): logits for one sequence,
  ``n_vocab x 4`` bytes.
* **Compute buffer** (``sched_reserve``: the worst-case graph, ``n_ubatch`` tokens, all of them
  outputs). The graph allocator reuses memory, so the buffer is the largest set of tensors
  alive at one time. Three moments compete: attention (without flash attention the
  ``n_kv x n_ubatch x n_head`` f32 score matrix plus the f32 masks), the feed-forward block, and
  the output (``n_vocab x n_ubatch`` f32 logits). The per-token activations alive beside them
  were measured against llama.cpp on llama, qwen3, qwen3moe and gemma3 graphs
  (tests/engine/test_accuracy.py keeps that true).
* **Overhead**: what a backend costs that llama.cpp does not report as a buffer (the CUDA
  context, the worker process itself). Constants, documented below, to calibrate on hardware.

Speed follows the principle that decoding one token reads every active weight once (plus the
KV cache): predicted tokens/s = efficiency / sum(bytes on device / device bandwidth). Prompt
processing is compute bound: 2 FLOPs per active weight per token over the device's FLOPS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from desktop.core.modelspec import LayerSpec, ModelSpec, TensorSlice

MIB = 1024 * 1024
GIB = 1024 * MIB

KV_TYPES = ("f16", "q8_0", "q4_0")
_KV_GGML = {
    "f16": GGMLQuantizationType.F16,
    "q8_0": GGMLQuantizationType.Q8_0,
    "q4_0": GGMLQuantizationType.Q4_0,
}

#: llama.cpp pads the context (and the SWA cache) to a multiple of this many cells.
CTX_PAD = 256
#: ggml's CPU buffers align each tensor to this many bytes (TENSOR_ALIGNMENT).
CPU_ALIGN = 32
#: ggml-cuda aligns tensors to 128 bytes and pads the last row of quantized tensors to a
#: multiple of 512 elements (MATRIX_ROW_PADDING) so its kernels can read whole blocks.
CUDA_ALIGN = 128
CUDA_ROW_PADDING = 512

#: Memory a backend uses that llama.cpp does not report as a buffer. The CUDA figure is the
#: context plus cuBLAS workspace as commonly observed on recent drivers (about 300 MiB);
#: Vulkan is lighter; Metal maps host memory. To calibrate with NVML on real cards.
BACKEND_OVERHEAD_BYTES = {
    "cuda": 300 * MIB,
    "vulkan": 150 * MIB,
    "metal": 0,
    "rocm": 300 * MIB,
    "sycl": 300 * MIB,
    "gpu": 300 * MIB,
}
#: The worker process itself (Python, llama-cpp-python, ggml's thread pool) before any buffer:
#: measured on Linux x86_64 as the worker's RSS minus llama.cpp's buffers (about 90 MiB).
CPU_PROCESS_OVERHEAD_BYTES = 96 * MIB

#: Fraction of theoretical bandwidth that decoding reaches, per backend. Starting values from
#: the common observation that llama.cpp reaches 60-80% of peak on GPUs and about half of a
#: measured copy bandwidth on CPUs; each to be calibrated from measurements.
BANDWIDTH_EFFICIENCY = {
    "cpu": 0.55,
    "cuda": 0.75,
    "metal": 0.70,
    "vulkan": 0.65,
    "rocm": 0.65,
    "sycl": 0.55,
    "gpu": 0.65,
}
#: Fraction of peak FLOPS that prompt processing reaches.
COMPUTE_EFFICIENCY = {
    "cpu": 0.35,
    "cuda": 0.45,
    "metal": 0.40,
    "vulkan": 0.35,
    "rocm": 0.35,
    "sycl": 0.30,
    "gpu": 0.35,
}
#: Peak f32 FLOPs per cycle per physical core with AVX2 FMA (2 x 8-wide FMA units), used when
#: the CPU's FLOPS are not known; 3.0 GHz is assumed when the clock is unknown.
CPU_FLOPS_PER_CYCLE = 32
CPU_ASSUMED_HZ = 3.0e9
#: n_embd-wide f32 rows counted beside the logits at the output (see _compute_bytes).
OUTPUT_PHASE_EMBD_ROWS = 4
#: Decoding assumes the KV cache is half full on average over a conversation.
KV_FILL_FOR_SPEED = 0.5


class Verdict(StrEnum):
    FULL_GPU = "FULL_GPU"
    PARTIAL = "PARTIAL"
    CPU_ONLY = "CPU_ONLY"
    TOO_LARGE = "TOO_LARGE"


@dataclass(frozen=True)
class Settings:
    """What the person chooses when loading a model (llama-cpp-python's defaults otherwise)."""

    n_ctx: int = 4096
    n_gpu_layers: int | None = None  # None: as many as fit ("auto")
    kv_type: str = "f16"  # f16, q8_0, q4_0 (for both K and V)
    n_batch: int = 512
    n_ubatch: int = 512
    flash_attn: bool = False
    offload_kqv: bool = True
    use_mmap: bool = True
    swa_full: bool = True  # llama-cpp-python keeps the full-size SWA cache by default
    n_seq_max: int = 1
    reserve_bytes: int = 512 * MIB  # VRAM the person keeps free for the desktop and games

    def __post_init__(self) -> None:
        if self.kv_type not in KV_TYPES:
            raise ValueError(f"KV cache type must be one of {', '.join(KV_TYPES)}")
        if self.n_ctx <= 0 or self.n_ubatch <= 0 or self.n_batch <= 0:
            raise ValueError("context, batch and ubatch sizes must be positive")


@dataclass(frozen=True)
class Device:
    """A place memory can be allocated: one GPU, or the CPU (system RAM)."""

    name: str
    kind: str  # "cpu" or a GPU backend: "cuda", "metal", "vulkan", "rocm", "gpu"
    capacity_bytes: int  # usable: free VRAM less the reserve, or available RAM
    bandwidth_bytes_per_s: int | None
    flops: float | None = None  # peak FLOPS for prompt processing, when known
    unified_memory: bool = False  # shares system RAM (Apple Silicon, integrated GPUs)
    cpu_features: tuple[str, ...] = ()

    @property
    def is_gpu(self) -> bool:
        return self.kind != "cpu"


@dataclass(frozen=True)
class Buffer:
    """One buffer as llama.cpp would report it (for checking against its log)."""

    device: str  # llama.cpp buffer type: "CPU_Mapped", "CPU_REPACK", "CPU", "CUDA0", ...
    component: str  # "weights", "kv", "recurrent", "output", "compute"
    size_bytes: int


@dataclass(frozen=True)
class DevicePlan:
    """Memory on one device, by component, against what the device has."""

    name: str
    kind: str
    layers: int  # repeating layers placed here (+1 if the output layer is here)
    weights_bytes: int  # resident weight bytes (repacked copies replace the mapped pages)
    kv_bytes: int
    compute_bytes: int
    output_bytes: int  # llama.cpp's output (logits) buffer
    overhead_bytes: int
    capacity_bytes: int

    @property
    def total_bytes(self) -> int:
        return (
            self.weights_bytes
            + self.kv_bytes
            + self.compute_bytes
            + self.output_bytes
            + self.overhead_bytes
        )

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.capacity_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "layers": self.layers,
            "weights_bytes": self.weights_bytes,
            "kv_bytes": self.kv_bytes,
            "compute_bytes": self.compute_bytes,
            "output_bytes": self.output_bytes,
            "overhead_bytes": self.overhead_bytes,
            "total_bytes": self.total_bytes,
            "capacity_bytes": self.capacity_bytes,
            "fits": self.fits,
        }


@dataclass(frozen=True)
class Plan:
    """The whole answer for one model, one machine and one set of settings."""

    model_name: str
    estimate_kind: str  # "exact" (from a GGUF header) or "catalog" (architecture numbers)
    settings: Settings
    n_ctx: int  # what llama.cpp will use (padded to 256)
    gpu_layers: int  # layers offloaded, output layer included (0..n_layer+1)
    offloadable_layers: int  # n_layer + 1
    devices: tuple[DevicePlan, ...]
    buffers: tuple[Buffer, ...]
    verdict: Verdict
    reason: str
    suggestion: str
    max_gpu_layers: int
    max_ctx_full_gpu: int | None  # largest context with every layer on the GPU; None: no GPU
    predicted_tokens_per_s: float | None
    predicted_prompt_tokens_per_s: float | None
    notes: tuple[str, ...] = field(default=())

    @property
    def total_bytes(self) -> int:
        return sum(d.total_bytes for d in self.devices)

    @property
    def fits(self) -> bool:
        return all(d.fits for d in self.devices)

    @property
    def verdict_label(self) -> str:
        """Short text for a badge: "Full GPU", "Partial 22/33", "CPU only", "Too large"."""
        if self.verdict is Verdict.PARTIAL:
            return f"Partial {self.gpu_layers}/{self.offloadable_layers}"
        return {
            Verdict.FULL_GPU: "Full GPU",
            Verdict.CPU_ONLY: "CPU only",
            Verdict.TOO_LARGE: "Too large",
        }[self.verdict]

    def device(self, name: str) -> DevicePlan:
        for d in self.devices:
            if d.name == name:
                return d
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Stable JSON shape (documented in the README)."""
        return {
            "model": self.model_name,
            "estimate_kind": self.estimate_kind,
            "verdict": self.verdict.value,
            "verdict_label": self.verdict_label,
            "reason": self.reason,
            "suggestion": self.suggestion,
            "n_ctx": self.n_ctx,
            "gpu_layers": self.gpu_layers,
            "offloadable_layers": self.offloadable_layers,
            "max_gpu_layers": self.max_gpu_layers,
            "max_ctx_full_gpu": self.max_ctx_full_gpu,
            "kv_type": self.settings.kv_type,
            "flash_attn": self.settings.flash_attn,
            "n_ubatch": self.settings.n_ubatch,
            "total_bytes": self.total_bytes,
            "devices": [d.to_dict() for d in self.devices],
            "llama_cpp_buffers": [
                {"device": b.device, "component": b.component, "size_bytes": b.size_bytes}
                for b in self.buffers
            ],
            "predicted_tokens_per_s": _round(self.predicted_tokens_per_s),
            "predicted_prompt_tokens_per_s": _round(self.predicted_prompt_tokens_per_s),
            "notes": list(self.notes),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# --------------------------------------------------------------------------- devices


class _GpuLike(Protocol):
    name: str
    vendor: str
    vram_total_bytes: int | None
    vram_free_bytes: int | None
    bandwidth_bytes_per_s: int | None
    unified_memory: bool


def devices_from_profile(profile: Any, reserve_bytes: int = 512 * MIB) -> list[Device]:
    """Devices of a HardwareProfile (or a what-if profile): every usable GPU, then the CPU.

    GPUs the installed llama.cpp cannot use are left out, as llama.cpp would leave them idle;
    a what-if profile without backend information is assumed to have a matching build.
    """
    gpus: list[Device] = []
    backends = getattr(profile, "backends", None)
    available = tuple(getattr(backends, "backends", ()) or ())
    known_backends = bool(getattr(backends, "checked", False)) and bool(available)
    unified_total = 0
    for gpu in getattr(profile, "gpus", ()):
        kind = _gpu_backend(gpu.vendor, available if known_backends else ())
        if kind is None:
            continue
        total = gpu.vram_total_bytes
        if not total:
            continue
        free = gpu.vram_free_bytes if gpu.vram_free_bytes is not None else total
        capacity = max(free - reserve_bytes, 0)
        if gpu.unified_memory:
            unified_total += capacity
        gpus.append(
            Device(
                name=gpu.name,
                kind=kind,
                capacity_bytes=capacity,
                bandwidth_bytes_per_s=gpu.bandwidth_bytes_per_s,
                flops=_gpu_flops(gpu),
                unified_memory=bool(gpu.unified_memory),
            )
        )
    memory = profile.memory
    cpu = profile.cpu
    ram = int(memory.available_bytes or memory.total_bytes or 0)
    # A unified-memory GPU's working set comes out of the same RAM.
    ram = max(ram - unified_total, 0)
    cores = int(getattr(cpu, "physical_cores", 0) or getattr(cpu, "logical_cores", 0) or 1)
    cpu_device = Device(
        name="CPU",
        kind="cpu",
        capacity_bytes=ram,
        bandwidth_bytes_per_s=memory.bandwidth_bytes_per_s,
        flops=cores * CPU_FLOPS_PER_CYCLE * CPU_ASSUMED_HZ,
        cpu_features=build_cpu_features(profile),
    )
    return [*gpus, cpu_device]


def build_cpu_features(profile: Any) -> tuple[str, ...]:
    """The CPU instruction sets the installed llama.cpp was *built* with, when it says so.

    Repacking depends on the build (a portable build has AVX2 but not AVX-512 even on a CPU
    that has both), so llama.cpp's own system-info line wins over the CPU's flags.
    """
    backends = getattr(profile, "backends", None)
    info = getattr(backends, "system_info", None)
    if (isinstance(info, str) and "AVX" in info) or (isinstance(info, str) and "NEON" in info):
        feats = []
        for part in info.split("|"):
            name, _, value = part.rpartition("=")
            name = name.split(":")[-1].strip().lower()
            if value.strip() == "1" and name:
                feats.append(name.replace("avx512", "avx512f") if name == "avx512" else name)
        return tuple(feats)
    return tuple(getattr(getattr(profile, "cpu", None), "features", ()) or ())


def _gpu_backend(vendor: str, available: Sequence[str]) -> str | None:
    wanted = {
        "nvidia": ("cuda", "vulkan"),
        "amd": ("rocm", "hip", "vulkan"),
        "intel": ("sycl", "vulkan"),
        "apple": ("metal",),
    }.get(vendor, ("vulkan",))
    if not available:
        return wanted[0]
    for backend in wanted:
        if backend in available:
            return "rocm" if backend == "hip" else backend
    return None


def _gpu_flops(gpu: Any) -> float | None:
    tflops = getattr(gpu, "fp16_tflops", None)
    return float(tflops) * 1e12 if tflops else None


# ----------------------------------------------------------------------- arithmetic


def tensor_bytes(type_name: str, n_elements: int) -> int:
    """Bytes of `n_elements` stored as `type_name`, from the gguf package's block table."""
    block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name.upper()]]
    return n_elements // block * type_size


def _pad(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


#: Types with a repacked CPU matmul kernel, by CPU family (ggml-cpu/repack.cpp
#: ggml_repack_get_optimal_repack_type), and the row-count multiple each needs.
_REPACK_X86_AVX2 = {"Q4_0": 8, "Q4_K": 8, "IQ4_NL": 8, "MXFP4": 8}
_REPACK_X86_AVX512 = {"Q2_K": 8}
_REPACK_ARM_DOTPROD = {
    "Q4_0": 4,
    "Q4_K": 8,
    "Q5_K": 8,
    "Q6_K": 8,
    "IQ4_NL": 4,
    "MXFP4": 4,
    "Q8_0": 4,
}


def repack_rules(cpu_features: Sequence[str]) -> dict[str, int]:
    """Which weight types this CPU's llama.cpp repacks, with the row multiple each needs."""
    feats = {f.lower() for f in cpu_features}
    rules: dict[str, int] = {}
    if "avx2" in feats:
        rules.update(_REPACK_X86_AVX2)
        if "avx512f" in feats:
            rules.update(_REPACK_X86_AVX512)
    if "dotprod" in feats or "asimddp" in feats or "i8mm" in feats:
        rules.update(_REPACK_ARM_DOTPROD)
    return rules


def _is_matmul_weight(t: TensorSlice) -> bool:
    # 2-D projection matrices and 3-D expert stacks feed MUL_MAT / MUL_MAT_ID; norms are 1-D
    # and the token embedding (GET_ROWS) is not a matmul weight.
    return len(t.shape) in (2, 3) and t.name.endswith(".weight") and "token_embd" not in t.name


def _repacked(t: TensorSlice, rules: dict[str, int]) -> bool:
    multiple = rules.get(t.type_name)
    return multiple is not None and _is_matmul_weight(t) and t.rows % multiple == 0


@dataclass(frozen=True)
class _Group:
    """Tensors of one layer (or the input/output layer) summarised for placement."""

    total: int  # bytes of all tensors
    repack: int  # bytes that go to CPU_REPACK when on the CPU
    repack_aligned: int  # the same, each tensor padded to the CPU alignment
    mapped_first: int  # file span of the tensors that stay mapped (first offset, last end)
    mapped_last: int
    aligned_cpu: int  # all tensors padded to CPU alignment (no-mmap loading)
    aligned_cuda: int  # all tensors padded as ggml-cuda allocates them
    largest: int  # biggest single tensor


def _group(tensors: Sequence[TensorSlice], fallback_bytes: int, rules: dict[str, int]) -> _Group:
    if not tensors:
        # Catalog estimate: no tensor list, only the bytes.
        return _Group(
            fallback_bytes,
            0,
            0,
            0,
            fallback_bytes,
            _pad(fallback_bytes, CPU_ALIGN),
            _pad(fallback_bytes, CUDA_ALIGN),
            fallback_bytes,
        )
    repack = [t for t in tensors if _repacked(t, rules)]
    mapped = [t for t in tensors if not _repacked(t, rules)]
    first = min((t.offset for t in mapped), default=0)
    last = max((t.offset + t.n_bytes for t in mapped), default=0)

    def cuda_size(t: TensorSlice) -> int:
        size = t.n_bytes
        ne0 = t.shape[0] if t.shape else 0
        if t.type_name not in ("F32", "F16", "BF16") and ne0 % CUDA_ROW_PADDING:
            size += tensor_bytes(t.type_name, CUDA_ROW_PADDING - ne0 % CUDA_ROW_PADDING)
        return _pad(size, CUDA_ALIGN)

    return _Group(
        total=sum(t.n_bytes for t in tensors),
        repack=sum(t.n_bytes for t in repack),
        repack_aligned=sum(_pad(t.n_bytes, CPU_ALIGN) for t in repack),
        mapped_first=first if mapped else 0,
        mapped_last=last if mapped else 0,
        aligned_cpu=sum(_pad(t.n_bytes, CPU_ALIGN) for t in tensors),
        aligned_cuda=sum(cuda_size(t) for t in tensors),
        largest=max(t.n_bytes for t in tensors),
    )


class _Prepared:
    """Per-model, per-CPU numbers computed once and reused by every plan."""

    def __init__(self, spec: ModelSpec, cpu_features: tuple[str, ...]) -> None:
        self.spec = spec
        rules = repack_rules(cpu_features)
        self.layers = [_group(lay.tensors, lay.weight_bytes, rules) for lay in spec.layers]
        self.input = _group(spec.input_tensors, spec.input_bytes, rules)
        output_tensors = list(spec.output_tensors)
        if spec.output_tied:
            # llama.cpp creates the output matmul from token_embd (TENSOR_DUPLICATED).
            output_tensors += [
                replace(t, name="output.weight")
                for t in spec.input_tensors
                if t.name == "token_embd.weight"
            ]
        tied_bytes = spec.input_bytes if spec.output_tied else 0
        self.output = _group(output_tensors, spec.output_bytes + tied_bytes, rules)
        self.output_tied_bytes = tied_bytes


_PREPARED_CACHE: dict[tuple[int, tuple[str, ...]], _Prepared] = {}


def _prepared(spec: ModelSpec, cpu_features: tuple[str, ...]) -> _Prepared:
    key = (id(spec), cpu_features)
    hit = _PREPARED_CACHE.get(key)
    if hit is None or hit.spec is not spec:
        if len(_PREPARED_CACHE) > 256:
            _PREPARED_CACHE.clear()
        hit = _Prepared(spec, cpu_features)
        _PREPARED_CACHE[key] = hit
    return hit


def padded_ctx(n_ctx: int) -> int:
    """The context llama.cpp really uses: padded up to a multiple of 256."""
    return _pad(max(n_ctx, 1), CTX_PAD)


def kv_cells(spec: ModelSpec, settings: Settings, layer: LayerSpec) -> int:
    """Cells in the KV cache that holds `layer` (the SWA cache is smaller unless swa_full)."""
    n_ctx = padded_ctx(settings.n_ctx)
    if layer.is_swa and spec.n_swa and not settings.swa_full:
        return min(
            n_ctx, _pad(min(n_ctx, spec.n_swa * settings.n_seq_max + settings.n_ubatch), CTX_PAD)
        )
    return n_ctx


def layer_kv_bytes(spec: ModelSpec, settings: Settings, layer: LayerSpec) -> int:
    """K and V cache bytes of one layer (0 for recurrent layers)."""
    if layer.is_recurrent or layer.n_head_kv == 0:
        return 0
    cells = kv_cells(spec, settings, layer)
    type_name = settings.kv_type.upper()
    k = tensor_bytes(type_name, layer.n_embd_k_gqa * cells)
    v_width = layer.n_embd_v_gqa
    if not settings.flash_attn and not spec.is_mla:
        # Without flash attention V is stored transposed, every layer at the widest V row.
        v_width = max(lay.n_embd_v_gqa for lay in spec.layers) if layer.n_embd_v_gqa else 0
    v = tensor_bytes(type_name, v_width * cells) if v_width else 0
    return k + v


def layer_recurrent_bytes(spec: ModelSpec, settings: Settings, layer: LayerSpec) -> int:
    if not layer.is_recurrent or spec.recurrent is None:
        return 0
    rs = spec.recurrent
    return (rs.conv_elements + rs.state_elements) * 4 * settings.n_seq_max


def kv_cache_bytes(spec: ModelSpec, settings: Settings) -> int:
    """KV cache bytes of the whole model at these settings."""
    return sum(layer_kv_bytes(spec, settings, lay) for lay in spec.layers)


def _compute_bytes(
    spec: ModelSpec,
    settings: Settings,
    layers: Sequence[LayerSpec],
    has_output: bool,
    has_input: bool,
) -> int:
    """Peak of the graph allocator on one device for the worst-case ubatch.

    The largest of three moments: attention in the widest layer here, the feed-forward block,
    and the output projection. Beside each, the inputs that live through the whole graph
    (masks, positions, cache indices) and the activations measured alive at that moment:
    three n_embd rows (residual, normed input, projection), and two n_head x head_dim rows
    (queries and the attention output) per token.
    """
    t = min(settings.n_ubatch, settings.n_batch)
    n_ctx = padded_ctx(settings.n_ctx)
    full_cells = n_ctx
    swa_cells = n_ctx
    if spec.n_swa and not settings.swa_full:
        swa_cells = min(n_ctx, _pad(min(n_ctx, spec.n_swa * settings.n_seq_max + t), CTX_PAD))
    has_full = any(not lay.is_swa and lay.n_head_kv for lay in spec.layers)
    has_swa = any(lay.is_swa for lay in spec.layers)
    # Graph inputs: one mask per cache kind (f32 without flash attention, f16 with it),
    # token ids, positions, output ids, and the K/V row indices of each cache.
    mask_elem = 2 if settings.flash_attn else 4
    n_caches = int(has_full) + int(has_swa)
    v_width = max((lay.n_embd_v_gqa for lay in spec.layers), default=0)
    v_idx = t * 8 * (1 if settings.flash_attn else v_width)
    inputs = (
        (full_cells * t * mask_elem if has_full else 0)
        + (swa_cells * t * mask_elem if has_swa else 0)
        + n_caches * (t * 8 + v_idx)
        + t * 4 * 3
    )
    e = spec.n_embd
    peak = 0
    if layers:
        widest = max(layers, key=lambda lay: lay.n_head * max(lay.head_dim_k, lay.head_dim_v))
        q_width = widest.n_head * max(widest.head_dim_k, widest.head_dim_v)
        attn = 0
        for lay in layers:
            if lay.is_recurrent or not lay.n_head_kv:
                continue
            cells = swa_cells if lay.is_swa else full_cells
            scores = 0 if settings.flash_attn else cells * t * lay.n_head * 4
            attn = max(attn, scores)
        attn += (3 * e + 2 * q_width) * t * 4
        # Feed-forward: gate, up and their product (n_ff wide) beside four n_embd rows; a MoE
        # layer runs n_expert_used experts of n_ff_exp per token, plus the router's scores.
        if spec.n_expert and spec.n_expert_used:
            ffn = (3 * spec.n_expert_used * spec.n_ff_exp + 4 * e + 2 * spec.n_expert) * t * 4
        else:
            ffn = (3 * spec.n_ff + 4 * e) * t * 4
        peak = inputs + max(attn, ffn)
    if has_output:
        # By then the masks are freed: the logits of every token, f32, and the few n_embd
        # rows still alive. Where the allocator places the logits depends on what is alive
        # below them: measured on five graphs, the logits sat on top of 2 to 7 n_embd rows;
        # 4 rows keeps every measured case within a few percent and errs on the safe side.
        peak = max(peak, spec.n_vocab * t * 4 + OUTPUT_PHASE_EMBD_ROWS * e * t * 4)
    if not layers and not has_output:
        return (e * t * 4 + t * 4) if has_input else 0
    return peak


# ----------------------------------------------------------------------------- plan


def _split_layers(n_offloaded: int, gpus: Sequence[Device]) -> list[int]:
    """How many of the offloaded layers each GPU gets: proportional to free memory."""
    if not gpus or n_offloaded <= 0:
        return [0] * len(gpus)
    total = sum(max(g.capacity_bytes, 1) for g in gpus)
    counts = []
    acc = 0.0
    prev = 0
    for g in gpus:
        acc += max(g.capacity_bytes, 1) / total
        upto = min(n_offloaded, math.ceil(acc * n_offloaded - 1e-9))
        counts.append(upto - prev)
        prev = upto
    counts[-1] += n_offloaded - prev
    return counts


def plan_memory(
    spec: ModelSpec, settings: Settings, devices: Sequence[Device], n_gpu_layers: int
) -> tuple[list[DevicePlan], list[Buffer]]:
    """Memory per device with exactly `n_gpu_layers` offloaded (0..n_layer+1)."""
    gpus = [d for d in devices if d.is_gpu]
    cpu = next((d for d in devices if not d.is_gpu), Device("CPU", "cpu", 0, None))
    prep = _prepared(spec, cpu.cpu_features)
    n_layer = spec.n_layer
    n_gpu_layers = max(0, min(n_gpu_layers, n_layer + 1)) if gpus else 0
    i_gpu_start = n_layer + 1 - n_gpu_layers
    counts = _split_layers(n_gpu_layers, gpus)
    # Device index per layer (0..n_layer, n_layer being the output layer); -1 = CPU.
    owner: list[int] = []
    gpu_idx, used = 0, 0
    for il in range(n_layer + 1):
        if il < i_gpu_start:
            owner.append(-1)
            continue
        while gpu_idx < len(counts) and used >= counts[gpu_idx]:
            gpu_idx, used = gpu_idx + 1, 0
        owner.append(gpu_idx)
        used += 1

    buffers: list[Buffer] = []
    plans: list[DevicePlan] = []
    for gi, gpu in enumerate(gpus):
        layers = [spec.layers[il] for il in range(n_layer) if owner[il] == gi]
        has_output = owner[n_layer] == gi
        groups = [prep.layers[lay.index] for lay in layers] + ([prep.output] if has_output else [])
        weights = sum(
            g.aligned_cuda if gpu.kind == "cuda" else _pad(g.total, CUDA_ALIGN) for g in groups
        )
        kv = (
            sum(layer_kv_bytes(spec, settings, lay) for lay in layers)
            if settings.offload_kqv
            else 0
        )
        rs = sum(layer_recurrent_bytes(spec, settings, lay) for lay in layers)
        compute = _compute_bytes(spec, settings, layers, has_output, False) if groups else 0
        name = f"{gpu.kind.upper()}{gi}"
        if weights:
            buffers.append(Buffer(name, "weights", weights))
        if kv:
            buffers.append(Buffer(name, "kv", kv))
        if rs:
            buffers.append(Buffer(name, "recurrent", rs))
        if compute:
            buffers.append(Buffer(name, "compute", compute))
        overhead = BACKEND_OVERHEAD_BYTES.get(gpu.kind, BACKEND_OVERHEAD_BYTES["gpu"])
        plans.append(
            DevicePlan(
                name=gpu.name,
                kind=gpu.kind,
                layers=len(layers) + int(has_output),
                weights_bytes=weights,
                kv_bytes=kv + rs,
                compute_bytes=compute,
                output_bytes=0,
                overhead_bytes=overhead if groups else 0,
                capacity_bytes=gpu.capacity_bytes,
            )
        )

    # The CPU: the input layer always, the layers below i_gpu_start, the output layer if not
    # offloaded, and the KV of offloaded layers when KV offload is off.
    cpu_layers = [spec.layers[il] for il in range(n_layer) if owner[il] == -1]
    cpu_output = owner[n_layer] == -1
    groups = [prep.input] + [prep.layers[lay.index] for lay in cpu_layers]
    if cpu_output:
        groups.append(prep.output)
    if settings.use_mmap:
        mapped_groups = [g for g in groups if g.mapped_last > g.mapped_first]
        first = min((g.mapped_first for g in mapped_groups), default=0)
        last = max((g.mapped_last for g in mapped_groups), default=0)
        span = last - first
        repack = sum(g.repack_aligned for g in groups)
        # With a tied output on the CPU, the duplicate lives in the same mapped pages.
        resident = sum(g.total for g in groups)
        if (
            cpu_output
            and prep.output_tied_bytes
            and not any(_repacked(t, repack_rules(cpu.cpu_features)) for t in spec.input_tensors)
        ):
            resident -= prep.output_tied_bytes
        if not spec.input_tensors:  # catalog estimate: no file offsets, count bytes
            span = sum(g.total for g in groups) - (prep.output_tied_bytes if cpu_output else 0)
        if span:
            buffers.append(Buffer("CPU_Mapped", "weights", span))
        if repack:
            buffers.append(Buffer("CPU_REPACK", "weights", repack))
        cpu_weights = resident
    else:
        plain = sum(g.aligned_cpu - g.repack_aligned for g in groups)
        repack = sum(g.repack_aligned for g in groups)
        if plain:
            buffers.append(Buffer("CPU", "weights", plain))
        if repack:
            buffers.append(Buffer("CPU_REPACK", "weights", repack))
        cpu_weights = plain + repack
    kv_layers = cpu_layers if settings.offload_kqv else list(spec.layers)
    cpu_kv = sum(layer_kv_bytes(spec, settings, lay) for lay in kv_layers)
    cpu_rs = sum(layer_recurrent_bytes(spec, settings, lay) for lay in cpu_layers)
    output_buffer = spec.n_vocab * 4 * settings.n_seq_max
    cpu_compute = _compute_bytes(spec, settings, cpu_layers, cpu_output, True)
    buffers.append(Buffer("CPU", "output", output_buffer))
    if cpu_kv:
        buffers.append(Buffer("CPU", "kv", cpu_kv))
    if cpu_rs:
        buffers.append(Buffer("CPU", "recurrent", cpu_rs))
    buffers.append(Buffer("CPU", "compute", cpu_compute))
    plans.append(
        DevicePlan(
            name="CPU",
            kind="cpu",
            layers=len(cpu_layers) + int(cpu_output),
            weights_bytes=cpu_weights,
            kv_bytes=cpu_kv + cpu_rs,
            compute_bytes=cpu_compute,
            output_bytes=output_buffer,
            overhead_bytes=CPU_PROCESS_OVERHEAD_BYTES,
            capacity_bytes=cpu.capacity_bytes,
        )
    )
    return plans, buffers


def _fits(plans: Sequence[DevicePlan]) -> bool:
    return all(p.fits for p in plans)


def max_gpu_layers(spec: ModelSpec, settings: Settings, devices: Sequence[Device]) -> int:
    """The most layers (output layer included) that fit on the GPUs, 0 when none do."""
    if not any(d.is_gpu for d in devices):
        return 0

    def gpu_fits(n: int) -> bool:
        plans, _ = plan_memory(spec, settings, devices, n)
        return all(p.fits for p in plans if p.kind != "cpu")

    lo, hi = 0, spec.n_layer + 1
    if gpu_fits(hi):
        return hi
    while lo < hi - 1:  # invariant: lo fits (0 always does), hi does not
        mid = (lo + hi) // 2
        if gpu_fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def max_ctx_full_gpu(spec: ModelSpec, settings: Settings, devices: Sequence[Device]) -> int | None:
    """Largest context (multiple of 256, up to the trained length) with every layer on GPU."""
    if not any(d.is_gpu for d in devices):
        return None
    full = spec.n_layer + 1
    limit = max(spec.n_ctx_train, CTX_PAD)

    def fits(n_ctx: int) -> bool:
        plans, _ = plan_memory(spec, replace(settings, n_ctx=n_ctx), devices, full)
        return all(p.fits for p in plans if p.kind != "cpu")

    if not fits(CTX_PAD):
        return 0
    if fits(limit):
        return limit
    lo, hi = 1, limit // CTX_PAD + 1  # in units of 256 cells; lo fits, hi does not
    while lo < hi - 1:
        mid = (lo + hi) // 2
        if fits(mid * CTX_PAD):
            lo = mid
        else:
            hi = mid
    return lo * CTX_PAD


# ---------------------------------------------------------------------------- speed


def predict_speed(
    spec: ModelSpec, settings: Settings, devices: Sequence[Device], plans: Sequence[DevicePlan]
) -> tuple[float | None, float | None]:
    """(decode tokens/s, prompt tokens/s) for this placement, None when a figure is unknown."""
    total_layer_bytes = sum(lay.weight_bytes for lay in spec.layers) or 1
    active_layer_bytes = spec.active_weight_bytes_per_token - spec.output_weight_bytes
    active_ratio = active_layer_bytes / total_layer_bytes
    by_name = {d.name: d for d in devices}
    decode_s = 0.0
    prompt_s = 0.0
    prompt_known = True
    n_ctx_fill = KV_FILL_FOR_SPEED
    for plan in plans:
        dev = by_name.get(plan.name)
        if dev is None or (plan.layers == 0 and plan.kind != "cpu"):
            continue
        output_here = (plan.kind == "cpu") == (
            not any(p.kind != "cpu" and p.layers and _has_output(spec, p, plans) for p in plans)
        )
        weight = _active_bytes_on(spec, plan, plans, active_ratio, output_here)
        read = weight + plan.kv_bytes * n_ctx_fill
        if read <= 0:
            continue
        bandwidth = dev.bandwidth_bytes_per_s
        if not bandwidth:
            return None, None
        efficiency = BANDWIDTH_EFFICIENCY.get(dev.kind, BANDWIDTH_EFFICIENCY["gpu"])
        decode_s += read / (bandwidth * efficiency)
        if dev.flops:
            c_eff = COMPUTE_EFFICIENCY.get(dev.kind, COMPUTE_EFFICIENCY["gpu"])
            prompt_s += 2 * _active_params(spec, weight) / (dev.flops * c_eff)
        else:
            prompt_known = False
    decode = 1.0 / decode_s if decode_s > 0 else None
    prompt = 1.0 / prompt_s if prompt_s > 0 and prompt_known else None
    return decode, prompt


def _has_output(spec: ModelSpec, plan: DevicePlan, plans: Sequence[DevicePlan]) -> bool:
    # The output layer is on the last GPU that has layers when all layers are offloaded.
    gpu_layers = sum(p.layers for p in plans if p.kind != "cpu")
    return gpu_layers == spec.n_layer + 1


def _active_bytes_on(
    spec: ModelSpec,
    plan: DevicePlan,
    plans: Sequence[DevicePlan],
    active_ratio: float,
    output_here: bool,
) -> float:
    """Weight bytes read per token on this device."""
    repeating = plan.layers - (1 if output_here and plan.kind != "cpu" else 0)
    if plan.kind == "cpu":
        repeating = plan.layers - (1 if output_here else 0)
    avg_layer = sum(lay.weight_bytes for lay in spec.layers) / max(spec.n_layer, 1)
    read = repeating * avg_layer * active_ratio
    if output_here:
        read += spec.output_weight_bytes
    return read


def _active_params(spec: ModelSpec, weight_bytes: float) -> float:
    bytes_per_param = spec.weight_bytes / max(spec.total_params, 1)
    return weight_bytes / max(bytes_per_param, 1e-9)


# -------------------------------------------------------------------------- verdict


def estimate(spec: ModelSpec, settings: Settings, devices: Sequence[Device]) -> Plan:
    """The full plan: placement, memory per device, verdict with reason and suggestion, speed."""
    gpus = [d for d in devices if d.is_gpu]
    full = spec.n_layer + 1
    best = max_gpu_layers(spec, settings, devices)
    n_gpu = best if settings.n_gpu_layers is None else min(settings.n_gpu_layers, full)
    if not gpus:
        n_gpu = 0
    plans, buffers = plan_memory(spec, settings, devices, n_gpu)
    cpu_plan = plans[-1]
    gpu_fits = all(p.fits for p in plans[:-1])
    ctx_full = max_ctx_full_gpu(spec, settings, devices)
    decode, prompt = predict_speed(spec, settings, devices, plans)
    notes: list[str] = []
    if spec.source == "catalog":
        notes.append(
            "Estimated from the catalog's architecture numbers; reading the file's "
            "header makes it exact."
        )
    if not cpu_plan.fits:
        verdict = Verdict.TOO_LARGE
    elif n_gpu == 0:
        verdict = Verdict.CPU_ONLY
    elif n_gpu >= full and gpu_fits:
        verdict = Verdict.FULL_GPU
    elif gpu_fits:
        verdict = Verdict.PARTIAL
    else:
        verdict = Verdict.TOO_LARGE if best == 0 and cpu_plan.fits is False else Verdict.PARTIAL
        notes.append(f"{n_gpu} GPU layers do not fit; at most {best} do.")
    reason, suggestion = _explain(spec, settings, devices, plans, verdict, n_gpu, best, ctx_full)
    return Plan(
        model_name=spec.name or spec.architecture,
        estimate_kind="exact" if spec.source == "header" else "catalog",
        settings=settings,
        n_ctx=padded_ctx(settings.n_ctx),
        gpu_layers=n_gpu,
        offloadable_layers=full,
        devices=tuple(plans),
        buffers=tuple(buffers),
        verdict=verdict,
        reason=reason,
        suggestion=suggestion,
        max_gpu_layers=best,
        max_ctx_full_gpu=ctx_full,
        predicted_tokens_per_s=decode,
        predicted_prompt_tokens_per_s=prompt,
        notes=tuple(notes),
    )


def _gb(n: float) -> str:
    return f"{n / GIB:.1f} GB"


def _ctx_label(n: int) -> str:
    return f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else str(n)


def _explain(
    spec: ModelSpec,
    settings: Settings,
    devices: Sequence[Device],
    plans: Sequence[DevicePlan],
    verdict: Verdict,
    n_gpu: int,
    best: int,
    ctx_full: int | None,
) -> tuple[str, str]:
    """A reason and a concrete suggestion, in plain words."""
    cpu = plans[-1]
    gpu_plans = [p for p in plans if p.kind != "cpu"]
    full = spec.n_layer + 1
    need = sum(p.total_bytes for p in plans)
    if verdict is Verdict.TOO_LARGE:
        reason = (
            f"This model needs {_gb(cpu.total_bytes)} of system memory at a "
            f"{_ctx_label(padded_ctx(settings.n_ctx))} context but {_gb(cpu.capacity_bytes)} "
            "is available."
        )
        kv = kv_cache_bytes(spec, settings)
        if kv > cpu.total_bytes - cpu.capacity_bytes and settings.n_ctx > 2048:
            return reason, "Lower the context: the KV cache alone takes " + _gb(kv) + "."
        return reason, "Pick a smaller quantization or a smaller model."
    if verdict is Verdict.CPU_ONLY:
        if not gpu_plans and not any(d.is_gpu for d in devices):
            return (
                "No usable GPU: the model runs on the CPU from system RAM "
                f"({_gb(cpu.total_bytes)} of {_gb(cpu.capacity_bytes)}).",
                "A GPU with enough VRAM would make it much faster.",
            )
        return (
            f"No layer fits in the GPU's free memory ({_gb(gpu_plans[0].capacity_bytes)} "
            "after the reserve); the model runs on the CPU.",
            "Close programs that use the GPU, lower the context, or pick a smaller model.",
        )
    if verdict is Verdict.FULL_GPU:
        spare = min(p.capacity_bytes - p.total_bytes for p in gpu_plans)
        reason = f"All {full} layers fit on the GPU with {_gb(spare)} to spare."
        if ctx_full and ctx_full > padded_ctx(settings.n_ctx):
            return reason, f"The context can grow to {_ctx_label(ctx_full)} and still fit."
        return reason, "Nothing to change."
    # PARTIAL
    gpu = gpu_plans[0]
    reason = (
        f"{n_gpu} of {full} layers fit on the GPU ({_gb(gpu.capacity_bytes)} free after "
        f"the reserve); the rest run from system RAM, which is slower. "
        f"Total need: {_gb(need)}."
    )
    tips = []
    if ctx_full:
        tips.append(f"lower the context to {_ctx_label(ctx_full)} to fit fully")
    if settings.kv_type == "f16":
        alt = estimate_layers_only(spec, replace(settings, kv_type="q8_0"), devices)
        if alt > best:
            tips.append(f"use q8_0 KV cache for {alt} GPU layers")
    if not tips:
        tips.append("pick a smaller quantization to fit fully")
    suggestion = "; or ".join(tips)
    return reason, suggestion[0].upper() + suggestion[1:] + "."


def estimate_layers_only(spec: ModelSpec, settings: Settings, devices: Sequence[Device]) -> int:
    """max_gpu_layers, for suggestions."""
    return max_gpu_layers(spec, settings, devices)


@dataclass(frozen=True)
class ComparisonRow:
    """One component: what the plan says against what llama.cpp reported."""

    component: str
    estimated_bytes: int
    reported_bytes: int

    @property
    def error_pct(self) -> float:
        if self.reported_bytes == 0:
            return 0.0 if self.estimated_bytes == 0 else 100.0
        return 100.0 * (self.estimated_bytes - self.reported_bytes) / self.reported_bytes


def compare_with_llama(plan: Plan, reported: Any) -> list[ComparisonRow]:
    """Rows per component (weights, kv, output, compute, total) against a LlamaLoadReport."""
    rows = []
    for component in ("weights", "kv", "recurrent", "output", "compute"):
        est = sum(b.size_bytes for b in plan.buffers if b.component == component)
        rep = int(reported.total(component))
        if est or rep:
            rows.append(ComparisonRow(component, est, rep))
    rows.append(
        ComparisonRow(
            "total", sum(r.estimated_bytes for r in rows), sum(r.reported_bytes for r in rows)
        )
    )
    return rows
