"""Run every workload against every framework; write the table and the chart.

``python -m benchmarks --help`` lists the options. The in-process workloads
run in a new process per framework, workload and round, the frameworks taking
turns within each round; so do the end-to-end runs, each with a fresh
uvicorn. A framework whose answers are wrong fails the whole run.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import e2e, report
from benchmarks.frameworks import (
    FRAMEWORKS,
    PYPI_VENV,
    REPO_ROOT,
    BenchmarkFailed,
    ensure_pypi_venv,
    get_framework,
    run_harness,
    server_options,
)

#: The in-process workloads, and how many operations each times by default.
IN_PROCESS = {
    "ws_text": 100_000,
    "ws_binary": 100_000,
    "ws_handshake": 10_000,
    "http_json": 50_000,
}
E2E = "e2e_echo"
WORKLOADS = (*IN_PROCESS, E2E)
E2E_PATH = "/text"

DEFAULT_OUTPUT = REPO_ROOT / "docs" / "source" / "_static" / "benchmarks"
QUICK_OUTPUT = REPO_ROOT / "build" / "benchmarks"


@dataclass
class Settings:
    frameworks: list[str]
    workloads: list[str]
    sizes: dict[str, int]
    rounds: int
    repeats: int
    e2e_rounds: int
    clients: int
    client_messages: int
    warmup: bool = True
    record_all: bool = False


def _list(value: str, known: Sequence[str], what: str) -> list[str]:
    items = [item.strip() for item in value.split(",") if item.strip()]
    unknown = [item for item in items if item not in known]
    if unknown or not items:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown) or '(none)'}; choose from {', '.join(known)}"
        )
    return items


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "MicroPie's benchmarks: every workload against raw ASGI (the floor), this "
            "repository's micropie, Starlette and the micropie release on PyPI, each in "
            "processes of its own. Writes results.md, results.png, results.inc (for the "
            "docs page) and results.json."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tenth of every size, one round, and output to build/benchmarks/ "
        "(unless --output-dir): a check that takes well under a minute",
    )
    parser.add_argument(
        "--frameworks",
        type=lambda v: _list(v, FRAMEWORKS, "framework"),
        default=list(FRAMEWORKS),
        help=f"comma-separated, from {','.join(FRAMEWORKS)} (default: all)",
    )
    parser.add_argument(
        "--workloads",
        type=lambda v: _list(v, WORKLOADS, "workload"),
        default=list(WORKLOADS),
        help=f"comma-separated, from {','.join(WORKLOADS)} (default: all)",
    )
    parser.add_argument("--scale", type=float, default=None, help="multiply every size by this")
    for name, size in IN_PROCESS.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=int,
            dest=name,
            metavar="N",
            help=f"operations per run of {name} (default {size:,})",
        )
    parser.add_argument("--clients", type=int, default=50, help="end-to-end clients (default 50)")
    parser.add_argument(
        "--client-messages",
        type=int,
        default=None,
        help="messages each end-to-end client echoes (default 2,000)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="in-process rounds: in each, every framework runs in a new process (default 5)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="timed runs per in-process round, after a warm-up (default 1)",
    )
    parser.add_argument(
        "--e2e-rounds", type=int, default=None, help="end-to-end runs per framework (default 3)"
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help=f"where to write the results (default {DEFAULT_OUTPUT.relative_to(REPO_ROOT)})",
    )
    parser.add_argument("--no-chart", action="store_true", help="skip the PNG (no matplotlib)")
    parser.add_argument(
        "--render-from",
        type=Path,
        metavar="RESULTS_JSON",
        help="run nothing: write the table and chart again from a results.json",
    )
    parser.add_argument(
        "--profile",
        choices=("cprofile", "pyinstrument"),
        help="profile one run of each in-process workload instead of timing; print, write nothing",
    )
    parser.add_argument(
        "--profile-lines", type=int, default=30, help="cProfile: functions to list (default 30)"
    )
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    scale = args.scale if args.scale is not None else (0.1 if args.quick else 1.0)
    sizes = {}
    for name, size in IN_PROCESS.items():
        chosen = getattr(args, name)
        sizes[name] = chosen if chosen is not None else max(1, round(size * scale))
    client_messages = args.client_messages
    if client_messages is None:
        client_messages = max(1, round(2000 * scale))
    return Settings(
        frameworks=[name for name in FRAMEWORKS if name in args.frameworks],
        workloads=[name for name in WORKLOADS if name in args.workloads],
        sizes=sizes,
        rounds=args.rounds if args.rounds is not None else (1 if args.quick else 5),
        repeats=args.repeats,
        e2e_rounds=args.e2e_rounds if args.e2e_rounds is not None else (1 if args.quick else 3),
        clients=args.clients,
        client_messages=client_messages,
    )


def _rotated(items: list[str], by: int) -> list[str]:
    """Each round starts with another framework, so none always runs first."""
    if not items:
        return items
    by %= len(items)
    return items[by:] + items[:by]


def run_in_process(
    settings: Settings, log: Any = print
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, str]]]:
    """Every in-process workload, every framework, every round: the harness's timings."""
    results: dict[str, dict[str, Any]] = {}
    versions: dict[str, dict[str, str]] = {}
    for workload in settings.workloads:
        if workload not in IN_PROCESS:
            continue
        size = settings.sizes[workload]
        cells: dict[str, Any] = {
            name: {"size": size, "wall_seconds": [], "cpu_seconds": []}
            for name in settings.frameworks
        }
        for round_number in range(settings.rounds):
            for name in _rotated(settings.frameworks, round_number):
                framework = get_framework(name)
                spec = {
                    "workloads": {workload: size},
                    "repeats": settings.repeats,
                    "warmup": settings.warmup,
                    "record_all": settings.record_all,
                }
                outcome = run_harness(framework, spec)
                versions[name] = outcome["versions"]
                timed = outcome["results"][workload]
                cells[name]["wall_seconds"] += timed["wall_seconds"]
                cells[name]["cpu_seconds"] += timed["cpu_seconds"]
            log(f"  {workload}: round {round_number + 1}/{settings.rounds} done")
        results[workload] = cells
        log("  " + report.summary_line(workload, cells))
    return results, versions


