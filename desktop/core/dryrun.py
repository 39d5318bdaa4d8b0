"""llama.cpp as the referee: its own dry run of a load, read into the plan's terms.

:func:`dry_run` starts ``desktop.engine.dryrun`` in a child process (the core never imports
llama_cpp) with the settings the person chose. llama.cpp loads the metadata with
``no_alloc``, decides each layer's device, sizes the KV cache and reserves the compute graph,
reading no tensor data. What it printed becomes a :class:`DryRun`:

* the layer placement ("layer 12 assigned to device CUDA0") and "offloaded N/M layers";
* the KV cache of each cache ("llama_kv_cache: size = 60.00 MiB (4096 cells, 15 layers")
  split over the devices its layers are on ("layer 5: dev = CPU"); the compute buffer per
  device and the output buffer, exactly as a real load prints them;
* weights: llama.cpp prints dummy 0.00 MiB model buffers in a dry run, so the weights come
  from the GGUF header's tensor sizes placed as llama.cpp placed the layers (the plan's
  weight buffers, when its layer count agrees).

A file llama.cpp refuses (an error, or an abort that ends the child) becomes a DryRun with
``ok=False`` and a sentence that quotes llama.cpp's own reason. Results are cached on disk by
file identity (path, size, modification time), settings and llama.cpp build, so a second look
at the same row costs nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from desktop.core import crash
from desktop.core.children import DRY_RUN_MARKER, run_engine
from desktop.core.llama_log import BufferLine, LlamaLoadReport, parse_load_log
from desktop.core.units import MIB

if TYPE_CHECKING:
    from desktop.core.estimate import Plan
    from desktop.core.hardware import BackendInfo

__all__ = [
    "DryRun",
    "build_key",
    "dry_run",
    "dry_run_request",
    "parse_dry_run_log",
    "with_header_weights",
]

_MODULE = "desktop.engine.dryrun"
_FROZEN_FLAG = "--dry-run"
#: Bumped when the parse changes, so cached results from an older parse are not reused.
_CACHE_FORMAT = 1

_ASSIGNED_RE = re.compile(r"layer\s+(?P<il>\d+) assigned to device (?P<dev>[^,\s]+)")
_KV_DEV_RE = re.compile(r"llama_kv_cache: layer\s+(?P<il>\d+): dev = (?P<dev>\S+)")
_KV_SIZE_RE = re.compile(
    r"llama_kv_cache: size =\s+(?P<mib>[0-9.]+) MiB \(\s*(?P<cells>\d+) cells,\s+(?P<n>\d+) layers"
)
_ERROR_RES = (
    re.compile(r"GGML_ASSERT\((?P<what>.*)\) failed"),
    re.compile(r"error loading model: (?P<what>.+)"),
    re.compile(r"llama_model_load: error (?P<what>.+)"),
    re.compile(r"(?:^|\s)error: (?P<what>.+)"),
    re.compile(r"failed to (?P<what>.+)"),
)


@dataclass(frozen=True)
class DryRun:
    """What llama.cpp's dry run said about one load."""

    ok: bool
    llama_cpp_version: str
    seconds: float  # how long the dry run took in the child
    reason: str | None = None  # a sentence for a person when llama.cpp refused the file
    buffers: tuple[BufferLine, ...] = ()  # KV (per device), compute, output: llama.cpp's own
    layer_devices: tuple[str, ...] = ()  # device of block 0, 1, ..., then the output layer
    offloaded_layers: int | None = None
    offloadable_layers: int | None = None
    n_ctx: int | None = None
    cached: bool = field(default=False, compare=False)

    def report(self) -> LlamaLoadReport:
        return LlamaLoadReport(
            self.buffers, self.offloaded_layers, self.offloadable_layers, self.n_ctx
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "llama_cpp_version": self.llama_cpp_version,
            "seconds": self.seconds,
            "reason": self.reason,
            "buffers": [
                {"device": b.device, "component": b.component, "size_bytes": b.size_bytes}
                for b in self.buffers
            ],
            "layer_devices": list(self.layer_devices),
            "offloaded_layers": self.offloaded_layers,
            "offloadable_layers": self.offloadable_layers,
            "n_ctx": self.n_ctx,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, cached: bool = False) -> DryRun:
        def opt(key: str) -> int | None:
            value = data.get(key)
            return int(value) if isinstance(value, int) else None

        return cls(
            ok=bool(data["ok"]),
            llama_cpp_version=str(data.get("llama_cpp_version", "unknown")),
            seconds=float(data.get("seconds", 0.0)),
            reason=data.get("reason") if isinstance(data.get("reason"), str) else None,
            buffers=tuple(
                BufferLine(str(b["device"]), str(b["component"]), int(b["size_bytes"]))
                for b in data.get("buffers", [])
            ),
            layer_devices=tuple(str(d) for d in data.get("layer_devices", [])),
            offloaded_layers=opt("offloaded_layers"),
            offloadable_layers=opt("offloadable_layers"),
            n_ctx=opt("n_ctx"),
            cached=cached,
        )


