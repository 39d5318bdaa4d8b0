"""Headless commands, and the entry point that opens the window when none is given.

    llm-workbench                      open the window
    llm-workbench hardware [--json]    what this machine has
    llm-workbench models   [--json] [--ctx N] [--hardware FILE] [--local]
    llm-workbench inspect  PATH|REPO[:FILE] [--json]
    llm-workbench estimate PATH|REPO[:FILE] [--ctx N] [--gpu-layers N|auto] [--kv-type T]
                           [--hardware FILE] [--json]
    llm-workbench bench    PATH [--ctx N] [--gpu-layers N] [--tokens N] [--json]

Heavy modules are imported inside each command so `--version` and `--help` stay instant and
the GUI never pays for what it does not use. Errors a person can meet are printed as one
sentence (exit 1); bad arguments exit 2 with one line, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from desktop import __version__

PROG = "llm-workbench"


class UserError(Exception):
    """A problem the person can fix; printed as one sentence, exit status 1."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments in one line (exit 2) instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see '{PROG} --help')\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {value}")
    return value


def _layers(text: str) -> int | None:
    """--gpu-layers: a count (0 = CPU only) or 'auto' (None: the most that fit)."""
    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"GPU layers cannot be negative ({value})")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Which GGUF models can this computer run, how fast.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--self-test", action="store_true", help="check that everything works")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    hw = sub.add_parser("hardware", help="what this machine has")
    hw.add_argument("--json", action="store_true", help="print the profile as JSON")
    hw.add_argument("--no-bandwidth", action="store_true", help="skip the RAM bandwidth test")

    def add_plan_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--ctx", type=_positive_int, default=None, help="context length (tokens)")
        p.add_argument("--hardware", type=Path, metavar="FILE", help="hardware profile JSON")
        p.add_argument("--kv-type", choices=("f16", "q8_0", "q4_0"), default="f16")
        p.add_argument("--json", action="store_true", help="print JSON")

    models = sub.add_parser("models", help="catalog models with fit verdicts")
    add_plan_args(models)
    models.add_argument("--local", action="store_true", help="GGUF files on this computer")

    inspect = sub.add_parser("inspect", help="summary of a GGUF file's header")
    inspect.add_argument("target", metavar="PATH|REPO[:FILE]")
    inspect.add_argument("--json", action="store_true", help="print JSON")

    estimate = sub.add_parser("estimate", help="memory plan, fit verdict and speed")
    estimate.add_argument("target", metavar="PATH|REPO[:FILE]")
    add_plan_args(estimate)
    estimate.add_argument("--gpu-layers", type=_layers, default=None, metavar="N|auto")
    estimate.add_argument("--batch", type=_positive_int, default=None, help="n_batch")
    estimate.add_argument("--ubatch", type=_positive_int, default=None, help="n_ubatch")
    estimate.add_argument("--flash-attn", action="store_true", help="flash attention on")
    estimate.add_argument("--no-kv-offload", action="store_true", help="keep KV cache in RAM")
    estimate.add_argument("--reserve", type=float, default=None, help="GB of VRAM to keep free")

    bench = sub.add_parser("bench", help="load a model, measure speed beside the prediction")
    bench.add_argument("target", metavar="PATH")
    bench.add_argument("--ctx", type=_positive_int, default=2048)
    bench.add_argument("--gpu-layers", type=_layers, default=None, metavar="N|auto")
    bench.add_argument("--tokens", type=_positive_int, default=64)
    bench.add_argument("--prompt-tokens", type=_positive_int, default=128)
    bench.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


def _cmd_hardware(args: argparse.Namespace) -> int:
    from desktop.core.hardware import detect, summary_lines

    profile = detect(measure_bandwidth=not args.no_bandwidth)
    if args.json:
        print(profile.to_json())
    else:
        print("\n".join(summary_lines(profile)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["--worker"]:
        from desktop.engine.worker import main as worker_main

        return worker_main()
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.self_test:
        from desktop.selftest import run_self_test

        return run_self_test()
    if args.command is None:
        from desktop.app import main as app_main

        return app_main()
    from desktop import commands

    handlers = {
        "hardware": _cmd_hardware,
        "models": commands.cmd_models,
        "inspect": commands.cmd_inspect,
        "estimate": commands.cmd_estimate,
        "bench": commands.cmd_bench,
    }
    try:
        return handlers[args.command](args)
    except UserError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
