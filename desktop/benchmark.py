"""`llm-workbench bench`: load a model through the worker, measure it beside the prediction.

The same path the app uses (worker process, JSON-lines protocol), a fixed prompt of about the
requested length, greedy sampling, and a sampler thread that records the worker's peak RSS
(psutil) and VRAM (NVML, where present). The estimator's plan for the same settings is
printed beside what llama.cpp reported and what was measured.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for the hints only: the modules are imported where they are used
    from desktop.core.calibration import SpeedFigures
    from desktop.core.estimate import Device, Settings
    from desktop.core.hardware import HardwareProfile, Nvml
    from desktop.core.llama_log import LlamaLoadReport

#: Words for the fixed prompt: ordinary English, about one token each for most tokenizers.
_PROMPT_TEXT = (
    "the quick brown fox jumps over a lazy dog while seven curious cats watch from an old "
    "wooden fence near the river and count the boats that drift past in the morning light"
)
_PROMPT_WORDS = tuple(_PROMPT_TEXT.split())


def fixed_prompt(n_tokens: int) -> str:
    """A deterministic prompt of roughly `n_tokens` tokens, ending with a request."""
    words = [_PROMPT_WORDS[i % len(_PROMPT_WORDS)] for i in range(max(n_tokens - 12, 1))]
    return " ".join(words) + ". Now write a long story about what happens next."


@dataclass
class PeakSampler:
    """Samples a process's RSS and per-process VRAM every 50 ms on a thread, keeps the peaks."""

    pid: int
    interval_s: float = 0.05
    peak_rss_bytes: int = 0
    peak_vram_bytes: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> PeakSampler:
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _run(self) -> None:
        import psutil

        try:
            proc = psutil.Process(self.pid)
        except psutil.Error:
            return
        nvml = _nvml()
        while not self._stop.is_set():
            try:
                self.peak_rss_bytes = max(self.peak_rss_bytes, proc.memory_info().rss)
            except psutil.Error:
                return
            if nvml is not None:
                used = _process_vram(nvml, self.pid)
                if used is not None:
                    self.peak_vram_bytes = max(self.peak_vram_bytes or 0, used)
            self._stop.wait(self.interval_s)


def _nvml() -> Nvml | None:
    """The app's NVML wrapper over pynvml, or None without an NVIDIA driver or library."""
    from desktop.core.hardware.nvidia import Nvml, load_pynvml

    nvml = Nvml(load_pynvml())
    return nvml if nvml.init() else None  # no driver: VRAM is simply not measured


def _process_vram(nvml: Nvml, pid: int) -> int | None:
    """The process's VRAM over every GPU; None when no GPU reports it (unknown, not zero)."""
    return nvml.process_vram_total(pid)


def run_bench(
    path: Path,
    *,
    n_ctx: int,
    n_gpu_layers: int | None,
    tokens: int,
    prompt_tokens: int,
    profile: HardwareProfile,
    n_threads: int | None = None,
    figures: SpeedFigures | None = None,
    remote: Sequence[Any] = (),
) -> dict[str, Any]:
    """Load, generate, measure; the result as a JSON-able dict (raises WorkerError/Exited).

    ``figures`` are this computer's speed figures (desktop.core.runs.load_figures); the
    result's ``speed_run`` is the measurement in the form the calibration stores.
    """
    from desktop.core.calibration import SpeedRun
    from desktop.core.estimate import (
        Settings,
        compare_by_device,
        compare_with_llama,
        devices_from_profile,
        estimate,
        resolved_threads,
        speed_work,
    )
    from desktop.core.gguf import read_header_file
    from desktop.core.modelspec import spec_from_header
    from desktop.engine import protocol as p
    from desktop.engine.runner import WorkerRunner

    spec = spec_from_header(read_header_file(path))
    settings = Settings(n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, n_threads=n_threads)
    devices = devices_from_profile(profile, settings.reserve_bytes, figures, remote)
    threads = resolved_threads(devices[-1], settings)
    settings = _with_threads(settings, threads)  # the plan and the load name the same count
    plan = estimate(spec, settings, devices)
    load = p.Load.from_settings(str(path), _with_layers(settings, plan.gpu_layers), threads)
    servers = list(dict.fromkeys(d.endpoint for d in devices if d.endpoint))
    if servers:  # other computers' devices: the worker registers them before loading
        load = dataclasses.replace(load, rpc_servers=servers)
    with WorkerRunner() as runner:
        hello = runner.hello  # the context manager started the worker
        assert hello is not None and runner.pid is not None
        with PeakSampler(runner.pid) as sampler:
            started = time.perf_counter()
            loaded = runner.load(load)
            load_s = time.perf_counter() - started
            after_load_vram = sampler.peak_vram_bytes
            chat = p.Chat(
                messages=[{"role": "user", "content": fixed_prompt(prompt_tokens)}],
                temperature=0.0,
                top_k=1,
                seed=1,
                max_tokens=tokens,
            )
            done = None
            for event in runner.chat(chat):
                if isinstance(event, p.Done):
                    done = event
        runner.unload()
    report = loaded.report()
    rows = compare_with_llama(plan, report)
    by_device = compare_by_device(plan, report)
    plan_dict = plan.to_dict()
    work = speed_work(spec, settings, devices, loaded.n_gpu_layers)
    overhead = _gpu_overhead(after_load_vram, report, devices)
    speed_run = SpeedRun(
        work=tuple(work),
        threads=loaded.n_threads or threads,
        decode_tokens_per_s=done.gen_tokens_per_s if done and done.generated_tokens > 1 else None,
        prompt_tokens_per_s=done.prompt_tokens_per_s if done else None,
        gpu_overhead_bytes=overhead,
    )
    return {
        "model": spec.name or path.name,
        "file": path.name,
        "file_bytes": path.stat().st_size,
        "llama_cpp_version": hello.llama_cpp_version,
        "backends": hello.backends,
        "n_ctx": loaded.n_ctx,
        "gpu_layers": loaded.n_gpu_layers,
        "threads": speed_run.threads,
        "load_seconds": round(load_s, 2),
        "prompt_tokens": done.prompt_tokens if done else 0,
        "generated_tokens": done.generated_tokens if done else 0,
        "time_to_first_token_s": round(done.ttft_s, 3) if done else None,
        "prompt_tokens_per_s": round(done.prompt_tokens_per_s, 1) if done else None,
        "gen_tokens_per_s": round(done.gen_tokens_per_s, 2) if done else None,
        "predicted_tokens_per_s": plan_dict["predicted_tokens_per_s"],
        "predicted_prompt_tokens_per_s": plan_dict["predicted_prompt_tokens_per_s"],
        "prediction_source": devices[-1].figures.describe(),
        "peak_worker_rss_bytes": sampler.peak_rss_bytes,
        "peak_worker_vram_bytes": sampler.peak_vram_bytes,
        "estimated_cpu_total_bytes": plan.devices[-1].total_bytes,
        "llama_cpp_buffers": report.to_dict()["buffers"],
        "comparison": [
            {
                "component": r.component,
                "estimated_bytes": r.estimated_bytes,
                "reported_bytes": r.reported_bytes,
                "error_pct": round(r.error_pct, 2),
            }
            for r in rows
        ],
        "comparison_by_device": by_device,
        "devices": plan_dict["devices"],
        "speed_run": speed_run.to_dict(),
    }


