"""``llm-workbench serve MODEL``: the model for other apps, OpenAI-compatible, headless.

    llm-workbench serve MODEL [--port 8080] [--host 127.0.0.1] [--api-key KEY] [--ctx N]
                              [--gpu-layers N|auto] [--threads N]

Starts the llama.cpp worker, loads the model and serves it at ``http://HOST:PORT/v1`` (the
same server the window's "Serve to other apps" switch starts, inside the worker:
desktop.engine.api_server), printing one line per request. Ctrl+C or SIGTERM stops it and
frees the port at once. It listens on 127.0.0.1 unless told otherwise; another address
needs ``--api-key`` (anyone on the network who has the key can use the model). If the
worker crashes, a fresh one answers 503 with the reason while the model loads again.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from desktop.engine import protocol as p
    from desktop.engine.runner import WorkerRunner

__all__ = ["add_serve_parser", "cmd_serve"]


class _Stopped(Exception):
    """SIGTERM arrived: stop serving as Ctrl+C does."""


def add_serve_parser(sub: Any, positive_int: Any, layers: Any) -> None:
    """The ``serve`` subcommand's arguments (called by desktop.cli.build_parser)."""
    from desktop.services.api_serving import DEFAULT_HOST, DEFAULT_PORT

    serve = sub.add_parser("serve", help="serve a model to other apps (OpenAI-compatible API)")
    serve.add_argument("target", metavar="MODEL", help="a .gguf file")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"({DEFAULT_PORT})")
    serve.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on ({DEFAULT_HOST}: this computer only)",
    )
    serve.add_argument(
        "--api-key", default=None, metavar="KEY", help="require 'Authorization: Bearer KEY'"
    )
    serve.add_argument("--ctx", type=positive_int, default=4096, help="context length (4096)")
    serve.add_argument("--gpu-layers", type=layers, default=None, metavar="N|auto")
    serve.add_argument(
        "--threads", type=positive_int, default=None, help="CPU threads (default: physical cores)"
    )


