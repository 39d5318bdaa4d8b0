"""The person's settings: one JSON file in the per-user config folder, written atomically.

Keys (all optional in the file; a missing or unreadable value falls back to its default, so an
old or hand-edited file never stops the app from starting):

* ``vram_reserve_bytes`` - VRAM kept free for the desktop, browser and games (512 MiB).
* ``models_dir`` - where downloads go (default: ``<user data>/models``).
* ``extra_folders`` - more folders scanned for GGUF files.
* ``last_model`` - the model last selected (a path, or ``repo:file`` for the catalog).
* ``n_ctx`` - the context length the models table estimates for.
* ``extra_files`` - GGUF files opened (File > Open model) or dropped on the window from
  outside the folders above; they are listed like the folders' files.
* ``enter_sends`` - Enter sends a chat message and Shift+Enter makes a new line (true); false:
  Enter makes a new line and Ctrl+Enter sends.
* ``reload_last_model`` - load the model that was loaded last when the app starts (false).
* ``last_load`` - that load's settings (the worker's Load request fields), kept for it.
* ``rpc_servers`` - other computers added in the hardware bar ("host:port", llama.cpp RPC).
* ``theme`` - "system" (follow the desktop's light or dark preference), "light" or "dark".
* ``window_geometry`` / ``window_state`` - the main window's size, place and splitters,
  as Qt saves them (base64 text, opaque here).

Writes go to a temporary file in the same folder, then ``os.replace`` puts it in place, so a
crash or a full disk mid-write leaves the old file intact. Pure Python: no Qt.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop.core.units import GIB, MIB

__all__ = [
    "DEFAULT_N_CTX",
    "DEFAULT_VRAM_RESERVE_BYTES",
    "THEMES",
    "UserSettings",
    "default_models_dir",
    "default_settings_path",
    "load_settings",
    "save_settings",
]

APP_NAME = "llm-workbench"
SETTINGS_FILE = "settings.json"
DEFAULT_VRAM_RESERVE_BYTES = 512 * MIB
DEFAULT_N_CTX = 4096
#: The theme setting's values ("system": follow the desktop's light or dark preference).
THEMES = ("system", "light", "dark")
#: The reserve may not be negative nor absurd (more than any card has).
MAX_VRAM_RESERVE_BYTES = 64 * GIB


def default_settings_path() -> Path:
    """``settings.json`` in the per-user config folder (platformdirs)."""
    import platformdirs

    return platformdirs.user_config_path(APP_NAME, appauthor=False) / SETTINGS_FILE


def default_models_dir() -> Path:
    """Where downloaded models go unless the person picks another folder."""
    import platformdirs

    return platformdirs.user_data_path(APP_NAME, appauthor=False) / "models"


@dataclass(frozen=True)
class UserSettings:
    """Everything the app remembers between runs."""

    vram_reserve_bytes: int = DEFAULT_VRAM_RESERVE_BYTES
    models_dir: str = ""  # empty: default_models_dir()
    extra_folders: tuple[str, ...] = ()
    last_model: str = ""  # a path, or "repo:file"; empty: none
    n_ctx: int = DEFAULT_N_CTX
    window_geometry: str = ""  # base64 of QMainWindow.saveGeometry()
    window_state: str = ""  # base64 of the window's splitter / dock state
    extra_files: tuple[str, ...] = ()  # GGUF files opened or dropped from elsewhere
    enter_sends: bool = True  # Enter sends, Shift+Enter: new line (false: Ctrl+Enter sends)
    # Off by default: a start should not take gigabytes of memory unasked, nor load again a
    # model that made the computer run out of memory last time.
    reload_last_model: bool = False
    last_load: dict[str, Any] = dataclasses.field(default_factory=dict)  # protocol Load fields
    theme: str = "system"  # "system", "light" or "dark" (THEMES)
    rpc_servers: tuple[str, ...] = ()  # other computers' RPC servers, "host:port"

    @property
    def models_path(self) -> Path:
        return Path(self.models_dir).expanduser() if self.models_dir else default_models_dir()

    def replace(self, **changes: Any) -> UserSettings:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["extra_folders"] = list(self.extra_folders)
        data["extra_files"] = list(self.extra_files)
        data["rpc_servers"] = list(self.rpc_servers)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> UserSettings:
        """Take every valid value from ``data``; ignore unknown keys and wrong types."""
        if not isinstance(data, dict):
            return cls()
        defaults = cls()
        values: dict[str, Any] = {}
        reserve = _int_or_none(data.get("vram_reserve_bytes"))
        if reserve is not None and 0 <= reserve <= MAX_VRAM_RESERVE_BYTES:
            values["vram_reserve_bytes"] = reserve
        n_ctx = _int_or_none(data.get("n_ctx"))
        if n_ctx is not None and n_ctx > 0:
            values["n_ctx"] = n_ctx
        for key in ("models_dir", "last_model", "window_geometry", "window_state"):
            value = data.get(key)
            if isinstance(value, str):
                values[key] = value
        folders = data.get("extra_folders")
        if isinstance(folders, list):
            values["extra_folders"] = tuple(
                dict.fromkeys(f for f in folders if isinstance(f, str) and f)
            )
        files = data.get("extra_files")
        if isinstance(files, list):
            values["extra_files"] = tuple(
                dict.fromkeys(f for f in files if isinstance(f, str) and f)
            )
        for key in ("enter_sends", "reload_last_model"):
            flag = data.get(key)
            if isinstance(flag, bool):
                values[key] = flag
        servers = data.get("rpc_servers")
        if isinstance(servers, list):
            values["rpc_servers"] = tuple(
                dict.fromkeys(s for s in servers if isinstance(s, str) and s)
            )
        theme = data.get("theme")
        if theme in THEMES:
            values["theme"] = theme
        last_load = data.get("last_load")
        if isinstance(last_load, dict) and isinstance(last_load.get("path"), str):
            values["last_load"] = dict(last_load)
        return dataclasses.replace(defaults, **values)


def _int_or_none(value: object) -> int | None:
    """``value`` if it is a whole number (true/false are not), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def load_settings(path: Path | None = None) -> UserSettings:
    """The saved settings, or the defaults when the file is missing or unreadable."""
    path = path or default_settings_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return UserSettings()
    try:
        data = json.loads(text)
    except ValueError:
        return UserSettings()
    return UserSettings.from_dict(data)


def save_settings(settings: UserSettings, path: Path | None = None) -> None:
    """Write the settings atomically (temporary file + ``os.replace``).

    Raises OSError when the folder cannot be created or written; the caller tells the person.
    """
    path = path or default_settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(settings.to_dict(), indent=2, sort_keys=True) + "\n"
    fd, temp_name = tempfile.mkstemp(prefix=".settings-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
