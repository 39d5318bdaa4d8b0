"""Headless commands, and the entry point that opens the window when none is given.

    llm-workbench                      open the window
    llm-workbench hardware [--json]    what this machine has
    llm-workbench models   [--json] [--ctx N] [--hardware FILE] [--local]
    llm-workbench inspect  PATH|REPO[:FILE] [--json]
    llm-workbench estimate PATH|REPO[:FILE] [--ctx N] [--gpu-layers N|auto] [--kv-type T]
                           [--hardware FILE] [--json]
    llm-workbench bench    PATH [--ctx N] [--gpu-layers N] [--tokens N] [--json]
    llm-workbench search   TEXT [--sort downloads|trending|updated|likes] [--limit N] [--exact]
                           [--json]
    llm-workbench serve    MODEL [--port 8080] [--host 127.0.0.1] [--api-key KEY] [--ctx N]
                           [--gpu-layers N|auto] [--threads N]

Heavy modules are imported inside each command so `--version` and `--help` stay instant and
the GUI never pays for what it does not use. Errors a person can meet are printed as one
sentence (exit 1); bad arguments exit 2 with one line, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from desktop import __version__

if TYPE_CHECKING:  # the real imports wait inside each command: `--version` stays instant
    from desktop.core.calibration import SpeedFigures
    from desktop.core.estimate import Plan, Settings
    from desktop.core.gguf import GGUFHeader
    from desktop.core.hardware import HardwareProfile
    from desktop.core.modelspec import ModelSpec
    from desktop.core.rows import ModelRow

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
    _add_rpc_arg(hw)

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
    estimate.add_argument("--threads", type=_positive_int, default=None, help="CPU threads")
    estimate.add_argument(
        "--no-check",
        action="store_true",
        help="skip llama.cpp's dry run of a local file (header arithmetic only)",
    )
    _add_rpc_arg(estimate)

    bench = sub.add_parser("bench", help="load a model, measure speed beside the prediction")
    bench.add_argument("target", metavar="PATH")
    bench.add_argument("--ctx", type=_positive_int, default=2048)
    bench.add_argument("--gpu-layers", type=_layers, default=None, metavar="N|auto")
    bench.add_argument("--tokens", type=_positive_int, default=64)
    bench.add_argument("--prompt-tokens", type=_positive_int, default=128)
    bench.add_argument(
        "--threads", type=_positive_int, default=None, help="CPU threads (default: physical cores)"
    )
    bench.add_argument(
        "--no-store",
        action="store_true",
        help="do not keep the run for this computer's calibration",
    )
    bench.add_argument("--json", action="store_true", help="print JSON")
    _add_rpc_arg(bench)

    share = sub.add_parser("share", help="lend this computer's memory to another (llama.cpp RPC)")
    share.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    share.add_argument("--port", type=_positive_int, default=50052)
    share.add_argument("--device", default=None, help="device to share: cpu (default), cuda0, ...")

    from desktop.cli_search import add_search_parser

    add_search_parser(sub, add_plan_args, _positive_int)

    from desktop.cli_serve import add_serve_parser

    add_serve_parser(sub, _positive_int, _layers)

    calibrate = sub.add_parser(
        "calibrate", help="measure this computer's speed with a short standard run"
    )
    calibrate.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _add_rpc_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rpc",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="another computer sharing its memory (llm-workbench share there); repeatable",
    )


def _remote_devices(endpoints: Sequence[str]) -> list[Any]:
    """Ask each --rpc server for its devices; a UserError with the sentence when one fails."""
    from desktop.core.rpc import parse_endpoint, probe_servers

    try:
        parsed = list(dict.fromkeys(parse_endpoint(e) for e in endpoints))
    except ValueError as exc:
        raise UserError(str(exc).rstrip(".")) from None
    servers = probe_servers(parsed)
    for server in servers:
        if server.error:
            raise UserError(server.error.rstrip("."))
    return [d for s in servers for d in s.devices]


def _cmd_share(args: argparse.Namespace) -> int:
    """Serve this computer's device to others until Ctrl+C."""
    from desktop.core.rpc import ShareServer, check_share_address
    from desktop.core.units import format_bytes

    try:
        warning = check_share_address(args.host)
    except ValueError as exc:
        raise UserError(str(exc).rstrip(".")) from None
    server = ShareServer(args.host, args.port, args.device)
    try:
        info = server.start()
        failed = server.listening()
        if failed:
            raise UserError(failed.rstrip("."))
        print(
            f"Sharing {info['name']} ({info['description']}, "
            f"{format_bytes(info['free_bytes'])} free of {format_bytes(info['total_bytes'])}) "
            f"at {server.endpoint}.",
            flush=True,
        )
        print(f"On the other computer: llm-workbench estimate MODEL --rpc {server.endpoint}")
        if warning:
            print(f"Warning: {warning}", flush=True)
        print("Press Ctrl+C to stop sharing.", flush=True)
        for event in server.events():
            print(
                "A computer connected." if event == "connected" else "It disconnected.",
                flush=True,
            )
        raise UserError("the sharing server stopped")
    except RuntimeError as exc:
        raise UserError(str(exc).rstrip(".")) from None
    except KeyboardInterrupt:
        print("Stopped sharing.")
        return 0
    finally:
        server.stop()


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


