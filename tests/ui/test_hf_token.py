"""The Settings dialog's Hugging Face token (desktop.ui.hf_token) with the real huggingface_hub.

Saving goes through ``huggingface_hub.login`` against the local test Hub (which answers
``whoami`` for the tokens it knows) into a temporary token file; then a gated repo that
answered 401 opens. A wrong token is a sentence, and Remove forgets the token again.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))  # hub_server

from hub_server import (
    TWO_GGUF_QWEN,
    HubServer,
    running_hub,
    write_two_gguf_models,
)

from desktop.core.hub import HubAccessError, list_gguf_files
from desktop.ui.hf_token import HfTokenBox

TOKEN = "hf_testtoken0123456789"
GATED = "test/gated-GGUF"


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_two_gguf_models(tmp_path_factory.mktemp("token-models"))


@pytest.fixture
def hub(
    model_files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[HubServer]:
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf" / "stored"))
    with running_hub() as server:
        server.add_file(GATED, TWO_GGUF_QWEN, model_files[TWO_GGUF_QWEN])
        server.tokens.add(TOKEN)
        server.token_gated.add(GATED)
        from huggingface_hub import hf_api

        # As HF_ENDPOINT set before start-up: login's whoami is huggingface_hub's module-level
        # HfApi, built at import.
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(hf_api.api, "endpoint", server.url)
        yield server


def test_saving_a_token_opens_a_gated_repo(qtbot: Any, hub: HubServer) -> None:
    with pytest.raises(HubAccessError, match="add a token in Settings"):
        list_gguf_files(GATED, endpoint=hub.url)
    box = HfTokenBox()
    qtbot.addWidget(box)
    assert box.status.text().startswith("No token")

    box.token_edit.setText("hf_wrong")
    with qtbot.waitSignal(box.finished, timeout=20_000) as wrong:
        box.save()
    assert "did not accept the token" in wrong.args[0]

    box.token_edit.setText(TOKEN)
    with qtbot.waitSignal(box.finished, timeout=20_000) as saved:
        box.save()
    assert saved.args[0].startswith("Saved. A token is stored (…6789)")
    assert box.token_edit.text() == ""
    files = list_gguf_files(GATED, endpoint=hub.url)  # huggingface_hub finds the token itself
    assert [f.name for f in files] == [TWO_GGUF_QWEN]

    with qtbot.waitSignal(box.finished, timeout=20_000) as removed:
        box.remove()
    assert removed.args[0].startswith("Removed. No token")