def _gpu_overhead(
    vram_after_load: int | None, report: LlamaLoadReport, devices: Sequence[Device]
) -> dict[str, int]:
    """VRAM the worker holds beyond llama.cpp's GPU buffers (NVML, one NVIDIA backend):
    this machine's real backend overhead. Empty without a measurement."""
    if not vram_after_load:
        return {}
    kinds = {d.kind for d in devices if d.is_gpu}
    if kinds != {"cuda"}:
        return {}
    gpu_buffers = sum(
        b.size_bytes
        for b in report.buffers
        if b.device.upper().startswith("CUDA") and not b.device.upper().endswith("_HOST")
    )
    return {"cuda": max(int(vram_after_load) - gpu_buffers, 0)}


def _with_layers(settings: Settings, layers: int) -> Settings:
    from dataclasses import replace

    return replace(settings, n_gpu_layers=layers)


def _with_threads(settings: Settings, threads: int) -> Settings:
    from dataclasses import replace

    return replace(settings, n_threads=threads)


def bench_lines(result: dict[str, Any]) -> list[str]:
    """The bench result for a terminal."""
    from desktop.core.units import format_bytes

    def rate(v: float | None) -> str:
        return f"{v:.1f} tok/s" if v else "unknown"

    lines = [
        f"{result['model']} (llama.cpp {result['llama_cpp_version']}, "
        f"{'/'.join(result['backends'])}), context {result['n_ctx']}, "
        f"{result['gpu_layers']} GPU layers, {result['threads']} CPU threads, "
        f"loaded in {result['load_seconds']} s",
        f"prediction: {result['prediction_source']}",
        "",
        f"{'':24} {'measured':>14} {'predicted':>14}",
        f"{'generation':24} {rate(result['gen_tokens_per_s']):>14} "
        f"{rate(result['predicted_tokens_per_s']):>14}",
        f"{'prompt processing':24} {rate(result['prompt_tokens_per_s']):>14} "
        f"{rate(result['predicted_prompt_tokens_per_s']):>14}",
        f"{'time to first token':24} {result['time_to_first_token_s']!s:>12} s",
        f"{'tokens (prompt / gen)':24} {result['prompt_tokens']:>7} / {result['generated_tokens']}",
        f"{'peak worker RSS':24} {format_bytes(result['peak_worker_rss_bytes']):>14} "
        f"{format_bytes(result['estimated_cpu_total_bytes']):>14} (CPU plan total)",
    ]
    vram = result["peak_worker_vram_bytes"]
    lines.append(f"{'peak worker VRAM':24} {format_bytes(vram) if vram else 'n/a':>14}")
    lines += ["", f"{'buffer':10} {'estimated':>12} {'llama.cpp':>12} {'error':>8}"]
    for row in result["comparison"]:
        lines.append(
            f"{row['component']:10} {format_bytes(row['estimated_bytes']):>12} "
            f"{format_bytes(row['reported_bytes']):>12} {row['error_pct']:+7.2f}%"
        )
    devices = {row["device"] for row in result.get("comparison_by_device", [])}
    if len(devices) > 1:  # split over devices (other computers too): each one's share
        head = f"{'device':22} {'buffer':10} {'estimated':>12} {'llama.cpp':>12} {'error':>8}"
        lines += ["", head]
        for row in result["comparison_by_device"]:
            lines.append(
                f"{row['device']:22} {row['component']:10} "
                f"{format_bytes(row['estimated_bytes']):>12} "
                f"{format_bytes(row['reported_bytes']):>12} {row['error_pct']:+7.2f}%"
            )
    return lines
