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
    parser.add_argument(
        "--self-test",
        nargs="?",
        const="",
        default=None,
        metavar="MODEL",
        help="check that everything works (optionally with this GGUF file)",
    )
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


def _load_profile(path: Path | None, *, measure: bool = True) -> Any:
    """This machine's profile, or a hand-written what-if profile from --hardware FILE."""
    from desktop.core.hardware import HardwareProfile, detect

    if path is None:
        return detect(measure_bandwidth=measure)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read the hardware file {path}: {exc.strerror}") from None
    try:
        return HardwareProfile.from_json(text)
    except (ValueError, TypeError, KeyError) as exc:
        raise UserError(f"{path} is not a hardware profile: {exc}") from None


def _read_target_header(target: str) -> Any:
    """A local GGUF path, or REPO[:FILE] on Hugging Face (only the header is fetched)."""
    from desktop.core.gguf import GGUFError, read_header_file

    local = Path(target).expanduser()
    if local.exists() or (target.endswith(".gguf") and ":" not in target and "/" not in target):
        if not local.is_file():
            raise UserError(f"{target} is not a file.")
        try:
            return read_header_file(local)
        except GGUFError as exc:
            raise UserError(f"{local.name} is not a usable GGUF file: {exc}") from None
    if "/" not in target:
        raise UserError(f"{target} is neither a file nor a Hugging Face repo (owner/name).")
    return _read_remote_header(target)


def _read_remote_header(target: str) -> Any:
    from desktop.core import hub
    from desktop.core.gguf import GGUFError

    repo, _, filename = target.partition(":")
    parts: str | tuple[str, ...] = filename
    try:
        if not filename:
            files = hub.list_gguf_files(repo)
            if not files:
                raise UserError(f"{repo} has no GGUF files.")
            if len(files) > 1:
                names = ", ".join(f.name for f in files[:8])
                raise UserError(
                    f"{repo} has {len(files)} GGUF files; pick one as "
                    f"{repo}:FILE ({names}{', ...' if len(files) > 8 else ''})."
                )
            # Its first part names it; a split file's header is read from every part.
            filename, parts = files[0].path, files[0].filenames
        return hub.read_remote_header(repo, parts)
    except hub.HubError as exc:
        raise UserError(str(exc)) from None
    except GGUFError as exc:
        raise UserError(f"{filename} is not a usable GGUF file: {exc}") from None


def _cmd_hardware(args: argparse.Namespace) -> int:
    from desktop.core.hardware import summary_lines

    profile = _load_profile(None, measure=not args.no_bandwidth)
    if args.json:
        print(profile.to_json())
    else:
        print("\n".join(summary_lines(profile)))
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from desktop.core.gguf import summarize
    from desktop.core.units import format_bytes

    header = _read_target_header(args.target)
    summary = summarize(header)
    if args.json:
        _print_json(summary)
        return 0
    for key, value in summary.items():
        if key == "quantization_mix":
            continue
        if isinstance(value, int) and ("bytes" in key or key == "file_size"):
            value = f"{format_bytes(value)} ({value} bytes)"
        print(f"{key.replace('_', ' ')}: {value}")
    mix = summary.get("quantization_mix")
    if isinstance(mix, dict):
        print("quantization mix:")
        for type_name, info in mix.items():
            print(f"  {type_name:8} {info['tensors']:5} tensors  {format_bytes(info['bytes'])}")
    return 0


def _settings_from_args(args: argparse.Namespace, n_ctx_default: int) -> Any:
    from desktop.core.estimate import MIB, Settings

    kwargs: dict[str, Any] = {
        "n_ctx": args.ctx or n_ctx_default,
        "kv_type": args.kv_type,
        "n_gpu_layers": getattr(args, "gpu_layers", None),
        "flash_attn": bool(getattr(args, "flash_attn", False)),
        "offload_kqv": not getattr(args, "no_kv_offload", False),
    }
    if getattr(args, "batch", None):
        kwargs["n_batch"] = args.batch
    if getattr(args, "ubatch", None):
        kwargs["n_ubatch"] = args.ubatch
    if getattr(args, "reserve", None) is not None:
        kwargs["reserve_bytes"] = int(args.reserve * 1024 * MIB)
    return Settings(**kwargs)


def default_context(spec: Any) -> int:
    """The context the app proposes: 4096, or the trained length when that is shorter."""
    trained = int(getattr(spec, "n_ctx_train", 0) or 0)
    return min(4096, trained) if trained else 4096


