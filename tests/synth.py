"""Test models: the shapes the accuracy suite and the fit tests use, written by
:mod:`desktop.core.synth` (the app's own GGUF writer, which ``calibrate`` uses too)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import gguf
import numpy as np

from desktop.core.synth import (
    CALIBRATION_SHAPE,
    SynthModel,
    _add_metadata,
    _tensor_shapes,
    write_header_only,
    write_model,
)

__all__ = [
    "ACCURACY_MODELS",
    "CALIBRATION_SHAPE",
    "DENSE_14B_Q8",
    "LLAMA_3B_Q4",
    "LLAMA_8B_Q4",
    "SynthModel",
    "_add_metadata",
    "_tensor_shapes",
    "write_header_only",
    "write_model",
    "write_with_stray_tensor",
]


#: The architectures the accuracy suite checks, sized so that weights, KV cache and compute
#: buffers are all of the same order (a model where one part dwarfs the rest hides errors).
ACCURACY_MODELS: dict[str, SynthModel] = {
    "llama-gqa": SynthModel(
        arch="llama",
        n_layer=8,
        n_embd=512,
        n_head=16,
        n_head_kv=4,
        head_dim=32,
        n_ff=1536,
        n_vocab=8192,
        weight_type="Q4_0",
        embd_type="Q8_0",
        output_type="Q6_K",
    ),
    "qwen3": SynthModel(
        arch="qwen3",
        n_layer=6,
        n_embd=512,
        n_head=8,
        n_head_kv=2,
        head_dim=128,
        n_ff=1024,
        n_vocab=6000,
        weight_type="Q8_0",
        embd_type="Q8_0",
        tied_output=True,
    ),
    "qwen3moe": SynthModel(
        arch="qwen3moe",
        n_layer=4,
        n_embd=512,
        n_head=8,
        n_head_kv=4,
        head_dim=64,
        n_ff=1024,
        n_vocab=4096,
        n_expert=16,
        n_expert_used=4,
        n_ff_exp=256,
        weight_type="Q4_K",
        embd_type="Q8_0",
        output_type="Q8_0",
    ),
    "gemma3-swa": SynthModel(
        arch="gemma3",
        n_layer=12,
        n_embd=512,
        n_head=4,
        n_head_kv=1,
        head_dim=128,
        n_ff=1024,
        n_vocab=16384,
        sliding_window=512,
        tied_output=True,
        weight_type="Q4_K",
        embd_type="Q8_0",
    ),
}


#: Shapes of real models, written header-only (sparse) for fit tests. Numbers from the
#: models' published configs (../shared/catalog-research.json): Llama 3.1 8B and a 14B
#: Qwen-2.5-style dense model.
LLAMA_8B_Q4 = SynthModel(
    arch="llama",
    n_layer=32,
    n_embd=4096,
    n_head=32,
    n_head_kv=8,
    head_dim=128,
    n_ff=14336,
    n_vocab=128256,
    ctx_train=131072,
    weight_type="Q4_K",
    embd_type="Q4_K",
    output_type="Q6_K",
)
DENSE_14B_Q8 = SynthModel(
    arch="qwen2",
    n_layer=48,
    n_embd=5120,
    n_head=40,
    n_head_kv=8,
    head_dim=128,
    n_ff=13824,
    n_vocab=152064,
    ctx_train=32768,
    weight_type="Q8_0",
    embd_type="Q8_0",
    output_type="Q8_0",
)
#: Llama 3.2 3B (published config, ../shared/catalog-research.json), Q4_K weights: a middle
#: size between Gemma 3 270M and the 8B for fitting and checking the speed model.
LLAMA_3B_Q4 = SynthModel(
    arch="llama",
    n_layer=28,
    n_embd=3072,
    n_head=24,
    n_head_kv=8,
    head_dim=128,
    n_ff=8192,
    n_vocab=128256,
    ctx_train=131072,
    tied_output=True,
    weight_type="Q4_K",
    embd_type="Q6_K",
)


def write_with_stray_tensor(path: Path) -> Path:
    """A small llama whose header lists one tensor more than its architecture uses: our
    header reader accepts it, llama.cpp refuses it ("wrong number of tensors")."""
    model = replace(ACCURACY_MODELS["llama-gqa"], weight_type="Q8_0", output_type="Q8_0")
    q8 = gguf.GGMLQuantizationType.Q8_0
    writer = gguf.GGUFWriter(str(path), model.arch)
    _add_metadata(writer, model)
    for name, shape, type_name in [*_tensor_shapes(model), ("stray.weight", (64,), "F32")]:
        data = np.zeros(shape, dtype=np.float32)
        if type_name == "F32":
            writer.add_tensor(name, data)
        else:
            writer.add_tensor(name, gguf.quants.quantize(data, q8), raw_dtype=q8)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
