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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from desktop.core.calibration import (
    DEFAULT_FIGURES,
    DeviceWork,
    SpeedFigures,
    decode_seconds,
    prompt_seconds,
)
from desktop.core.modelspec import LayerSpec, ModelSpec, TensorSlice
from desktop.core.threads import default_threads
from desktop.core.units import GIB, MIB

KV_TYPES = ("f16", "q8_0", "q4_0")

#: llama.cpp pads the context (and the SWA cache) to a multiple of this many cells.
CTX_PAD = 256
#: ggml's CPU buffers align each tensor to this many bytes (TENSOR_ALIGNMENT).
CPU_ALIGN = 32
#: ggml-cuda aligns tensors to 128 bytes and pads the last row of quantized tensors to a
#: multiple of 512 elements (MATRIX_ROW_PADDING) so its kernels can read whole blocks.
CUDA_ALIGN = 128
CUDA_ROW_PADDING = 512

#: Memory a backend uses that llama.cpp does not report as a buffer (the CUDA context and
#: cuBLAS workspace, ...): per backend in desktop.core.calibration (defaults, replaced on this
#: machine by what NVML measured beyond llama.cpp's buffers).
#: The worker process itself (Python, llama-cpp-python, ggml) before any model: its RSS measured
#: 41 MiB on Linux x86_64 (Python 3.11, llama-cpp-python 0.3.36), rounded up. The model's own
#: host structures (vocabulary, tensor metadata) come on top and are not modelled yet.
CPU_PROCESS_OVERHEAD_BYTES = 48 * MIB

#: Decode and prompt efficiencies, the CPU threads' decode rate and the fixed cost per token
#: are desktop.core.calibration's SpeedFigures: fitted from runs measured on this computer,
#: with defaults measured on the development machine.
#: Peak f32 FLOPs per cycle per physical core with AVX2 FMA (2 x 8-wide FMA units), used when
#: the CPU's FLOPS are not known; 3.0 GHz is assumed when the clock is unknown.
CPU_FLOPS_PER_CYCLE = 32
CPU_ASSUMED_HZ = 3.0e9
#: n_embd-wide f32 rows counted beside the logits at the output (see _compute_bytes).
OUTPUT_PHASE_EMBD_ROWS = 4
#: Decoding assumes the KV cache is half full on average over a conversation.
KV_FILL_FOR_SPEED = 0.5
#: The device kind of another computer's device (llama.cpp's RPC backend).
RPC_KIND = "rpc"


class Verdict(StrEnum):
    """Where a model runs, best first: the order of the members is the one every list uses."""

    FULL_GPU = "FULL_GPU"
    PARTIAL = "PARTIAL"
    CPU_ONLY = "CPU_ONLY"
    TOO_LARGE = "TOO_LARGE"

    @property
    def rank(self) -> int:
        """0 for FULL_GPU, 1 PARTIAL, 2 CPU_ONLY, 3 TOO_LARGE: lower fits better."""
        return _VERDICT_RANK[self]


_VERDICT_RANK = {verdict: rank for rank, verdict in enumerate(Verdict)}


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
    n_threads: int | None = None  # CPU threads; None: the physical cores (core.threads)

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
    physical_cores: int = 0  # CPU only: for the share of bandwidth/FLOPS the threads reach
    logical_cores: int = 0
    #: This computer's speed figures (calibrated, or the defaults); not part of the identity.
    figures: SpeedFigures = field(default=DEFAULT_FIGURES, compare=False)
    #: Another computer's device through llama.cpp's RPC backend (kind "rpc"): its server's
    #: "host:port", its number there, its buffer alignment, the link's round trip, and the
    #: free memory llama.cpp splits layers by (capacity_bytes keeps the reserve out).
    endpoint: str = ""
    rpc_index: int = 0
    alignment: int = 0
    latency_s: float = 0.0
    split_bytes: int = 0

    @property
    def is_gpu(self) -> bool:
        return self.kind != "cpu"

    @property
    def is_remote(self) -> bool:
        return self.kind == RPC_KIND


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
    endpoint: str = ""  # another computer's device: its RPC server ("host:port")
    latency_s: float = 0.0  # and the link's measured round trip

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
            **({"endpoint": self.endpoint, "latency_s": self.latency_s} if self.endpoint else {}),
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
        remote = {d.endpoint for d in self.devices if d.endpoint and d.layers}
        if self.verdict is Verdict.FULL_GPU and remote:  # offloaded to other computers
            return f"{len(remote) + 1} computers"
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


def devices_from_profile(
    profile: Any,
    reserve_bytes: int = 512 * MIB,
    figures: SpeedFigures | None = None,
    remote: Sequence[Any] = (),
) -> list[Device]:
    """Devices of a HardwareProfile (or a what-if profile): every usable GPU, then the CPU.

    ``remote`` are other computers' devices (desktop.core.rpc.RemoteDevice); llama.cpp lists
    them before this computer's GPUs (src/llama.cpp, llama_model_load_from_file_impl), and so
    does this list.

    ``figures`` are this computer's calibrated speed figures; a what-if profile (another
    machine) gets the defaults.

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
                figures=figures or DEFAULT_FIGURES,
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
        physical_cores=cores,
        logical_cores=int(getattr(cpu, "logical_cores", 0) or cores),
        figures=figures or DEFAULT_FIGURES,
    )
    return [*remote_devices(remote, reserve_bytes, figures), *gpus, cpu_device]


def remote_devices(
    remote: Sequence[Any], reserve_bytes: int = 512 * MIB, figures: SpeedFigures | None = None
) -> list[Device]:
    """Estimator devices for other computers' devices (desktop.core.rpc.RemoteDevice)."""
    return [
        Device(
            name=r.label,
            kind=RPC_KIND,
            capacity_bytes=max(int(r.free_bytes) - reserve_bytes, 0),
            bandwidth_bytes_per_s=None,
            figures=figures or DEFAULT_FIGURES,
            endpoint=r.endpoint,
            rpc_index=int(r.index),
            alignment=int(r.alignment),
            latency_s=float(r.latency_s),
            split_bytes=int(r.free_bytes),
        )
        for r in remote
    ]


