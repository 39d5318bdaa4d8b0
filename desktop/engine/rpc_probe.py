"""Ask RPC servers what they offer: ``python -m desktop.engine.rpc_probe HOST:PORT ...``.

(The frozen app: ``<exe> --rpc-probe HOST:PORT ...``.) For each endpoint it checks that
something listens, then asks through llama.cpp's own client (desktop.engine.rpc) for the
server's devices, their free and total memory, the buffer alignment and the link latency,
and prints one line: ``desktop.core.children.RPC_PROBE_MARKER`` then JSON,
``{"servers": [{"endpoint", "devices": [...]} or {"endpoint", "error"}]}``.

It is a child process because llama.cpp aborts the process on a server that fails the
handshake (another protocol version) or drops the connection; the core reads the abort and
llama.cpp's last error line from stderr (desktop.core.rpc.probe_servers), and a server that
accepts and then never answers is ended by the core's timeout.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from desktop.core.children import RPC_PROBE_MARKER


def probe(endpoints: list[str]) -> dict[str, Any]:
    from desktop.engine import rpc

    servers: list[dict[str, Any]] = []
    for endpoint in endpoints:
        why = rpc.check_reachable(endpoint)
        if why is not None:
            servers.append({"endpoint": endpoint, "error": why, "reachable": False})
            continue
        # Flush what is known so far: a crash in the next call still leaves these answers.
        print(RPC_PROBE_MARKER + json.dumps({"servers": servers, "partial": True}), flush=True)
        devices = rpc.query_server(endpoint)
        servers.append({"endpoint": endpoint, "devices": [d.to_dict() for d in devices]})
    return {"servers": servers}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--rpc-probe"]:
        args = args[1:]
    answer = probe(args)
    print(RPC_PROBE_MARKER + json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
