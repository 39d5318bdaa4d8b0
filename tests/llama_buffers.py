"""Ask real llama.cpp what it allocates: load a GGUF in a subprocess, parse its log.

Used by the accuracy suite and the accuracy benchmark. The load runs in a child process
(llama.cpp may abort the process on a bad file) with verbose logging routed through
llama_log_set, so every "... buffer size = N MiB" line is captured.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from desktop.core.llama_log import LlamaLoadReport, parse_load_log

_CHILD = r"""
import json, sys
import llama_cpp
lines = []
@llama_cpp.llama_log_callback
def _log(level, text, user):
    lines.append(text.decode("utf-8", "replace"))
llama_cpp.llama_log_set(_log, None)
kwargs = json.loads(sys.argv[2])
llm = llama_cpp.Llama(model_path=sys.argv[1], verbose=True, **kwargs)
sys.stdout.write("".join(lines))
"""

#: Estimator Settings field -> llama_cpp.Llama keyword.
_KWARGS = {
    "n_ctx": "n_ctx",
    "n_batch": "n_batch",
    "n_ubatch": "n_ubatch",
    "flash_attn": "flash_attn",
    "swa_full": "swa_full",
    "use_mmap": "use_mmap",
    "offload_kqv": "offload_kqv",
}


def llama_kwargs(settings: Any) -> dict[str, Any]:
    """llama_cpp.Llama keyword arguments that match an estimator Settings."""
    kwargs = {kw: getattr(settings, field) for field, kw in _KWARGS.items()}
    kwargs["n_gpu_layers"] = 0 if settings.n_gpu_layers is None else settings.n_gpu_layers
    if settings.kv_type != "f16":
        import gguf

        type_id = int(gguf.GGMLQuantizationType[settings.kv_type.upper()])
        kwargs["type_k"] = type_id
        kwargs["type_v"] = type_id
    return kwargs


def llama_reported_buffers(path: Path, settings: Any, timeout: float = 300) -> LlamaLoadReport:
    """Load `path` with llama.cpp at `settings` and return the buffers it reported."""
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), json.dumps(llama_kwargs(settings))],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"llama.cpp could not load {path.name}: {proc.stderr[-2000:]}")
    return parse_load_log(proc.stdout)