def build_cpu_features(profile: Any) -> tuple[str, ...]:
    """The CPU instruction sets the installed llama.cpp was *built* with, when it says so.

    Repacking depends on the build (a portable build has AVX2 but not AVX-512 even on a CPU
    that has both), so llama.cpp's own system-info line wins over the CPU's flags.
    """
    backends = getattr(profile, "backends", None)
    info = getattr(backends, "system_info", None)
    # "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | ... | REPACK = 1 |"
    if isinstance(info, str) and ("AVX" in info or "NEON" in info):
        feats = []
        for part in info.split("|"):
            name, _, value = part.rpartition("=")
            name = name.split(":")[-1].strip().lower()
            if value.strip() == "1" and name:
                feats.append("avx512f" if name == "avx512" else name)
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
    """Per-model, per-CPU numbers computed once and reused by every plan.

    Layers are placed in contiguous ranges (the CPU takes blocks 0..k-1, each GPU the next
    run), so every per-layer figure is kept as a prefix sum and any range costs O(1). This is
    what lets the models table evaluate hundreds of plans in well under 100 ms.
    """

    def __init__(self, spec: ModelSpec, cpu_features: tuple[str, ...]) -> None:
        self.spec = spec
        self.rules = repack_rules(cpu_features)
        rules = self.rules
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
        # A tied output on the CPU shares the embedding's mapped pages unless it is repacked.
        self.tied_shared_on_cpu = tied_bytes if self.output.repack == 0 else 0
        self.exact = bool(spec.input_tensors)

        def prefix(values: Sequence[int]) -> list[int]:
            out = [0]
            for v in values:
                out.append(out[-1] + v)
            return out

        self.total = prefix([g.total for g in self.layers])
        self.largest_layer = [0]  # largest block among blocks 0..k-1
        for g in self.layers:
            self.largest_layer.append(max(self.largest_layer[-1], g.total))
        self.cuda = prefix([g.aligned_cuda for g in self.layers])
        self.repack = prefix([g.repack_aligned for g in self.layers])
        self.aligned = prefix([g.aligned_cpu for g in self.layers])
        rec = [lay.is_recurrent for lay in spec.layers]
        self.recurrent = prefix([int(r) for r in rec])
        # Mapped span of the CPU part: first offset and last end over blocks 0..k-1.
        big = 1 << 62
        self.first = [big]
        self.last = [0]
        for g in self.layers:
            mapped = g.mapped_last > g.mapped_first
            self.first.append(min(self.first[-1], g.mapped_first) if mapped else self.first[-1])
            self.last.append(max(self.last[-1], g.mapped_last) if mapped else self.last[-1])
        kv_layers = [lay for lay in spec.layers if not lay.is_recurrent and lay.n_head_kv]
        self.has_full = any(not lay.is_swa for lay in kv_layers)
        self.has_swa = any(lay.is_swa for lay in kv_layers)
        self.heads_full = max((lay.n_head for lay in kv_layers if not lay.is_swa), default=0)
        self.heads_swa = max((lay.n_head for lay in kv_layers if lay.is_swa), default=0)
        self.q_width = max(
            (lay.n_head * max(lay.head_dim_k, lay.head_dim_v) for lay in spec.layers), default=0
        )
        self.v_width_max = max((lay.n_embd_v_gqa for lay in spec.layers), default=0)
        self._kv_cache: dict[tuple[str, bool], tuple[list[int], list[int]]] = {}
        self._terms: dict[tuple[int, bool], _ComputeTerms] = {}
        # The speed model's per-model figures (see speed_work).
        self.output_weight_bytes = spec.output_weight_bytes
        active_layers = spec.active_weight_bytes_per_token - self.output_weight_bytes
        self.active_ratio = max(active_layers, 0) / (self.total[-1] or 1)
        self.params_per_byte = spec.total_params / max(spec.weight_bytes, 1)
        self.embedding_row = spec.input_bytes / max(spec.n_vocab, 1)  # one row per token

    def compute_terms(self, settings: Settings) -> _ComputeTerms:
        """The compute buffer's context-free terms at these settings (ubatch, flash attention)."""
        key = (min(settings.n_ubatch, settings.n_batch), settings.flash_attn)
        hit = self._terms.get(key)
        if hit is None:
            hit = self._terms[key] = _ComputeTerms(self, settings)
        return hit

    def kv_per_cell(self, kv_type: str, flash_attn: bool) -> tuple[list[int], list[int]]:
        """Prefix sums of K+V bytes per cell, (full-attention layers, sliding-window layers).

        Exact while rows are whole blocks of the cache type, which every real model's are.
        """
        key = (kv_type, flash_attn)
        hit = self._kv_cache.get(key)
        if hit is None:
            full, swa = [0], [0]
            for lay in self.spec.layers:
                per_cell = _kv_bytes_per_cell(self.spec, lay, kv_type, flash_attn, self.v_width_max)
                full.append(full[-1] + (0 if lay.is_swa else per_cell))
                swa.append(swa[-1] + (per_cell if lay.is_swa else 0))
            hit = (full, swa)
            self._kv_cache[key] = hit
        return hit


_PREPARED_CACHE: dict[tuple[int, tuple[str, ...]], _Prepared] = {}


def _prepared(spec: ModelSpec, cpu_features: tuple[str, ...]) -> _Prepared:
    key = (id(spec), cpu_features)
    hit = _PREPARED_CACHE.get(key)
    if hit is None or hit.spec is not spec:
        if len(_PREPARED_CACHE) > 1024:
            _PREPARED_CACHE.clear()
        hit = _Prepared(spec, cpu_features)
        _PREPARED_CACHE[key] = hit
    return hit


def padded_ctx(n_ctx: int) -> int:
    """The context llama.cpp really uses: padded up to a multiple of 256."""
    return _pad(max(n_ctx, 1), CTX_PAD)


def capped_context(n_ctx: int, n_ctx_train: int | None) -> int:
    """The context to plan and load with: ``n_ctx``, or the trained length when that is shorter
    (None or 0: not known, ``n_ctx`` as asked).

    llama.cpp would allocate a longer context than the model was trained for, but the model
    cannot use it; every app (and this one) caps it.
    """
    return min(n_ctx, n_ctx_train) if n_ctx_train else n_ctx


def _cells(spec: ModelSpec, settings: Settings) -> tuple[int, int]:
    """(cells of the full-attention cache, cells of the sliding-window cache)."""
    return _cells_at(spec, settings, settings.n_ctx)


def _cells_at(spec: ModelSpec, settings: Settings, n_ctx: int) -> tuple[int, int]:
    """:func:`_cells` with the context `n_ctx` instead of the settings' own."""
    n_ctx = (max(n_ctx, 1) + CTX_PAD - 1) // CTX_PAD * CTX_PAD  # padded_ctx, inlined
    if spec.n_swa and not settings.swa_full:
        t = min(settings.n_ubatch, settings.n_batch)
        window = _pad(min(n_ctx, spec.n_swa * settings.n_seq_max + t), CTX_PAD)
        return n_ctx, min(n_ctx, window)
    return n_ctx, n_ctx


def _kv_bytes_per_cell(
    spec: ModelSpec, layer: LayerSpec, kv_type: str, flash_attn: bool, v_width_max: int
) -> int:
    if layer.is_recurrent or layer.n_head_kv == 0:
        return 0
    type_name = kv_type.upper()
    block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    k = layer.n_embd_k_gqa * type_size / block
    v_width = layer.n_embd_v_gqa
    if not flash_attn and not spec.is_mla and v_width:
        # Without flash attention V is stored transposed, every layer at the widest V row.
        v_width = v_width_max
    return int(k + v_width * type_size / block)


def kv_cache_bytes(spec: ModelSpec, settings: Settings) -> int:
    """KV cache bytes of the whole model at these settings."""
    prep = _prepared(spec, ())
    full, swa = prep.kv_per_cell(settings.kv_type, settings.flash_attn)
    cells_full, cells_swa = _cells(spec, settings)
    return full[-1] * cells_full + swa[-1] * cells_swa


def _range_kv(
    prep: _Prepared,
    settings: Settings,
    lo: int,
    hi: int,
    cells: tuple[int, int] | None = None,
) -> int:
    """K and V bytes of blocks lo..hi-1; ``cells``: :func:`_cells` of `settings`, when known."""
    full, swa = prep.kv_per_cell(settings.kv_type, settings.flash_attn)
    cells_full, cells_swa = _cells(prep.spec, settings) if cells is None else cells
    return (full[hi] - full[lo]) * cells_full + (swa[hi] - swa[lo]) * cells_swa


def _range_recurrent(prep: _Prepared, settings: Settings, lo: int, hi: int) -> int:
    rs = prep.spec.recurrent
    if rs is None:
        return 0
    count = prep.recurrent[hi] - prep.recurrent[lo]
    return count * (rs.conv_elements + rs.state_elements) * 4 * settings.n_seq_max


def _compute_bytes(
    prep: _Prepared,
    settings: Settings,
    n_layers: int,
    has_output: bool,
    has_input: bool,
    cells: tuple[int, int] | None = None,
) -> int:
    """Peak of the graph allocator on one device for the worst-case ubatch (see
    :class:`_ComputeTerms`). ``cells``: :func:`_cells` of `settings`, when the caller has them.
    """
    if cells is None:
        cells = _cells(prep.spec, settings)
    return prep.compute_terms(settings).at(cells, n_layers, has_output, has_input)


