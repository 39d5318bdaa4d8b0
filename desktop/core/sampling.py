"""How the model picks its words: the sampling settings, their presets and defaults, in one place.

The chat panel sends its :class:`Sampling` with every message, and the worker's ``Chat``
request (desktop.engine.protocol) takes its defaults from :data:`DEFAULT_SAMPLING`, so a
request that leaves a setting out gets the value the chat panel shows a person.

:data:`PRESETS` are the choices the chat offers, each with where its values come from;
:func:`recommended_sampling` reads the values a model's makers wrote into its GGUF file
(the ``general.sampling.*`` keys of llama.cpp's gguf constants), where there are any.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "DEFAULT_SAMPLING",
    "GGUF_SAMPLING_KEYS",
    "PRESETS",
    "Preset",
    "Sampling",
    "preset_named",
    "recommended_sampling",
    "sampling_from_dict",
]


@dataclass(frozen=True)
class Sampling:
    """llama.cpp's sampler settings for one answer (passed with every message).

    The defaults are llama.cpp's own (``common_params_sampling`` in common/common.h:
    temp 0.80, top_k 40, top_p 0.95, min_p 0.05, penalty_repeat 1.00), so a chat here
    samples as ``llama-cli`` does unless the person picks otherwise.
    """

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    max_tokens: int | None = 1024  # None: until the context is full
    seed: int | None = None  # None: a new random seed for every answer

    def replace(self, **changes: Any) -> Sampling:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


DEFAULT_SAMPLING: Final = Sampling()


@dataclass(frozen=True)
class Preset:
    """A named set of sampler values and why they are what they are."""

    name: str
    sampling: Sampling
    source: str  # a sentence: where the values come from, or the reasoning


PRESETS: Final[tuple[Preset, ...]] = (
    Preset(
        "Precise",
        Sampling(temperature=0.2, top_p=0.9, top_k=40, min_p=0.05, repeat_penalty=1.0),
        "For facts, code and summaries: a low temperature keeps to the most likely words "
        "without the loops that greedy decoding (temperature 0) falls into; top-k and min-p "
        "as llama.cpp's defaults.",
    ),
    Preset(
        "Balanced",
        DEFAULT_SAMPLING,
        "llama.cpp's own defaults (common/common.h: temperature 0.8, top-k 40, top-p 0.95, "
        "min-p 0.05, no repeat penalty), as llama-cli and llama-server sample.",
    ),
    Preset(
        "Creative",
        Sampling(temperature=1.0, top_p=1.0, top_k=0, min_p=0.1, repeat_penalty=1.0),
        "For stories and brainstorming: temperature 1.0 with min-p 0.1 alone cutting the "
        "unlikely words (top-k and top-p off), the setting the min-p paper recommends for "
        "creative writing (Nguyen et al. 2024, arXiv:2407.01082).",
    ),
)


def preset_named(name: str) -> Preset | None:
    return next((preset for preset in PRESETS if preset.name == name), None)


#: The GGUF metadata keys a model's makers can set (gguf-py constants, Keys.General
#: SAMPLING_*), and the Sampling field each one fills.
GGUF_SAMPLING_KEYS: Final[Mapping[str, str]] = {
    "general.sampling.temp": "temperature",
    "general.sampling.top_p": "top_p",
    "general.sampling.top_k": "top_k",
    "general.sampling.min_p": "min_p",
    "general.sampling.penalty_repeat": "repeat_penalty",
}


def recommended_sampling(
    metadata: Mapping[str, object], base: Sampling = DEFAULT_SAMPLING
) -> Sampling | None:
    """The sampler values a GGUF file's metadata recommends, over ``base`` for the rest;
    None when the file recommends none (or only values out of range)."""
    values: dict[str, Any] = {}
    for key, name in GGUF_SAMPLING_KEYS.items():
        value = metadata.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not math.isfinite(value) or value < 0:
            continue
        values[name] = int(value) if name == "top_k" else float(value)
    return base.replace(**values) if values else None


def sampling_from_dict(data: object, base: Sampling = DEFAULT_SAMPLING) -> Sampling:
    """A Sampling from stored JSON; unknown keys and wrong types keep ``base``'s value."""
    if not isinstance(data, dict):
        return base
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Sampling):
        if f.name not in data:
            continue
        value = data[f.name]
        if f.name in ("max_tokens", "seed"):
            if value is None or (isinstance(value, int) and not isinstance(value, bool)):
                values[f.name] = value
        elif f.name == "top_k":
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                values[f.name] = value
        elif (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value >= 0
        ):
            values[f.name] = float(value)
    return base.replace(**values)