def _load_profile(path: Path | None, *, measure: bool = True) -> HardwareProfile:
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


def _read_target_header(target: str) -> GGUFHeader:
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


def _read_remote_header(target: str) -> GGUFHeader:
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
    figures = _machine_figures(profile)
    remote = _remote_devices(args.rpc)
    if args.json:
        data = json.loads(profile.to_json())
        data["calibration"] = figures.to_dict()
        data["remote_devices"] = [d.to_dict() for d in remote]
        _print_json(data)
    else:
        print("\n".join(summary_lines(profile)))
        for d in remote:
            print(
                f"Remote device (RPC) at {d.label}: {d.free_bytes / 2**30:.1f} GB free of "
                f"{d.total_bytes / 2**30:.1f} GB, round trip {d.latency_s * 1000:.2f} ms"
            )
        print(f"Speed predictions: {figures.describe()}.")
    return 0


def _machine_figures(profile: HardwareProfile) -> SpeedFigures:
    """This computer's speed figures, fitted from the runs measured on it."""
    from desktop.core.runs import load_figures, profile_machine_key

    return load_figures(profile_machine_key(profile))


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


def _settings_from_args(args: argparse.Namespace, n_ctx_default: int) -> Settings:
    from desktop.core.estimate import Settings
    from desktop.core.units import GIB

    kwargs: dict[str, Any] = {
        "n_ctx": args.ctx or n_ctx_default,
        "kv_type": args.kv_type,
        "n_gpu_layers": getattr(args, "gpu_layers", None),
        "flash_attn": bool(getattr(args, "flash_attn", False)),
        "offload_kqv": not getattr(args, "no_kv_offload", False),
        "n_threads": getattr(args, "threads", None),
    }
    if getattr(args, "batch", None):
        kwargs["n_batch"] = args.batch
    if getattr(args, "ubatch", None):
        kwargs["n_ubatch"] = args.ubatch
    if getattr(args, "reserve", None) is not None:
        kwargs["reserve_bytes"] = int(args.reserve * GIB)
    return Settings(**kwargs)


def default_context(spec: ModelSpec) -> int:
    """The context the app proposes: its default (4096), capped at the trained length."""
    from desktop.core.estimate import capped_context
    from desktop.core.settings import DEFAULT_N_CTX

    return capped_context(DEFAULT_N_CTX, spec.n_ctx_train)


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
    # A what-if profile is another machine: this one's calibration does not apply to it.
    figures = None if args.hardware else _machine_figures(profile)
    remote = _remote_devices(args.rpc)
    devices = devices_from_profile(profile, settings.reserve_bytes, figures, remote)
    plan = estimate(spec, settings, devices)
    result = plan.to_dict()
    result["calibration"] = devices[-1].figures.to_dict()
    result["remote_devices"] = [d.to_dict() for d in remote]
    local = Path(args.target).expanduser()
    check = None
    if local.is_file() and not args.no_check and args.hardware is None:
        check = _dry_run_check(local, plan, profile)
        result.update(check)
    else:
        result["checked_by_llama_cpp"] = False
    if args.json:
        _print_json(result)
    else:
        print("\n".join(plan_lines(plan)))
        print(f"Speed: {devices[-1].figures.describe()}.")
        if check is not None:
            print("\n".join(_check_lines(check)))
    if check is not None and not check["checked_by_llama_cpp"]:
        return 1
    return 0


