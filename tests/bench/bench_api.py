"""Does serving other apps cost speed? API decode tok/s against the in-app chat's, same model,
same settings, and the time the HTTP path adds before the first token.

One worker loads the model and serves it (desktop.engine.api_server). The two paths take
turns, several times: the in-app chat (a ``Chat`` on the worker's stdin, tokens read back as
protocol events, as the window gets them) and an API request (``POST /v1/chat/completions``
streamed over HTTP from 127.0.0.1, read as server-sent events, as another app gets them).
Both ask for the same greedy answer to the same prompt, so both decode the same tokens from
the same cache state.

* decode rate, measured where each answer arrives: (pieces - 1) / (last - first arrival),
  and the worker's own figure (Done / ApiFinished); the ratio API / chat (target >= 0.97);
* added time to first token: median API ttft - median chat ttft, each from sending the
  request to the first piece arriving (target < 20 ms).

    python tests/bench/bench_api.py [--repeats 5] [--tokens 128] [--threads N] [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

import httpx2  # noqa: E402

from desktop.engine import protocol as p  # noqa: E402
from desktop.engine.runner import WorkerRunner  # noqa: E402

DEFAULT_MODEL = REPO_ROOT / "tests" / ".models" / "gemma-3-270m-Q4_K_M.gguf"
PROMPT = "Write a long story about a lighthouse keeper and the sea."


@dataclass(frozen=True)
class Run:
    ttft_s: float  # request sent -> first piece arrived, at the client
    client_rate: float  # (pieces - 1) / (last - first arrival)
    worker_rate: float  # the worker's own decode figure
    pieces: int
    worker_ttft_s: float  # the worker's own: request read -> first token
    delivery_s: float  # the first piece: worker's stamp -> arrival here (the transport)


def client_rate(arrivals: list[float]) -> float:
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    return (len(arrivals) - 1) / span if span > 0 else 0.0


def in_app(runner: WorkerRunner, tokens: int) -> Run:
    chat = p.Chat(
        messages=[{"role": "user", "content": PROMPT}],
        temperature=0.0,
        top_k=1,
        seed=1,
        max_tokens=tokens,
    )
    sent = time.monotonic()
    arrivals: list[float] = []
    stamps: list[float] = []
    done: p.Done | None = None
    for event in runner.chat(chat):
        if isinstance(event, p.Token):
            arrivals.append(time.monotonic())
            stamps.append(event.t)
        else:
            done = event
    assert done is not None and arrivals
    return Run(
        arrivals[0] - sent,
        client_rate(arrivals),
        done.gen_tokens_per_s,
        len(arrivals),
        done.ttft_s,
        arrivals[0] - stamps[0],
    )


def over_http(http: httpx2.Client, url: str, model: str, runner: WorkerRunner, tokens: int) -> Run:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "temperature": 0.0,
        "top_k": 1,
        "seed": 1,
        "max_tokens": tokens,
        "stream": True,
    }
    arrivals: list[float] = []
    answer_id = ""
    sent = time.monotonic()
    with http.stream("POST", f"{url}/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line.removeprefix("data: "))
            answer_id = chunk["id"]
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                arrivals.append(time.monotonic())
    finished: p.ApiFinished | None = None
    first_stamp: float | None = None
    while finished is None:  # the worker's own figures for this answer
        event = runner.next_event(timeout=60)
        if isinstance(event, p.Token) and event.id == answer_id and first_stamp is None:
            first_stamp = event.t
        if isinstance(event, p.ApiFinished) and event.id == answer_id:
            finished = event
    assert first_stamp is not None
    assert arrivals
    return Run(
        arrivals[0] - sent,
        client_rate(arrivals),
        finished.gen_tokens_per_s,
        len(arrivals),
        finished.ttft_s,
        arrivals[0] - first_stamp,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="default: physical cores")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args()
    if not args.model.is_file():
        raise SystemExit(f"no model at {args.model} (run the engine tests once to assemble it)")

    with WorkerRunner() as runner, httpx2.Client(timeout=600) as http:
        loaded = runner.load(p.Load(path=str(args.model), n_ctx=2048, n_threads=args.threads))
        serving = runner.serve(p.Serve(port=0))
        print(
            f"{args.model.name}: {loaded.n_threads} threads, context {loaded.n_ctx}; "
            f"serving at {serving.url}"
        )
        model = args.model.stem
        in_app(runner, args.tokens)  # warm-up: the prompt in the cache, for both paths alike
        over_http(http, serving.url, model, runner, args.tokens)
        chats: list[Run] = []
        apis: list[Run] = []
        for repeat in range(args.repeats):
            if repeat % 2:  # alternate which goes first
                api = over_http(http, serving.url, model, runner, args.tokens)
                chat = in_app(runner, args.tokens)
            else:
                chat = in_app(runner, args.tokens)
                api = over_http(http, serving.url, model, runner, args.tokens)
            chats.append(chat)
            apis.append(api)
            print(
                f"repeat {repeat + 1}: chat {chat.client_rate:.1f} tok/s (ttft "
                f"{chat.ttft_s * 1000:.1f} ms, worker {chat.worker_ttft_s * 1000:.1f} ms, "
                f"{chat.pieces} pieces) · API {api.client_rate:.1f} tok/s (ttft "
                f"{api.ttft_s * 1000:.1f} ms, worker {api.worker_ttft_s * 1000:.1f} ms, "
                f"{api.pieces} pieces)"
            )
        runner.stop_serving()

    def median(runs: list[Run], key: str) -> float:
        return float(statistics.median(getattr(r, key) for r in runs))

    ratio = median(apis, "client_rate") / median(chats, "client_rate")
    worker_ratio = median(apis, "worker_rate") / median(chats, "worker_rate")
    added_ms = (median(apis, "ttft_s") - median(chats, "ttft_s")) * 1000
    print()
    print(
        f"decode, as it arrives: API {median(apis, 'client_rate'):.1f} tok/s, in-app chat "
        f"{median(chats, 'client_rate'):.1f} tok/s: ratio {ratio:.3f} (target >= 0.97)"
    )
    print(
        f"decode, the worker's own figure: API {median(apis, 'worker_rate'):.1f}, chat "
        f"{median(chats, 'worker_rate'):.1f} tok/s: ratio {worker_ratio:.3f}"
    )
    print(
        f"time to first token: API {median(apis, 'ttft_s') * 1000:.1f} ms, chat "
        f"{median(chats, 'ttft_s') * 1000:.1f} ms: added {added_ms:.1f} ms (target < 20 ms)"
    )
    print(
        f"first piece, from the worker's stamp to its arrival: API "
        f"{median(apis, 'delivery_s') * 1000:.1f} ms (HTTP, server-sent events), chat "
        f"{median(chats, 'delivery_s') * 1000:.1f} ms (the worker's stdout)"
    )
    ok = ratio >= 0.97 and added_ms < 20
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
