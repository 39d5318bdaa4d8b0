"""The amber strip that says a model is a base model (it continues text, it does not chat).

One widget for the three places a person meets the model: the detail pane and the load
controls where it is picked, and the chat while it is loaded. The judgement itself is the
core's (:func:`desktop.core.chat_kind.base_model_reason`, kept in ``ModelSpec.base_model``).
"""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from desktop.core.chat_kind import base_model_warning
from desktop.core.modelspec import ModelSpec
from desktop.ui.widgets import Banner

__all__ = ["NO_TEMPLATE", "BaseModelBanner"]

#: The reason when only the worker's answer is known (it fell back to a generic chat format).
NO_TEMPLATE = "the file has no chat template"


class BaseModelBanner(Banner):
    """Hidden for a chat model; "Base model: it continues text, ..." for a base model."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("warning", parent)
        self.setAccessibleName("Base model")
        self.hide()

    def show_reason(self, reason: str) -> None:
        """Show the warning for ``reason`` (core.chat_kind's words); "" hides it."""
        self.set_text(base_model_warning(reason))

    def show_spec(self, spec: ModelSpec | None) -> None:
        self.show_reason(spec.base_model if spec is not None else "")
