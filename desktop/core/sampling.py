"""How the model picks its words: the sampling settings, and their defaults, in one place.

The chat panel sends its :class:`Sampling` with every message, and the worker's ``Chat``
request (desktop.engine.protocol) takes its defaults from :data:`DEFAULT_SAMPLING`, so a
request that leaves a setting out gets the value the chat panel shows a person.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["DEFAULT_SAMPLING", "Sampling"]


@dataclass(frozen=True)
class Sampling:
    """llama.cpp's sampler settings for one answer (passed with every message)."""

    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    max_tokens: int | None = 1024  # None: until the context is full
    seed: int | None = None  # None: a new random seed for every answer


DEFAULT_SAMPLING: Final = Sampling()
