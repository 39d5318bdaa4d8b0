"""Speed figures for this computer: defaults measured on the development machine, then fitted
from every run measured here.

The decode model (per generated token)::

    seconds = per_token_seconds
            + sum over devices of  bytes read on the device / rate of the device
    rate(CPU) = min(threads ** cpu_thread_scaling x cpu_thread_bytes_per_s,
                    cpu_decode_efficiency x RAM bandwidth)
    rate(GPU) = gpu_decode_efficiency[backend] x VRAM bandwidth

``per_token_seconds`` is what a token costs whatever the model's size: building the graph,
sampling over the vocabulary, Python, kernel launches. It dominates tiny models and is the
floor on GPUs. The CPU term is a roofline: with few threads the cores' dequantize-and-multiply
speed limits, with enough threads the memory does.

Prompt processing: seconds per prompt token = FLOPs on the device / (compute efficiency x
peak FLOPS of the device), the CPU's peak scaled by the threads in use.

:func:`fit` turns measured runs (:class:`SpeedRun`, stored in SQLite by
:mod:`desktop.core.runs`) into :class:`SpeedFigures` for this computer. It is robust: each
run counts through a Huber loss on the log of predicted/measured, and the defaults act as a
prior worth :data:`PRIOR_WEIGHT_RUNS` runs, so a few consistent runs move the figures and a
single outlier does not. The estimator takes the figures as an input and never reads the
database itself.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from desktop.core.units import MIB

__all__ = [
    "DEFAULT_FIGURES",
    "DeviceWork",
    "SpeedFigures",
    "SpeedRun",
    "decode_seconds",
    "fit",
    "prompt_seconds",
]


@dataclass(frozen=True)
class SpeedFigures:
    """Efficiencies and fixed costs the speed prediction uses (for one computer)."""

    per_token_seconds: float  # fixed cost of one decoded token
    cpu_decode_efficiency: float  # share of the measured RAM copy bandwidth decode reaches
    cpu_thread_bytes_per_s: float  # weight bytes one CPU thread decodes per second, at most
    cpu_thread_scaling: float  # n threads decode n ** this times as fast as one (<= 1)
    cpu_compute_efficiency: float  # share of the CPU's assumed peak FLOPS prompts reach
    gpu_decode_efficiency: Mapping[str, float] = field(default_factory=dict)  # per backend
    gpu_compute_efficiency: Mapping[str, float] = field(default_factory=dict)
    backend_overhead_bytes: Mapping[str, int] = field(default_factory=dict)  # per backend
    prompt_per_token_seconds: float = 0.0  # fixed cost of one prompt token (graph, per layer)
    runs: int = 0  # measured runs these figures were fitted from (0: the defaults)
    measured_overhead_kinds: tuple[str, ...] = ()  # backends whose overhead was measured here

    def gpu_efficiency(self, kind: str) -> float:
        return self.gpu_decode_efficiency.get(kind, self.gpu_decode_efficiency.get("gpu", 0.65))

    def gpu_compute(self, kind: str) -> float:
        return self.gpu_compute_efficiency.get(kind, self.gpu_compute_efficiency.get("gpu", 0.35))

    def overhead(self, kind: str) -> int:
        return self.backend_overhead_bytes.get(kind, self.backend_overhead_bytes.get("gpu", 0))

    @property
    def calibrated(self) -> bool:
        return self.runs > 0

    def describe(self) -> str:
        """Where the predictions come from, for a person."""
        if self.runs:
            runs = "1 run" if self.runs == 1 else f"{self.runs} runs"
            return f"calibrated from {runs} on this computer"
        return "not yet measured here: estimated from bandwidth"

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "source": self.describe(),
            "per_token_seconds": round(self.per_token_seconds, 6),
            "decode_efficiency": round(self.cpu_decode_efficiency, 4),
            "cpu_thread_bytes_per_s": int(self.cpu_thread_bytes_per_s),
            "cpu_thread_scaling": round(self.cpu_thread_scaling, 4),
            "cpu_compute_efficiency": round(self.cpu_compute_efficiency, 4),
            "prompt_per_token_seconds": round(self.prompt_per_token_seconds, 6),
            "gpu_decode_efficiency": {
                k: round(v, 4) for k, v in self.gpu_decode_efficiency.items()
            },
            "gpu_compute_efficiency": {
                k: round(v, 4) for k, v in self.gpu_compute_efficiency.items()
            },
            "backend_overhead_bytes": dict(self.backend_overhead_bytes),
            "measured_overhead_backends": list(self.measured_overhead_kinds),
        }


#: The defaults, used until this computer has measured runs.
#:
#: CPU figures were fitted on the development machine (an AMD EPYC "Zen 1" VM, 2 vCPUs,
#: AVX2, measured copy bandwidth 29 GB/s, llama-cpp-python 0.3.36 built with
#: GGML_NATIVE=OFF) from bare llama-cpp-python runs of Gemma 3 270M Q4_K_M and sparse Llama
#: 3.2 3B and Llama 3.1 8B shapes with Q4_K weights at 1 and 2 threads; every run is
#: predicted within 4% (`tests/bench/bench_speed.py` prints the table). That CPU is compute
#: bound (12 GB/s of weights at 2 threads), so the memory term there was not reached; its
#: efficiency, 0.83, is from an earlier development VM (Sapphire Rapids, AVX-512) that
#: decoded a 7B Q4_K_M at 26 GB/s of a measured 31.5 GB/s. Prompt: 3.5 ms per token plus
#: FLOPs at 0.28 of the assumed peak (32 FLOPs per cycle at 3 GHz per core) predicts the
#: three models' prompt speeds at 2 threads (148, 9.5 and 4.0 tok/s) within 8%.
#: GPU efficiencies and overheads are not measured anywhere yet: they are the common
#: observation that llama.cpp reaches 60-80% of peak VRAM bandwidth, and about 300 MiB of
#: CUDA context and cuBLAS workspace; a run with NVML on the person's GPU replaces them.
DEFAULT_FIGURES = SpeedFigures(
    per_token_seconds=0.0014,
    cpu_decode_efficiency=0.83,
    cpu_thread_bytes_per_s=6.8e9,
    cpu_thread_scaling=0.82,
    cpu_compute_efficiency=0.28,
    prompt_per_token_seconds=0.0035,
    gpu_decode_efficiency={
        "cuda": 0.75,
        "metal": 0.70,
        "vulkan": 0.65,
        "rocm": 0.65,
        "sycl": 0.55,
        "gpu": 0.65,
    },
    gpu_compute_efficiency={
        "cuda": 0.45,
        "metal": 0.40,
        "vulkan": 0.35,
        "rocm": 0.35,
        "sycl": 0.30,
        "gpu": 0.35,
    },
    backend_overhead_bytes={
        "cuda": 300 * MIB,
        "vulkan": 150 * MIB,
        "metal": 0,
        "rocm": 300 * MIB,
        "sycl": 300 * MIB,
        "gpu": 300 * MIB,
    },
)

#: How many runs' worth the defaults weigh in a fit.
PRIOR_WEIGHT_RUNS = 1.0
#: Spread of the prior on each figure, in natural-log units (a factor of about 2).
PRIOR_SIGMA = math.log(2.0)
#: Residuals (log predicted/measured) beyond this count linearly, not squared (Huber): runs
#: repeat within a few percent, so a run 5% off is already suspect.
HUBER_DELTA = 0.05
#: The prior's stiffness: a step of PRIOR_SIGMA costs as much as PRIOR_WEIGHT_RUNS runs that
#: each miss by this much. Small, so that runs decide whatever they can tell apart, and the
#: prior only settles what they cannot (two figures that one model size cannot separate).
PRIOR_MISS = 0.02


@dataclass(frozen=True)
class DeviceWork:
    """What one device does for one token, as the estimator placed the model."""

    kind: str  # "cpu" or a GPU backend
    decode_bytes: float  # bytes read per decoded token (active weights + KV cache)
    bandwidth_bytes_per_s: float  # measured (CPU) or specified (GPU) memory bandwidth
    prompt_flops: float = 0.0  # FLOPs per prompt token
    peak_flops: float = 0.0  # the device's peak FLOPS at the threads in use (0: unknown)
    #: Seconds per decoded token that do not scale with bytes: another computer's device
    #: (llama.cpp RPC) costs its link's round trip and the split's own overhead.
    fixed_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "decode_bytes": int(self.decode_bytes),
            "bandwidth_bytes_per_s": int(self.bandwidth_bytes_per_s),
            "prompt_flops": float(self.prompt_flops),
            "peak_flops": float(self.peak_flops),
            **({"fixed_seconds": self.fixed_seconds} if self.fixed_seconds else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceWork:
        return cls(
            kind=str(data["kind"]),
            decode_bytes=float(data["decode_bytes"]),
            bandwidth_bytes_per_s=float(data["bandwidth_bytes_per_s"]),
            prompt_flops=float(data.get("prompt_flops", 0.0)),
            peak_flops=float(data.get("peak_flops", 0.0)),
            fixed_seconds=float(data.get("fixed_seconds", 0.0)),
        )


def _device_rate(work: DeviceWork, threads: int, figures: SpeedFigures) -> float:
    if work.kind == "cpu":
        memory = figures.cpu_decode_efficiency * work.bandwidth_bytes_per_s
        scale: float = math.pow(max(threads, 1), figures.cpu_thread_scaling)
        return min(scale * figures.cpu_thread_bytes_per_s, memory)
    return figures.gpu_efficiency(work.kind) * work.bandwidth_bytes_per_s


def decode_seconds(work: Sequence[DeviceWork], threads: int, figures: SpeedFigures) -> float:
    """Predicted seconds per decoded token."""
    seconds = figures.per_token_seconds
    for part in work:
        seconds += part.fixed_seconds
        if part.decode_bytes > 0:
            seconds += part.decode_bytes / _device_rate(part, threads, figures)
    return seconds


def prompt_seconds(work: Sequence[DeviceWork], figures: SpeedFigures) -> float | None:
    """Predicted seconds per prompt token; None when a device's FLOPS are unknown."""
    seconds = 0.0
    for part in work:
        if part.prompt_flops <= 0:
            continue
        if part.peak_flops <= 0:
            return None
        eff = (
            figures.cpu_compute_efficiency if part.kind == "cpu" else figures.gpu_compute(part.kind)
        )
        seconds += part.prompt_flops / (eff * part.peak_flops)
    return seconds + figures.prompt_per_token_seconds if seconds else None


