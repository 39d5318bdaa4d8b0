"""LoadRequest: a load carries the plan it was made from, and a reload re-plans it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from desktop.core.catalog import load_catalog
from desktop.core.estimate import Device, Settings, estimate
from desktop.core.rows import ModelRow, catalog_rows
from desktop.core.units import GIB
from desktop.engine import protocol as p
from desktop.services.load_request import LoadRequest

DEVICES = (
    Device("GPU", "cuda", 8 * GIB, 448 * 10**9),
    Device("CPU", "cpu", 32 * GIB, 40 * 10**9, physical_cores=4, logical_cores=8),
)


def a_row() -> ModelRow:
    row = next(r for r in catalog_rows(load_catalog()) if r.spec is not None)
    assert row.spec is not None
    return row


def test_a_planned_request_is_the_worker_load_and_the_plan_of_the_same_settings() -> None:
    row = a_row()
    assert row.spec is not None
    settings = Settings(n_ctx=2048, n_gpu_layers=10, kv_type="q8_0", flash_attn=True, n_threads=3)
    request = LoadRequest.planned("/models/x.gguf", settings, row.spec, DEVICES, row)
    assert request.load == replace(
        p.Load.from_settings("/models/x.gguf", settings, 3), id=request.load.id
    )
    assert request.path == "/models/x.gguf" and request.n_threads == 3
    assert request.n_gpu_layers == 10
    assert request.plan == estimate(row.spec, settings, DEVICES)
    assert request.model_name == f"{row.name} {row.quant}"
    assert request.model_bytes == (row.file_size_bytes or 0)


def test_fewer_gpu_layers_is_a_new_load_planned_again() -> None:
    row = a_row()
    assert row.spec is not None
    settings = Settings(n_ctx=2048, n_gpu_layers=10)
    first = LoadRequest.planned("/models/x.gguf", settings, row.spec, DEVICES, row)
    fewer = first.with_gpu_layers(4)
    assert fewer.load.id != first.load.id and fewer.n_gpu_layers == 4
    assert fewer.settings == replace(settings, n_gpu_layers=4)
    assert fewer.plan == estimate(row.spec, replace(settings, n_gpu_layers=4), DEVICES)
    assert fewer.row is row and fewer.spec is row.spec


def test_a_bare_load_has_no_plan_and_keeps_none_on_reload() -> None:
    bare = LoadRequest(p.Load(path="/models/tiny.gguf", n_gpu_layers=8, n_ctx=1024))
    assert bare.plan is None and bare.model_name == "tiny" and bare.model_bytes == 0
    again = bare.with_gpu_layers(2)
    assert again.load.n_gpu_layers == 2 and again.load.id != bare.load.id
    assert again.plan is None and again.settings is None


def test_the_engine_client_owns_the_request_of_each_load(qtbot: Any) -> None:
    """Every load, the fix button's reload included, goes through EngineClient.load, which
    keeps its request (with the plan) and announces it; the worker need not start for it."""
    from desktop.services.engine_client import EngineClient

    client = EngineClient(command=["/nonexistent/llm-workbench-worker"])
    row = a_row()
    assert row.spec is not None
    settings = Settings(n_ctx=2048, n_gpu_layers=10)
    request = LoadRequest.planned("/models/x.gguf", settings, row.spec, DEVICES, row)
    started: list[LoadRequest] = []
    client.loadStarted.connect(started.append)
    with qtbot.waitSignal(client.crashed):  # the worker cannot start: that comes later
        assert client.load(request) == request.load.id
    assert started == [request]
    assert client.current_load is request and client.last_load is request.load

    with qtbot.waitSignal(client.crashed):
        client.retry_with(4)
    fewer = started[-1]
    assert client.current_load is fewer and fewer.n_gpu_layers == 4
    assert fewer.plan == estimate(row.spec, replace(settings, n_gpu_layers=4), DEVICES)

    bare = p.Load(path="/models/tiny.gguf", n_gpu_layers=0, n_ctx=1024)
    with qtbot.waitSignal(client.crashed):
        client.load(bare)
    assert client.last_load is bare and started[-1].plan is None
