"""The Settings dialog: VRAM reserve, where models are downloaded, extra folders to scan,
the chat keys, and the light or dark theme.

It edits a :class:`~desktop.core.settings.UserSettings` value and hands back a new one
(:meth:`SettingsDialog.result_settings`); saving is the window's job.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from desktop.core.settings import UserSettings, default_models_dir
from desktop.core.units import GIB
from desktop.ui.theme import THEME_CHOICES
from desktop.ui.widgets import HintLabel

__all__ = ["SettingsDialog"]


class SettingsDialog(QDialog):
    """Modal dialog over the person's settings."""

    def __init__(self, settings: UserSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._settings = settings
        self.setWindowTitle("Settings")
        self.setAccessibleName("Settings")
        self.setMinimumWidth(520)

        self.reserve = QDoubleSpinBox(self)
        self.reserve.setAccessibleName("VRAM to keep free")
        self.reserve.setRange(0.0, 16.0)
        self.reserve.setSingleStep(0.25)
        self.reserve.setDecimals(2)
        self.reserve.setSuffix(" GB")
        self.reserve.setValue(settings.vram_reserve_bytes / GIB)
        reserve_hint = HintLabel(
            "Kept free on each GPU for the desktop, the browser and games. Estimates only "
            "count on the rest.",
            self,
        )
        reserve_hint.setWordWrap(True)

        self.models_dir = QLineEdit(self)
        self.models_dir.setAccessibleName("Download folder")
        self.models_dir.setPlaceholderText(str(default_models_dir()))
        self.models_dir.setText(settings.models_dir)
        browse = QPushButton("Choose…", self)
        browse.setAccessibleName("Choose the download folder")
        browse.clicked.connect(self._choose_models_dir)
        models_row = QHBoxLayout()
        models_row.addWidget(self.models_dir, 1)
        models_row.addWidget(browse)

        self.folders = QListWidget(self)
        self.folders.setAccessibleName("Extra model folders")
        self.folders.addItems(list(settings.extra_folders))
        self.folders.setMinimumHeight(96)
        self.folders.setMaximumHeight(140)
        add = QPushButton("Add…", self)
        add.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_DirOpenIcon))
        add.setAccessibleName("Add a model folder")
        add.clicked.connect(self._add_folder)
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.setAccessibleName("Remove the selected folder")
        self.remove_button.clicked.connect(self._remove_folder)
        folder_buttons = QVBoxLayout()
        folder_buttons.addWidget(add)
        folder_buttons.addWidget(self.remove_button)
        folder_buttons.addStretch(1)
        folders_row = QHBoxLayout()
        folders_row.addWidget(self.folders, 1)
        folders_row.addLayout(folder_buttons)
        folders_hint = HintLabel(
            "GGUF files in these folders appear in the models table (LM Studio's folder and "
            "the Hugging Face cache are found by themselves).",
            self,
        )
        folders_hint.setWordWrap(True)

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        form.setVerticalSpacing(6)
        form.addRow("VRAM to keep &free:", self.reserve)
        form.addRow("", reserve_hint)
        models_label = QLabel("&Download folder:", self)
        models_label.setBuddy(self.models_dir)
        folders_label = QLabel("Other model &folders:", self)
        folders_label.setBuddy(self.folders)
        form.addRow(models_label, models_row)
        form.addRow(folders_label, folders_row)
        form.addRow("", folders_hint)

        # The chat: which key sends, and whether the last model comes back at start.
        self.enter_sends = QCheckBox("Enter sends a message (Shift+Enter: new line)", self)
        self.enter_sends.setAccessibleName("Enter sends a message")
        self.enter_sends.setToolTip("Off: Enter makes a new line and Ctrl+Enter sends.")
        self.enter_sends.setChecked(settings.enter_sends)
        self.reload_last_model = QCheckBox("Load the last model again when the app starts", self)
        self.reload_last_model.setAccessibleName("Load the last model again at start")
        self.reload_last_model.setChecked(settings.reload_last_model)
        reload_hint = HintLabel(
            "Off by default: a start then takes no memory until you pick a model, and a model "
            "that ran the computer out of memory is never loaded again by itself.",
            self,
        )
        reload_hint.setWordWrap(True)
        form.addRow("Chat:", self.enter_sends)
        form.addRow("", self.reload_last_model)
        form.addRow("", reload_hint)

        # Light or dark: the desktop's choice unless the person picks one.
        self.theme = QComboBox(self)
        self.theme.setAccessibleName("Theme")
        for value, label in THEME_CHOICES:
            self.theme.addItem(label, value)
        self.theme.setCurrentIndex(max(0, self.theme.findData(settings.theme)))
        theme_label = QLabel("&Theme:", self)
        theme_label.setBuddy(self.theme)
        form.addRow(theme_label, self.theme)

        # For gated and private models (ui/hf_token: huggingface_hub's own token store).
        from desktop.ui.hf_token import HfTokenBox

        self.hf_token = HfTokenBox(self)
        form.addRow("Hugging Face &token:", self.hf_token)

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 18, 18, 14)
        layout.setSpacing(12)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def result_settings(self) -> UserSettings:
        """The settings as edited (unchanged keys kept)."""
        folders = tuple(
            dict.fromkeys(self.folders.item(i).text() for i in range(self.folders.count()))
        )
        return self._settings.replace(
            vram_reserve_bytes=round(self.reserve.value() * GIB),
            models_dir=self.models_dir.text().strip(),
            extra_folders=folders,
            enter_sends=self.enter_sends.isChecked(),
            reload_last_model=self.reload_last_model.isChecked(),
            theme=str(self.theme.currentData() or "system"),
        )

    def _choose_models_dir(self) -> None:
        start = self.models_dir.text() or str(default_models_dir())
        chosen = QFileDialog.getExistingDirectory(self, "Download folder", start)
        if chosen:
            self.models_dir.setText(chosen)

    def _add_folder(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Folder with GGUF models")
        if chosen and not self.folders.findItems(chosen, Qt.MatchFlag.MatchExactly):
            self.folders.addItem(chosen)

    def _remove_folder(self) -> None:
        for item in self.folders.selectedItems():
            self.folders.takeItem(self.folders.row(item))
