"""The pure parts of remote devices (llama.cpp RPC): addresses, log lines, sentences, plans.

The log lines are recorded from llama-cpp-python 0.3.36 loading Gemma 3 270M over two RPC
servers on 127.0.0.1 (both servers' buffers are named "RPC0": the endpoint tells them apart).
"""

from __future__ import annotations

import pytest

from desktop.core import rpc
from desktop.core.estimate import Device, Settings, estimate, remote_devices
from desktop.core.llama_log import parse_load_log
from desktop.core.modelspec import ModelSpec, spec_from_header
from desktop.core.settings import UserSettings
from desktop.core.synth import SynthModel
from desktop.core.units import GIB

RECORDED = """\
load_tensors: offloaded 19/19 layers to GPU
load_tensors:   CPU_Mapped model buffer size =   170.00 MiB
load_tensors: RPC0[127.0.0.1:50052] model buffer size =    35.82 MiB
load_tensors: RPC0[127.0.0.1:50053] model buffer size =   199.34 MiB
llama_context:        CPU  output buffer size =     1.00 MiB
llama_kv_cache: RPC0[127.0.0.1:50052] KV buffer size =     1.00 MiB
llama_kv_cache: RPC0[127.0.0.1:50053] KV buffer size =     2.00 MiB
sched_reserve: RPC0[127.0.0.1:50052] compute buffer size =    43.54 MiB
sched_reserve: RPC0[127.0.0.1:50053] compute buffer size =   542.30 MiB
sched_reserve:        CPU compute buffer size =    30.30 MiB
"""


def test_buffers_are_told_apart_by_endpoint() -> None:
    report = parse_load_log(RECORDED)
    per = report.by_device_key()
    assert set(per) == {"CPU", "127.0.0.1:50052", "127.0.0.1:50053"}
    assert per["127.0.0.1:50053"]["weights"] == round(199.34 * 2**20)
    assert per["CPU"] == {
        "weights": round(170.0 * 2**20),
        "output": 2**20,
        "compute": round(30.30 * 2**20),
    }
    buffers = report.to_dict()["buffers"]
    assert isinstance(buffers, list)
    assert {b.get("endpoint") for b in buffers} == {None, "127.0.0.1:50052", "127.0.0.1:50053"}


@pytest.mark.parametrize(
    ("text", "endpoint"),
    [("192.168.1.20:50052", "192.168.1.20:50052"), (" box.local ", "box.local:50052")],
)
def test_endpoints(text: str, endpoint: str) -> None:
    assert rpc.parse_endpoint(text) == endpoint


@pytest.mark.parametrize("text", ["", "a b:1", "host:port", "host:0", "host:70000"])
def test_bad_endpoints_are_sentences(text: str) -> None:
    with pytest.raises(ValueError) as failed:
        rpc.parse_endpoint(text)
    assert str(failed.value).endswith(".")


def test_share_addresses() -> None:
    assert rpc.check_share_address("127.0.0.1") is None
    assert "no password" in (rpc.check_share_address("10.0.0.5") or "")
    for public in ("8.8.8.8", "0.0.0.0", "169.254.1.1"):
        with pytest.raises(ValueError):
            rpc.check_share_address(public)


def test_crash_sentences() -> None:
    tail = "ggml-rpc.cpp:600: Remote RPC server crashed or returned malformed response\n"
    sentence = rpc.crash_sentence(tail, ["127.0.0.1:50052"])
    assert sentence is not None and "127.0.0.1:50052 stopped answering" in sentence
    assert rpc.crash_sentence(tail, []) is None  # no remote device in use: not this
    old = "RPC server version mismatch: 6.0.0\nggml-rpc.cpp:550: RPC handshake failed for h:1\n"
    mismatch = rpc.crash_sentence(old, ["h:1"])
    assert mismatch is not None and "protocol 6.0.0" in mismatch
    assert rpc.crash_sentence("GGML_ASSERT(x) failed", ["h:1"]) is None


def _spec() -> ModelSpec:
    import tempfile
    from pathlib import Path

    from desktop.core.gguf import read_header_file
    from desktop.core.synth import write_header_only

    model = SynthModel(
        arch="llama", n_layer=8, n_embd=512, n_head=8, n_head_kv=8, head_dim=64, n_ff=1024,
        n_vocab=4096, weight_type="Q8_0", embd_type="Q8_0", output_type="Q8_0",
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = write_header_only(Path(tmp) / "m.gguf", model)
        return spec_from_header(read_header_file(path))


def test_plans_place_remote_devices_first_and_say_so() -> None:
    spec = _spec()
    cpu = Device("CPU", "cpu", 16 * GIB, 20 * 10**9, 1e11, physical_cores=2, logical_cores=2)
    far = [
        rpc.RemoteDevice("10.0.0.2:50052", 0, 8 * GIB, 8 * GIB, 32, 0.0005),
        rpc.RemoteDevice("10.0.0.3:50052", 0, 8 * GIB, 8 * GIB, 32, 0.0005),
    ]
    devices = [*remote_devices(far, 0), cpu]
    plan = estimate(spec, Settings(n_ctx=1024, n_gpu_layers=5, n_threads=2), devices)
    assert [d.endpoint for d in plan.devices] == ["10.0.0.2:50052", "10.0.0.3:50052", ""]
    assert [d.layers for d in plan.devices] == [3, 2, 4]  # 5 split at 50%: ceil(2.5) first
    assert plan.reason.startswith(
        "Fits across 3 computers: 4 layers here (CPU), 3 on 10.0.0.2:50052 (RPC), "
        "2 on 10.0.0.3:50052 (RPC)."
    )
    assert {b.device for b in plan.buffers} >= {"RPC0[10.0.0.2:50052]", "RPC0[10.0.0.3:50052]"}
    # The network costs time: the same layers on a remote device decode slower than here.
    alone = estimate(spec, Settings(n_ctx=1024, n_gpu_layers=0, n_threads=2), [cpu])
    assert plan.predicted_tokens_per_s is not None and alone.predicted_tokens_per_s is not None
    assert plan.predicted_tokens_per_s < alone.predicted_tokens_per_s
    dev = plan.to_dict()["devices"][0]
    assert dev["kind"] == "rpc" and dev["endpoint"] == "10.0.0.2:50052"


def test_added_computers_are_remembered() -> None:
    settings = UserSettings(rpc_servers=("10.0.0.2:50052",))
    again = UserSettings.from_dict(settings.to_dict())
    assert again.rpc_servers == ("10.0.0.2:50052",)
    assert UserSettings.from_dict({"rpc_servers": [1, "a:1", "a:1"]}).rpc_servers == ("a:1",)