class _ComputeTerms:
    """The compute buffer of one device: the peak of the graph allocator for the worst-case
    ubatch, its terms that do not depend on the context worked out once per model and
    settings (the layer and context searches ask for it at many contexts).

    The largest of three moments: attention in the widest layer here, the feed-forward block,
    and the output projection. Beside the first two, the inputs that live through the whole
    graph (masks, positions, cache indices) and the activations measured alive at that moment:
    three n_embd rows (residual, normed input, projection) and two n_head x head_dim rows
    (queries and the attention output) per token.
    """

    def __init__(self, prep: _Prepared, settings: Settings) -> None:
        spec = prep.spec
        t = min(settings.n_ubatch, settings.n_batch)
        e = spec.n_embd
        # Graph inputs: one mask per cache kind (f32 without flash attention, f16 with it),
        # token ids, positions, output ids, and the K/V row indices of each cache.
        mask_elem = 2 if settings.flash_attn else 4
        n_caches = int(prep.has_full) + int(prep.has_swa)
        v_idx = t * 8 * (1 if settings.flash_attn else prep.v_width_max)
        self.mask_full = t * mask_elem if prep.has_full else 0  # per cell
        self.mask_swa = t * mask_elem if prep.has_swa else 0
        self.inputs = n_caches * (t * 8 + v_idx) + t * 4 * 3
        # Without flash attention, the f32 scores of every head against every cell.
        self.scores_full = 0 if settings.flash_attn else prep.heads_full * t * 4  # per cell
        self.scores_swa = 0 if settings.flash_attn else prep.heads_swa * t * 4
        self.attn = (3 * e + 2 * prep.q_width) * t * 4
        # Feed-forward: gate, up and their product (n_ff wide) beside four n_embd rows; a MoE
        # layer runs n_expert_used experts of n_ff_exp per token, plus the router's scores.
        if spec.n_expert and spec.n_expert_used:
            self.ffn = (3 * spec.n_expert_used * spec.n_ff_exp + 4 * e + 2 * spec.n_expert) * t * 4
        else:
            self.ffn = (3 * spec.n_ff + 4 * e) * t * 4
        # By then the masks are freed: the logits of every token, f32, and the few n_embd
        # rows still alive. Where the allocator places the logits depends on what is alive
        # below them: measured on five graphs, the logits sat on top of 2 to 7 n_embd rows;
        # 4 rows keeps every measured case within a few percent and errs on the safe side.
        self.output = spec.n_vocab * t * 4 + OUTPUT_PHASE_EMBD_ROWS * e * t * 4
        self.input_only = e * t * 4 + t * 4  # the input layer alone

    def at(self, cells: tuple[int, int], n_layers: int, has_output: bool, has_input: bool) -> int:
        """The buffer with `n_layers` blocks (and the output layer, the input layer) here."""
        full_cells, swa_cells = cells
        peak = 0
        if n_layers:
            inputs = full_cells * self.mask_full + swa_cells * self.mask_swa + self.inputs
            scores = max(full_cells * self.scores_full, swa_cells * self.scores_swa)
            peak = inputs + max(scores + self.attn, self.ffn)
        if has_output:
            peak = max(peak, self.output)
        if not n_layers and not has_output:
            return self.input_only if has_input else 0
        return peak


def _graph_inputs_bytes(
    prep: _Prepared, settings: Settings, lo: int | None = None, hi: int | None = None
) -> int:
    """The graph's inputs for the worst-case ubatch: masks, token ids, positions, output ids
    and the K/V row indices of each cache (as in :func:`_compute_bytes`). With a block range,
    only the caches those blocks use: a device gets copies of the inputs its layers read."""
    t = min(settings.n_ubatch, settings.n_batch)
    full_cells, swa_cells = _cells(prep.spec, settings)
    mask_elem = 2 if settings.flash_attn else 4
    has_full, has_swa = prep.has_full, prep.has_swa
    if lo is not None and hi is not None:
        kv_layers = [
            lay for lay in prep.spec.layers[lo:hi] if not lay.is_recurrent and lay.n_head_kv
        ]
        has_full = any(not lay.is_swa for lay in kv_layers)
        has_swa = any(lay.is_swa for lay in kv_layers)
    n_caches = int(has_full) + int(has_swa)
    v_idx = t * 8 * (1 if settings.flash_attn else prep.v_width_max)
    return (
        (full_cells * t * mask_elem if has_full else 0)
        + (swa_cells * t * mask_elem if has_swa else 0)
        + n_caches * (t * 8 + v_idx)
        + t * 4 * 3
    )


#: GGML_SCHED_MAX_COPIES: copies of every graph input when llama.cpp pipelines the devices.
SCHED_PIPELINE_COPIES = 4


def _remote_compute_bytes(
    prep: _Prepared,
    settings: Settings,
    n_layers: int,
    has_output: bool,
    pipeline: bool,
    *,
    host: bool = False,
    block_range: tuple[int, int] | None = None,
) -> int:
    """Compute buffer of a device when the graph is split over other computers' devices.

    ggml's scheduler keeps every graph input on the CPU (the last backend) and copies the
    ones a split needs into that split's device, so each device holds the inputs beside its
    own activations; pipelined (:func:`_pipeline_parallel`), every input has
    SCHED_PIPELINE_COPIES copies. The n_embd-wide rows alive beside the attention scores or
    the feed-forward block, and beside the logits, were measured against llama.cpp 0.3.36
    with RPC servers on 127.0.0.1 (tests/engine/test_rpc.py keeps them true): the CPU
    (``host``) keeps 3 with layers of its own and 2 with the input layer alone (5
    pipelined), a remote device 2 (6 pipelined) and 1 beside the logits (5 pipelined).
    """
    spec = prep.spec
    t = min(settings.n_ubatch, settings.n_batch)
    row = spec.n_embd * t * 4
    copies = SCHED_PIPELINE_COPIES if pipeline else 1
    lo, hi = block_range if block_range is not None and not host else (None, None)
    inputs = _graph_inputs_bytes(prep, settings, lo, hi) * copies
    full_cells, swa_cells = _cells(spec, settings)
    core = 0
    if n_layers:
        scores = 0
        if not settings.flash_attn:
            scores = max(full_cells * prep.heads_full, swa_cells * prep.heads_swa) * t * 4
        attn = scores + 2 * prep.q_width * t * 4
        if spec.n_expert and spec.n_expert_used:
            ffn = (3 * spec.n_expert_used * spec.n_ff_exp + 2 * spec.n_expert) * t * 4
        else:
            ffn = 3 * spec.n_ff * t * 4
        core = max(attn, ffn)
    if host:
        if n_layers:
            return inputs + core + 3 * row
        return inputs + (5 if pipeline else 2) * row
    peak = inputs + core + (6 if pipeline else 2) * row if n_layers else 0
    if has_output:
        logits = spec.n_vocab * t * 4
        peak = max(peak, logits + (inputs + 5 * row if pipeline else row))
    return peak


# ----------------------------------------------------------------------------- plan


def _split_layers(n_offloaded: int, gpus: Sequence[Device]) -> list[int]:
    """How many of the offloaded layers each GPU gets: proportional to free memory."""
    if not gpus or n_offloaded <= 0:
        return [0] * len(gpus)
    if len(gpus) == 1:  # what the loop below gives for one GPU
        return [n_offloaded]
    # llama.cpp splits by each device's free memory; a remote device says it (split_bytes).
    total = sum(max(g.split_bytes or g.capacity_bytes, 1) for g in gpus)
    counts = []
    acc = 0.0
    prev = 0
    for g in gpus:
        acc += max(g.split_bytes or g.capacity_bytes, 1) / total
        upto = min(n_offloaded, math.ceil(acc * n_offloaded - 1e-9))
        counts.append(upto - prev)
        prev = upto
    counts[-1] += n_offloaded - prev
    return counts


