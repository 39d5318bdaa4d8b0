"""Chat model or base model: what a GGUF file's own metadata says about how it answers.

A *base* (pretrained) model continues text; only an instruction-tuned model follows a chat.
llama.cpp formats a chat with the file's ``tokenizer.chat_template``; a file without one was
usually never tuned for chat (Gemma 3 270M's pretrained GGUF has none), and llama-cpp-python
then falls back to a generic format the model never saw, so it rambles. Some files say so
outright: ``general.type``/``general.tags``/``general.finetune``/``general.name`` naming a
"base" or "pretrained" model (the GGUF naming convention's fine-tune field, e.g.
``Qwen2.5-7B-Base``).

:func:`base_model_reason` is the one owner of that judgement: the header reader stores its
answer in :attr:`~desktop.core.modelspec.ModelSpec.base_model`, and the detail pane, the load
controls and the chat show :data:`BASE_MODEL_SENTENCE` with it.
"""

from __future__ import annotations

import re
from typing import Final, Protocol

__all__ = ["BASE_MODEL_SENTENCE", "base_model_reason", "base_model_warning"]


class Metadata(Protocol):
    """A GGUF header's key/value lookup (``GGUFHeader`` or a plain dict)."""

    def get(self, key: str, /) -> object: ...


#: What a person reads wherever a base model is picked or chatted with.
BASE_MODEL_SENTENCE: Final = "base model: it continues text, it does not follow instructions"

_BASE_WORDS: Final = re.compile(r"(?<![a-z0-9])(base|pretrained|pre-trained|pt)(?![a-z0-9])")
_CHAT_WORDS: Final = re.compile(r"(?<![a-z0-9])(instruct|it|chat|sft|dpo|rlhf)(?![a-z0-9])")


def _words(value: object) -> list[str]:
    if isinstance(value, str):
        return [value.lower()]
    if isinstance(value, (tuple, list)):
        return [item.lower() for item in value if isinstance(item, str)]
    return []


def base_model_reason(metadata: Metadata) -> str:
    """Why this file is a base model, in a few words ("" for a chat model).

    ``metadata`` is a GGUF header (``GGUFHeader.get``-style mapping of key to value). Marked
    in its metadata (general.type "base", a "base"/"pretrained" tag, fine-tune or name) wins;
    otherwise a file without ``tokenizer.chat_template`` is treated as one.
    """
    file_type = _words(metadata.get("general.type"))
    if any(value in ("base", "pretrained") for value in file_type):
        return f'its metadata calls it a base model (general.type "{file_type[0]}")'
    for key in ("general.tags", "general.finetune", "general.name"):
        for value in _words(metadata.get(key)):
            if _BASE_WORDS.search(value) and not _CHAT_WORDS.search(value):
                return f'its metadata calls it a base model ({key} "{value}")'
    template = metadata.get("tokenizer.chat_template")
    if not isinstance(template, str) or not template.strip():
        return "the file has no chat template"
    return ""


def base_model_warning(reason: str) -> str:
    """The sentence a person reads: "Base model: it continues text, ... (the file has no
    chat template)." ("" when ``reason`` is "")."""
    if not reason:
        return ""
    return f"{BASE_MODEL_SENTENCE[0].upper()}{BASE_MODEL_SENTENCE[1:]} ({reason})."
