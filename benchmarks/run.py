"""``python -m benchmarks``: every workload against every framework; the table and the chart.

Each in-process run is a new process per framework, workload and round; each
end-to-end run, a fresh server. Within a round the frameworks take turns, each
round starting with another, so that a slow spell of the machine does not fall
on one only. A framework whose answers are wrong fails the whole run.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import e2e, report
from benchmarks.frameworks import (
    FRAMEWORKS,
    REPO_ROOT,
    BenchmarkFailed,
    Framework,
    ensure_pypi_venv,
    get_framework,
    run_harness,
)
from tests.helpers.servers import ServerError

#: The in-process workloads, and how many operations each times by default.
IN_PROCESS = {"ws_text": 100_000, "ws_binary": 100_000, "ws_handshake": 10_000, "http_json": 50_000}
CLIENT_MESSAGES = 2000  # per end-to-end client
_SIZES = ", ".join(f"{name} {size:,}" for name, size in IN_PROCESS.items())
E2E = report.E2E
WORKLOADS = (*IN_PROCESS, E2E)
DEFAULT_OUTPUT = REPO_ROOT / "docs" / "source" / "_static" / "benchmarks"
QUICK_OUTPUT = REPO_ROOT / "build" / "benchmarks"


def _names(known: Sequence[str], what: str) -> Callable[[str], list[str]]:
    def parse(value: str) -> list[str]:
        items = [item.strip() for item in value.split(",") if item.strip()]
        unknown = [item for item in items if item not in known]
        if unknown or not items:
            problem = f"unknown {what} {', '.join(unknown)}" if unknown else f"no {what} given"
            raise argparse.ArgumentTypeError(f"{problem}; choose from {', '.join(known)}")
        return [name for name in known if name in items]  # in the table's order

    return parse


def _count(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number above 0")
    return int(value)


def _scale(value: str) -> float:
    try:
        scale = float(value)
    except ValueError:
        scale = 0.0
    if not 0 < scale < float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a number above 0")
    return scale


def _source(value: str) -> Path:
    path = Path(value).resolve()
    if not (path / "micropie" / "__init__.py").is_file():
        raise argparse.ArgumentTypeError(f"{path} holds no micropie/ package (no __init__.py)")
    return path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="MicroPie's benchmarks: every workload against raw ASGI (the floor), this "
        "repository's micropie, Starlette and the micropie release on PyPI, each in processes "
        "of its own. Writes results.md, results.png, results.inc (for the docs page) and "
        "results.json.",
    )
    add = parser.add_argument
    # fmt: off
    add("--quick", action="store_true", help="--scale 0.1, one round, output to "
        "build/benchmarks/ (unless --output-dir): a check that takes well under a minute")
    add("--scale", type=_scale, help="multiply every workload's size and the end-to-end "
        f"messages per client by this (default 1: {_SIZES})")
    add("--frameworks", type=_names(tuple(FRAMEWORKS), "framework"), default=list(FRAMEWORKS),
        help=f"comma-separated, from {','.join(FRAMEWORKS)} (default: all)")
    add("--workloads", type=_names(WORKLOADS, "workload"), default=list(WORKLOADS),
        help=f"comma-separated, from {','.join(WORKLOADS)} (default: all)")
    add("--micropie-source", type=_source, metavar="PATH", help="measure the micropie/ package "
        "of this directory (e.g. a `git worktree add` of another commit) instead of this "
        "repository's; output to build/benchmarks/ unless --output-dir")
    add("--clients", type=_count, default=50, help="end-to-end clients (default 50)")
    add("--rounds", type=_count, help="in-process rounds, a new process each (default 5)")
    add("--repeats", type=_count, default=1, help="timed runs per in-process round (default 1)")
    add("--e2e-rounds", type=_count, help="end-to-end runs per framework (default 3)")
    add("--output-dir", type=Path,
        help=f"where to write the results (default {DEFAULT_OUTPUT.relative_to(REPO_ROOT)})")
    add("--no-chart", action="store_true", help="skip the PNG (no matplotlib)")
    add("--render-from", type=Path, metavar="RESULTS_JSON",
        help="run nothing: write the table and chart again from a results.json")
    add("--profile", action="store_true", help="profile one run of each in-process "
        "workload under cProfile instead of timing; print, write nothing")
    # fmt: on
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> dict[str, Any]:
    """What the run does, as results.json records it."""
    scale = args.scale or (0.1 if args.quick else 1.0)
    sizes = {name: max(1, round(size * scale)) for name, size in IN_PROCESS.items()}
    return {
        "frameworks": args.frameworks,
        "workloads": args.workloads,
        "sizes": sizes,
        "rounds": args.rounds or (1 if args.quick else 5),
        "repeats": args.repeats,
        "e2e_rounds": args.e2e_rounds or (1 if args.quick else 3),
        "clients": args.clients,
        "client_messages": max(1, round(CLIENT_MESSAGES * scale)),
        "micropie_source": None if args.micropie_source is None else str(args.micropie_source),
    }


def echo_run(framework: Framework, settings: dict[str, Any]) -> dict[str, Any]:
    """One end-to-end run: a fresh server, the clients echoing on ``/text``."""
    with e2e.serve(framework) as server:
        try:
            return e2e.echo_load(server, "/text", settings["clients"], settings["client_messages"])
        except Exception as exc:
            problem = f"{framework.label}: the end-to-end clients failed: {exc!r}"
            raise BenchmarkFailed(f"{problem}\n{server.output[-3000:]}") from exc


def run(
    results: report.Results, frameworks: list[Framework], log: Any = print
) -> dict[str, dict[str, str]]:
    """Every workload, round and framework, into *results*; return the harness's versions."""
    settings, versions = results.settings, {}
    for workload in settings["workloads"]:
        size = settings["sizes"].get(workload)
        rounds = settings["e2e_rounds"] if workload == E2E else settings["rounds"]
        spec = {"workloads": {workload: size}, "repeats": settings["repeats"]}
        for number in range(rounds):
            turn = number % len(frameworks)
            for framework in frameworks[turn:] + frameworks[:turn]:
                if workload == E2E:
                    runs = results.end_to_end.setdefault(framework.name, [])
                    runs.append(echo_run(framework, settings))
                    continue
                outcome = run_harness(framework, spec)
                versions[framework.name] = outcome["versions"]
                empty = {"size": size, "wall_seconds": [], "cpu_seconds": []}
                cell = results.in_process.setdefault(workload, {}).setdefault(framework.name, empty)
                for key in ("wall_seconds", "cpu_seconds"):
                    cell[key] += outcome["results"][workload][key]
            log(f"  {workload}: round {number + 1}/{rounds} done")
    return versions


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    away = args.quick or args.micropie_source  # not the published figures
    output = args.output_dir or (QUICK_OUTPUT if away else DEFAULT_OUTPUT)
    if args.render_from is not None:
        try:
            results = report.Results.load(args.render_from)
        except (OSError, ValueError, TypeError) as exc:
            print(f"cannot read {args.render_from}: {exc}", file=sys.stderr)
            return 2
        for path in report.write_all(results, output, chart_png=not args.no_chart):
            print(f"wrote {path}")
        return 0
    settings = settings_from(args)
    frameworks = [get_framework(name, args.micropie_source) for name in settings["frameworks"]]
    command = shlex.join(["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)])
    results = report.Results(settings, report.machine_info(), {}, {}, {}, 0.0, command)
    started = time.monotonic()
    try:
        if "pypi-micropie" in settings["frameworks"]:
            ensure_pypi_venv()
        if args.profile:
            for framework in frameworks:
                for workload, size in settings["sizes"].items():
                    if workload in settings["workloads"]:
                        spec = {"workloads": {workload: size}, "profile": True}
                        print(f"=== {framework.label}: {workload} ({size:,} operations)")
                        print(run_harness(framework, spec)["results"][workload]["profile"])
            return 0
        print(
            f"Frameworks: {', '.join(settings['frameworks'])}; workloads: "
            f"{', '.join(settings['workloads'])}; {settings['rounds']} round(s) x "
            f"{settings['repeats']} run(s) in process, {settings['e2e_rounds']} end to end"
        )
        versions = run(results, frameworks)
    except (BenchmarkFailed, ServerError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    source = args.micropie_source or REPO_ROOT
    results.versions = report.collect_versions(versions, e2e.uvicorn_options(), source)
    results.duration_seconds = time.monotonic() - started
    written = report.write_all(results, output, chart_png=not args.no_chart)
    print(report.markdown(results))
    print("\n".join(f"wrote {path}" for path in written))
    return 0
