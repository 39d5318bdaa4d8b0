"""Starter picks (desktop.core.starter_picks) and the catalog's verdicts before download.

Every catalog row gets a verdict (``models --json``, run as a person runs it); the picks cover
the families people ask about, each section's files are of its size class, and every pick says
why it is there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.core.catalog import Catalog, load_catalog
from desktop.core.starter_picks import PICKS, SECTIONS, starter_picks

#: The largest download that still belongs in a section (decimal GB, as the Hub shows sizes).
SECTION_MAX_BYTES = {
    "tiny": 1.0e9,
    "laptop": 3.0e9,
    "gpu-8-12": 9.5e9,
    "gpu-24": 21e9,
    "workstation": None,
}


@pytest.fixture(scope="module")
def shipped() -> Catalog:
    return load_catalog()


def test_every_pick_is_in_the_catalog_and_says_why(shipped: Catalog) -> None:
    sections = starter_picks(shipped)
    assert [section.key for section, _ in sections] == [s.key for s in SECTIONS]
    shown = [pick for _, picks in sections for pick in picks]
    assert len(shown) == len(PICKS)  # none dropped: every pick's model is in the catalog
    for pick in shown:
        assert pick.why.endswith(".") and len(pick.why) > 20, pick.model.id
    assert all(section.why for section, _ in sections)


def test_sections_hold_files_of_their_size_class(shipped: Catalog) -> None:
    previous_max = 0.0
    for section, picks in starter_picks(shipped):
        limit = SECTION_MAX_BYTES[section.key]
        for pick in picks:
            size = pick.variant.size_bytes
            assert size is not None, pick.model.id
            assert limit is None or size <= limit, (section.key, pick.model.id, size)
            assert size > previous_max * 0.25, (section.key, pick.model.id)  # not a tiny one
        previous_max = limit or previous_max


@pytest.mark.parametrize(
    "family",
    ["qwen3-8b", "qwen3-30b-a3b", "gemma-3-", "llama-3.", "mistral-small", "phi-4", "gpt-oss",
     "smollm2"],
)
def test_the_families_people_ask_about(shipped: Catalog, family: str) -> None:
    ids = [pick.model.id for _, picks in starter_picks(shipped) for pick in picks]
    assert any(model_id.startswith(family) for model_id in ids), family


def test_models_json_gives_every_row_a_verdict(tmp_path: Path) -> None:
    hw = tmp_path / "hw.json"
    hw.write_text(json.dumps({"memory": {"total_bytes": 16 * 2**30}, "gpus": []}))
    done = subprocess.run(
        [sys.executable, "-m", "desktop", "models", "--json", "--hardware", str(hw)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["models"]
    catalog = load_catalog()
    assert len(rows) == sum(len(m.variants) for m in catalog.models)
    missing = [(r["name"], r["quant"], r.get("problem")) for r in rows if not r["verdict"]]
    assert not missing
    picked = [r for r in rows if r.get("starter_pick")]
    assert {r["starter_pick"]["section"] for r in picked} == {s.key for s in SECTIONS}