def _gpu_plan(
    prep: _Prepared,
    settings: Settings,
    gpu: Device,
    index: int,
    lo: int,
    hi: int,
    has_output: bool,
    buffers: list[Buffer] | None,
    offload_copies: int = 0,
    pipeline: bool = False,
) -> DevicePlan:
    """One GPU holding blocks lo..hi-1 (and the output layer when `has_output`).

    ``offload_copies``: bytes of CPU-resident weights this GPU copies in to run their large
    matmuls itself (see :func:`_offload_copy_bytes`); they live in its compute buffer.
    """
    weights, kv, rs, compute, overhead = _gpu_bytes(
        prep, settings, gpu, lo, hi, has_output, offload_copies, pipeline
    )
    if buffers is not None:
        # llama.cpp names an RPC buffer by the device's number on its server and the server.
        name = f"{gpu.kind.upper()}{index}"
        if gpu.is_remote:
            name = f"RPC{gpu.rpc_index}[{gpu.endpoint}]"
        for component, size in (
            ("weights", weights),
            ("kv", kv),
            ("recurrent", rs),
            ("compute", compute),
        ):
            if size:
                buffers.append(Buffer(name, component, size))
    return DevicePlan(
        name=gpu.name,
        kind=gpu.kind,
        layers=hi - lo + int(has_output),
        weights_bytes=weights,
        kv_bytes=kv + rs,
        compute_bytes=compute,
        output_bytes=0,
        overhead_bytes=overhead,
        capacity_bytes=gpu.capacity_bytes,
        endpoint=gpu.endpoint,
        latency_s=gpu.latency_s,
    )


def _gpu_bytes(
    prep: _Prepared,
    settings: Settings,
    gpu: Device,
    lo: int,
    hi: int,
    has_output: bool,
    offload_copies: int,
    pipeline: bool,
    cells: tuple[int, int] | None = None,
) -> tuple[int, int, int, int, int]:
    """(weights, KV, recurrent state, compute, overhead) bytes of :func:`_gpu_plan`, without
    the plan (the layer and context searches ask this dozens of times per estimate).
    ``cells``: :func:`_cells` of `settings`, when the caller has them."""
    n_layers = hi - lo
    weights = _gpu_weights(prep, gpu, lo, hi, has_output)
    kv = _range_kv(prep, settings, lo, hi, cells) if settings.offload_kqv else 0
    rs = _range_recurrent(prep, settings, lo, hi)
    if not (n_layers > 0 or has_output):  # an unused GPU holds nothing
        return weights, kv, rs, 0, 0
    if gpu.is_remote:
        compute = _remote_compute_bytes(
            prep, settings, n_layers, has_output, pipeline, block_range=(lo, hi)
        )
    else:
        compute = _compute_bytes(prep, settings, n_layers, has_output, False, cells)
    return weights, kv, rs, compute + offload_copies, _gpu_overhead(gpu)


def _gpu_weights(prep: _Prepared, gpu: Device, lo: int, hi: int, has_output: bool) -> int:
    """Weight bytes of blocks lo..hi-1 (and the output layer) on one GPU."""
    if gpu.kind == "cuda":
        return prep.cuda[hi] - prep.cuda[lo] + (prep.output.aligned_cuda if has_output else 0)
    if gpu.is_remote and gpu.alignment in (0, CPU_ALIGN):
        # A CPU shared over RPC: its buffer pads each tensor to the CPU alignment.
        return prep.aligned[hi] - prep.aligned[lo] + (
            prep.output.aligned_cpu if has_output else 0
        )
    return _pad(prep.total[hi] - prep.total[lo], CUDA_ALIGN) + (
        _pad(prep.output.total, CUDA_ALIGN) if has_output else 0
    )


def _gpu_overhead(gpu: Device) -> int:
    """Memory a used GPU needs beyond llama.cpp's buffers."""
    # A shared device's overhead is its server process on the other computer (the same kind
    # of process as the worker); a GPU's is its backend's context.
    return CPU_PROCESS_OVERHEAD_BYTES if gpu.is_remote else gpu.figures.overhead(gpu.kind)


def _cpu_plan(
    prep: _Prepared,
    settings: Settings,
    cpu: Device,
    n_cpu: int,
    has_output: bool,
    buffers: list[Buffer] | None,
    remote: int = 0,
) -> DevicePlan:
    """The CPU: the input layer always, blocks 0..n_cpu-1, the output layer if not offloaded,
    and the KV of offloaded layers when KV offload is off.

    ``remote``: 1 when other computers' devices hold layers too, 2 when llama.cpp pipelines
    over them (see :func:`_remote_compute_bytes`)."""
    spec = prep.spec
    out = prep.output if has_output else None
    repack = prep.repack[n_cpu] + prep.input.repack_aligned + (out.repack_aligned if out else 0)
    total = prep.total[n_cpu] + prep.input.total + (out.total if out else 0)
    entries: list[tuple[str, str, int]] = []
    if settings.use_mmap:
        if prep.exact:
            firsts = [prep.first[n_cpu]]
            lasts = [prep.last[n_cpu]]
            for g in (prep.input, out):
                if g is not None and g.mapped_last > g.mapped_first:
                    firsts.append(g.mapped_first)
                    lasts.append(g.mapped_last)
            span = max(max(lasts) - min(firsts), 0)
        else:  # catalog estimate: no file offsets, count the bytes once
            span = total - repack - (prep.tied_shared_on_cpu if out else 0)
        entries += [("CPU_Mapped", "weights", span), ("CPU_REPACK", "weights", repack)]
        weights = total - (prep.tied_shared_on_cpu if out else 0)
    else:
        aligned = prep.aligned[n_cpu] + prep.input.aligned_cpu + (out.aligned_cpu if out else 0)
        entries += [("CPU", "weights", aligned - repack), ("CPU_REPACK", "weights", repack)]
        weights = aligned
    kv_hi = n_cpu if settings.offload_kqv else spec.n_layer
    kv = _range_kv(prep, settings, 0, kv_hi)
    rs = _range_recurrent(prep, settings, 0, n_cpu)
    output_buffer = spec.n_vocab * 4 * settings.n_seq_max
    compute = _compute_bytes(prep, settings, n_cpu, has_output, True)
    if remote and not has_output:
        compute = _remote_compute_bytes(prep, settings, n_cpu, False, remote == 2, host=True)
    entries += [
        ("CPU", "output", output_buffer),
        ("CPU", "kv", kv),
        ("CPU", "recurrent", rs),
        ("CPU", "compute", compute),
    ]
    if buffers is not None:
        buffers.extend(Buffer(d, c, size) for d, c, size in entries if size)
    return DevicePlan(
        name="CPU",
        kind="cpu",
        layers=n_cpu + int(has_output),
        weights_bytes=weights,
        kv_bytes=kv + rs,
        compute_bytes=compute,
        output_bytes=output_buffer,
        overhead_bytes=CPU_PROCESS_OVERHEAD_BYTES,
        capacity_bytes=cpu.capacity_bytes,
    )


def _placement(
    spec: ModelSpec, gpus: Sequence[Device], n_gpu_layers: int
) -> tuple[int, list[tuple[int, int, bool]]]:
    """(CPU block count, [(lo, hi, has_output) per GPU]) for `n_gpu_layers` offloaded."""
    n_layer = spec.n_layer
    n = max(0, min(n_gpu_layers, n_layer + 1)) if gpus else 0
    i_gpu_start = n_layer + 1 - n
    counts = _split_layers(n, gpus)
    ranges = []
    start = i_gpu_start
    for count in counts:
        end = start + count  # in "layer index" space where n_layer is the output layer
        lo, hi = min(start, n_layer), min(end, n_layer)
        ranges.append((lo, hi, start <= n_layer < end))
        start = end
    return min(i_gpu_start, n_layer), ranges


