"""Fixtures for the tests that run real llama.cpp: load requests, tiny models, a worker.

The Gemma 3 270M file (``gemma_path``) and the LLMW_SKIP_ENGINE switch live in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from desktop.engine import protocol as p
from desktop.engine.runner import WorkerRunner

#: One thread: the machines that run these tests are small and shared, and llama.cpp's
#: threads wait for each other at every step, which is slow when a core is taken away.
TEST_THREADS = 1


@pytest.fixture
def gemma_load(gemma_path: Path) -> Callable[..., p.Load]:
    """``gemma_load(**overrides)``: a Load request for Gemma with test-friendly settings."""

    def make(**overrides: Any) -> p.Load:
        settings: dict[str, Any] = {
            "path": str(gemma_path),
            "n_ctx": 1024,
            "n_threads": TEST_THREADS,
        }
        settings.update(overrides)
        return p.Load(**settings)

    return make


@pytest.fixture
def runner() -> Iterator[WorkerRunner]:
    """A started worker, shut down (or killed) after the test."""
    with WorkerRunner() as started:
        yield started


def write_tiny_llama(path: Path, chat_template: str | None = None) -> Path:
    """A valid, tiny random-weight llama-architecture GGUF (one block, 64 wide, SPM vocab).

    Enough for llama.cpp to load and generate (nonsense) text, so tests can control
    metadata such as ``tokenizer.chat_template`` without copying a real model.
    """
    import gguf

    n_embd, n_ff, n_head = 64, 128, 4
    specials = ["<unk>", "<s>", "</s>"]
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    words = ["▁", *"abcdefghijklmnopqrstuvwxyz", "▁hello", "▁world", "▁the", "▁a"]
    tokens = specials + byte_tokens + words
    types = (
        [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
        + [gguf.TokenType.BYTE] * len(byte_tokens)
        + [gguf.TokenType.NORMAL] * len(words)
    )
    scores = [0.0] * (len(specials) + len(byte_tokens)) + [-float(i) for i in range(len(words))]

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny test llama")
    writer.add_context_length(256)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(1)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    if chat_template is not None:
        writer.add_chat_template(chat_template)

    rng = np.random.default_rng(0)

    def weights(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    # NumPy shapes are ggml's ne reversed: (rows, columns) = (out, in).
    writer.add_tensor("token_embd.weight", weights(len(tokens), n_embd))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("output.weight", weights(len(tokens), n_embd))
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
    for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
        writer.add_tensor(f"blk.0.{name}.weight", weights(n_embd, n_embd))
    writer.add_tensor("blk.0.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("blk.0.ffn_gate.weight", weights(n_ff, n_embd))
    writer.add_tensor("blk.0.ffn_up.weight", weights(n_ff, n_embd))
    writer.add_tensor("blk.0.ffn_down.weight", weights(n_embd, n_ff))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def make_tiny_llama(tmp_path: Path) -> Callable[..., Path]:
    """``make_tiny_llama(name, chat_template=None)`` writes a tiny model into tmp_path."""

    def make(name: str = "tiny.gguf", chat_template: str | None = None) -> Path:
        return write_tiny_llama(tmp_path / name, chat_template)

    return make
