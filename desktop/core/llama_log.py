"""Parse what llama.cpp says it allocated, from its own log lines.

llama.cpp reports every buffer it allocates while loading a model, one line each::

    load_tensors:   CPU_Mapped model buffer size =   235.16 MiB
    load_tensors:   CPU_REPACK model buffer size =    12.66 MiB
    llama_context:        CPU  output buffer size =     1.00 MiB
    llama_kv_cache:        CPU KV buffer size =    12.00 MiB
    llama_context:        CPU compute buffer size =   514.50 MiB
    llama_memory_recurrent:        CPU RS buffer size =     0.16 MiB

These lines are the ground truth the estimator is checked against: the worker
sends them to the app after a load, and the accuracy tests compare them with the
plan. Sizes are printed in MiB with two decimals, so each parsed value is exact
to +-0.005 MiB (about 5 KiB).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from desktop.core.units import MIB

_BUFFER_RE = re.compile(
    r"^(?P<source>[A-Za-z_]+):\s+(?P<device>\S+)\s+(?P<kind>model|KV|RS|output|compute)"
    r" buffer size =\s+(?P<mib>[0-9]+(?:\.[0-9]+)?) MiB",
)
_RPC_BUFFER_RE = re.compile(r"^RPC(?P<index>\d+)\[(?P<endpoint>[^\]]+)\]$")
_OFFLOADED_RE = re.compile(r"offloaded (?P<done>\d+)/(?P<total>\d+) layers to GPU")
_N_CTX_RE = re.compile(r"^llama_context: n_ctx\s+=\s+(?P<n>\d+)", re.MULTILINE)

#: llama.cpp's word for the buffer -> the component name the estimator uses.
_KIND_NAMES = {
    "model": "weights",
    "KV": "kv",
    "RS": "recurrent",
    "output": "output",
    "compute": "compute",
}


@dataclass(frozen=True)
class BufferLine:
    """One buffer llama.cpp allocated: on which backend buffer type, for what, how big."""

    device: (
        str  # llama.cpp buffer type name: "CPU", "CPU_Mapped", "CPU_REPACK", "CUDA0", "CUDA_Host"
    )
    component: str  # "weights", "kv", "recurrent", "output" or "compute"
    size_bytes: int  # from the printed MiB figure, rounded to whole bytes

    @property
    def endpoint(self) -> str | None:
        """The RPC server ("host:port") of another computer's buffer: llama.cpp names those
        "RPC<device on the server>[host:port]", so two servers' buffers are both "RPC0[...]"."""
        return rpc_endpoint(self.device)

    @property
    def device_key(self) -> str:
        """Which device holds the buffer: an RPC server's endpoint, "CPU" for every CPU
        buffer type (CPU, CPU_Mapped, CPU_REPACK), else the buffer type's name."""
        return buffer_device(self.device)


def rpc_endpoint(buffer_type: str) -> str | None:
    """ "127.0.0.1:50052" for "RPC0[127.0.0.1:50052]"; None for a local buffer type."""
    match = _RPC_BUFFER_RE.match(buffer_type)
    return match["endpoint"] if match else None


def buffer_device(buffer_type: str) -> str:
    """The device a llama.cpp buffer type lives on (see :attr:`BufferLine.device_key`)."""
    endpoint = rpc_endpoint(buffer_type)
    if endpoint is not None:
        return endpoint
    return "CPU" if buffer_type.upper().startswith("CPU") else buffer_type


@dataclass(frozen=True)
class LlamaLoadReport:
    """Everything the load log says about memory, in bytes."""

    buffers: tuple[BufferLine, ...]
    offloaded_layers: int | None  # "offloaded N/M layers to GPU": N
    offloadable_layers: int | None  # M (block count + 1 for the output layer)
    n_ctx: int | None

    def total(self, component: str | None = None, device_prefix: str | None = None) -> int:
        """Sum of buffer sizes, for one component and/or devices starting with a prefix."""
        return sum(
            b.size_bytes
            for b in self.buffers
            if (component is None or b.component == component)
            and (device_prefix is None or b.device.startswith(device_prefix))
        )

    def by_device_key(self) -> dict[str, dict[str, int]]:
        """{device (an RPC server's endpoint, "CPU", "CUDA0"): {component: bytes}}."""
        out: dict[str, dict[str, int]] = {}
        for b in self.buffers:
            per = out.setdefault(b.device_key, {})
            per[b.component] = per.get(b.component, 0) + b.size_bytes
        return out

    def by_device(self) -> dict[str, dict[str, int]]:
        """{device: {component: bytes}}, adding up repeated lines (one KV line per cache)."""
        out: dict[str, dict[str, int]] = {}
        for b in self.buffers:
            per = out.setdefault(b.device, {})
            per[b.component] = per.get(b.component, 0) + b.size_bytes
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            "buffers": [
                {"device": b.device, "component": b.component, "size_bytes": b.size_bytes}
                | ({"endpoint": b.endpoint} if b.endpoint else {})
                for b in self.buffers
            ],
            "offloaded_layers": self.offloaded_layers,
            "offloadable_layers": self.offloadable_layers,
            "n_ctx": self.n_ctx,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> LlamaLoadReport:
        raw = data.get("buffers", [])
        buffers = tuple(
            BufferLine(str(b["device"]), str(b["component"]), int(b["size_bytes"]))
            for b in (raw if isinstance(raw, list) else [])
        )

        def opt(key: str) -> int | None:
            v = data.get(key)
            return int(v) if isinstance(v, int) else None

        return cls(buffers, opt("offloaded_layers"), opt("offloadable_layers"), opt("n_ctx"))


def parse_load_log(text: str) -> LlamaLoadReport:
    """Read the buffer sizes, the offload count and n_ctx out of llama.cpp's load log."""
    buffers: list[BufferLine] = []
    offloaded: int | None = None
    offloadable: int | None = None
    for line in text.splitlines():
        match = _BUFFER_RE.match(line.strip())
        if match:
            size = round(float(match["mib"]) * MIB)
            buffers.append(BufferLine(match["device"], _KIND_NAMES[match["kind"]], size))
            continue
        off = _OFFLOADED_RE.search(line)
        if off:
            offloaded, offloadable = int(off["done"]), int(off["total"])
    n_ctx_match = _N_CTX_RE.search(text)
    n_ctx = int(n_ctx_match["n"]) if n_ctx_match else None
    return LlamaLoadReport(tuple(buffers), offloaded, offloadable, n_ctx)
