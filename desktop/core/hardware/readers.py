"""Small readers that never raise: a file's text, an integer, the time now.

Shared by the probes of this package; not part of its public face.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path


def read_text(path: Path) -> str | None:
    """The file's text, stripped; None when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def parse_int(text: str | None, base: int = 10) -> int | None:
    """``text`` as an integer; None when it is None or not a number."""
    if text is None:
        return None
    try:
        return int(text.strip(), base)
    except ValueError:
        return None


def utc_now() -> str:
    """Now, as ISO 8601 in UTC to the second."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
