"""``llm-workbench search TEXT``: GGUF repos on Hugging Face with a verdict for this computer.

    llm-workbench search TEXT [--sort downloads|trending|updated|likes] [--limit N] [--page N]
                              [--exact] [--ctx N] [--hardware FILE] [--kv-type T] [--json]

Without ``--exact`` it makes one request (``HfApi.list_models``) and each repo gets an "about"
verdict from the Hub's summary and the catalog's numbers for its family (none when the catalog
does not know the family). ``--exact`` lists each repo's files and reads every model file's
header over HTTP Range requests (only header bytes, cached on disk): exact verdicts per file,
the best-fitting file first. The endpoint is huggingface_hub's (``HF_ENDPOINT``), the token
too (``HF_TOKEN`` or ``hf auth login``). The window's Models tab runs the same core functions
(desktop.core.hub_search).
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from desktop.core.estimate import Device, Plan, Settings
    from desktop.core.hub import RemoteModelFile
    from desktop.core.hub_search import HubRepo
    from desktop.core.rows import ModelRow

__all__ = ["add_search_parser", "cmd_search"]

#: Headers read at the same time by --exact (each is a HEAD and one to three Range requests).
_PARALLEL_READS = 4


def add_search_parser(sub: Any, add_plan_args: Any, positive_int: Any) -> None:
    """The ``search`` subcommand's arguments (called by desktop.cli.build_parser)."""
    from desktop.core.hub_search import SORTS

    search = sub.add_parser("search", help="GGUF models on Hugging Face with fit verdicts")
    search.add_argument("text", metavar="TEXT", help="words to look for in repo names")
    search.add_argument("--sort", choices=tuple(SORTS), default="downloads")
    search.add_argument("--limit", type=positive_int, default=20, help="repos per page")
    search.add_argument("--page", type=int, default=0, help="page number, from 0")
    search.add_argument(
        "--exact", action="store_true", help="read each file's header for exact verdicts"
    )
    add_plan_args(search)


def _plan(row: ModelRow, settings: Settings, devices: list[Device]) -> Plan | None:
    from desktop.core.estimate import estimate

    return estimate(row.spec, settings, devices) if row.spec is not None else None


def _kind(row: ModelRow, plan: Plan | None) -> str | None:
    if plan is None:
        return None
    return "exact" if plan.estimate_kind == "exact" else "about"


def _file_dict(
    row: ModelRow, plan: Plan | None, model: RemoteModelFile | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "file": row.file,
        "parts": list(row.download_files),
        "quant": row.quant,
        "size_bytes": row.file_size_bytes,
        "projector": False,
        "estimate_kind": _kind(row, plan),
    }
    if plan is None:
        out.update(verdict=None, verdict_label=None, problem=row.note or row.problem)
        return out
    out.update(
        verdict=plan.verdict.value,
        verdict_label=plan.verdict_label,
        gpu_layers=plan.gpu_layers,
        offloadable_layers=plan.offloadable_layers,
        total_bytes=plan.total_bytes,
        predicted_tokens_per_s=plan.to_dict().get("predicted_tokens_per_s"),
        reason=plan.reason,
    )
    return out


def _exact_files(
    repos: list[HubRepo], endpoint: str | None
) -> dict[str, tuple[list[tuple[ModelRow, RemoteModelFile | None]], list[str], str | None]]:
    """Per repo: (rows with exact specs where the header could be read, projector names, the
    error sentence when the repo could not be opened)."""
    from desktop.core.catalog import load_catalog
    from desktop.core.hub import HubError
    from desktop.core.hub_lookup import MAX_HEADER_READS
    from desktop.core.hub_search import exact_row, expand_repo

    catalog = load_catalog()
    opened: dict[str, Any] = {}
    errors: dict[str, str] = {}

    def open_repo(repo: HubRepo) -> None:
        try:
            opened[repo.repo_id] = expand_repo(repo.repo_id, catalog, repo, endpoint=endpoint)
        except HubError as exc:
            errors[repo.repo_id] = str(exc)

    with ThreadPoolExecutor(_PARALLEL_READS, thread_name_prefix="search-open") as pool:
        list(pool.map(open_repo, repos))
    jobs: list[tuple[str, RemoteModelFile, HubRepo]] = []
    for repo in repos:
        found = opened.get(repo.repo_id)
        if found is None:
            continue
        usable = [f for f in found.files if not f.is_projector and f.is_complete]
        jobs += [(repo.repo_id, f, repo) for f in usable[:MAX_HEADER_READS]]
    with ThreadPoolExecutor(_PARALLEL_READS, thread_name_prefix="search-header") as pool:
        exact = list(pool.map(lambda job: exact_row(job[1], job[2], endpoint=endpoint), jobs))
    by_location = {row.location: row for row, _ in exact}
    out: dict[str, Any] = {}
    for repo in repos:
        found = opened.get(repo.repo_id)
        if found is None:
            out[repo.repo_id] = ([], [], errors.get(repo.repo_id))
            continue
        rows = [(by_location.get(row.location, row), None) for row in found.rows]
        out[repo.repo_id] = (rows, list(found.projectors), None)
    return out


