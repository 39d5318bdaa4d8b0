"""How a dead worker is explained (issue 15, item 3): llama.cpp's own reason is quoted, never a
debugger backtrace line, and the advice follows from the facts the app has (memory headroom a
moment before, GPU layers, whether it died reading the file).

The stderr below is recorded from a real abort of llama-cpp-python 0.3.36 on a GGUF whose MoE
header uses 0 experts (tests/unit/test_abort_guards.py writes it); the real abort and a real
``kill -9`` run in tests/engine/test_crash_reasons.py."""

from __future__ import annotations

import pytest

from desktop.core import crash
from desktop.core.crash import MemoryFacts, llama_reason
from desktop.services.engine_client import explain_exit

GIB = 1024**3
ABORT_TAIL = """\
llama_model_loader: - type q8_0:   14 tensors
/tmp/pip-install-96ft6k93/llama-cpp-python_a8df/vendor/llama.cpp/src/llama-model.cpp:1364: \
GGML_ASSERT(n_expert_used_max > 0) failed
[New LWP 15640]
[Thread debugging using libthread_db enabled]
Using host libthread_db library "/lib/x86_64-linux-gnu/libthread_db.so.1".
0x00007ff736d0fc17 in __GI___wait4 (pid=15641, stat_loc=0x0, options=0) at wait4.c:30
#0  0x00007ff736d0fc17 in __GI___wait4 (pid=15641) at ../sysdeps/unix/sysv/linux/wait4.c:30
#1  0x00007f3f26f4e7de in ggml_print_backtrace () from /x/llama_cpp/lib/libggml-base.so.0
#2  0x00007f3f26f4e7de in ggml_abort () from /x/llama_cpp/lib/libggml-base.so.0
#3  0x00007f3f27a1b2c1 in llama_model::load_hparams(llama_model_loader&) () from libllama.so
73\t./Include/internal/pycore_ceval.h: No such file or directory.
[Inferior 1 (process 15637) detached]
Fatal Python error: Aborted

Current thread 0x00007ff736fbdb80 (most recent call first):
  File "/work/main/.venv/lib/python3.11/site-packages/llama_cpp/_internals.py", line 57 in __init__
Extension modules: markupsafe._speedups, numpy._core._multiarray_umath (total: 2)
"""
PLENTY = MemoryFacts(ram_available_bytes=22 * GIB, ram_total_bytes=24 * GIB)
SHORT = MemoryFacts(ram_available_bytes=GIB // 8, ram_total_bytes=24 * GIB)
SIGKILL, SIGABRT = 9, 6


def test_the_reason_is_llama_cpps_assert_not_a_backtrace_line() -> None:
    assert llama_reason(ABORT_TAIL) == (
        "llama-model.cpp:1364: GGML_ASSERT(n_expert_used_max > 0) failed"
    )
    # Without an assert: the last error line before the backtrace, never "#2 ... ggml_abort".
    tail = "llama_model_load: error loading model: bad tensor\n" + ABORT_TAIL.split("\n", 3)[3]
    assert llama_reason(tail) == "llama_model_load: error loading model: bad tensor"
    assert llama_reason("#2  0x00007f in ggml_abort () from libggml-base.so.0\n") == ""


def test_an_abort_the_file_causes_offers_another_file_not_the_same_reload() -> None:
    explained = explain_exit(
        SIGABRT, True, activity="while loading bad.gguf", stderr_tail=ABORT_TAIL,
        memory=PLENTY, gpu_layers=0, loading=True,
    )
    assert explained.kind == "aborted_by_file"
    assert 'It said: "llama-model.cpp:1364: GGML_ASSERT(n_expert_used_max > 0) failed"' in (
        explained.message
    )
    assert "0x0000" not in explained.message and "ggml_abort ()" not in explained.message
    assert "another file" in explained.suggestion and "another quantization" in explained.suggestion
    assert "download" in explained.suggestion
    assert "GPU" not in explained.suggestion + explained.message


@pytest.mark.parametrize("gpu_layers", [0, 20])
def test_gpu_advice_only_with_gpu_layers(gpu_layers: int) -> None:
    explained = explain_exit(
        SIGABRT, True, activity="while answering", stderr_tail=ABORT_TAIL, memory=PLENTY,
        gpu_layers=gpu_layers,
    )
    assert explained.kind == "aborted"
    assert ("GPU" in explained.suggestion) == (gpu_layers > 0)


def test_a_kill_with_plenty_of_free_memory_was_from_outside() -> None:
    explained = explain_exit(SIGKILL, True, activity="while answering", memory=PLENTY)
    assert explained.kind == "killed_from_outside"
    assert "from outside the app" in explained.message
    assert "22.0 GB of 24.0 GB RAM free" in explained.message.replace("GiB", "GB")
    assert "memory" not in explained.suggestion and "GPU" not in explained.suggestion


def test_a_kill_when_memory_was_short_is_out_of_memory() -> None:
    explained = explain_exit(SIGKILL, True, activity="while loading x.gguf", memory=SHORT)
    assert explained.kind == "killed"
    assert "ran out of memory" in explained.message
    assert "GPU" not in explained.suggestion  # no layers on a GPU: no GPU advice
    with_gpu = explain_exit(
        SIGKILL,
        True,
        memory=MemoryFacts(GIB // 8, 24 * GIB, vram_free_bytes=GIB, vram_total_bytes=8 * GIB),
        gpu_layers=12,
    )
    assert "fewer GPU layers" in with_gpu.suggestion


def test_memory_facts_decide_short_from_the_numbers() -> None:
    assert PLENTY.ram_short is False and SHORT.ram_short is True
    assert MemoryFacts().ram_short is None
    assert MemoryFacts(vram_free_bytes=100 * 1024**2, vram_total_bytes=8 * GIB).vram_short
    assert crash.RAM_SHORT_BYTES == 512 * 1024**2