def _dry_run_check(path: Path, plan: Plan, profile: HardwareProfile) -> dict[str, Any]:
    """llama.cpp's dry run of this load beside the plan (estimate --json's check keys)."""
    from desktop.core.dryrun import build_key, dry_run, dry_run_request, with_header_weights
    from desktop.core.estimate import compare_with_llama
    from desktop.core.hardware import default_cache_dir

    dry = dry_run(
        path,
        dry_run_request(plan),
        build=build_key(profile.backends),
        cache_dir=default_cache_dir() / "dry-runs",
    )
    if not dry.ok:
        return {"checked_by_llama_cpp": False, "llama_cpp_refused": dry.reason}
    report = with_header_weights(dry, plan)
    rows = compare_with_llama(plan, report)
    layers_agree = dry.offloaded_layers in (None, plan.gpu_layers)
    return {
        "checked_by_llama_cpp": True,
        "llama_cpp_check": {
            "llama_cpp_version": dry.llama_cpp_version,
            "seconds": dry.seconds,
            "cached": dry.cached,
            "gpu_layers": dry.offloaded_layers,
            "layers_agree": layers_agree,
            "n_ctx": dry.n_ctx,
            "buffers": [
                {
                    "device": b.device,
                    "component": b.component,
                    "size_bytes": b.size_bytes,
                    "source": "header" if b.component == "weights" else "llama.cpp",
                }
                for b in report.buffers
            ],
            "comparison": [
                {
                    "component": r.component,
                    "estimated_bytes": r.estimated_bytes,
                    "llama_cpp_bytes": r.reported_bytes,
                    "error_pct": round(r.error_pct, 2),
                }
                for r in rows
            ],
        },
    }


def _check_lines(check: dict[str, Any]) -> list[str]:
    from desktop.core.units import format_bytes

    if not check["checked_by_llama_cpp"]:
        return ["", str(check["llama_cpp_refused"])]
    info = check["llama_cpp_check"]
    took = "cached" if info["cached"] else f"{info['seconds']:.2f} s"
    lines = [
        "",
        f"Checked by llama.cpp {info['llama_cpp_version']} (dry run, {took}):",
        f"{'buffer':10} {'estimated':>12} {'llama.cpp':>12} {'error':>8}",
    ]
    for row in info["comparison"]:
        lines.append(
            f"{row['component']:10} {format_bytes(row['estimated_bytes']):>12} "
            f"{format_bytes(row['llama_cpp_bytes']):>12} {row['error_pct']:+7.2f}%"
        )
    if not info["layers_agree"]:
        lines.append(f"llama.cpp would offload {info['gpu_layers']} layers.")
    return lines


def plan_lines(plan: Plan) -> list[str]:
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


def _ranked_rows(
    profile: HardwareProfile, settings: Settings, *, local: bool, figures: SpeedFigures | None
) -> list[tuple[ModelRow, Plan | None, str | None]]:
    """(row, plan or None, a better sibling in words or None), best fit first.

    The rows are the models table's (desktop.core.rows), ranked by its ``best_fit_key``: the
    verdict first (full GPU, partial, CPU only, too large), then the biggest file.
    """
    from desktop.core.estimate import devices_from_profile, estimate
    from desktop.core.rows import best_fit_key, sibling_suggestions

    devices = devices_from_profile(profile, settings.reserve_bytes, figures)
    rows = _local_rows() if local else _catalog_rows()
    evaluated = [
        (row, estimate(row.spec, settings, devices) if row.spec is not None else None)
        for row in rows
    ]
    # "Q4_K_M fits fully on the GPU.": the other quantizations of the same model, in words.
    better = sibling_suggestions(evaluated)
    ranked = sorted(zip(evaluated, better, strict=True), key=lambda item: best_fit_key(*item[0]))
    return [(row, plan, suggestion) for (row, plan), suggestion in ranked]


