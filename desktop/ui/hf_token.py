"""The Hugging Face token row of the Settings dialog, stored the way huggingface_hub stores it.

Gated and private models need a token. Saving goes through ``huggingface_hub.login`` (it asks
the Hub who the token belongs to, then keeps it in huggingface_hub's own token file, where
``hf auth login`` puts it and every huggingface_hub call finds it); removing through
``huggingface_hub.logout``. Both run on a pool thread: the Hub may be slow or unreachable, and
the dialog never waits on it. A token in the ``HF_TOKEN`` environment variable wins over a
stored one, and the row says so.
"""

from __future__ import annotations

import os

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLineEdit, QPushButton, QVBoxLayout, QWidget

from desktop.core.hub import to_hub_error
from desktop.services.signals import emit
from desktop.services.tasks import run_in_thread
from desktop.ui.widgets import HintLabel

__all__ = ["HfTokenBox", "token_status"]


def token_status() -> str:
    """Which token huggingface_hub will use, in a sentence (the token itself stays hidden)."""
    from huggingface_hub import get_token

    if os.environ.get("HF_TOKEN"):
        return "HF_TOKEN is set in the environment; Hugging Face requests use it."
    token = get_token()
    if token:
        return f"A token is stored (…{token[-4:]}); gated models you accepted will open."
    return (
        "No token: public models work. For gated ones, accept the license on the model page, "
        "then paste a read token from huggingface.co/settings/tokens here."
    )


def _save(token: str) -> None:
    from huggingface_hub import login

    login(token=token, add_to_git_credential=False, skip_if_logged_in=False)


def _remove() -> None:
    from huggingface_hub import get_token, logout

    if get_token():
        logout()


class HfTokenBox(QWidget):
    """A password field, Save and Remove, and a line saying what is in use.

    ``finished(str message)`` after a save or removal (the message is also shown).
    """

    finished = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.token_edit = QLineEdit(self)
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setPlaceholderText("hf_…")
        self.token_edit.setAccessibleName("Hugging Face token")
        self.save_button = QPushButton("Save token", self)
        self.save_button.clicked.connect(self.save)
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.clicked.connect(self.remove)
        self.status = HintLabel(token_status(), self)
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Hugging Face token status")
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.token_edit, 1)
        row.addWidget(self.save_button)
        row.addWidget(self.remove_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.status)

    def save(self) -> None:
        token = self.token_edit.text().strip()
        if not token:
            self._done("Paste a token first (huggingface.co/settings/tokens).")
            return
        self._busy("Checking the token with Hugging Face…")
        run_in_thread(
            lambda: _save(token),
            on_done=lambda _: self._done(f"Saved. {token_status()}", clear=True),
            on_error=self._failed,
            owner=self,  # the Settings dialog closed meanwhile: nothing to say it in
        )

    def remove(self) -> None:
        self._busy("Removing the stored token…")
        run_in_thread(
            _remove,
            on_done=lambda _: self._done(f"Removed. {token_status()}"),
            on_error=self._failed,
            owner=self,
        )

    def _busy(self, text: str) -> None:
        self.save_button.setEnabled(False)
        self.remove_button.setEnabled(False)
        self.status.setText(text)

    def _failed(self, exc: BaseException) -> None:
        error = to_hub_error(exc, "your account")
        if error is not None:
            text = str(error)
        elif isinstance(exc, ValueError):
            text = f"Hugging Face did not accept the token: {exc}"
        else:
            text = f"The token could not be saved ({type(exc).__name__}: {exc})."
        if "401" in text or "would not show" in text:
            text = "Hugging Face did not accept the token; copy it again from its settings page."
        self._done(text)

    def _done(self, text: str, *, clear: bool = False) -> None:
        self.save_button.setEnabled(True)
        self.remove_button.setEnabled(True)
        if clear:
            self.token_edit.clear()
        self.status.setText(text)
        emit(self.finished, text)
