"""What a test does when a tool it needs is not installed."""

from __future__ import annotations

import os

import pytest


def missing_tool(reason: str) -> None:
    """A test tool (Xvfb, xdotool, dpkg-deb, PyInstaller) is not installed: locally the test
    skips with the reason; in CI (CI=true) that is a failure, since CI must run every test."""
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"CI must run this test, but {reason}", pytrace=False)
    pytest.skip(reason)
