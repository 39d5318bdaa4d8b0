"""The OpenAI-compatible server inside the worker: real worker, real Gemma 3 270M, a real port
on 127.0.0.1, and the official ``openai`` package as the client (raw HTTP for what a typed
client cannot send)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from desktop.engine import protocol as p
from desktop.engine.api_server import MAX_BODY_BYTES
from desktop.engine.runner import WorkerError, WorkerRunner, worker_environment
from desktop.services.api_serving import ApiServing
from desktop.services.engine_client import EngineClient

pytestmark = pytest.mark.engine

THREADS = 1  # as tests/engine/conftest.py: small shared machines
N_CTX = 1024
GREEDY: dict[str, Any] = {"temperature": 0.0, "extra_body": {"top_k": 1}, "seed": 1}
HELLO = [{"role": "user", "content": "Name three colours."}]
COUNTING = "Count with me: 1, 2, 3, 4, 5, 6, 7, 8,"


@dataclass
class Served:
    runner: WorkerRunner
    serving: p.Serving
    model: str

    @property
    def url(self) -> str:
        return self.serving.url

    def client(self, **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.url, api_key="unused", max_retries=0, timeout=300, **kwargs
        )

    def drain(self) -> None:
        """Forget the events of earlier tests."""
        while True:
            try:
                self.runner.next_event(timeout=0.05)
            except TimeoutError:
                return

    def events_until(self, done: Any, timeout: float = 300) -> list[p.Event]:
        """Events until ``done(events)`` holds."""
        events: list[p.Event] = []
        deadline = time.monotonic() + timeout
        while not done(events):
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; events so far: {[type(e).__name__ for e in events]}"
            try:
                events.append(self.runner.next_event(timeout=min(left, 1.0)))
            except TimeoutError:
                continue
        return events


@pytest.fixture(scope="module")
def served(gemma_path: Path) -> Iterator[Served]:
    with WorkerRunner() as runner:
        runner.load(p.Load(path=str(gemma_path), n_ctx=N_CTX, n_threads=THREADS))
        serving = runner.serve(p.Serve(port=0))
        yield Served(runner, serving, gemma_path.stem)


@pytest.fixture
def bare_worker() -> Iterator[WorkerRunner]:
    """A worker with no model loaded."""
    with WorkerRunner() as runner:
        yield runner


def _error(response: httpx2.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"].endswith(".")
    return dict(error)


# ---------------------------------------------------------------------- the openai client


def test_models_list(served: Served) -> None:
    client = served.client()
    models = client.models.list()
    assert [m.id for m in models.data] == [served.model]
    assert client.models.retrieve(served.model).id == served.model
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_chat_without_streaming(served: Served) -> None:
    answer = served.client().chat.completions.create(
        model=served.model, messages=HELLO, max_tokens=8, **GREEDY
    )
    assert answer.id.startswith("chatcmpl-")
    assert answer.model == served.model
    (choice,) = answer.choices
    assert choice.message.role == "assistant" and choice.message.content
    usage = answer.usage
    assert usage is not None
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    if choice.finish_reason == "length":
        assert usage.completion_tokens == 8
    else:
        assert 0 < usage.completion_tokens < 8

    # The model's own chat template, as the window's chat uses it: the same prompt tokens.
    messages = [dict(m) for m in HELLO]
    chat = p.Chat(messages=messages, temperature=0.0, top_k=1, seed=1, max_tokens=2)
    done = next(e for e in served.runner.chat(chat) if isinstance(e, p.Done))
    assert done.prompt_tokens == usage.prompt_tokens


def test_chat_streaming_with_usage(served: Served) -> None:
    stream = served.client().chat.completions.create(
        model=served.model,
        messages=HELLO,
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
        **GREEDY,
    )
    chunks = list(stream)
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert all(c.object == "chat.completion.chunk" and c.model == served.model for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    with_choices = [c for c in chunks if c.choices]
    final = with_choices[-1]
    assert final.choices[0].finish_reason in ("stop", "length")
    assert all(c.choices[0].finish_reason is None for c in with_choices[:-1])
    # usage on the last chunk (as llama.cpp's server sends it) and OpenAI's usage-only chunk
    assert final.usage is not None
    usage_only = chunks[-1]
    assert usage_only.choices == [] and usage_only.usage == final.usage
    if final.choices[0].finish_reason == "length":
        assert final.usage.completion_tokens == 12


def test_completions_and_stop_sequences(served: Served) -> None:
    client = served.client()
    ask = {"model": served.model, "prompt": COUNTING, "max_tokens": 12, **GREEDY}
    client.completions.create(**ask)  # the same cached prompt for the next two
    plain = client.completions.create(**ask)
    assert plain.id.startswith("cmpl-")
    text = plain.choices[0].text
    assert plain.choices[0].finish_reason == "length"
    assert plain.usage is not None and plain.usage.completion_tokens == 12
    # Stop at the first " 1" of the continuation (" 9, 10, 11, ..." has one).
    cut = text.find("1", 1)
    assert cut > 0, f"the model did not count on: {text!r}"
    stop = text[cut : cut + 1]
    stopped = client.completions.create(**ask, stop=[stop])
    assert stopped.choices[0].text == text[: text.find(stop)]
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.usage is not None
    assert 0 < stopped.usage.completion_tokens < 12
    assert stopped.usage.prompt_tokens == plain.usage.prompt_tokens


def test_errors_through_the_client(served: Served) -> None:
    client = served.client()
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert unknown.value.code == "model_not_found"
    assert served.model in unknown.value.message

    long_prompt = "The quick brown fox jumps over the lazy dog. " * 200  # ~2000 tokens
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(
            model=served.model, messages=[{"role": "user", "content": long_prompt}]
        )
    assert too_long.value.code == "context_length_exceeded"
    assert str(N_CTX) in too_long.value.message

    with pytest.raises(openai.BadRequestError) as too_many:
        client.completions.create(model=served.model, prompt="Hi", max_tokens=5000)
    assert "5000" in too_many.value.message and str(N_CTX) in too_many.value.message

    with pytest.raises(openai.BadRequestError) as wrong_type:
        client.chat.completions.create(
            model=served.model, messages=HELLO, extra_body={"top_k": "many"}
        )
    assert wrong_type.value.param == "top_k"


# ---------------------------------------------------------------------- raw HTTP


def test_malformed_requests(served: Served) -> None:
    chat = f"{served.url}/chat/completions"
    with httpx2.Client(timeout=60) as http:
        bad_json = http.post(chat, content=b'{"model": "x", "messages": [', headers=_JSON)
        assert bad_json.status_code == 400
        assert _error(bad_json)["code"] == "invalid_json"

        not_object = http.post(chat, content=b"[1, 2]", headers=_JSON)
        assert not_object.status_code == 400

        wrong_type = http.post(
            chat, json={"model": served.model, "messages": HELLO, "temperature": "hot"}
        )
        assert wrong_type.status_code == 400
        assert _error(wrong_type)["param"] == "temperature"

        bad_message = http.post(chat, json={"model": served.model, "messages": [{"role": 3}]})
        assert bad_message.status_code == 400
        assert _error(bad_message)["param"].startswith("messages.0")

        huge = http.post(chat, content=b" " * (MAX_BODY_BYTES + 1), headers=_JSON)
        assert huge.status_code == 413
        assert _error(huge)["code"] == "request_too_large"

        nowhere = http.get(served.url.removesuffix("/v1") + "/nowhere")
        assert nowhere.status_code == 404
        _error(nowhere)
        wrong_method = http.get(chat)
        assert wrong_method.status_code == 405
        _error(wrong_method)
        # No CORS unless asked for.
        assert (
            "access-control-allow-origin"
            not in http.get(
                f"{served.url}/models", headers={"Origin": "http://evil.example"}
            ).headers
        )


_JSON = {"Content-Type": "application/json"}


def test_a_client_that_disconnects_stops_its_generation(served: Served) -> None:
    served.drain()
    body = {
        "model": served.model,
        "prompt": COUNTING,
        "max_tokens": N_CTX - 64,
        "stream": True,
        "temperature": 0.0,
    }
    answer_id = ""
    with (
        httpx2.Client(timeout=120) as http,
        http.stream("POST", f"{served.url}/completions", json=body) as response,
    ):
        assert response.status_code == 200
        chunks = 0
        for line in response.iter_lines():
            if line.startswith("data: {"):
                answer_id = json.loads(line.removeprefix("data: "))["id"]
                chunks += 1
                if chunks == 3:
                    break
        response.close()
        http.close()
        closed = time.monotonic()

    def finished(events: list[p.Event]) -> bool:
        return any(isinstance(e, p.ApiFinished) and e.id == answer_id for e in events)

    events = served.events_until(finished)
    tokens = [e for e in events if isinstance(e, p.Token) and e.id == answer_id]
    (end,) = [e for e in events if isinstance(e, p.ApiFinished) and e.id == answer_id]
    assert end.stop_reason == "disconnected"
    assert end.generated_tokens < N_CTX - 64
    # The worker's clock is the same monotonic clock (one machine).
    last = max(t.t for t in tokens) if tokens else closed
    assert last - closed < 0.2, f"it generated for {last - closed:.3f} s after the disconnect"


def test_eight_clients_five_requests_each_and_the_chat_in_between(served: Served) -> None:
    served.drain()
    results: dict[str, dict[str, Any]] = {}
    failures: list[BaseException] = []
    lock = threading.Lock()

    def client_work(number: int) -> None:
        client = served.client()
        try:
            for i in range(5):
                messages = [{"role": "user", "content": f"Client {number}, question {i}: hi"}]
                if (number + i) % 2:
                    stream = client.chat.completions.create(
                        model=served.model, messages=messages, max_tokens=16, stream=True
                    )
                    chunks = list(stream)
                    ids = {c.id for c in chunks}
                    assert len(ids) == 1
                    final = [c for c in chunks if c.choices][-1]
                    assert final.usage is not None
                    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                    record = {
                        "text": text,
                        "usage": final.usage,
                        "finish": final.choices[0].finish_reason,
                    }
                    answer_id = ids.pop()
                else:
                    answer = client.chat.completions.create(
                        model=served.model, messages=messages, max_tokens=16
                    )
                    assert answer.usage is not None
                    record = {
                        "text": answer.choices[0].message.content or "",
                        "usage": answer.usage,
                        "finish": answer.choices[0].finish_reason,
                    }
                    answer_id = answer.id
                with lock:
                    assert answer_id not in results
                    results[answer_id] = record
        except BaseException as exc:
            with lock:
                failures.append(exc)

    threads = [threading.Thread(target=client_work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    # The window's chat, sent as the window sends it, once the other apps are queued.
    events = served.events_until(lambda ev: sum(isinstance(e, p.ApiRequest) for e in ev) >= 4)
    chat = p.Chat(messages=[{"role": "user", "content": "And you, in the window?"}], max_tokens=8)
    served.runner.send(chat)

    def all_done(more: list[p.Event]) -> bool:
        seen = events + more
        chat_done = any(isinstance(e, p.Done | p.Error) and e.id == chat.id for e in seen)
        finished = sum(isinstance(e, p.ApiFinished) for e in seen)
        return chat_done and (finished >= 40 or bool(failures))

    events += served.events_until(all_done, timeout=900)
    for thread in threads:
        thread.join(timeout=900)
    assert not failures, failures
    assert len(results) == 40

    chat_end = [e for e in events if isinstance(e, p.Done | p.Error) and e.id == chat.id]
    assert isinstance(chat_end[0], p.Done), chat_end
    chat_text = "".join(e.text for e in events if isinstance(e, p.Token) and e.id == chat.id)
    assert chat_text
    # In between: answered while other apps' requests were still to come.
    at = events.index(chat_end[0])
    assert any(isinstance(e, p.ApiFinished) for e in events[at:])

    # None lost or mixed: each answer is exactly its own tokens, its usage its own count.
    pieces: dict[str, list[str]] = defaultdict(list)
    for event in events:
        if isinstance(event, p.Token) and event.id in results:
            pieces[event.id].append(event.text)
    finished = {e.id: e for e in events if isinstance(e, p.ApiFinished)}
    assert set(finished) == set(results)
    for answer_id, record in results.items():
        usage = record["usage"]
        assert usage.completion_tokens <= 16
        if record["finish"] == "length":
            assert usage.completion_tokens == 16
        assert finished[answer_id].status == 200
        assert finished[answer_id].generated_tokens == usage.completion_tokens
        assert "".join(pieces[answer_id]) == record["text"]


def test_stopping_a_chat_that_waits_behind_another_app_answers_at_once(served: Served) -> None:
    served.drain()
    client = served.client()
    answers: list[Any] = []
    app = threading.Thread(
        target=lambda: answers.append(
            client.completions.create(
                model=served.model, prompt=COUNTING, max_tokens=120, temperature=0.0
            )
        )
    )
    app.start()
    served.events_until(lambda ev: any(isinstance(e, p.ApiStarted) for e in ev))
    chat = p.Chat(messages=[dict(m) for m in HELLO], max_tokens=8)
    served.runner.send(chat)
    served.runner.send(p.Stop())
    stopped = time.monotonic()
    events = served.events_until(
        lambda ev: any(isinstance(e, p.Done) and e.id == chat.id for e in ev)
    )
    done = next(e for e in events if isinstance(e, p.Done) and e.id == chat.id)
    assert done.stop_reason == "user" and done.generated_tokens == 0
    assert time.monotonic() - stopped < 5  # not after the other app's 120 tokens
    assert not any(isinstance(e, p.ApiFinished) for e in events)  # it was still answering
    assert not any(isinstance(e, p.Token) and e.id == chat.id for e in events)
    app.join(timeout=300)
    assert answers and answers[0].usage.completion_tokens > 0


# ---------------------------------------------------------------------- serving itself


def test_api_key_and_no_model(bare_worker: WorkerRunner) -> None:
    serving = bare_worker.serve(p.Serve(port=0, api_key="sesame"))
    assert serving.api_key_required and serving.host == "127.0.0.1"
    keyless = openai.OpenAI(base_url=serving.url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        keyless.models.list()
    with httpx2.Client(timeout=30) as http:
        missing = http.get(f"{serving.url}/models")
        assert missing.status_code == 401 and "Bearer" in _error(missing)["message"]
    client = openai.OpenAI(base_url=serving.url, api_key="sesame", max_retries=0)
    assert client.models.list().data == []
    with pytest.raises(openai.InternalServerError) as no_model:
        client.chat.completions.create(model="any", messages=HELLO)
    assert no_model.value.status_code == 503
    assert "No model is loaded" in no_model.value.message


def test_a_request_during_a_load_waits_for_the_model(
    bare_worker: WorkerRunner, gemma_path: Path
) -> None:
    serving = bare_worker.serve(p.Serve(port=0))
    load = p.Load(path=str(gemma_path), n_ctx=N_CTX, n_threads=THREADS)
    bare_worker.send(load)
    while not isinstance(bare_worker.next_event(timeout=120), p.LoadProgress):
        pass  # the worker's main thread is loading now
    client = openai.OpenAI(base_url=serving.url, api_key="unused", max_retries=0, timeout=300)
    answer = client.completions.create(model=gemma_path.stem, prompt="Hi", max_tokens=2)
    assert answer.usage is not None and answer.usage.completion_tokens >= 1


def test_network_address_needs_a_key(bare_worker: WorkerRunner) -> None:
    with pytest.raises(WorkerError) as refused:
        bare_worker.serve(p.Serve(host="0.0.0.0", port=0))
    assert refused.value.error.kind == "serve_failed"
    assert "API key" in refused.value.error.message


def test_a_taken_port_is_a_sentence(bare_worker: WorkerRunner) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(WorkerError) as refused:
            bare_worker.serve(p.Serve(port=port))
    assert refused.value.error.kind == "serve_failed"
    assert f"Port {port} on 127.0.0.1 is already in use" in refused.value.error.message


def test_stopping_releases_the_port_at_once(bare_worker: WorkerRunner) -> None:
    serving = bare_worker.serve(p.Serve(port=0, cors_origins=["http://app.example"]))
    with httpx2.Client(timeout=30) as http:
        answer = http.get(f"{serving.url}/models", headers={"Origin": "http://app.example"})
        assert answer.headers["access-control-allow-origin"] == "http://app.example"
    bare_worker.stop_serving()
    with socket.socket() as again:  # as any server binds it (SO_REUSEADDR, as uvicorn's)
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", serving.port))
        again.listen()
    assert bare_worker.serve(p.Serve(port=serving.port)).port == serving.port
    bare_worker.stop_serving()
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"{serving.url}/models", timeout=5)


def test_a_worker_crash_answers_503_then_serves_again(qtbot: Any, gemma_path: Path) -> None:
    engine = EngineClient()
    serving = ApiServing(engine)
    try:
        load = p.Load(path=str(gemma_path), n_ctx=N_CTX, n_threads=THREADS)
        with qtbot.waitSignal(engine.loaded, timeout=120_000):
            engine.load(load)
        with qtbot.waitSignal(serving.serving, timeout=30_000) as started:
            serving.start(port=0)
        url = started.args[0].url
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=120)
        model = gemma_path.stem
        assert client.completions.create(model=model, prompt="Hi", max_tokens=2).usage

        pid = engine.pid
        assert pid is not None
        with (
            qtbot.waitSignal(engine.crashed, timeout=30_000),
            qtbot.waitSignal(serving.serving, timeout=60_000) as again,
        ):
            os.kill(pid, signal.SIGKILL)
        assert again.args[0].url == url  # the same address: other apps keep working
        with pytest.raises(openai.InternalServerError) as gone:
            client.completions.create(model=model, prompt="Hi", max_tokens=2)
        assert gone.value.status_code == 503
        assert "killed" in gone.value.message  # the reason, from the crash explanation

        with qtbot.waitSignal(engine.loaded, timeout=120_000):
            engine.load(load)
        assert client.completions.create(model=model, prompt="Hi", max_tokens=2).usage
    finally:
        serving.stop()
        engine.shutdown()


# ---------------------------------------------------------------------- llm-workbench serve


def _cli() -> list[str]:
    return [sys.executable, "-m", "desktop.cli"]


def test_serve_command_refuses_a_network_address_without_a_key(gemma_path: Path) -> None:
    done = subprocess.run(
        [*_cli(), "serve", str(gemma_path), "--host", "0.0.0.0"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=worker_environment(),
    )
    assert done.returncode == 1
    assert "needs a key" in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1  # one sentence


def test_serve_command_serves_prints_each_request_and_stops_on_sigterm(gemma_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [*_cli(), "serve", str(gemma_path), "--port", str(port), "--ctx", "1024"]
    process = subprocess.Popen(
        [*command, "--threads", "1", "--gpu-layers", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=worker_environment(),
    )
    assert process.stdout is not None
    try:
        lines: list[str] = []
        while not any("Press Ctrl+C" in line for line in lines):
            line = process.stdout.readline()
            assert line, f"serve ended early: {lines}"
            lines.append(line)
        url = f"http://127.0.0.1:{port}/v1"
        assert any(f"Serving {gemma_path.stem} at {url}" in line for line in lines), lines
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=120)
        answer = client.completions.create(model=gemma_path.stem, prompt="Hi", max_tokens=3)
        assert answer.usage is not None
        request_line = process.stdout.readline()
        assert "/v1/completions 200" in request_line
        assert f"{answer.usage.prompt_tokens} prompt + " in request_line
        process.send_signal(signal.SIGTERM)
        rest = process.stdout.read()
        assert process.wait(timeout=30) == 0
        assert "Stopped serving; the port is free." in rest
        with socket.socket() as again:
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            again.bind(("127.0.0.1", port))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