#: GPU backends with a pinned host buffer type. When one is present llama.cpp puts CPU-side
#: weights in that host buffer type (swapped for the plain CPU type under mmap), which comes
#: before the CPU's repack type in its list, so nothing is repacked (llama-model.cpp
#: make_cpu_buft_list, llama-model-loader.cpp "avoid using a host buffer when using mmap"). The
#: same backends offload big CPU matmuls to themselves (ggml-backend.cpp, op_offload).
HOST_BUFFER_BACKENDS = frozenset({"cuda", "vulkan", "rocm", "sycl"})
#: ggml-cuda offloads an op on CPU weights when its batch is at least this
#: (GGML_OP_OFFLOAD_MIN_BATCH).
OP_OFFLOAD_MIN_BATCH = 32


def _split_devices(
    spec: ModelSpec, devices: Sequence[Device]
) -> tuple[list[Device], Device, _Prepared]:
    gpus = [d for d in devices if d.kind != "cpu"]
    cpu = next((d for d in devices if d.kind == "cpu"), None) or _NO_CPU
    host_gpu = any(g.kind in HOST_BUFFER_BACKENDS for g in gpus)
    return gpus, cpu, _prepared(spec, () if host_gpu else cpu.cpu_features)


#: The CPU of a device list without one.
_NO_CPU = Device("CPU", "cpu", 0, None)


def _offload_copy_bytes(
    prep: _Prepared, settings: Settings, gpu: Device, n_cpu: int, cpu_has_output: bool
) -> int:
    """Weights of CPU layers copied into the first GPU's compute buffer for prompt batches.

    With op_offload (llama.cpp's default) the scheduler runs a matmul whose weight sits in a
    host buffer on the first GPU when the batch is big enough, copying the weight in as an
    input of that split. The copies of one split live together: one block's weights, or the
    output matrix when the output layer stayed on the CPU. Taken from llama.cpp's source
    (ggml-backend.cpp ggml_backend_sched_backend_id_from_cur); not yet measured on a GPU.
    """
    if not _op_offload(gpu, settings):
        return 0
    largest = prep.largest_layer[n_cpu]
    if cpu_has_output:
        largest = max(largest, prep.output.total)
    return largest


def _op_offload(gpu: Device, settings: Settings) -> bool:
    """Whether `gpu` runs the large matmuls of CPU-resident weights (see _offload_copy_bytes)."""
    return (
        gpu.kind in HOST_BUFFER_BACKENDS
        and min(settings.n_ubatch, settings.n_batch) >= OP_OFFLOAD_MIN_BATCH
    )


def plan_memory(
    spec: ModelSpec, settings: Settings, devices: Sequence[Device], n_gpu_layers: int
) -> tuple[list[DevicePlan], list[Buffer]]:
    """Memory per device with exactly `n_gpu_layers` offloaded (0..n_layer+1)."""
    gpus, cpu, prep = _split_devices(spec, devices)
    return _plan_memory(prep, gpus, cpu, settings, n_gpu_layers)


def _plan_memory(
    prep: _Prepared, gpus: Sequence[Device], cpu: Device, settings: Settings, n_gpu_layers: int
) -> tuple[list[DevicePlan], list[Buffer]]:
    spec = prep.spec
    n_cpu, ranges = _placement(spec, gpus, n_gpu_layers)
    cpu_has_output = not any(r[2] for r in ranges)
    buffers: list[Buffer] = []
    plans = []
    pipeline = _pipeline_parallel(spec, gpus, settings, n_gpu_layers)
    for i, (gpu, (lo, hi, has_out)) in enumerate(zip(gpus, ranges, strict=True)):
        copies = _offload_copy_bytes(prep, settings, gpu, n_cpu, cpu_has_output) if i == 0 else 0
        plans.append(
            _gpu_plan(prep, settings, gpu, i, lo, hi, has_out, buffers, copies, pipeline)
        )
    remote = (2 if pipeline else 1) if any(g.is_remote for g in gpus) else 0
    plans.append(_cpu_plan(prep, settings, cpu, n_cpu, cpu_has_output, buffers, remote))
    return plans, buffers


def _pipeline_parallel(
    spec: ModelSpec, gpus: Sequence[Device], settings: Settings, n_gpu_layers: int
) -> bool:
    """Whether llama.cpp pipelines the graph over the devices (src/llama-context.cpp): more
    than one device, every layer offloaded, KV offload on; every graph input then has
    GGML_SCHED_MAX_COPIES (4) copies. Modelled for remote devices (their caps allow it)."""
    return (
        len(gpus) > 1
        and all(g.is_remote for g in gpus)
        and n_gpu_layers > spec.n_layer
        and settings.offload_kqv
    )


def _gpus_fit(prep: _Prepared, gpus: Sequence[Device], settings: Settings, n: int) -> bool:
    """Whether `n` offloaded layers fit on every GPU, probe by probe (:class:`_Fit` is the
    searches' faster form of it; tests/unit/test_estimate.py holds the two equal)."""
    n_cpu, ranges = _placement(prep.spec, gpus, n)
    cpu_has_output = not any(r[2] for r in ranges)
    pipeline = _pipeline_parallel(prep.spec, gpus, settings, n)
    cells = _cells(prep.spec, settings)
    for i, (gpu, (lo, hi, has_out)) in enumerate(zip(gpus, ranges, strict=True)):
        copies = _offload_copy_bytes(prep, settings, gpu, n_cpu, cpu_has_output) if i == 0 else 0
        w, kv, rs, compute, overhead = _gpu_bytes(
            prep, settings, gpu, lo, hi, has_out, copies, pipeline, cells
        )
        if w + kv + rs + compute + overhead > gpu.capacity_bytes:
            return False
    return True


#: A margin larger than any device's memory (no GPU left to check).
_NO_LIMIT = 1 << 62


