"""Headers that make llama.cpp abort the whole process are refused before llama.cpp sees them.

A header-only estimate (`inspect`, `estimate --no-check`, remote files) cannot ask llama.cpp,
so the reader itself must say no to what would kill the worker: experts that do not add up,
non-finite float hyperparameters, and tensor data that the memory-mapped CPU path cannot
align. Each case is a real GGUF file written with the `gguf` package; each answer a sentence.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import gguf
import numpy as np
import pytest
from synth import ACCURACY_MODELS, SynthModel, _add_metadata, _tensor_shapes

from desktop.core.gguf import GGUFError, read_header_file
from desktop.core.modelspec import spec_from_header

QT = gguf.GGMLQuantizationType
MOE = replace(ACCURACY_MODELS["qwen3moe"], weight_type="Q8_0")


def _write(
    path: Path,
    meta: SynthModel,
    tensors: SynthModel,
    extra: Callable[[gguf.GGUFWriter], None] | None = None,
    alignment: int | None = None,
) -> Path:
    """Metadata of `meta`, tensors of `tensors` (zeros, header-sized), `extra` keys."""
    writer = gguf.GGUFWriter(str(path), meta.arch)
    if alignment is not None:
        writer.add_custom_alignment(alignment)
    _add_metadata(writer, meta)
    if extra is not None:
        extra(writer)
    for name, shape, type_name in _tensor_shapes(tensors):
        qtype = QT.__members__[type_name]
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        byte_shape = (*shape[:-1], shape[-1] // block * size)
        writer.add_tensor(name, np.zeros(byte_shape, dtype=np.uint8), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _eps(value: float) -> Callable[[gguf.GGUFWriter], None]:
    def add(writer: gguf.GGUFWriter) -> None:
        writer.add_float32("llama.rope.scaling.factor", value)

    return add


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "expert tensors, expert count 0": (
        lambda p: _write(p, replace(MOE, n_expert=0, n_expert_used=0), MOE),
        "expert count of 0",
    ),
    "0 experts used": (
        lambda p: _write(p, replace(MOE, n_expert_used=0), MOE),
        "uses 0 of its 16 experts",
    ),
    "more experts used than exist": (
        lambda p: _write(p, replace(MOE, n_expert_used=17), MOE),
        "uses 17 of its 16 experts",
    ),
    "too many experts": (
        lambda p: _write(p, replace(MOE, n_expert=513, n_expert_used=2), MOE),
        "at most 512",
    ),
    "NaN float hyperparameter": (
        lambda p: _write(
            p, ACCURACY_MODELS["llama-gqa"], ACCURACY_MODELS["llama-gqa"], _eps(math.nan)
        ),
        "rope.scaling.factor is nan",
    ),
    "infinite float hyperparameter": (
        lambda p: _write(
            p, ACCURACY_MODELS["llama-gqa"], ACCURACY_MODELS["llama-gqa"], _eps(math.inf)
        ),
        "rope.scaling.factor is inf",
    ),
    "data alignment below ggml's 32 bytes": (
        lambda p: _write(p, _ODD, _ODD, alignment=8),
        "not a multiple of 32",
    ),
}

#: A model whose first tensor's data is 8-byte aligned but not 32-byte aligned.
_ODD = replace(
    ACCURACY_MODELS["llama-gqa"],
    n_vocab=300,
    n_embd=64,
    n_head=4,
    n_head_kv=2,
    head_dim=16,
    n_ff=128,
    weight_type="F32",
    embd_type="F32",
    output_type="F32",
)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_header_reader_refuses_what_aborts_llama_cpp(tmp_path: Path, case: str) -> None:
    make, words = CASES[case]
    path = make(tmp_path / "bad.gguf")
    header = read_header_file(path)  # the header itself is well-formed
    with pytest.raises(GGUFError) as info:
        spec_from_header(header)
    assert words in str(info.value)
    done = subprocess.run(
        [sys.executable, "-m", "desktop.cli", "estimate", str(path), "--no-check", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert words in done.stderr and "Traceback" not in done.stderr


def test_a_good_moe_model_still_reads(tmp_path: Path) -> None:
    spec = spec_from_header(read_header_file(_write(tmp_path / "moe.gguf", MOE, MOE)))
    assert spec.n_expert == 16 and spec.n_expert_used == 4
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "desktop.cli",
            "estimate",
            str(tmp_path / "moe.gguf"),
            "--no-check",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verdict"] in ("CPU_ONLY", "FULL_GPU", "PARTIAL")
