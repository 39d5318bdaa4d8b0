"""Adding a model by hand: File > Open model… (a file dialog for ``*.gguf``) and a ``.gguf``
dropped anywhere on the window.

:class:`ModelOpener` checks each path (:func:`desktop.core.added_models.check_added_path`),
remembers a file that lies outside the scanned folders in the settings (``extra_files``, so it
is listed after a restart too), and says ``filesAdded(paths)``: the app rescans and selects the
first one. Anything that cannot be added gets one sentence in the status bar.

Drops are watched for the whole application (an event filter on the QApplication), so a
``.gguf`` dropped on a text field of the window (the chat's message box, a search box) is
added as a model too, instead of pasting its path; other drops on a text field are its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QWidget

from desktop.core.added_models import check_added_path, inside_folders
from desktop.core.settings import UserSettings
from desktop.services.signals import emit

__all__ = ["GGUF_FILTER", "ModelOpener"]

GGUF_FILTER = "GGUF models (*.gguf);;All files (*)"
MESSAGE_MS = 12_000


class ModelOpener(QObject):
    """File > Open model… and drops on ``target``; see the module docstring.

    ``settings()`` gives the current settings and ``apply(settings)`` saves new ones (the
    window's); ``notify(text)`` shows a sentence (the status bar).
    """

    filesAdded = Signal(list)  # [Path]: GGUF files to list (and select the first)

    def __init__(
        self,
        target: QWidget,
        settings: Callable[[], UserSettings],
        apply: Callable[[UserSettings], None],
        notify: Callable[[str], None],
    ) -> None:
        super().__init__(target)
        self._target = target
        self._settings = settings
        self._apply = apply
        self._notify = notify
        self.dialog: QFileDialog | None = None
        self.last_problems: list[str] = []
        target.setAcceptDrops(True)
        app = QApplication.instance()
        # Qt drops the filter by itself when this object (a child of the window) goes.
        (app if app is not None else target).installEventFilter(self)

    # ------------------------------------------------------------------ the file dialog

    def open_dialog(self) -> QFileDialog:
        """Show the file dialog (not blocking: it adds what the person picks)."""
        if self.dialog is not None and self.dialog.isVisible():
            self.dialog.raise_()
            return self.dialog
        settings = self._settings()
        dialog = QFileDialog(self._target, "Open a GGUF model")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFiles)
        dialog.setNameFilter(GGUF_FILTER)
        folder = settings.models_path if settings.models_path.is_dir() else Path.home()
        dialog.setDirectory(str(folder))
        dialog.filesSelected.connect(lambda names: self.add_paths([Path(n) for n in names]))
        self.dialog = dialog
        dialog.open()
        return dialog

    # ------------------------------------------------------------------ adding

    def add_paths(self, paths: Sequence[Path]) -> list[Path]:
        """Add the GGUF files among ``paths``; return them. Each other path gets a sentence."""
        settings = self._settings()
        folders = [settings.models_path, *(Path(f).expanduser() for f in settings.extra_folders)]
        added: list[Path] = []
        problems: list[str] = []
        remembered = list(settings.extra_files)
        for path in paths:
            problem = check_added_path(path)
            if problem is not None:
                problems.append(problem)
                continue
            path = path.absolute()
            added.append(path)
            if not inside_folders(path, folders) and str(path) not in remembered:
                remembered.append(str(path))
        if tuple(remembered) != settings.extra_files:
            self._apply(settings.replace(extra_files=tuple(remembered)))
        self.last_problems = problems
        if problems:
            self._notify(" ".join(problems))
        elif added:
            names = ", ".join(path.name for path in added)
            self._notify(f"Added {names}; it is listed in the Models table.")
        if added:
            emit(self.filesAdded, added)
        return added

    # ------------------------------------------------------------------ drops

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind not in (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop):
            return False
        if not isinstance(watched, QWidget) or watched.window() is not self._target:
            return False
        assert isinstance(event, QDropEvent)
        paths = _local_paths(event)
        if not paths:
            return False
        if watched is not self._target and not any(_is_gguf_name(p) for p in paths):
            return False  # a text field's own drop (a file's path into a message)
        event.acceptProposedAction()  # a non-GGUF is explained when it is dropped
        if kind == QEvent.Type.Drop:
            self.add_paths(paths)
        return True


def _is_gguf_name(path: Path) -> bool:
    return path.suffix.lower() == ".gguf"


def _local_paths(event: QDropEvent) -> list[Path]:
    mime = event.mimeData()
    if mime is None or not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