def _cmd_estimate(args: argparse.Namespace) -> int:
    from desktop.core.estimate import devices_from_profile, estimate
    from desktop.core.gguf import GGUFError
    from desktop.core.modelspec import spec_from_header

    header = _read_target_header(args.target)
    try:
        spec = spec_from_header(header)
    except GGUFError as exc:
        raise UserError(f"cannot estimate this model: {exc}") from None
    settings = _settings_from_args(args, default_context(spec))
    profile = _load_profile(args.hardware)
    plan = estimate(spec, settings, devices_from_profile(profile, settings.reserve_bytes))
    if args.json:
        _print_json(plan.to_dict())
    else:
        print("\n".join(plan_lines(plan)))
    return 0


def plan_lines(plan: Any) -> list[str]:
    """A readable rendering of a Plan for the terminal."""
    from desktop.core.units import format_bytes

    lines = [
        f"{plan.model_name}: {plan.verdict_label} at {plan.n_ctx} tokens of context "
        f"({plan.estimate_kind} estimate)",
        f"  {plan.reason}",
        f"  Suggestion: {plan.suggestion}",
    ]
    header = f"  {'device':24} {'weights':>10} {'KV cache':>10} {'compute':>10} {'other':>10}"
    lines += ["", header + f" {'total':>10} {'capacity':>10}"]
    for d in plan.devices:
        other = d.output_bytes + d.overhead_bytes
        lines.append(
            f"  {d.name[:24]:24} {format_bytes(d.weights_bytes):>10} {format_bytes(d.kv_bytes):>10}"
            f" {format_bytes(d.compute_bytes):>10} {format_bytes(other):>10}"
            f" {format_bytes(d.total_bytes):>10} {format_bytes(d.capacity_bytes):>10}"
            + ("" if d.fits else "  does not fit")
        )
    speed = plan.predicted_tokens_per_s
    prompt = plan.predicted_prompt_tokens_per_s
    lines.append("")
    lines.append(
        "  Predicted speed: "
        + (f"{speed:.1f} tokens/s" if speed else "unknown (no bandwidth figure)")
        + (f", prompt {prompt:.0f} tokens/s" if prompt else "")
    )
    if plan.max_ctx_full_gpu:
        lines.append(f"  Largest context fully on GPU: {plan.max_ctx_full_gpu} tokens")
    lines.extend(f"  Note: {n}" for n in plan.notes)
    return lines


VERDICT_ORDER = {"FULL_GPU": 0, "PARTIAL": 1, "CPU_ONLY": 2, "TOO_LARGE": 3}


def model_rows(profile: Any, settings: Any, *, local: bool = False) -> list[dict[str, Any]]:
    """Every catalog variant (or local GGUF file) with its plan, best fit first.

    Best fit: the verdict first (full GPU, partial, CPU only, too large), then the biggest
    file, since the largest model that still fits is usually the one a person wants.
    """
    from desktop.core.estimate import devices_from_profile, estimate, sibling_suggestion

    devices = devices_from_profile(profile, settings.reserve_bytes)
    rows: list[dict[str, Any]] = []
    plans: list[Any] = []
    by_model: dict[str, list[tuple[str, Any]]] = {}
    for name, quant, size, source, spec, problem in _model_specs(local):
        row: dict[str, Any] = {"name": name, "quant": quant, "size_bytes": size, "source": source}
        plan = None
        if spec is None:
            row.update(verdict=None, problem=problem)
        else:
            plan = estimate(spec, settings, devices)
            row.update(plan.to_dict())
            row["name"], row["model"] = name, spec.name
            by_model.setdefault(name, []).append((quant, plan))
        rows.append(row)
        plans.append(plan)
    # "Q4_K_M fits fully on the GPU.": the other quantizations of the same model, in words.
    for row, plan in zip(rows, plans, strict=True):
        better = sibling_suggestion(plan, by_model[row["name"]]) if plan else None
        if better:
            row["suggestion"] = (
                f"{better} Or: {row['suggestion'][0].lower()}{row['suggestion'][1:]}"
            )
    rows.sort(
        key=lambda r: (VERDICT_ORDER.get(r.get("verdict") or "", 9), -(r.get("size_bytes") or 0))
    )
    return rows