def parse_dry_run_log(text: str) -> tuple[tuple[BufferLine, ...], tuple[str, ...], LlamaLoadReport]:
    """(llama.cpp's buffers, each block's device, the plain parse) from a dry run's log.

    The model and KV buffer lines of a dry run say 0.00 MiB (dummy buffers) and are dropped;
    each KV cache's "size =" line is split over the devices of its layers, in proportion to
    the layer count (the layers of one cache have the same size in every architecture the
    estimator models; a split by layer count is exact there).
    """
    plain = parse_load_log(text)
    layers: dict[int, str] = {}
    kv_devices: list[str] = []  # devices of the cache being read, one entry per layer
    kv_per_device: dict[str, int] = {}
    for line in text.splitlines():
        assigned = _ASSIGNED_RE.search(line)
        if assigned:
            layers[int(assigned["il"])] = assigned["dev"]
            continue
        kv_dev = _KV_DEV_RE.search(line)
        if kv_dev:
            kv_devices.append(kv_dev["dev"])
            continue
        size = _KV_SIZE_RE.search(line)
        if size:
            total = round(float(size["mib"]) * MIB)
            n = len(kv_devices) or int(size["n"]) or 1
            counts: dict[str, int] = {}
            for dev in kv_devices or ["CPU"]:
                counts[dev] = counts.get(dev, 0) + 1
            for dev, count in counts.items():
                kv_per_device[dev] = kv_per_device.get(dev, 0) + total * count // n
            kv_devices = []
    buffers = [b for b in plain.buffers if b.component in ("compute", "output")]
    buffers += [BufferLine(dev, "kv", size) for dev, size in kv_per_device.items() if size]
    buffers += [b for b in plain.buffers if b.component == "recurrent" and b.size_bytes]
    ordered = tuple(layers[i] for i in sorted(layers))
    return tuple(buffers), ordered, plain


def refusal_reason(text: str) -> str | None:
    """llama.cpp's own reason from its log or stderr: the most specific kind of error line
    (a failed GGML_ASSERT, then "error loading model: ...", then any error), the last one of
    that kind; the generic "failed to load model" that follows them only when nothing else."""
    lines = text.splitlines()
    for index, pattern in enumerate(_ERROR_RES):
        found = [m for m in (pattern.search(line) for line in lines) if m]
        if found:
            what = found[-1]["what"].strip().rstrip(".")
            return f"GGML_ASSERT({what}) failed" if index == 0 else what
    return None


def _sentence(reason: str | None, fallback: str) -> str:
    if reason:
        return f"llama.cpp can't load this file: {reason}."
    return f"llama.cpp can't load this file ({fallback})."