def cmd_search(
    args: argparse.Namespace,
    settings: Settings,
    devices: list[Device],
    user_error: type[Exception],
) -> int:
    """Run ``search``; prints JSON or a table. Errors a person can meet are ``user_error``."""
    from desktop.core.catalog import load_catalog
    from desktop.core.hub import HubError
    from desktop.core.hub_search import repo_row, search
    from desktop.core.rows import best_fit_key, format_params
    from desktop.core.units import format_bytes

    if args.page < 0:
        raise user_error("--page counts from 0.")
    try:
        found = search(args.text, args.sort, args.limit, args.page)
    except HubError as exc:
        raise user_error(str(exc)) from None
    catalog = load_catalog()
    repos = list(found.repos)
    exact = _exact_files(repos, None) if args.exact else {}
    results: list[dict[str, Any]] = []
    for repo in repos:
        about = repo_row(repo, catalog)
        about_plan = _plan(about, settings, devices)
        entry: dict[str, Any] = repo.to_dict()
        entry["note"] = about.note
        entry["error"] = None
        best: tuple[ModelRow, Plan | None] = (about, about_plan)
        if args.exact:
            rows, projectors, error = exact[repo.repo_id]
            entry["error"] = error
            planned = [(row, _plan(row, settings, devices)) for row, _ in rows]
            planned.sort(key=lambda item: best_fit_key(*item))
            files = [_file_dict(row, plan) for row, plan in planned]
            files += [
                {"file": name, "projector": True, "verdict": None, "estimate_kind": None}
                for name in projectors
            ]
            entry["files"] = files
            if planned and planned[0][1] is not None:
                best = planned[0]
        row, plan = best
        entry["best_file"] = row.file
        entry["quant"] = row.quant
        entry["estimate_kind"] = _kind(row, plan)
        if plan is not None:
            entry.update(
                verdict=plan.verdict.value,
                verdict_label=plan.verdict_label,
                size_bytes=row.file_size_bytes,
                total_bytes=plan.total_bytes,
                predicted_tokens_per_s=plan.to_dict().get("predicted_tokens_per_s"),
            )
        else:
            entry.update(verdict=None, verdict_label=None)
        results.append(entry)

    if args.json:
        import json

        print(
            json.dumps(
                {
                    "query": found.text,
                    "sort": found.sort,
                    "page": found.page,
                    "limit": found.limit,
                    "has_more": found.has_more,
                    "n_ctx": settings.n_ctx,
                    "repos": results,
                },
                indent=2,
            )
        )
        return 0
    if not results:
        print(f"No GGUF repos on Hugging Face match {args.text!r}.")
        return 0
    print(
        f"{'repo':44} {'params':>7} {'arch':10} {'downloads':>9} {'likes':>6} {'updated':10}"
        f"  verdict"
    )
    for entry in results:
        updated = (entry["updated"] or "")[:10]
        if entry["verdict"]:
            speed = entry.get("predicted_tokens_per_s")
            verdict = (
                f"{'about: ' if entry['estimate_kind'] == 'about' else ''}{entry['verdict_label']}"
                f" {entry['quant']}"
                f" {format_bytes(entry['size_bytes']) if entry.get('size_bytes') else ''}"
                f"{f' {speed:.1f} tok/s' if speed else ''}"
            )
        else:
            verdict = entry["error"] or "no verdict yet (family unknown; use --exact)"
        gated = " [gated]" if entry["gated"] else ""
        print(
            f"{(entry['repo'] + gated)[:44]:44} {format_params(entry['params']):>7}"
            f" {(entry['architecture'] or '?')[:10]:10} {entry['downloads'] or 0:>9}"
            f" {entry['likes'] or 0:>6} {updated:10}  {verdict}"
        )
        if entry["error"] and entry["verdict"]:
            print(f"    {entry['error']}")
        for file in entry.get("files", ()):
            if file["projector"]:
                label = "vision projector (loaded beside the model)"
            else:
                label = file["verdict_label"] or f"no estimate: {file.get('problem')}"
            print(f"    {file['file'][:60]:60} {label}")
    if found.has_more:
        print(f"More on the next page: --page {found.page + 1}.")
    return 0