def _row_dict(row: ModelRow, plan: Plan | None, better: str | None) -> dict[str, Any]:
    """One row of ``models --json``: the file, then its plan (or why there is none)."""
    name = _display_name(row)
    out: dict[str, Any] = {
        "name": name,
        "quant": row.quant,
        "size_bytes": row.file_size_bytes,
        "source": row.location,
    }
    if plan is None or row.spec is None:  # a row has a plan exactly when it has a spec
        out.update(verdict=None, problem=row.problem or row.note or "the header could not be read")
        return out
    out.update(plan.to_dict())
    out["name"], out["model"] = name, row.spec.name
    if better:
        out["suggestion"] = f"{better} Or: {out['suggestion'][0].lower()}{out['suggestion'][1:]}"
    return out


def _display_name(row: ModelRow) -> str:
    """The model's name; for a local file its file name, which tells two local files apart."""
    return str(row.file_name if row.source == "local" else row.name)


def _owner(row: ModelRow) -> str:
    """Who published the file: the repo owner for catalog rows, "local" for files."""
    return "local" if row.source == "local" else str(row.uploader)[:14]


def _catalog_rows() -> list[ModelRow]:
    from desktop.core.catalog import CatalogError, load_catalog
    from desktop.core.rows import catalog_rows

    try:
        return catalog_rows(load_catalog())
    except CatalogError as exc:
        raise UserError(str(exc)) from None


def _local_rows() -> list[ModelRow]:
    """Every GGUF file in the app's folders and the other tools' (projectors listed too)."""
    from desktop.core import library
    from desktop.core.rows import library_rows
    from desktop.core.settings import default_models_dir, load_settings

    user = load_settings()
    folders = [Path(user.models_dir) if user.models_dir else default_models_dir()]
    folders += [Path(f) for f in user.extra_folders]
    library.ensure_starter_model(folders[0])  # once: the starter model is ready offline
    return library_rows(library.scan(folders), projectors=True)


def _add_starter_picks(
    ranked: list[tuple[ModelRow, Plan | None, str | None]], rows: list[dict[str, Any]]
) -> None:
    """``starter_pick: {section, why}`` on the rows the starter picks show (core.starter_picks)."""
    from desktop.core.catalog import load_catalog
    from desktop.core.starter_picks import starter_picks

    picks = {p.location: p for _, ps in starter_picks(load_catalog()) for p in ps}
    for (row, _, _), out in zip(ranked, rows, strict=True):
        pick = picks.get(row.location)
        if pick is not None:
            out["starter_pick"] = {"section": pick.section.key, "why": pick.why}


def _cmd_models(args: argparse.Namespace) -> int:
    from desktop.core.settings import DEFAULT_N_CTX
    from desktop.core.units import format_bytes

    profile = _load_profile(args.hardware)
    settings = _settings_from_args(args, DEFAULT_N_CTX)
    # As estimate: this computer's calibration, the defaults for a what-if machine.
    figures = None if args.hardware else _machine_figures(profile)
    ranked = _ranked_rows(profile, settings, local=args.local, figures=figures)
    if args.json:
        rows = [_row_dict(*item) for item in ranked]
        if not args.local:
            _add_starter_picks(ranked, rows)
        _print_json({"n_ctx": settings.n_ctx, "models": rows})
        return 0
    if not ranked:
        print("No models found." if args.local else "The catalog is empty.")
        return 0
    print(
        f"{'model':36} {'quant':8} {'from':14} {'size':>8}  {'verdict':15} {'GPU':>9}"
        f" {'CPU':>9} {'tok/s':>7}"
    )
    for row, plan, better in ranked:
        r = _row_dict(row, plan, better)
        if r.get("verdict") is None:
            print(
                f"{r['name'][:36]:36} {r['quant'][:8]:8} {_owner(row):14} {'':>8}  "
                f"cannot estimate: {r.get('problem')}"
            )
            continue
        gpu = sum(d["total_bytes"] for d in r["devices"] if d["kind"] != "cpu")
        cpu = sum(d["total_bytes"] for d in r["devices"] if d["kind"] == "cpu")
        speed = r.get("predicted_tokens_per_s")  # rounded as the JSON has it
        size = format_bytes(r["size_bytes"]) if r.get("size_bytes") else "?"
        print(
            f"{r['name'][:36]:36} {r['quant'][:8]:8} {_owner(row):14} {size:>8}  "
            f"{r['verdict_label']:15}"
            f" {format_bytes(gpu) if gpu else '-':>9} {format_bytes(cpu):>9}"
            f" {f'{speed:.1f}' if speed else '?':>7}"
        )
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from desktop.cli_search import cmd_search
    from desktop.core.estimate import devices_from_profile
    from desktop.core.settings import DEFAULT_N_CTX

    profile = _load_profile(args.hardware)
    settings = _settings_from_args(args, DEFAULT_N_CTX)
    figures = None if args.hardware else _machine_figures(profile)
    devices = devices_from_profile(profile, settings.reserve_bytes, figures)
    return cmd_search(args, settings, devices, UserError)