def _cache_key(path: Path, request: Mapping[str, Any], build: str) -> str:
    stat = path.stat()
    identity = [str(path.resolve()), stat.st_size, stat.st_mtime_ns, build, _CACHE_FORMAT]
    blob = json.dumps([identity, dict(request)], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def dry_run(
    path: Path,
    request: Mapping[str, Any],
    *,
    build: str,
    cache_dir: Path | None = None,
    timeout: float = 120.0,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
) -> DryRun:
    """llama.cpp's dry run of loading `path` with `request` (desktop.engine.dryrun's keys:
    n_ctx, n_gpu_layers, kv_type, flash_attn, n_batch, n_ubatch, swa_full, offload_kqv).

    ``build`` names the llama.cpp build (its version and backends) for the cache key.
    Never raises for a bad file, a crash or a hang: those are a DryRun with ``ok=False``.
    """
    key = None
    if cache_dir is not None:
        with contextlib.suppress(OSError):
            key = _cache_key(path, request, build)
            cached = _read_cache(cache_dir, key)
            if cached is not None:
                return cached
    result = _run_child(path, request, timeout, python, env)
    if cache_dir is not None and key is not None and result.reason != _TIMEOUT_REASON:
        _write_cache(cache_dir, key, result)
    return result


_TIMEOUT_REASON = "llama.cpp's dry run did not finish in time; the estimate is from the header."


def _run_child(
    path: Path,
    request: Mapping[str, Any],
    timeout: float,
    python: str,
    env: Mapping[str, str] | None,
) -> DryRun:
    body = dict(request, path=str(path))
    try:
        done = run_engine(
            _MODULE,
            _FROZEN_FLAG,
            [json.dumps(body)],
            marker=DRY_RUN_MARKER,
            timeout=timeout,
            python=python,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return DryRun(
            ok=False, llama_cpp_version="unknown", seconds=timeout, reason=_TIMEOUT_REASON
        )
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return DryRun(
            ok=False,
            llama_cpp_version="unknown",
            seconds=0.0,
            reason=f"Could not start llama.cpp's dry run ({exc}).",
        )
    answer = done.answer
    if answer is None:  # the child died: an abort, an illegal instruction, the OOM killer
        cause = crash.returncode_cause(done.returncode)
        reason = refusal_reason(done.stderr)
        what = {
            crash.ABORTED: "llama.cpp aborted",
            crash.ILLEGAL_INSTRUCTION: "this llama.cpp build uses instructions this CPU lacks",
            crash.SEGFAULT: "llama.cpp crashed (memory access error)",
            crash.KILLED: "the dry run was killed",
        }.get(cause.kind, f"the dry run ended with exit code {done.returncode}")
        return DryRun(
            ok=False, llama_cpp_version="unknown", seconds=0.0, reason=_sentence(reason, what)
        )
    log = str(answer.get("log", ""))
    version = str(answer.get("version", "unknown"))
    if not answer.get("ok"):
        reason = refusal_reason(log + "\n" + done.stderr)
        return DryRun(
            ok=False,
            llama_cpp_version=version,
            seconds=float(answer.get("seconds", 0.0) or 0.0),
            reason=_sentence(reason, "it gave no reason"),
        )
    buffers, layers, plain = parse_dry_run_log(log)
    return DryRun(
        ok=True,
        llama_cpp_version=version,
        seconds=float(answer.get("seconds", 0.0) or 0.0),
        buffers=buffers,
        layer_devices=layers,
        offloaded_layers=plain.offloaded_layers,
        offloadable_layers=plain.offloadable_layers,
        n_ctx=plain.n_ctx,
    )


def _read_cache(cache_dir: Path, key: str) -> DryRun | None:
    try:
        data = json.loads((cache_dir / f"{key}.json").read_text(encoding="utf-8"))
        return DryRun.from_dict(data, cached=True)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(cache_dir: Path, key: str, result: DryRun) -> None:
    with contextlib.suppress(OSError):
        cache_dir.mkdir(parents=True, exist_ok=True)
        target = cache_dir / f"{key}.json"
        partial = target.with_suffix(".part")
        partial.write_text(json.dumps(result.to_dict()), encoding="utf-8")
        partial.replace(target)


def with_header_weights(dry: DryRun, plan: Plan) -> LlamaLoadReport:
    """The dry run's report completed with the plan's weight buffers, from the header (see
    the module docstring): what a real load with these settings reports."""
    weights = tuple(
        BufferLine(b.device, b.component, b.size_bytes)
        for b in plan.buffers
        if b.component == "weights"
    )
    return LlamaLoadReport(
        (*weights, *dry.buffers), dry.offloaded_layers, dry.offloadable_layers, dry.n_ctx
    )


def build_key(backends: BackendInfo) -> str:
    """Which llama.cpp build answered ("0.3.36 cpu/cuda"): its answers are cached per build."""
    return f"{backends.llama_cpp_version} {'/'.join(backends.backends)}"


def dry_run_request(plan: Plan) -> dict[str, Any]:
    """The dry run's request for the load a Plan describes (its settings and layer count)."""
    settings = plan.settings
    servers = list(dict.fromkeys(d.endpoint for d in plan.devices if d.endpoint))
    return {
        # Other computers' RPC servers, registered by the dry run before it loads.
        **({"rpc_servers": servers} if servers else {}),
        "n_ctx": int(settings.n_ctx),
        "n_gpu_layers": int(plan.gpu_layers),
        "kv_type": str(settings.kv_type),
        "flash_attn": bool(settings.flash_attn),
        "n_batch": int(settings.n_batch),
        "n_ubatch": int(settings.n_ubatch),
        "swa_full": bool(settings.swa_full),
        "offload_kqv": bool(settings.offload_kqv),
    }