@dataclass(frozen=True)
class SpeedRun:
    """One measured run: what the estimator said the devices would do, and what they did."""

    work: tuple[DeviceWork, ...]
    threads: int
    decode_tokens_per_s: float | None
    prompt_tokens_per_s: float | None = None
    #: Per-process VRAM measured after load less llama.cpp's GPU buffers, per backend (NVML).
    gpu_overhead_bytes: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "work": [w.to_dict() for w in self.work],
            "threads": self.threads,
            "decode_tokens_per_s": self.decode_tokens_per_s,
            "prompt_tokens_per_s": self.prompt_tokens_per_s,
            "gpu_overhead_bytes": dict(self.gpu_overhead_bytes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpeedRun:
        def rate(key: str) -> float | None:
            value = data.get(key)
            return float(value) if value is not None else None

        return cls(
            work=tuple(DeviceWork.from_dict(w) for w in data.get("work", [])),
            threads=int(data["threads"]),
            decode_tokens_per_s=rate("decode_tokens_per_s"),
            prompt_tokens_per_s=rate("prompt_tokens_per_s"),
            gpu_overhead_bytes={
                str(k): int(v) for k, v in data.get("gpu_overhead_bytes", {}).items()
            },
        )


def fit(runs: Sequence[SpeedRun], prior: SpeedFigures = DEFAULT_FIGURES) -> SpeedFigures:
    """Figures for this computer from its measured runs (the prior when there are none)."""
    decode_runs = [r for r in runs if r.decode_tokens_per_s and r.decode_tokens_per_s > 0]
    figures = prior
    if decode_runs:
        figures = _fit_decode(decode_runs, prior)
    figures = _fit_prompt(runs, figures, prior)
    figures = _fit_overheads(runs, figures)
    return replace(figures, runs=len(runs))


# The decode figures fitted, as (name, getter, setter) on the log scale.
def _decode_params(prior: SpeedFigures, runs: Sequence[SpeedRun]) -> list[str]:
    names = ["per_token_seconds"]
    if any(any(w.kind == "cpu" and w.decode_bytes > 0 for w in r.work) for r in runs):
        names += ["cpu_decode_efficiency", "cpu_thread_bytes_per_s", "cpu_thread_scaling"]
    kinds = sorted({w.kind for r in runs for w in r.work if w.kind != "cpu" and w.decode_bytes})
    names += [f"gpu:{k}" for k in kinds]
    return names


def _get(figures: SpeedFigures, name: str) -> float:
    if name.startswith("gpu:"):
        return figures.gpu_efficiency(name[4:])
    value: float = getattr(figures, name)
    return float(value)


def _set(figures: SpeedFigures, name: str, value: float) -> SpeedFigures:
    if name.startswith("gpu:"):
        gpus = dict(figures.gpu_decode_efficiency)
        gpus[name[4:]] = value
        return replace(figures, gpu_decode_efficiency=gpus)
    changes: dict[str, Any] = {name: value}
    return replace(figures, **changes)


def _huber(x: float) -> float:
    a = abs(x)
    return 0.5 * a * a if a <= HUBER_DELTA else HUBER_DELTA * (a - 0.5 * HUBER_DELTA)


def _decode_loss(figures: SpeedFigures, runs: Sequence[SpeedRun], prior: SpeedFigures) -> float:
    loss = 0.0
    for run in runs:
        predicted = decode_seconds(run.work, run.threads, figures)
        measured = 1.0 / float(run.decode_tokens_per_s or 1.0)
        loss += _huber(math.log(predicted / measured))
    # The prior: a Gaussian on each figure's log (see PRIOR_MISS).
    for name in _decode_params(prior, runs):
        step = math.log(_get(figures, name) / _get(prior, name)) / PRIOR_SIGMA
        loss += PRIOR_WEIGHT_RUNS * 0.5 * step * step * PRIOR_MISS**2
    return loss


#: Figures that cannot exceed 1: no device beats its own bandwidth, no thread adds more than
#: a whole thread's work.
_AT_MOST_ONE = frozenset({"cpu_decode_efficiency", "cpu_thread_scaling"})


def _fit_decode(runs: Sequence[SpeedRun], prior: SpeedFigures) -> SpeedFigures:
    """Nelder-Mead on the log of each fitted figure, from the prior (a handful of parameters
    and at most a few hundred runs: a simplex search is plenty, with no numerical library)."""
    names = _decode_params(prior, runs)
    start = [math.log(_get(prior, name)) for name in names]

    def figures_at(point: Sequence[float]) -> SpeedFigures:
        figures = prior
        for name, value in zip(names, point, strict=True):
            real = math.exp(value)
            if name in _AT_MOST_ONE or name.startswith("gpu:"):
                real = min(real, 1.0)
            figures = _set(figures, name, real)
        return figures

    def loss(point: Sequence[float]) -> float:
        return _decode_loss(figures_at(point), runs, prior)

    best = _nelder_mead(loss, start, step=0.5)
    best = _nelder_mead(loss, best, step=0.05)  # a restart: simplexes can collapse early
    return figures_at(best)


def _nelder_mead(
    f: Any, start: Sequence[float], *, step: float, iterations: int = 600
) -> list[float]:
    """Minimise f from `start` (the textbook simplex method, standard coefficients)."""
    n = len(start)
    simplex = [list(start)]
    for i in range(n):
        point = list(start)
        point[i] += step
        simplex.append(point)
    values = [f(p) for p in simplex]
    for _ in range(iterations):
        order = sorted(range(n + 1), key=values.__getitem__)
        simplex = [simplex[i] for i in order]
        values = [values[i] for i in order]
        if values[-1] - values[0] < 1e-14:
            break
        centroid = [sum(p[k] for p in simplex[:-1]) / n for k in range(n)]
        worst = simplex[-1]
        reflected = [c + (c - w) for c, w in zip(centroid, worst, strict=True)]
        r_value = f(reflected)
        if r_value < values[0]:
            expanded = [c + 2 * (c - w) for c, w in zip(centroid, worst, strict=True)]
            e_value = f(expanded)
            simplex[-1], values[-1] = (
                (expanded, e_value) if e_value < r_value else (reflected, r_value)
            )
        elif r_value < values[-2]:
            simplex[-1], values[-1] = reflected, r_value
        else:
            contracted = [c + 0.5 * (w - c) for c, w in zip(centroid, worst, strict=True)]
            c_value = f(contracted)
            if c_value < values[-1]:
                simplex[-1], values[-1] = contracted, c_value
            else:  # shrink towards the best point
                best = simplex[0]
                simplex = [best] + [
                    [b + 0.5 * (x - b) for b, x in zip(best, p, strict=True)] for p in simplex[1:]
                ]
                values = [values[0]] + [f(p) for p in simplex[1:]]
    return simplex[min(range(n + 1), key=values.__getitem__)]


def _fit_prompt(
    runs: Sequence[SpeedRun], figures: SpeedFigures, prior: SpeedFigures
) -> SpeedFigures:
    """The prompt's fixed cost per token and the compute efficiency of each device kind
    that carried a run's prompt: Nelder-Mead on their logs, as for decoding."""
    prompt_runs = [
        r
        for r in runs
        if r.prompt_tokens_per_s and r.prompt_tokens_per_s > 0 and prompt_seconds(r.work, prior)
    ]
    if not prompt_runs:
        return figures
    kinds = sorted({max(r.work, key=lambda w: w.prompt_flops).kind for r in prompt_runs})
    names = ["prompt_per_token_seconds", *kinds]

    def value(f: SpeedFigures, name: str) -> float:
        if name == "prompt_per_token_seconds":
            return f.prompt_per_token_seconds
        return f.cpu_compute_efficiency if name == "cpu" else f.gpu_compute(name)

    def figures_at(point: Sequence[float]) -> SpeedFigures:
        out = figures
        gpus = dict(out.gpu_compute_efficiency)
        for name, logged in zip(names, point, strict=True):
            real = math.exp(logged)
            if name == "prompt_per_token_seconds":
                out = replace(out, prompt_per_token_seconds=real)
            elif name == "cpu":
                out = replace(out, cpu_compute_efficiency=min(real, 1.0))
            else:
                gpus[name] = min(real, 1.0)
        return replace(out, gpu_compute_efficiency=gpus)

    def loss(point: Sequence[float]) -> float:
        candidate = figures_at(point)
        total = 0.0
        for run in prompt_runs:
            predicted = prompt_seconds(run.work, candidate) or 1.0
            total += _huber(math.log(predicted * float(run.prompt_tokens_per_s or 1.0)))
        for name, logged in zip(names, point, strict=True):
            step = (logged - math.log(value(prior, name))) / PRIOR_SIGMA
            total += PRIOR_WEIGHT_RUNS * 0.5 * step * step * PRIOR_MISS**2
        return total

    start = [math.log(max(value(prior, name), 1e-6)) for name in names]
    best = _nelder_mead(loss, start, step=0.5)
    best = _nelder_mead(loss, best, step=0.05)
    return figures_at(best)


def _fit_overheads(runs: Sequence[SpeedRun], figures: SpeedFigures) -> SpeedFigures:
    """A backend's real overhead on this machine: the median of what NVML measured beyond
    llama.cpp's buffers (only from runs that measured it)."""
    seen: dict[str, list[int]] = {}
    for run in runs:
        for kind, value in run.gpu_overhead_bytes.items():
            seen.setdefault(kind, []).append(max(int(value), 0))
    if not seen:
        return figures
    overheads = dict(figures.backend_overhead_bytes)
    for kind, values in seen.items():
        overheads[kind] = int(statistics.median(values))
    return replace(
        figures,
        backend_overhead_bytes=overheads,
        measured_overhead_kinds=tuple(sorted(seen)),
    )