def _cmd_serve(args: argparse.Namespace) -> int:
    from desktop.cli_serve import cmd_serve

    return cmd_serve(args, UserError)


def _cmd_bench(args: argparse.Namespace) -> int:
    from desktop.benchmark import bench_lines

    path = Path(args.target).expanduser()
    if not path.is_file():
        raise UserError(f"{args.target} is not a file.")
    profile = _load_profile(None)
    result = _bench(
        path,
        profile,
        _machine_figures(profile),
        n_ctx=args.ctx,
        n_gpu_layers=args.gpu_layers,
        tokens=args.tokens,
        prompt_tokens=args.prompt_tokens,
        n_threads=args.threads,
        remote=_remote_devices(args.rpc),
    )
    if not args.no_store:
        _store_run(profile, result, "bench")
    if args.json:
        _print_json(result)
    else:
        print("\n".join(bench_lines(result)))
    return 0


def _bench(
    path: Path,
    profile: HardwareProfile,
    figures: SpeedFigures,
    *,
    n_ctx: int,
    n_gpu_layers: int | None,
    tokens: int,
    prompt_tokens: int,
    n_threads: int | None,
    remote: Sequence[Any] = (),
) -> dict[str, Any]:
    """run_bench predicting with ``figures``; worker failures become a UserError."""
    from desktop.benchmark import run_bench
    from desktop.core.gguf import GGUFError
    from desktop.engine.runner import WorkerError, WorkerExited

    try:
        return run_bench(
            path,
            n_ctx=n_ctx,
            n_gpu_layers=n_gpu_layers,
            tokens=tokens,
            prompt_tokens=prompt_tokens,
            profile=profile,
            n_threads=n_threads,
            figures=figures,
            remote=remote,
        )
    except GGUFError as exc:
        raise UserError(f"{path.name} is not a usable GGUF file: {exc}") from None
    except WorkerError as exc:
        raise UserError(str(exc)) from None
    except WorkerExited as exc:
        from desktop.core.rpc import crash_sentence

        remote_gone = crash_sentence(exc.stderr_tail, [d.endpoint for d in remote])
        if remote_gone:
            raise UserError(remote_gone.rstrip(".")) from None
        raise UserError(f"the llama.cpp worker stopped unexpectedly: {exc}") from None


def _store_run(profile: HardwareProfile, result: dict[str, Any], source: str) -> None:
    """Keep a bench result for this computer's calibration."""
    from desktop.core.calibration import SpeedRun
    from desktop.core.runs import MeasuredRun, RunStore, profile_machine_key

    speed_run = SpeedRun.from_dict(result["speed_run"])
    if not speed_run.decode_tokens_per_s:
        return
    measured = MeasuredRun(
        machine=profile_machine_key(profile),
        source=source,
        model=str(result["file"]),
        model_bytes=int(result["file_bytes"]),
        run=speed_run,
        predicted_tokens_per_s=result["predicted_tokens_per_s"],
        predicted_prompt_tokens_per_s=result["predicted_prompt_tokens_per_s"],
        details={
            k: result[k]
            for k in (
                "n_ctx",
                "gpu_layers",
                "prompt_tokens",
                "generated_tokens",
                "time_to_first_token_s",
                "peak_worker_rss_bytes",
                "peak_worker_vram_bytes",
                "llama_cpp_version",
            )
        },
    )
    try:
        with RunStore() as store:
            store.add(measured)
    except (OSError, sqlite3.Error) as exc:
        print(f"{PROG}: could not keep the run for calibration: {exc}", file=sys.stderr)