class _Fit:
    """How many bytes `n` offloaded layers leave free on the tightest GPU at a context, for
    one model, GPU set and settings: :func:`_gpus_fit` as a margin, with what stays the same
    between probes worked out once (each layer count's placement and context-free bytes, the
    compute buffer's context-free terms). The layer and context searches of one estimate
    probe it a dozen times; a probe is a few multiplications per GPU.
    """

    def __init__(self, prep: _Prepared, gpus: Sequence[Device], settings: Settings) -> None:
        self.prep = prep
        self.gpus = gpus
        self.settings = settings
        self.terms = prep.compute_terms(settings)
        self.kv = prep.kv_per_cell(settings.kv_type, settings.flash_attn)
        self.overheads = [_gpu_overhead(gpu) for gpu in gpus]
        # One GPU of this computer (the common case): its placement needs no split.
        self.single = len(gpus) == 1 and not gpus[0].is_remote
        self.n_ctx = settings.n_ctx
        self.cells = _cells(prep.spec, settings)
        #: Per layer count: (room, K/V bytes per full and per SWA cell, blocks, has the
        #: output) per local GPU, and what the remote devices need to be planned whole.
        self._layouts: dict[
            int,
            tuple[
                list[tuple[int, int, int, int, bool]],
                list[tuple[Device, int, int, bool, int, bool]],
            ],
        ] = {}
        self._margins: dict[tuple[int, int], int] = {}  # (layers, padded context): margin

    def _layout(
        self, n: int
    ) -> tuple[
        list[tuple[int, int, int, int, bool]], list[tuple[Device, int, int, bool, int, bool]]
    ]:
        hit = self._layouts.get(n)
        if hit is not None:
            return hit
        prep, gpus, settings = self.prep, self.gpus, self.settings
        full, swa = self.kv
        kqv = settings.offload_kqv
        if self.single:  # what _placement gives for one GPU: the last n layers, output first
            n_layer = prep.spec.n_layer
            count = max(0, min(n, n_layer + 1))
            lo, has_out = min(n_layer + 1 - count, n_layer), count >= 1
            gpu = gpus[0]
            fixed = _gpu_weights(prep, gpu, lo, n_layer, has_out)
            fixed += _range_recurrent(prep, settings, lo, n_layer)
            if n_layer > lo or has_out:  # a used GPU (the loop below, for this one GPU)
                fixed += self.overheads[0] + _offload_copy_bytes(
                    prep, settings, gpu, lo, not has_out
                )
            kv_full = full[n_layer] - full[lo] if kqv else 0
            kv_swa = swa[n_layer] - swa[lo] if kqv else 0
            hit = ([(gpu.capacity_bytes - fixed, kv_full, kv_swa, n_layer - lo, has_out)], [])
            self._layouts[n] = hit
            return hit
        n_cpu, ranges = _placement(prep.spec, gpus, n)
        cpu_has_output = not any(r[2] for r in ranges)
        pipeline = _pipeline_parallel(prep.spec, gpus, settings, n)
        local: list[tuple[int, int, int, int, bool]] = []
        remote: list[tuple[Device, int, int, bool, int, bool]] = []
        for i, (gpu, (lo, hi, has_out)) in enumerate(zip(gpus, ranges, strict=True)):
            copies = 0
            if i == 0:
                copies = _offload_copy_bytes(prep, settings, gpu, n_cpu, cpu_has_output)
            if gpu.is_remote:
                remote.append((gpu, lo, hi, has_out, copies, pipeline))
                continue
            # What does not depend on the context (as _gpu_bytes adds it up); the KV cache and
            # the compute buffer are added per probe.
            fixed = _gpu_weights(prep, gpu, lo, hi, has_out)
            fixed += _range_recurrent(prep, settings, lo, hi)
            if hi > lo or has_out:  # a used GPU
                fixed += self.overheads[i] + copies
            kv_full = full[hi] - full[lo] if kqv else 0
            kv_swa = swa[hi] - swa[lo] if kqv else 0
            local.append((gpu.capacity_bytes - fixed, kv_full, kv_swa, hi - lo, has_out))
        hit = (local, remote)
        self._layouts[n] = hit
        return hit

    def margin(self, n: int, n_ctx: int) -> int:
        """Bytes free on the tightest GPU with `n` layers offloaded at `n_ctx` (negative: they
        do not fit); what :func:`_gpus_fit` compares, for every GPU at once."""
        if n_ctx == self.n_ctx:
            cells = self.cells
        else:
            cells = _cells_at(self.prep.spec, self.settings, n_ctx)
        key = (n, cells[0])
        hit = self._margins.get(key)
        if hit is not None:
            return hit
        local, remote = self._layout(n)
        cells_full, cells_swa = cells
        terms = self.terms
        # _ComputeTerms.at, inlined: with blocks here, and with the output layer alone.
        with_blocks = (
            cells_full * terms.mask_full
            + cells_swa * terms.mask_swa
            + terms.inputs
            + max(
                max(cells_full * terms.scores_full, cells_swa * terms.scores_swa) + terms.attn,
                terms.ffn,
            )
        )
        least = _NO_LIMIT
        for room, kv_full, kv_swa, n_layers, has_out in local:
            if n_layers:
                compute = max(with_blocks, terms.output) if has_out else with_blocks
            else:
                compute = terms.output if has_out else 0
            least = min(least, room - kv_full * cells_full - kv_swa * cells_swa - compute)
        if remote:
            settings = _with_ctx(self.settings, n_ctx)
            for gpu, lo, hi, has_out, copies, pipeline in remote:
                parts = _gpu_bytes(self.prep, settings, gpu, lo, hi, has_out, copies, pipeline)
                least = min(least, gpu.capacity_bytes - sum(parts))
        self._margins[key] = least
        return least

    def max_layers(self) -> int:
        """:func:`max_gpu_layers`."""
        n_ctx = self.settings.n_ctx
        full = self.prep.spec.n_layer + 1
        if self.margin(full, n_ctx) >= 0:
            return full
        if self._monotone_layers():
            # Below `full` the fit flips once: search by the margins' secant.
            m_one = self.margin(1, n_ctx)
            if m_one < 0:
                return 0
            m_full = self.margin(full, n_ctx)
            return _flip(1, m_one, full, m_full, lambda n: self.margin(n, n_ctx))
        lo, hi = 0, full
        while lo < hi - 1:  # invariant: lo fits (0 always does), hi does not
            mid = (lo + hi) // 2
            if self.margin(mid, n_ctx) >= 0:
                lo = mid
            else:
                hi = mid
        return lo

    def _monotone_layers(self) -> bool:
        """Whether one more layer never needs less GPU memory, from 1 layer (the output) up
        to all but block 0 (so, with every layer not fitting, the fit flips once).

        True for one GPU of this computer: each block moved to it adds its weights and KV
        cache (and recurrent state); the first block adds the compute buffer's attention and
        feed-forward. Only the op-offload copy of the CPU's largest block can shrink, by at
        most the moved block's bytes beyond the largest block left on the CPU, which holds
        block 0 still. CUDA's weights grow by at least the block's bytes; other backends pad
        the whole span to 128 bytes, so theirs grow by at least the block's bytes less 127,
        which block 0 of 128 bytes or more makes up for. Over several GPUs the split moves
        blocks between them and the fit can flip back: their search halves the range.
        """
        if not self.single:
            return False
        gpu = self.gpus[0]
        if gpu.kind == "cuda" or not _op_offload(gpu, self.settings):
            return True
        return self.prep.largest_layer[1] >= CUDA_ALIGN

    def max_ctx_full(self) -> int:
        """:func:`max_ctx_full_gpu`. Every GPU's need grows with the context (KV cache, masks,
        scores), so the fit flips once and a search by the margins' secant finds the context
        the halving search found, in a few probes where halving takes nine."""
        full = self.prep.spec.n_layer + 1
        limit = padded_ctx(max(self.prep.spec.n_ctx_train, CTX_PAD))
        lo, hi = 1, limit // CTX_PAD  # in units of 256 cells; lo fits, hi does not
        # The layer search's probe of every layer at the settings' context, when it made one,
        # stands for the probe at 256 cells (it fits: so does any smaller context) or the one
        # at the limit (it does not fit: nor does any larger one).
        unit = self.cells[0] // CTX_PAD
        known = self._margins.get((full, self.cells[0]))
        if known is not None and known >= 0 and lo <= unit < hi:
            lo, m_lo = unit, known
        else:
            m_lo = self.margin(full, CTX_PAD)
            if m_lo < 0:
                return 0
        if known is not None and known < 0 and lo < unit <= hi:
            hi, m_hi = unit, known
        else:
            m_hi = self.margin(full, limit)
            if m_hi >= 0:
                return limit
        return _flip(lo, m_lo, hi, m_hi, lambda unit: self.margin(full, unit * CTX_PAD)) * CTX_PAD


