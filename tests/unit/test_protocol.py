"""The worker protocol: every message survives encode -> decode; bad lines fail clearly."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from desktop.core.llama_log import BufferLine, LlamaLoadReport
from desktop.engine import protocol as p

text = st.text(max_size=40)
ints = st.integers(-(2**31), 2**31)
floats = st.floats(allow_nan=False, allow_infinity=False)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "user", "assistant"]), "content": text}
    ),
    max_size=4,
)

MESSAGE_STRATEGIES = {
    p.Load: st.builds(
        p.Load,
        path=text,
        n_gpu_layers=ints,
        n_ctx=ints,
        n_threads=st.none() | ints,
        flash_attn=st.booleans(),
        kv_type=st.sampled_from(["f16", "q8_0", "q4_0"]),
        use_mmap=st.booleans(),
        n_batch=ints,
        n_ubatch=ints,
        swa_full=st.booleans(),
    ),
    p.Chat: st.builds(
        p.Chat,
        messages=messages,
        temperature=floats,
        top_p=floats,
        top_k=ints,
        min_p=floats,
        repeat_penalty=floats,
        seed=st.none() | ints,
        max_tokens=st.none() | ints,
    ),
    p.Stop: st.builds(p.Stop),
    p.Unload: st.builds(p.Unload),
    p.Shutdown: st.builds(p.Shutdown),
    p.Hello: st.builds(
        p.Hello, version=ints, pid=ints, llama_cpp_version=text, backends=st.lists(text)
    ),
    p.LoadProgress: st.builds(p.LoadProgress, fraction=floats, id=text),
    p.Loaded: st.builds(
        p.Loaded,
        n_ctx=ints,
        n_gpu_layers=ints,
        n_layers=ints,
        chat_template=text,
        chat_format=text,
        buffers=st.just(LlamaLoadReport((BufferLine("CPU", "kv", 12),), None, None, 512).to_dict()),
        load_seconds=floats,
        id=text,
    ),
    p.Unloaded: st.builds(p.Unloaded, id=text),
    p.Token: st.builds(p.Token, text=text, t=floats, index=ints, id=text),
    p.Done: st.builds(
        p.Done,
        prompt_tokens=ints,
        generated_tokens=ints,
        ttft_s=floats,
        prompt_tokens_per_s=floats,
        gen_tokens_per_s=floats,
        stop_reason=st.sampled_from(["stop", "length", "user"]),
        id=text,
    ),
    p.Error: st.builds(
        p.Error,
        kind=st.sampled_from(["busy", "out_of_memory", "bad_model"]),
        message=text,
        details=st.dictionaries(text, ints | text | st.none(), max_size=3),
        id=text,
    ),
    p.Serve: st.builds(
        p.Serve,
        host=text,
        port=ints,
        api_key=st.none() | text,
        cors_origins=st.lists(text, max_size=3),
        unavailable_reason=text,
    ),
    p.StopServing: st.builds(p.StopServing),
    p.Serving: st.builds(
        p.Serving, host=text, port=ints, url=text, api_key_required=st.booleans(), id=text
    ),
    p.ServingStopped: st.builds(p.ServingStopped, reason=text, id=text),
    p.ApiRequest: st.builds(
        p.ApiRequest, client=text, endpoint=text, waiting=ints, t=floats, id=text
    ),
    p.ApiStarted: st.builds(p.ApiStarted, t=floats, id=text),
    p.ApiFinished: st.builds(
        p.ApiFinished,
        client=text,
        endpoint=text,
        status=ints,
        prompt_tokens=ints,
        generated_tokens=ints,
        ttft_s=floats,
        gen_tokens_per_s=floats,
        stop_reason=text,
        message=text,
        t=floats,
        id=text,
    ),
}


def test_every_message_type_has_a_strategy() -> None:
    assert set(MESSAGE_STRATEGIES) == set(p.REQUEST_TYPES) | set(p.EVENT_TYPES)


@given(st.one_of(*MESSAGE_STRATEGIES.values()))
def test_round_trip(message: p.Message) -> None:
    line = p.encode(message)
    assert "\n" not in line and "\u2028" not in line
    assert json.loads(line)["type"] == message.type
    assert p.decode(line) == message
    assert p.decode(line.encode("utf-8")) == message


def test_requests_get_fresh_ids() -> None:
    assert p.Stop().id != p.Stop().id


def test_loaded_gives_back_the_report() -> None:
    report = LlamaLoadReport((BufferLine("CPU_Mapped", "weights", 1000),), 0, 19, 4096)
    loaded = p.Loaded(
        n_ctx=4096,
        n_gpu_layers=0,
        n_layers=18,
        chat_template="gguf",
        chat_format="chat_template.default",
        buffers=report.to_dict(),
        load_seconds=0.5,
    )
    decoded = p.decode(p.encode(loaded))
    assert isinstance(decoded, p.Loaded)
    assert decoded.report() == report


def test_messages_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.Stop().id = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("", "not a JSON line"),
        ("{", "not a JSON line"),
        (b"\xff\xfe", "not a JSON line"),
        ("[1, 2]", "expected a JSON object"),
        ('{"id": "a"}', "unknown message type None"),
        ('{"type": "launch"}', "unknown message type 'launch'"),
        ('{"type": "load"}', "missing field(s) path"),
        ('{"type": "load", "path": 5}', "load.path: 5 is not str"),
        ('{"type": "load", "path": "m", "n_ctx": 1.5}', "load.n_ctx"),
        ('{"type": "load", "path": "m", "flash_attn": 1}', "load.flash_attn"),
        ('{"type": "load", "path": "m", "kv_type": "q5_1"}', "one of 'f16', 'q8_0', 'q4_0'"),
        ('{"type": "chat", "messages": [{"role": 1}]}', "chat.messages"),
        ('{"type": "stop", "force": true}', "unknown field(s) force"),
        ('{"type": "token", "text": "a", "t": NaN, "index": 0}', "NaN is not a number"),
    ],
)
def test_bad_lines_raise_protocol_error(line: str | bytes, says: str) -> None:
    with pytest.raises(p.ProtocolError) as failed:
        p.decode(line)
    assert says in str(failed.value)


def test_request_id_of_a_bad_line() -> None:
    assert p.request_id_of('{"type": "load", "id": "abc"}') == "abc"
    assert p.request_id_of("garbage") == ""
    assert p.request_id_of('{"id": 3}') == ""


def test_a_chat_request_defaults_to_what_the_chat_panel_shows() -> None:
    from desktop.core.sampling import DEFAULT_SAMPLING, Sampling

    defaults = p.Chat(messages=[])
    assert {name: getattr(defaults, name) for name in dataclasses.asdict(DEFAULT_SAMPLING)} == (
        dataclasses.asdict(DEFAULT_SAMPLING)
    )
    chat = p.Chat.from_sampling([{"role": "user", "content": "Hi"}], Sampling(temperature=0.2))
    assert (chat.temperature, chat.max_tokens) == (0.2, DEFAULT_SAMPLING.max_tokens)
    assert p.decode(p.encode(chat)) == chat