def _cmd_calibrate(args: argparse.Namespace) -> int:
    """A short standard measurement: the starter model, then a sparse real-size shape."""
    from desktop.core.hardware import default_cache_dir
    from desktop.core.library import ensure_starter_model
    from desktop.core.settings import load_settings
    from desktop.core.synth import CALIBRATION_SHAPE, write_header_only
    from desktop.core.threads import default_threads, usable_cpus

    profile = _load_profile(None)
    before = _machine_figures(profile)
    models_dir = load_settings().models_path
    starter = ensure_starter_model(models_dir)
    shape = default_cache_dir() / "calibration" / "llama-3.2-1b-shape-q4_k.gguf"
    if not shape.exists():
        shape.parent.mkdir(parents=True, exist_ok=True)
        partial = shape.with_suffix(".part")
        write_header_only(partial, CALIBRATION_SHAPE)
        partial.replace(shape)
    # The threads the worker will use by default (the physical cores it may run on).
    threads = default_threads(profile.cpu.physical_cores, profile.cpu.logical_cores, usable_cpus())
    plan: list[tuple[Path, int]] = []
    if starter is not None:
        plan.append((starter, threads))
    plan.append((shape, threads))
    if threads > 1:
        plan.append((shape, 1))  # how the speed grows with threads
    measured = []
    for path, n in plan:
        if not args.json:
            print(f"measuring {path.name} with {n} thread{'s' if n > 1 else ''}...", flush=True)
        result = _bench(  # "predicted before": every run against the figures it started with
            path,
            profile,
            before,
            n_ctx=2048,
            n_gpu_layers=None,
            tokens=48,
            prompt_tokens=48,
            n_threads=n,
        )
        _store_run(profile, result, "calibrate")
        measured.append(result)
    after = _machine_figures(profile)
    if args.json:
        _print_json(
            {
                "before": before.to_dict(),
                "after": after.to_dict(),
                "runs": [
                    {
                        k: r[k]
                        for k in ("file", "threads", "gen_tokens_per_s", "predicted_tokens_per_s")
                    }
                    for r in measured
                ],
            }
        )
        return 0
    print()
    print(f"{'model':34} {'threads':>7} {'measured':>10} {'predicted before':>17}")
    for r in measured:
        print(
            f"{r['file'][:34]:34} {r['threads']:>7} {r['gen_tokens_per_s']:>6.1f} t/s "
            f"{r['predicted_tokens_per_s'] or 0:>13.1f} t/s"
        )
    print()
    print(f"Speed predictions are now {after.describe()}.")
    changes = [
        ("fixed cost per token", "per_token_seconds", 1000, "ms"),
        ("CPU decode per thread", "cpu_thread_bytes_per_s", 1e-9, "GB/s"),
        ("thread scaling exponent", "cpu_thread_scaling", 1, ""),
        ("RAM bandwidth reached", "cpu_decode_efficiency", 100, "%"),
        ("CPU compute efficiency", "cpu_compute_efficiency", 100, "%"),
    ]
    for label, name, scale, unit in changes:
        old = getattr(before, name) * scale
        new = getattr(after, name) * scale
        print(f"  {label:26} {old:8.2f} -> {new:8.2f} {unit}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["--worker"]:
        from desktop.engine.worker import main as worker_main

        return worker_main()
    if args_list[:1] == ["--dry-run"]:  # the frozen app's llama.cpp dry run
        from desktop.engine.dryrun import main as dry_run_main

        return dry_run_main(args_list)
    if args_list[:1] == ["--rpc-server"]:  # the frozen app's `share` server
        from desktop.engine.rpc_server import main as rpc_server_main

        return rpc_server_main(args_list)
    if args_list[:1] == ["--rpc-probe"]:  # the frozen app's probe of other computers
        from desktop.engine.rpc_probe import main as rpc_probe_main

        return rpc_probe_main(args_list)
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
        "calibrate": _cmd_calibrate,
        "share": _cmd_share,
        "search": _cmd_search,
        "serve": _cmd_serve,
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
