"""The headless commands: the contract tests and power users rely on (README, DESIGN)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from synth import ACCURACY_MODELS, write_model

from desktop import __version__
from desktop.cli import main


def run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real command line, in a child process, as a person would type it."""
    return subprocess.run(
        [sys.executable, "-m", "desktop", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_version() -> None:
    done = run(["--version"])
    assert done.returncode == 0 and done.stdout.strip() == f"llm-workbench {__version__}"


@pytest.mark.parametrize(
    "args",
    [
        ["--bogus"],
        ["estimate"],
        ["estimate", "x.gguf", "--ctx", "zero"],
        ["estimate", "x.gguf", "--gpu-layers", "-3"],
        ["models", "--kv-type", "q3"],
        ["frobnicate"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(args: list[str]) -> None:
    done = run(args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llm-workbench"), done.stderr
    assert "Traceback" not in done.stderr


def test_hardware_json_has_the_documented_keys() -> None:
    done = run(["hardware", "--json", "--no-bandwidth"])
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert {"cpu", "memory", "gpus", "backends"} <= set(data)
    assert data["cpu"]["logical_cores"] >= 1 and data["cpu"]["physical_cores"] >= 1
    assert data["memory"]["total_bytes"] > data["memory"]["available_bytes"] > 0
    assert "bandwidth_bytes_per_s" in data["memory"]
    assert isinstance(data["gpus"], list)


def test_hardware_summary_is_readable() -> None:
    done = run(["hardware", "--no-bandwidth"])
    assert done.returncode == 0 and "CPU:" in done.stdout and "RAM:" in done.stdout


def test_inspect_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_model(tmp_path / "q.gguf", ACCURACY_MODELS["qwen3"])
    assert main(["inspect", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["architecture"] == "qwen3" and info["block_count"] == 6
    assert info["vocab_size"] == 6000 and info["file_size"] == path.stat().st_size


def test_inspect_and_estimate_refuse_a_bad_file_with_the_parser_message(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 40)
    for command in ("inspect", "estimate"):
        done = run([command, str(bad)])
        assert done.returncode == 1, done
        assert "broken.gguf is not a usable GGUF file" in done.stderr
        assert "Traceback" not in done.stderr
    missing = run(["estimate", str(tmp_path / "nope.gguf")])
    assert missing.returncode == 1 and "Traceback" not in missing.stderr


def test_estimate_text_and_kv_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_model(tmp_path / "l.gguf", ACCURACY_MODELS["llama-gqa"])
    assert main(["estimate", str(path), "--ctx", "8192", "--json"]) == 0
    f16 = json.loads(capsys.readouterr().out)
    assert (
        main(
            ["estimate", str(path), "--ctx", "8192", "--kv-type", "q8_0", "--flash-attn", "--json"]
        )
        == 0
    )
    q8 = json.loads(capsys.readouterr().out)
    kv = [sum(d["kv_bytes"] for d in plan["devices"]) for plan in (f16, q8)]
    assert kv[1] == kv[0] * 34 // 64 and q8["kv_type"] == "q8_0"
    assert main(["estimate", str(path)]) == 0
    text = capsys.readouterr().out
    assert "CPU only" in text or "Full GPU" in text or "Partial" in text
    assert "Predicted speed" in text


def test_models_lists_the_catalog_best_fit_first(tmp_path: Path) -> None:
    hw = tmp_path / "hw.json"
    hw.write_text(
        json.dumps(
            {
                "memory": {
                    "total_bytes": 32 * 2**30,
                    "available_bytes": 28 * 2**30,
                    "bandwidth_bytes_per_s": 60 * 10**9,
                },
                "gpus": [
                    {
                        "name": "Test 8GB",
                        "vendor": "nvidia",
                        "vram_total_bytes": 8 * 2**30,
                        "bandwidth_bytes_per_s": 448 * 10**9,
                    }
                ],
            }
        )
    )
    done = run(["models", "--json", "--ctx", "8192", "--hardware", str(hw)])
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["models"]
    assert len(rows) >= 100
    order = {"FULL_GPU": 0, "PARTIAL": 1, "CPU_ONLY": 2, "TOO_LARGE": 3, None: 4}
    ranks = [order[r.get("verdict")] for r in rows]
    assert ranks == sorted(ranks)
    verdicts = {r.get("verdict") for r in rows}
    assert {"FULL_GPU", "PARTIAL"} <= verdicts
    assert all(
        r["devices"][0]["capacity_bytes"] == 8 * 2**30 - 512 * 2**20
        for r in rows
        if r.get("verdict")
    )


@pytest.mark.engine
def test_bench_measures_beside_the_prediction(gemma_path: Path) -> None:
    done = run(
        [
            "bench",
            str(gemma_path),
            "--tokens",
            "16",
            "--prompt-tokens",
            "32",
            "--ctx",
            "1024",
            "--json",
        ],
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["generated_tokens"] > 0 and result["gen_tokens_per_s"] > 0
    assert result["predicted_tokens_per_s"] > 0
    assert result["peak_worker_rss_bytes"] > 100 * 2**20
    weights = next(r for r in result["comparison"] if r["component"] == "weights")
    assert abs(weights["error_pct"]) <= 1.0


def test_estimate_of_a_hub_repo_reads_its_only_gguf_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REPO without :FILE: the repo's one GGUF file; a split file's header from every part."""
    from hub_server import running_hub, write_split_model
    from synth import SynthModel

    small = SynthModel()
    single = write_model(tmp_path / "small-Q8_0.gguf", small)
    (tmp_path / "split").mkdir()
    parts = write_split_model(tmp_path / "split" / "small-Q8_0.gguf", small, max_tensors=16)
    assert len(parts) > 1
    hw = tmp_path / "hw.json"
    hw.write_text(json.dumps({"memory": {"total_bytes": 16 * 2**30}, "gpus": []}))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # its own header cache
    plans = {}
    with running_hub() as server:
        server.add_file("test/one-GGUF", single.name, single)
        for part in parts:
            server.add_file("test/split-GGUF", part.name, part)
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        for repo in ("test/one-GGUF", "test/split-GGUF"):
            done = run(["estimate", repo, "--json", "--hardware", str(hw)])
            assert done.returncode == 0, done.stderr
            plans[repo] = json.loads(done.stdout)
    assert plans["test/one-GGUF"]["estimate_kind"] == "exact"
    assert plans["test/split-GGUF"]["devices"] == plans["test/one-GGUF"]["devices"]
