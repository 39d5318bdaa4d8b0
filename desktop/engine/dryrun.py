"""llama.cpp's own dry run of one load: ``python -m desktop.engine.dryrun REQUEST_JSON``.

llama.cpp can load a model's metadata and *simulate* every allocation without reading tensor
data (``llama_model_params.no_alloc``, which its own ``--fit`` uses in common/fit.cpp). This
process does that for one file with the settings the person chose, then creates a context, so
llama.cpp decides where each layer goes, sizes the KV cache and reserves the worst-case
compute graph exactly as a real load would, and prints all of it to its log. The log comes
back on stdout (one line: ``desktop.core.children.DRY_RUN_MARKER``, then JSON); the app's
core parses it (:mod:`desktop.core.dryrun`).

It is a process of its own, started like the worker (the frozen app: ``<exe> --dry-run``),
because llama.cpp may abort the process on a malformed file; the core reads the abort from
the exit status and the ``GGML_ASSERT`` line from stderr. ``no_alloc`` cannot be combined
with mmap (``GGML_ASSERT(!ml.no_alloc)`` in src/llama-model.cpp), so it loads with
``LLAMA_LOAD_MODE_NONE``, as common/fit.cpp does; nothing of the tensor data is read.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from desktop.core.children import DRY_RUN_MARKER
from desktop.engine import protocol as p


def dry_run(request: dict[str, Any]) -> dict[str, Any]:
    """Load `request["path"]` with no_alloc and build a context; the log and the outcome."""
    import llama_cpp

    lines: list[str] = []

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def on_log(_level: int, text: bytes, _user_data: Any) -> None:
        lines.append(text.decode("utf-8", "replace"))

    answer: dict[str, Any] = {"version": str(getattr(llama_cpp, "__version__", "unknown"))}
    fields = {name for name, *_ in llama_cpp.llama_model_params._fields_}
    if not {"no_alloc", "load_mode"} <= fields:
        # Setting a missing field on a ctypes structure is silently ignored: the "dry" run
        # would allocate the whole model. Refuse instead.
        answer.update(
            ok=False,
            stage="unsupported",
            log="error: this llama-cpp-python has no "
            "dry run (no_alloc); update llama-cpp-python to 0.3.36 or newer",
        )
        return answer
    llama_cpp.llama_log_set(on_log, None)
    llama_cpp.llama_backend_init()
    servers = [str(s) for s in request.get("rpc_servers") or []]
    if servers:  # other computers' devices, as the worker registers them (desktop.engine.rpc)
        from desktop.engine import rpc

        for endpoint in servers:
            why = rpc.check_reachable(endpoint)
            if why is not None:
                answer.update(ok=False, stage="rpc", log=f"error: {endpoint}: {why}")
                return answer
        rpc.register_servers(servers)
    started = time.perf_counter()
    model_params = llama_cpp.llama_model_default_params()
    model_params.no_alloc = True
    model_params.load_mode = llama_cpp.LLAMA_LOAD_MODE_NONE
    layers = int(request.get("n_gpu_layers", 0))
    model_params.n_gpu_layers = 0x7FFFFFFF if layers < 0 else layers  # as Llama() does
    model = llama_cpp.llama_model_load_from_file(str(request["path"]).encode(), model_params)
    if not model:
        answer.update(ok=False, stage="model", log="".join(lines))
        return answer
    ctx = None
    try:
        params = llama_cpp.llama_context_default_params()
        n_ctx = int(request.get("n_ctx", 4096)) or int(llama_cpp.llama_model_n_ctx_train(model))
        n_batch = min(n_ctx, int(request.get("n_batch", 512)))
        params.n_ctx = n_ctx
        params.n_batch = n_batch
        params.n_ubatch = min(n_batch, int(request.get("n_ubatch", 512)))
        params.n_seq_max = 1
        threads = int(request.get("n_threads") or 1)
        params.n_threads = threads
        params.n_threads_batch = threads
        params.offload_kqv = bool(request.get("offload_kqv", True))
        params.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
            if request.get("flash_attn")
            else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        params.swa_full = bool(request.get("swa_full", True))
        kv = p.KV_GGML_TYPES[str(request.get("kv_type", "f16"))]
        params.type_k = kv
        params.type_v = kv
        ctx = llama_cpp.llama_init_from_model(model, params)
        answer.update(ok=bool(ctx), stage="context", log="".join(lines))
        answer["seconds"] = round(time.perf_counter() - started, 3)
        return answer
    finally:
        if ctx:
            llama_cpp.llama_free(ctx)
        llama_cpp.llama_model_free(model)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--dry-run"]:  # the frozen app: `<exe> --dry-run REQUEST`
        args = args[1:]
    try:
        request = json.loads(args[0]) if args else json.loads(sys.stdin.read())
    except (json.JSONDecodeError, IndexError) as exc:
        print(DRY_RUN_MARKER + json.dumps({"ok": False, "stage": "request", "log": str(exc)}))
        return 2
    answer = dry_run(request)
    sys.stdout.write(DRY_RUN_MARKER + json.dumps(answer) + "\n")
    sys.stdout.flush()
    return 0 if answer.get("ok") else 1


if __name__ == "__main__":
    raise SystemExit(main())
