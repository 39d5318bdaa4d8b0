"""GGUF files of a given shape, written with the `gguf` package: tiny random ones, or real-size
shapes whose tensor data is a sparse hole.

``llm-workbench calibrate`` writes a real-size Llama 3.2 1B shape (:data:`CALIBRATION_SHAPE`)
with zero data: llama.cpp loads and runs it at the real speed with the real buffers (zeros
cost the same as any other weights), so this computer's bandwidth term is measured without a
download, and the sparse file takes no disk space. The test suite uses the same writer for
its accuracy models (tests/synth.py). Random weights: quantized types get random bytes of the
right size (llama.cpp never looks at their values while loading), except small F16/Q8_0
models meant to generate text, which get real values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np

QT = gguf.GGMLQuantizationType


@dataclass(frozen=True)
class SynthModel:
    """Shape of one synthetic model. Defaults: a small llama with grouped-query attention."""

    arch: str = "llama"
    n_layer: int = 4
    n_embd: int = 256
    n_head: int = 8
    n_head_kv: int = 2
    head_dim: int = 32
    n_ff: int = 512
    n_vocab: int = 2048
    ctx_train: int = 8192
    sliding_window: int = 0
    n_expert: int = 0
    n_expert_used: int = 0
    n_ff_exp: int = 0
    tied_output: bool = False
    weight_type: str = "Q8_0"  # storage type of the 2-D weights
    embd_type: str = "Q8_0"
    output_type: str = "Q8_0"
    chat_template: str | None = None
    extra_kv: dict[str, object] = field(default_factory=dict)
    seed: int = 0


def _tokens(n_vocab: int) -> tuple[list[str], list[float], list[int]]:
    """A SentencePiece-style vocabulary: specials, the 256 byte tokens, then plain pieces."""
    tokens = ["<unk>", "<s>", "</s>"]
    types = [2, 3, 3]  # unknown, control, control
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [6] * 256  # byte
    letters = "abcdefghijklmnopqrstuvwxyz"
    i = 0
    while len(tokens) < n_vocab:
        word = letters[i % 26] + (letters[(i // 26) % 26] if i >= 26 else "")
        piece = "\u2581" + word + (str(i // 676) if i >= 676 else "")
        tokens.append(piece)
        types.append(1)
        i += 1
    scores = [-float(k) for k in range(len(tokens))]
    return tokens[:n_vocab], scores[:n_vocab], types[:n_vocab]


def _tensor(
    rng: np.random.Generator, shape: tuple[int, ...], type_name: str
) -> tuple[np.ndarray, QT]:
    """Data for a tensor of numpy shape `shape` stored as `type_name`."""
    qtype = QT.__members__[type_name]
    if type_name == "F32":
        return rng.standard_normal(shape, dtype=np.float32) * 0.02, qtype
    if type_name == "F16":
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16), qtype
    if type_name in ("Q8_0", "Q4_0", "Q5_0", "Q4_1", "Q5_1"):
        values = rng.standard_normal(shape, dtype=np.float32) * 0.02
        return gguf.quants.quantize(values, qtype), qtype
    # K-quants and others: random bytes of the exact size (load-only models).
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    if shape[-1] % block:
        raise ValueError(f"row length {shape[-1]} is not a multiple of {type_name}'s block {block}")
    byte_shape = (*shape[:-1], shape[-1] // block * type_size)
    data = rng.integers(0, 256, size=byte_shape, dtype=np.uint8)
    return data, qtype


def _tensor_shapes(m: SynthModel) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, numpy shape, storage type) of every tensor of `m`, in file order."""
    e, hd, w = m.n_embd, m.head_dim, m.weight_type
    shapes: list[tuple[str, tuple[int, ...], str]] = [
        ("token_embd.weight", (m.n_vocab, e), m.embd_type),
        ("output_norm.weight", (e,), "F32"),
    ]
    if not m.tied_output:
        shapes.append(("output.weight", (m.n_vocab, e), m.output_type))
    for il in range(m.n_layer):
        p = f"blk.{il}."
        shapes += [
            (p + "attn_norm.weight", (e,), "F32"),
            (p + "attn_q.weight", (m.n_head * hd, e), w),
            (p + "attn_k.weight", (m.n_head_kv * hd, e), w),
            (p + "attn_v.weight", (m.n_head_kv * hd, e), w),
            (p + "attn_output.weight", (e, m.n_head * hd), w),
        ]
        if m.arch in ("qwen3", "qwen3moe", "gemma3"):
            shapes += [
                (p + "attn_q_norm.weight", (hd,), "F32"),
                (p + "attn_k_norm.weight", (hd,), "F32"),
            ]
        if m.arch == "gemma3":
            shapes += [
                (p + "post_attention_norm.weight", (e,), "F32"),
                (p + "post_ffw_norm.weight", (e,), "F32"),
            ]
        shapes.append((p + "ffn_norm.weight", (e,), "F32"))
        if m.n_expert:
            shapes += [
                (p + "ffn_gate_inp.weight", (m.n_expert, e), "F32"),
                (p + "ffn_gate_exps.weight", (m.n_expert, m.n_ff_exp, e), w),
                (p + "ffn_up_exps.weight", (m.n_expert, m.n_ff_exp, e), w),
                (p + "ffn_down_exps.weight", (m.n_expert, e, m.n_ff_exp), w),
            ]
        else:
            shapes += [
                (p + "ffn_gate.weight", (m.n_ff, e), w),
                (p + "ffn_up.weight", (m.n_ff, e), w),
                (p + "ffn_down.weight", (e, m.n_ff), w),
            ]
    return shapes


