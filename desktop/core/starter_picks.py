"""Starter picks: the catalog as a person sees it before typing anything, by size class.

Five sections, smallest first, each saying whom it is for; each pick names a catalog model and
says why it is there. The file shown for a pick is its Q4_K_M variant where the catalog has one
(the usual balance of size and quality), else its first variant; sizes and verdicts come from
the catalog and the estimator, never from the text here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from desktop.core.catalog import Catalog, CatalogModel, CatalogVariant

__all__ = ["PICKS", "SECTIONS", "Pick", "Section", "StarterPick", "starter_picks"]


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    why: str  # whom the section is for


@dataclass(frozen=True)
class Pick:
    model_id: str
    section: str
    why: str


@dataclass(frozen=True)
class StarterPick:
    """A pick resolved against the catalog: the model and the file to show."""

    section: Section
    model: CatalogModel
    variant: CatalogVariant
    why: str

    @property
    def location(self) -> str:
        """The catalog row's location (``repo:file``), as rows.catalog_rows makes it."""
        return f"{self.variant.repo}:{self.variant.file}"


SECTIONS: Final = (
    Section("tiny", "Tiny", "Runs on any computer, even without a GPU; answers quickly on a CPU."),
    Section("laptop", "Laptop", "A laptop or desktop without a graphics card, 8-16 GB of RAM."),
    Section("gpu-8-12", "8-12 GB GPU", "A gaming graphics card (RTX 3060/4060/4070 class)."),
    Section("gpu-24", "24 GB GPU", "An RTX 3090/4090-class card, or a Mac with 32 GB or more."),
    Section(
        "workstation",
        "Workstation",
        "Two big GPUs, or 64 GB+ of RAM and patience: the largest open models.",
    ),
)

PICKS: Final = (
    Pick("smollm2-135m-instruct", "tiny", "The smallest chat model here: instant, for trying "
         "the app out, not for hard questions."),
    Pick("gemma-3-270m-it", "tiny", "Google's smallest Gemma 3: loads in a moment and follows "
         "simple instructions."),
    Pick("qwen3-0.6b", "tiny", "Qwen3 with its thinking mode at the smallest size."),
    Pick("llama-3.2-1b-instruct", "tiny", "Meta's small Llama: a long context for its size."),
    Pick("smollm2-1.7b-instruct", "laptop", "Hugging Face's SmolLM2: fully open training data, "
         "quick on a CPU."),
    Pick("qwen3-4b", "laptop", "The strongest all-rounder that still runs well on a CPU; "
         "switches between thinking and quick answers."),
    Pick("gemma-3-4b-it", "laptop", "Gemma 3 4B: good writing and many languages."),
    Pick("phi-4-mini-instruct", "laptop", "Microsoft's Phi-4-mini: strong at reasoning and "
         "maths for its size."),
    Pick("llama-3.2-3b-instruct", "laptop", "Llama 3.2 3B: dependable chat and tool use."),
    Pick("qwen3-8b", "gpu-8-12", "Qwen3 8B: the usual first choice for an 8 GB card."),
    Pick("llama-3.1-8b-instruct", "gpu-8-12", "Llama 3.1 8B: the most fine-tuned model family; "
         "many variants on Hugging Face share its shape."),
    Pick("gemma-3-12b-it", "gpu-8-12", "Gemma 3 12B: a step up in quality for 12 GB cards."),
    Pick("mistral-nemo-instruct-2407", "gpu-8-12", "Mistral Nemo 12B: long context, good at "
         "stories and role-play."),
    Pick("phi-4", "gpu-8-12", "Phi-4 14B: reasoning and maths; tight on 12 GB at longer "
         "contexts."),
    Pick("qwen3-30b-a3b", "gpu-24", "Qwen3 30B-A3B, a mixture of experts: only 3B parameters "
         "work per token, so it is fast even when part of it sits in RAM."),
    Pick("gpt-oss-20b", "gpu-24", "OpenAI's open-weight gpt-oss-20b: a mixture of experts with "
         "adjustable reasoning effort."),
    Pick("mistral-small-24b-instruct-2501", "gpu-24", "Mistral Small 24B: fast and capable, a "
         "good fit for one 24 GB card."),
    Pick("gemma-3-27b-it", "gpu-24", "Gemma 3 27B: Google's largest Gemma 3."),
    Pick("qwen3-32b", "gpu-24", "Qwen3 32B: the strongest dense Qwen3; fills a 24 GB card."),
    Pick("llama-3.3-70b-instruct", "workstation", "Llama 3.3 70B: near the quality of much "
         "larger models, for those with the memory."),
    Pick("qwen2.5-72b-instruct", "workstation", "Qwen2.5 72B: a strong large model for many "
         "languages and code."),
)


def _shown_variant(model: CatalogModel) -> CatalogVariant:
    for variant in model.variants:
        if variant.quant == "Q4_K_M" and variant.size_bytes:
            return variant
    return model.variants[0]


def starter_picks(catalog: Catalog) -> list[tuple[Section, list[StarterPick]]]:
    """The sections in order, each with its picks that the catalog has (a pick whose model is
    not in the catalog is left out, so a trimmed catalog still works)."""
    by_key = {section.key: section for section in SECTIONS}
    out: dict[str, list[StarterPick]] = {section.key: [] for section in SECTIONS}
    for pick in PICKS:
        model = catalog.find(pick.model_id)
        if model is None or not model.variants:
            continue
        section = by_key[pick.section]
        out[pick.section].append(StarterPick(section, model, _shown_variant(model), pick.why))
    return [(by_key[key], picks) for key, picks in out.items() if picks]