def cmd_serve(args: argparse.Namespace, user_error: type[Exception]) -> int:
    """Serve until Ctrl+C / SIGTERM; ``user_error`` is the CLI's one-sentence error."""
    from desktop.engine import protocol as p
    from desktop.engine.api_server import is_loopback
    from desktop.engine.runner import WorkerError, WorkerExited

    path = Path(args.target).expanduser()
    if not path.is_file():
        raise user_error(f"{args.target} is not a file.")
    if not 0 <= args.port <= 65535:
        raise user_error(f"{args.port} is not a port number; choose one from 1024 to 65535.")
    if not is_loopback(args.host) and not args.api_key:
        raise user_error(
            f"listening on {args.host} lets other computers use the model, so it needs a key: "
            "add --api-key KEY (or keep the default --host 127.0.0.1)"
        )
    load = _load_request(path, args, user_error)
    serve = p.Serve(host=args.host, port=args.port, api_key=args.api_key)

    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    runner: WorkerRunner | None = None
    try:
        runner, serving = _start(load, serve)
        _announce(serving, args)
        while True:
            try:
                _follow(runner)
            except WorkerExited as exc:
                reason = _crash_reason(exc)
                print(f"The model worker stopped: {reason} Starting it again…", flush=True)
                runner.close()
                serve = p.Serve(
                    host=args.host,
                    port=serving.port,
                    api_key=args.api_key,
                    unavailable_reason=f"The model worker stopped: {reason} "
                    "It is being loaded again.",
                )
                runner, serving = _start(load, serve)
                print(f"Serving again at {serving.url}", flush=True)
    except WorkerError as exc:
        raise user_error(str(exc).rstrip(".")) from None
    except WorkerExited as exc:
        raise user_error(f"the llama.cpp worker stopped: {_crash_reason(exc)}") from None
    except (KeyboardInterrupt, _Stopped):
        if runner is not None and runner.alive:
            with contextlib.suppress(WorkerError, WorkerExited, TimeoutError, OSError):
                runner.stop_serving(timeout=10)
        print("Stopped serving; the port is free.", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if runner is not None:
            runner.close()


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise _Stopped


def _load_request(path: Path, args: argparse.Namespace, user_error: type[Exception]) -> p.Load:
    """The load for these options; ``--gpu-layers auto`` is the plan's count for this machine."""
    from desktop.core.estimate import Settings, devices_from_profile, estimate
    from desktop.core.gguf import GGUFError, read_header_file
    from desktop.core.modelspec import spec_from_header
    from desktop.engine import protocol as p

    layers = args.gpu_layers
    settings = Settings(n_ctx=args.ctx, n_gpu_layers=layers, n_threads=args.threads)
    if layers is None:
        from desktop.core.hardware import detect
        from desktop.core.runs import load_figures, profile_machine_key

        try:
            spec = spec_from_header(read_header_file(path))
        except GGUFError as exc:
            raise user_error(f"{path.name} is not a usable GGUF file: {exc}") from None
        profile = detect(measure_bandwidth=False)
        devices = devices_from_profile(
            profile, settings.reserve_bytes, load_figures(profile_machine_key(profile))
        )
        layers = estimate(spec, settings, devices).gpu_layers
    from dataclasses import replace

    return p.Load.from_settings(str(path), replace(settings, n_gpu_layers=layers), args.threads)


def _start(load: p.Load, serve: p.Serve) -> tuple[WorkerRunner, p.Serving]:
    """A worker serving ``serve`` and the model loaded in it (a request that arrives during
    the load waits for it); returns once both are done."""
    from desktop.engine.runner import WorkerRunner

    runner = WorkerRunner()
    try:
        runner.start()
        serving = runner.serve(serve)  # first: a taken port is said before a long load
        print(f"Loading {Path(load.path).name}…", flush=True)
        loaded = runner.load(load)
    except BaseException:
        runner.close()
        raise
    print(
        f"Loaded in {loaded.load_seconds:.1f} s ({loaded.n_gpu_layers} GPU layers, "
        f"context {loaded.n_ctx}).",
        flush=True,
    )
    return runner, serving


def _announce(serving: p.Serving, args: argparse.Namespace) -> None:
    from desktop.engine.api_server import is_loopback

    model = Path(args.target).stem
    print(f"Serving {model} at {serving.url}", flush=True)
    print(f"  Point another app at that address; the model is called '{model}'.", flush=True)
    if serving.api_key_required:
        print("  Every request needs the header: Authorization: Bearer <your key>", flush=True)
    if not is_loopback(serving.host):
        print(
            f"  Warning: listening on {serving.host}: anyone on your network who has the key "
            "can use this model.",
            flush=True,
        )
    print("Press Ctrl+C to stop.", flush=True)


def _follow(runner: WorkerRunner) -> None:
    """Print a line per finished request, until the worker exits (WorkerExited)."""
    from desktop.engine import protocol as p

    while True:
        try:
            event = runner.next_event(timeout=1.0)
        except TimeoutError:
            continue
        if isinstance(event, p.ApiFinished):
            print(request_line(event), flush=True)


def request_line(event: p.ApiFinished, now: float | None = None) -> str:
    """One request in words: time, client, endpoint, status and its figures."""
    clock = time.strftime("%H:%M:%S", time.localtime(now))
    head = f"{clock} {event.client} {event.endpoint} {event.status}"
    if event.status != 200:
        return f"{head} · {event.message or event.stop_reason}"
    return (
        f"{head} · {event.prompt_tokens} prompt + {event.generated_tokens} generated tokens"
        f" · first token {event.ttft_s:.2f} s · {event.gen_tokens_per_s:.1f} tok/s"
    )


def _crash_reason(exc: Any) -> str:
    """How the worker ended, in a sentence (with llama.cpp's last words where it left some)."""
    from desktop.core import crash

    code = exc.returncode if exc.returncode is not None else -1
    cause = crash.returncode_cause(code)
    said = crash.llama_reason(exc.stderr_tail)
    how = (
        f"it was ended by {cause.signal_name or 'a signal'}"
        if cause.signal_number is not None
        else f"it exited with status {code}"
    )
    return f"{how}" + (f' (llama.cpp said: "{said}").' if said else ".")


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run it as: llm-workbench serve MODEL")