def _add_metadata(writer: gguf.GGUFWriter, m: SynthModel) -> None:
    a = m.arch
    writer.add_name(f"synthetic {a}")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_uint32(f"{a}.context_length", m.ctx_train)
    writer.add_uint32(f"{a}.embedding_length", m.n_embd)
    writer.add_uint32(f"{a}.block_count", m.n_layer)
    writer.add_uint32(f"{a}.feed_forward_length", m.n_ff)
    writer.add_uint32(f"{a}.attention.head_count", m.n_head)
    writer.add_uint32(f"{a}.attention.head_count_kv", m.n_head_kv)
    writer.add_uint32(f"{a}.attention.key_length", m.head_dim)
    writer.add_uint32(f"{a}.attention.value_length", m.head_dim)
    writer.add_float32(f"{a}.attention.layer_norm_rms_epsilon", 1e-6)
    writer.add_float32(f"{a}.rope.freq_base", 10000.0)
    if m.sliding_window:
        writer.add_uint32(f"{a}.attention.sliding_window", m.sliding_window)
    if m.n_expert:
        writer.add_uint32(f"{a}.expert_count", m.n_expert)
        writer.add_uint32(f"{a}.expert_used_count", m.n_expert_used)
        writer.add_uint32(f"{a}.expert_feed_forward_length", m.n_ff_exp)
    for key, value in m.extra_kv.items():
        if isinstance(value, int):
            writer.add_uint32(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        elif isinstance(value, str):
            writer.add_string(key, value)
    tokens, scores, types = _tokens(m.n_vocab)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    if m.chat_template is not None:
        writer.add_chat_template(m.chat_template)


def write_header_only(path: Path, m: SynthModel) -> Path:
    """A full-size GGUF whose tensor data is a sparse hole: real header, no disk cost.

    For estimator tests of models far bigger than this machine could write (an 8B or 14B
    shape): the reader sees a valid file of the true size, and no byte of data is stored.
    """
    alignment = 32  # GGUF's default: each tensor's data starts on a multiple of it
    writer = gguf.GGUFWriter(str(path), m.arch)
    _add_metadata(writer, m)
    total = 0
    for name, shape, type_name in _tensor_shapes(m):
        qtype = QT.__members__[type_name]
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        n_bytes = int(np.prod(shape)) // block * type_size
        byte_shape = (*shape[:-1], shape[-1] // block * type_size)
        writer.add_tensor_info(name, byte_shape, np.dtype(np.uint8), n_bytes, raw_dtype=qtype)
        total += (n_bytes + alignment - 1) // alignment * alignment
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    data_start = (path.stat().st_size + alignment - 1) // alignment * alignment
    with open(path, "r+b") as f:
        f.truncate(data_start + total)
    return path


def write_model(path: Path, m: SynthModel) -> Path:
    """Write `m` as a GGUF file at `path` and return the path."""
    rng = np.random.default_rng(m.seed)
    writer = gguf.GGUFWriter(str(path), m.arch)
    _add_metadata(writer, m)

    def add(name: str, shape: tuple[int, ...], type_name: str) -> None:
        data, qtype = _tensor(rng, shape, type_name)
        if type_name in ("F32", "F16"):
            writer.add_tensor(name, data)
        else:
            writer.add_tensor(name, data, raw_dtype=qtype)

    for name, shape, type_name in _tensor_shapes(m):
        add(name, shape, type_name)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


#: Llama 3.2 1B's published shape (config.json of meta-llama/Llama-3.2-1B-Instruct, as
#: recorded in shared/catalog-research.json) with Q4_K weights: about 0.8 GB read per token,
#: enough that the bandwidth term, not the fixed per-token cost, dominates its decode.
CALIBRATION_SHAPE = SynthModel(
    arch="llama",
    n_layer=16,
    n_embd=2048,
    n_head=32,
    n_head_kv=8,
    head_dim=64,
    n_ff=8192,
    n_vocab=128256,
    ctx_train=131072,
    tied_output=True,
    weight_type="Q4_K",
    embd_type="Q6_K",
)
