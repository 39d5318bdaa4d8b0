"""Share this computer: ``python -m desktop.engine.rpc_server --host H --port P [--device D]``.

(The frozen app: ``<exe> --rpc-server ...``.) llama.cpp's RPC server for one device of this
computer, in a process of its own (``ggml_backend_rpc_start_server`` blocks for good; the
process is ended to stop it). Before serving it prints one line,
``desktop.core.children.RPC_SERVER_MARKER`` then JSON: ``{"endpoint", "name",
"description", "type", "free_bytes", "total_bytes"}``, or ``{"error": sentence}`` and exits
1. llama.cpp then prints "Accepted client connection" / "Client connection closed" on
stdout, which the app reads to say who is connected.

The address checks (never a public address; the warning for a network one) are the
caller's: desktop.core.rpc.check_share_address.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from desktop.core.children import RPC_SERVER_MARKER


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["--rpc-server"]:
        args_list = args_list[1:]
    parser = argparse.ArgumentParser(prog="rpc_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50052)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(args_list)
    endpoint = f"{args.host}:{args.port}"
    try:
        from desktop.engine import rpc

        info = rpc.serve_info(endpoint, args.device)
    except (OSError, ValueError, AttributeError) as exc:
        print(RPC_SERVER_MARKER + json.dumps({"error": str(exc)}), flush=True)
        return 1
    print(RPC_SERVER_MARKER + json.dumps(info), flush=True)
    threads = args.threads or _default_threads()
    rpc.start_server(endpoint, args.device, threads)
    # start_server returns only when it could not listen (llama.cpp said why on stderr).
    return 1


def _default_threads() -> int:
    from desktop.core.threads import default_threads, usable_cpus

    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except Exception:
        physical = None
    return default_threads(physical, os.cpu_count(), usable_cpus())


if __name__ == "__main__":
    raise SystemExit(main())