def run_end_to_end(settings: Settings, log: Any = print) -> dict[str, list[dict[str, Any]]]:
    """One uvicorn worker per framework and round, *clients* clients echoing."""
    options = server_options()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in settings.frameworks}
    for round_number in range(settings.e2e_rounds):
        for name in _rotated(settings.frameworks, round_number):
            framework = get_framework(name)
            with e2e.serve(framework, options) as server:
                try:
                    outcome = e2e.echo_load(
                        server, E2E_PATH, settings.clients, settings.client_messages
                    )
                except BaseException as exc:
                    raise BenchmarkFailed(
                        f"{framework.label}: the end-to-end clients failed: {exc!r}\n"
                        f"{server.output()[-3000:]}"
                    ) from exc
            runs[name].append(outcome)
        log(f"  {E2E}: round {round_number + 1}/{settings.e2e_rounds} done")
    log("  " + report.e2e_summary_line(runs))
    return runs


def profile(settings: Settings, tool: str, lines: int) -> None:
    for name in settings.frameworks:
        framework = get_framework(name)
        for workload in settings.workloads:
            if workload not in IN_PROCESS:
                continue
            spec = {
                "workloads": {workload: settings.sizes[workload]},
                "warmup": True,
                "profile": {"tool": tool, "limit": lines},
            }
            outcome = run_harness(framework, spec)
            text = outcome["results"][workload]["profile"]
            print(f"=== {framework.label}: {workload} ({settings.sizes[workload]:,} operations)")
            print(text)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_from(args)
    output = args.output_dir or (QUICK_OUTPUT if args.quick else DEFAULT_OUTPUT)
    if args.render_from is not None:
        results = report.Results.load(args.render_from)
        for path in report.write_all(results, output, chart_png=not args.no_chart):
            print(f"wrote {path}")
        return 0
    started = time.monotonic()
    try:
        if "pypi-micropie" in settings.frameworks:
            ensure_pypi_venv()
        if args.profile:
            profile(settings, args.profile, args.profile_lines)
            return 0
        print(
            f"Frameworks: {', '.join(settings.frameworks)}; workloads: "
            f"{', '.join(settings.workloads)}; {settings.rounds} round(s) x "
            f"{settings.repeats} run(s) in process, {settings.e2e_rounds} end to end"
        )
        machine_before = report.machine_info()
        in_process, versions = run_in_process(settings)
        end_to_end = run_end_to_end(settings) if E2E in settings.workloads else {}
    except BenchmarkFailed as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    results = report.Results(
        settings=asdict(settings),
        machine=machine_before,
        versions=report.collect_versions(settings.frameworks, versions, server_options()),
        in_process=in_process,
        end_to_end=end_to_end,
        duration_seconds=time.monotonic() - started,
        command=shlex.join(
            ["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)]
        ),
    )
    written = report.write_all(results, output, chart_png=not args.no_chart)
    print(report.markdown(results))
    for path in written:
        print(f"wrote {path}")
    if "pypi-micropie" in settings.frameworks:
        print(f"(the PyPI release ran from {PYPI_VENV.relative_to(REPO_ROOT)})")
    return 0
