"""One model load and the plan it was made from: the request the engine client owns.

The load controls build a :class:`LoadRequest` when the person presses Load: the worker's
request (:class:`~desktop.engine.protocol.Load`) together with the estimator's settings, the
plan they saw, the model's spec, the table row and the devices it was planned for.
:meth:`EngineClient.load <desktop.services.engine_client.EngineClient.load>` remembers the
request of the current load (``current_load``) and announces it (``loadStarted``), so every
reader takes the plan from that one request: the prediction beside the live plots, the run
recorder's expectation, the load controls' "estimate vs. llama.cpp" table. A reload with
fewer GPU layers (:meth:`LoadRequest.with_gpu_layers`) re-plans the same request.

No Qt: plain frozen dataclasses over the core's types and the worker protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from desktop.core.estimate import Device, Plan, Settings, estimate
from desktop.core.modelspec import ModelSpec
from desktop.core.rows import ModelRow
from desktop.engine import protocol as p

__all__ = ["LoadRequest"]


@dataclass(frozen=True)
class LoadRequest:
    """A load for the worker and, when it was planned, everything the plan was made from."""

    load: p.Load  # what the worker is asked (its id names this load)
    settings: Settings | None = None  # the estimator's settings: layers and threads concrete
    plan: Plan | None = None  # the plan for exactly these settings (None: not planned)
    spec: ModelSpec | None = None
    row: ModelRow | None = None  # the table row the load controls showed
    devices: tuple[Device, ...] = ()  # what the plan was made for

    @classmethod
    def planned(
        cls,
        path: str | Path,
        settings: Settings,
        spec: ModelSpec,
        devices: Sequence[Device],
        row: ModelRow | None = None,
    ) -> LoadRequest:
        """The request for ``settings`` (a concrete layer count), with its plan."""
        load = p.Load.from_settings(str(path), settings, settings.n_threads)
        servers = list(dict.fromkeys(d.endpoint for d in devices if d.endpoint))
        if servers:  # other computers' devices (RPC): the worker registers them first
            load = replace(load, rpc_servers=servers)
        plan = estimate(spec, settings, devices) if devices else None
        return cls(load, settings, plan, spec, row, tuple(devices))

    @property
    def path(self) -> str:
        return self.load.path

    @property
    def n_threads(self) -> int | None:
        """CPU threads asked for; None lets llama.cpp choose."""
        return self.load.n_threads

    @property
    def n_gpu_layers(self) -> int:
        return self.load.n_gpu_layers

    @property
    def model_name(self) -> str:
        """The name to show for the model: the row's name and quantization, else the file."""
        if self.row is not None:
            return f"{self.row.name} {self.row.quant}"
        return Path(self.path).stem

    @property
    def model_bytes(self) -> int:
        """The size of the file (0 when the row does not say)."""
        return (self.row.file_size_bytes or 0) if self.row is not None else 0

    def with_gpu_layers(self, n_gpu_layers: int) -> LoadRequest:
        """The same load with another GPU layer count (a new request id), planned again."""
        load = replace(self.load, n_gpu_layers=n_gpu_layers, id=p.new_request_id())
        if self.settings is None or self.spec is None:
            return replace(self, load=load, plan=None)
        settings = replace(self.settings, n_gpu_layers=n_gpu_layers)
        plan = estimate(self.spec, settings, self.devices) if self.devices else None
        return replace(self, load=load, settings=settings, plan=plan)