def _flip(lo: int, m_lo: int, hi: int, m_hi: int, margin: Callable[[int], int]) -> int:
    """The last `x` in lo..hi-1 with ``margin(x) >= 0``, for a margin that goes negative once
    between lo (``m_lo >= 0``) and hi (``m_hi < 0``): wherever it probes, a bracketing search
    ends there. This one steps to where the straight line between the bracket's margins
    crosses zero and checks the neighbour across, which for margins that grow nearly linearly
    (bytes per layer, per cell of context) lands on it in two or three probes; after two
    steps in a row that do not halve the bracket, one halving step."""
    slow = 0
    while hi - lo > 1:
        width = hi - lo
        if slow >= 2:
            slow = 0
            x = (lo + hi) // 2
        else:
            x = min(max(lo + m_lo * width // (m_lo - m_hi), lo + 1), hi - 1)
        m = margin(x)
        if m >= 0:
            lo, m_lo = x, m
            if x + 1 < hi:  # the line lands on the flip or just short of it
                m = margin(x + 1)
                if m >= 0:
                    lo, m_lo = x + 1, m
                else:
                    hi, m_hi = x + 1, m
        else:
            hi, m_hi = x, m
            if x - 1 > lo:
                m = margin(x - 1)
                if m >= 0:
                    lo, m_lo = x - 1, m
                else:
                    hi, m_hi = x - 1, m
        slow = slow + 1 if hi - lo > width // 2 else 0
    return lo


def max_gpu_layers(spec: ModelSpec, settings: Settings, devices: Sequence[Device]) -> int:
    """The most layers (output layer included) that fit on the GPUs, 0 when none do."""
    gpus, _, prep = _split_devices(spec, devices)
    return _Fit(prep, gpus, settings).max_layers() if gpus else 0


def max_ctx_full_gpu(spec: ModelSpec, settings: Settings, devices: Sequence[Device]) -> int | None:
    """Largest context (multiple of 256, up to the trained length) with every layer on GPU."""
    gpus, _, prep = _split_devices(spec, devices)
    return _Fit(prep, gpus, settings).max_ctx_full() if gpus else None


# ---------------------------------------------------------------------------- speed


def speed_work(
    spec: ModelSpec, settings: Settings, devices: Sequence[Device], n_gpu_layers: int
) -> list[DeviceWork]:
    """What each device does per token for this placement (the speed model's input).

    Decoding reads, per token, each device's active weights (MoE: only the routed experts in
    use) and its KV cache (assumed half full). Prompt processing does 2 FLOPs per active
    weight per token; it computes logits for the last token only (llama-cpp-python asks for no
    others), so the output matmul, large for big vocabularies, is left out of its FLOPs.
    """
    gpus, cpu, prep = _split_devices(spec, devices)
    return _speed_work(prep, gpus, cpu, settings, n_gpu_layers)


def _speed_work(
    prep: _Prepared, gpus: Sequence[Device], cpu: Device, settings: Settings, n_gpu_layers: int
) -> list[DeviceWork]:
    spec = prep.spec
    n_cpu, ranges = _placement(spec, gpus, n_gpu_layers)
    active_ratio = prep.active_ratio
    params_per_byte = prep.params_per_byte
    kv_fill = dataclass_replace_ctx(settings)
    fill_cells = _cells(spec, kv_fill)
    out_bytes = prep.output_weight_bytes
    work: list[DeviceWork] = []
    for gpu, (lo, hi, has_out) in zip(gpus, ranges, strict=True):
        layers = (prep.total[hi] - prep.total[lo]) * active_ratio
        kv = _range_kv(prep, kv_fill, lo, hi, fill_cells) if settings.offload_kqv else 0
        if gpu.is_remote:
            read = layers + (out_bytes if has_out else 0) + kv
            flops = 2 * layers * params_per_byte
            work.append(_remote_work(spec, cpu, gpu, read, flops, hi > lo or has_out))
            continue
        work.append(
            DeviceWork(
                kind=gpu.kind,
                decode_bytes=layers + (out_bytes if has_out else 0) + kv,
                bandwidth_bytes_per_s=float(gpu.bandwidth_bytes_per_s or 0),
                prompt_flops=2 * layers * params_per_byte,
                peak_flops=float(gpu.flops or 0),
            )
        )
    cpu_out = not any(r[2] for r in ranges)
    layers = prep.total[n_cpu] * active_ratio
    embedding_row = prep.embedding_row
    kv_hi = n_cpu if settings.offload_kqv else spec.n_layer
    threads = resolved_threads(cpu, settings)
    cores = cpu.physical_cores or cpu.logical_cores or threads
    work.append(
        DeviceWork(
            kind="cpu",
            decode_bytes=layers
            + (out_bytes if cpu_out else 0)
            + embedding_row
            + _range_kv(prep, kv_fill, 0, kv_hi, fill_cells),
            bandwidth_bytes_per_s=float(cpu.bandwidth_bytes_per_s or 0),
            prompt_flops=2 * layers * params_per_byte,
            peak_flops=float(cpu.flops or 0) * min(threads, cores) / max(cores, 1),
        )
    )
    return work


#: What one split on another computer costs per decoded token beyond its weights and the link's
#: round trip: serializing the graph, the server's scheduling, the TCP stack twice. Measured
#: over loopback on the development machine (2 shared vCPUs): Gemma 3 270M at 1 thread decoded
#: 21.3 tok/s on the CPU, 20.4 with every layer on one server and 19.7 on two, 1.7-1.9 ms per
#: remote split beyond the 0.28 ms round trip (`tests/bench/bench_accuracy.py` prints these
#: figures last). A LAN adds its own round trip, which the probe measures.
RPC_SPLIT_SECONDS = 0.0018
#: The link's rate for the activations that cross to and from each remote device: a gigabit
#: Ethernet link's 125 MB/s (the common home network; loopback is much faster).
RPC_LINK_BYTES_PER_S = 125e6


def _remote_work(
    spec: ModelSpec, cpu: Device, remote: Device, decode_bytes: float, flops: float, used: bool
) -> DeviceWork:
    """Another computer's device: its weights read at the rate of a CPU like this one (the
    server does not say what it runs on), plus the network: a round trip and a split's fixed
    cost per token, and the n_embd-wide f32 activation sent there and back."""
    crossing = 2 * spec.n_embd * 4
    network = remote.latency_s + RPC_SPLIT_SECONDS + crossing / RPC_LINK_BYTES_PER_S
    if not used:
        network = 0.0
    return DeviceWork(
        kind="cpu",
        decode_bytes=decode_bytes,
        bandwidth_bytes_per_s=float(cpu.bandwidth_bytes_per_s or 0),
        prompt_flops=flops,
        peak_flops=float(cpu.flops or 0),
        fixed_seconds=network,
    )


def predict_speed(
    spec: ModelSpec, settings: Settings, devices: Sequence[Device], n_gpu_layers: int
) -> tuple[float | None, float | None]:
    """(decode tokens/s, prompt tokens/s) for this placement; None when a figure is unknown.

    :func:`speed_work` says what each device reads and computes per token; the device's
    speed figures (desktop.core.calibration: calibrated on this computer, or the defaults)
    say how fast it does it.
    """
    gpus, cpu, prep = _split_devices(spec, devices)
    has_cpu = any(not d.is_gpu for d in devices)
    return _predict_speed(prep, gpus, cpu, has_cpu, settings, n_gpu_layers)


def _predict_speed(
    prep: _Prepared,
    gpus: Sequence[Device],
    cpu_device: Device,
    has_cpu: bool,
    settings: Settings,
    n_gpu_layers: int,
) -> tuple[float | None, float | None]:
    work = _speed_work(prep, gpus, cpu_device, settings, n_gpu_layers)
    if any(w.decode_bytes > 0 and w.bandwidth_bytes_per_s <= 0 for w in work):
        return None, None
    cpu = cpu_device if has_cpu else None
    figures = cpu.figures if cpu is not None else DEFAULT_FIGURES
    threads = resolved_threads(cpu, settings) if cpu is not None else 1
    decode_s = decode_seconds(work, threads, figures)
    prompt_s = prompt_seconds(work, figures)
    decode = 1.0 / decode_s if decode_s > 0 else None
    prompt = 1.0 / prompt_s if prompt_s else None
    return decode, prompt


def resolved_threads(cpu: Device, settings: Settings) -> int:
    """The CPU threads llama.cpp will use: the person's choice, else the physical cores."""
    if settings.n_threads:
        return int(settings.n_threads)
    return default_threads(cpu.physical_cores or None, cpu.logical_cores or None)


def dataclass_replace_ctx(settings: Settings) -> Settings:
    """Settings with the context at the average fill assumed for decoding."""
    return _with_ctx(settings, max(int(settings.n_ctx * KV_FILL_FOR_SPEED), 1))


def _with_ctx(settings: Settings, n_ctx: int) -> Settings:
    """`settings` with another context, skipping validation (searches call this thousands of
    times; the other fields were validated when `settings` was made)."""
    return _with(settings, n_ctx=n_ctx)


def _with(settings: Settings, **changes: Any) -> Settings:
    """``dataclasses.replace`` without its validation, for valid changes (a positive
    context, a KV type of KV_TYPES)."""
    clone: Settings = object.__new__(Settings)
    clone.__dict__.update(settings.__dict__, **changes)
    return clone


# -------------------------------------------------------------------------- verdict


def estimate(spec: ModelSpec, settings: Settings, devices: Sequence[Device]) -> Plan:
    """The full plan: placement, memory per device, verdict with reason and suggestion, speed."""
    gpus, cpu, prep = _split_devices(spec, devices)
    full = spec.n_layer + 1
    # One fit for both searches: the context search starts from the layer search's probes.
    fit = _Fit(prep, gpus, settings) if gpus else None
    best = fit.max_layers() if fit is not None else 0
    n_gpu = best if settings.n_gpu_layers is None else min(settings.n_gpu_layers, full)
    if not gpus:
        n_gpu = 0
    plans, buffers = _plan_memory(prep, gpus, cpu, settings, n_gpu)
    cpu_plan = plans[-1]
    gpu_fits = all(p.fits for p in plans[:-1])
    ctx_full = fit.max_ctx_full() if fit is not None else None
    has_cpu = any(not d.is_gpu for d in devices)
    decode, prompt = _predict_speed(prep, gpus, cpu, has_cpu, settings, n_gpu)
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
    reason, suggestion = _explain(
        spec, settings, devices, plans, verdict, n_gpu, best, ctx_full, fit
    )
    spread = spread_sentence(plans)
    if spread:  # other computers hold layers: say which machine holds what first
        if not any(d.is_gpu and not d.is_remote for d in devices):
            reason = reason.replace("on the GPU", "on the other computers' devices")
        reason = f"{spread} {reason}"
        notes.append(
            "Speed across computers: each one's measured round trip plus "
            f"{RPC_SPLIT_SECONDS * 1000:.1f} ms per token and device (measured over loopback "
            "on the development machine); the other computer is assumed as fast as this one."
        )
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


def spread_sentence(devices: Sequence[DevicePlan]) -> str | None:
    """ "Fits across 2 computers: 9 layers here (CPU), 10 on 192.168.1.20:50052 (RPC)." when
    other computers' devices hold layers; None when this computer holds them all."""
    remote = [d for d in devices if d.endpoint and d.layers]
    if not remote:
        return None
    local = [d for d in devices if not d.endpoint]
    here = sum(d.layers for d in local)
    kinds = "/".join(dict.fromkeys(d.kind.upper() for d in local if d.layers))
    computers = 1 + len({d.endpoint for d in remote})
    first = f"{here} layers here ({kinds})" if here else "the token embedding here (CPU)"
    parts = [first] + [
        f"{d.layers} on {d.name} (RPC)" for d in remote
    ]
    short = [d for d in devices if not d.fits]
    verb = "Fits across" if not short else "Needs more than"
    tail = ""
    if short:
        tail = " " + "; ".join(
            f"{d.name} has {_gb(d.capacity_bytes)} free for the {_gb(d.total_bytes)} it would hold."
            for d in short
        )
    return f"{verb} {computers} computers: {', '.join(parts)}.{tail}"


def _gb(n: float) -> str:
    return f"{n / GIB:.1f} GB"


def _ctx_rounded(n: int) -> str:
    """A context to suggest: people pick them in thousands, so round down to a whole "k"."""
    return _ctx_label(n // 1024 * 1024 if n >= 1024 else n)


def _ctx_label(n: int) -> str:
    """16384 -> "16k"; other sizes in full with a thousands separator ("16,640")."""
    return f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else f"{n:,}"


def _explain(
    spec: ModelSpec,
    settings: Settings,
    devices: Sequence[Device],
    plans: Sequence[DevicePlan],
    verdict: Verdict,
    n_gpu: int,
    best: int,
    ctx_full: int | None,
    fit: _Fit | None = None,
) -> tuple[str, str]:
    """A reason and a concrete suggestion, in plain words (`fit`: the estimate's, to search
    with other settings on the same model and GPUs)."""
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
            return reason, f"The context can grow to {_ctx_rounded(ctx_full)} and still fit."
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
        tips.append(f"lower the context to {_ctx_rounded(ctx_full)} to fit fully")
    if settings.kv_type == "f16":
        alt_settings = _with(settings, kv_type="q8_0", flash_attn=True)
        if fit is not None:
            alt = _Fit(fit.prep, fit.gpus, alt_settings).max_layers()
        else:
            alt = max_gpu_layers(spec, alt_settings, devices)
        if alt > best:
            tips.append(f"use the q8_0 KV cache (with flash attention) for {alt} GPU layers")
    if not tips:
        tips.append("pick a smaller quantization to fit fully")
    suggestion = "; or ".join(tips)
    return reason, suggestion[0].upper() + suggestion[1:] + "."


def sibling_suggestion(plan: Plan, siblings: Sequence[tuple[str, Plan]]) -> str | None:
    """ "Q4_K_M fits fully on the GPU." when another quantization of the same model fits better.

    Among the quantizations (label, plan) with a better verdict than `plan`, the largest file
    wins: the best quality that still fits. None when no sibling does better.
    """
    rank = plan.verdict.rank
    better = [(label, p) for label, p in siblings if p.verdict.rank < rank]
    if not better:
        return None
    best_rank = min(p.verdict.rank for _, p in better)
    label, best = max(
        ((label, p) for label, p in better if p.verdict.rank == best_rank),
        key=lambda item: item[1].total_bytes,
    )
    where = {
        Verdict.FULL_GPU: "fits fully on the GPU",
        Verdict.PARTIAL: f"fits {best.gpu_layers} of {best.offloadable_layers} layers on the GPU",
        Verdict.CPU_ONLY: "fits in system memory",
    }[best.verdict]
    return f"{label} {where}."


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


def compare_by_device(plan: Plan, reported: Any) -> list[dict[str, Any]]:
    """Per device and component (then the device's total), the plan against llama.cpp's
    buffers: the device is an RPC server's endpoint, "CPU", or a GPU's buffer type
    (desktop.core.llama_log.buffer_device); llama.cpp's layer count is not per device."""
    from desktop.core.llama_log import buffer_device

    estimated: dict[str, dict[str, int]] = {}
    for b in plan.buffers:
        per = estimated.setdefault(buffer_device(b.device), {})
        per[b.component] = per.get(b.component, 0) + b.size_bytes
    actual = reported.by_device_key()
    rows: list[dict[str, Any]] = []
    for device in [*estimated, *(d for d in actual if d not in estimated)]:
        est, rep = estimated.get(device, {}), actual.get(device, {})
        components = ("weights", "kv", "recurrent", "output", "compute")
        parts = [c for c in components if c in est or c in rep]
        for component in [*parts, "total"]:
            e = sum(est.values()) if component == "total" else est.get(component, 0)
            r = sum(rep.values()) if component == "total" else rep.get(component, 0)
            row = ComparisonRow(component, e, r)
            rows.append(
                {
                    "device": device,
                    "component": component,
                    "estimated_bytes": e,
                    "reported_bytes": r,
                    "error_pct": round(row.error_pct, 2),
                }
            )
    return rows