def _model_specs(local: bool) -> list[tuple[str, str, int | None, str, Any, str | None]]:
    """(name, quant, size, source, spec or None, problem) for the catalog or local files."""
    from desktop.core.modelspec import spec_from_catalog

    out: list[tuple[str, str, int | None, str, Any, str | None]] = []
    if local:
        from desktop.core import library
        from desktop.core.settings import default_models_dir, load_settings

        user = load_settings()
        folders = [Path(user.models_dir) if user.models_dir else default_models_dir()]
        folders += [Path(f) for f in user.extra_folders]
        library.ensure_starter_model(folders[0])  # once: the starter model is ready offline
        for item in library.scan(folders):
            quant = item.spec.quant_label if item.spec else item.status
            problem = item.problem or (None if item.spec else "the header could not be read")
            out.append((item.path.name, quant, item.size_bytes, str(item.path), item.spec, problem))
        return out
    from desktop.core.catalog import CatalogError, load_catalog

    try:
        catalog = load_catalog()
    except CatalogError as exc:
        raise UserError(str(exc)) from None
    for model, variant in catalog.variants():
        try:
            spec = spec_from_catalog(model, variant)
            problem = None
        except ValueError as exc:
            spec, problem = None, str(exc)
        out.append(
            (
                model.name,
                variant.quant,
                variant.size_bytes,
                f"{variant.repo}:{variant.file}",
                spec,
                problem,
            )
        )
    return out


def _owner(row: dict[str, Any]) -> str:
    """Who published the file: the repo owner for catalog rows, "local" for files."""
    source = str(row.get("source", ""))
    return source.split("/", 1)[0][:14] if ":" in source and "/" in source else "local"


def _cmd_models(args: argparse.Namespace) -> int:
    from desktop.core.units import format_bytes

    profile = _load_profile(args.hardware)
    settings = _settings_from_args(args, 4096)
    rows = model_rows(profile, settings, local=args.local)
    if args.json:
        _print_json({"n_ctx": settings.n_ctx, "models": rows})
        return 0
    if not rows:
        print("No models found." if args.local else "The catalog is empty.")
        return 0
    print(
        f"{'model':36} {'quant':8} {'from':14} {'size':>8}  {'verdict':15} {'GPU':>9}"
        f" {'CPU':>9} {'tok/s':>7}"
    )
    for r in rows:
        if r.get("verdict") is None:
            print(
                f"{r['name'][:36]:36} {r['quant'][:8]:8} {_owner(r):14} {'':>8}  "
                f"cannot estimate: {r.get('problem')}"
            )
            continue
        gpu = sum(d["total_bytes"] for d in r["devices"] if d["kind"] != "cpu")
        cpu = sum(d["total_bytes"] for d in r["devices"] if d["kind"] == "cpu")
        speed = r.get("predicted_tokens_per_s")
        size = format_bytes(r["size_bytes"]) if r.get("size_bytes") else "?"
        print(
            f"{r['name'][:36]:36} {r['quant'][:8]:8} {_owner(r):14} {size:>8}  "
            f"{r['verdict_label']:15}"
            f" {format_bytes(gpu) if gpu else '-':>9} {format_bytes(cpu):>9}"
            f" {f'{speed:.1f}' if speed else '?':>7}"
        )
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from desktop.benchmark import bench_lines, run_bench
    from desktop.core.gguf import GGUFError
    from desktop.engine.runner import WorkerError, WorkerExited

    path = Path(args.target).expanduser()
    if not path.is_file():
        raise UserError(f"{args.target} is not a file.")
    try:
        result = run_bench(
            path,
            n_ctx=args.ctx,
            n_gpu_layers=args.gpu_layers,
            tokens=args.tokens,
            prompt_tokens=args.prompt_tokens,
            profile=_load_profile(None),
        )
    except GGUFError as exc:
        raise UserError(f"{path.name} is not a usable GGUF file: {exc}") from None
    except WorkerError as exc:
        raise UserError(str(exc)) from None
    except WorkerExited as exc:
        raise UserError(f"the llama.cpp worker stopped unexpectedly: {exc}") from None
    if args.json:
        _print_json(result)
    else:
        print("\n".join(bench_lines(result)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["--worker"]:
        from desktop.engine.worker import main as worker_main

        return worker_main()
    if args_list[:1] == ["--probe-backends"]:  # the frozen app's backend probe
        from desktop.engine.probe import main as probe_main

        return probe_main()
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.self_test is not None:
        from desktop.selftest import run_self_test

        return run_self_test(args.self_test or None)
    if args.command is None:
        from desktop.app import main as app_main

        return app_main()
    handlers = {
        "hardware": _cmd_hardware,
        "models": _cmd_models,
        "inspect": _cmd_inspect,
        "estimate": _cmd_estimate,
        "bench": _cmd_bench,
    }
    try:
        return handlers[args.command](args)
    except UserError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `llm-workbench models | head`: the reader left, not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
