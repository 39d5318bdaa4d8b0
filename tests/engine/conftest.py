"""Fixtures for the tests that run real llama.cpp: load requests, tiny models, a worker.

The Gemma 3 270M file (``gemma_path``) and the LLMW_SKIP_ENGINE switch live in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from synth import SynthModel, write_model

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
    """A valid, tiny random-weight llama-architecture GGUF (one block, 64 wide, f32).

    Enough for llama.cpp to load and generate (nonsense) text, so tests can control
    metadata such as ``tokenizer.chat_template`` without copying a real model.
    """
    tiny = SynthModel(
        arch="llama",
        n_layer=1,
        n_embd=64,
        n_head=4,
        n_head_kv=4,
        head_dim=16,
        n_ff=128,
        n_vocab=300,
        ctx_train=256,
        weight_type="F32",
        embd_type="F32",
        output_type="F32",
        chat_template=chat_template,
    )
    return write_model(path, tiny)


@pytest.fixture
def make_tiny_llama(tmp_path: Path) -> Callable[..., Path]:
    """``make_tiny_llama(name, chat_template=None)`` writes a tiny model into tmp_path."""

    def make(name: str = "tiny.gguf", chat_template: str | None = None) -> Path:
        return write_tiny_llama(tmp_path / name, chat_template)

    return make
