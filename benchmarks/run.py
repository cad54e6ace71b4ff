"""``python -m benchmarks``: every workload against every framework; the table and the chart.

Each framework's application (``benchmarks/suite``) runs in processes of its own, started
there, so a micropie is importable only where a framework puts one: by ``PYTHONPATH``, or
in the PyPI release's venv. In each round the frameworks take turns, each round starting
with another, so that a slow spell of the machine does not fall on one only.
"""

import argparse
import contextlib
import dataclasses
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import report
from tests.helpers.servers import RunningServer, ServerError, run_server

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS_DIR.parent
SUITE_DIR = BENCHMARKS_DIR / "suite"
HARNESS = SUITE_DIR / "harness.py"
LOAD = SUITE_DIR / "load.py"
PYPI_VENV = BENCHMARKS_DIR / ".venvs" / "pypi-micropie"
PYPI_PYTHON = PYPI_VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
DEFAULT_OUTPUT = REPO_ROOT / "docs" / "source" / "_static" / "benchmarks"
QUICK_OUTPUT = REPO_ROOT / "build" / "benchmarks"
#: Installed into the PyPI environment at this environment's versions, so that
#: both sides of the comparison run the same server.
SERVER_PACKAGES = ("uvicorn", "websockets", "uvloop", "httptools", "hypercorn", "granian")
#: The in-process workloads, and how many operations each times by default.
IN_PROCESS = {
    "ws_text": 100_000,
    "ws_text_2_3": 100_000,
    "ws_text_2_0": 100_000,
    "ws_binary": 100_000,
    "ws_handshake": 10_000,
    "http_json": 50_000,
    "http_json_sync": 20_000,
}
WORKLOADS = (*IN_PROCESS, *report.E2E_WORKLOADS)
CLIENT_MESSAGES = 2000  # per end-to-end client
#: The options that results.json keeps, as its "settings".
SAVED = (
    "frameworks", "workloads", "sizes", "rounds", "e2e_rounds", "clients", "client_messages",
    "handshake_clients", "client_handshakes",
)  # fmt: skip
#: End to end, the handshakes: so many loops, each opening so many connections in turn.
HANDSHAKE_CLIENTS = 8
CLIENT_HANDSHAKES = 250


class BenchmarkFailed(RuntimeError):
    """A framework's process failed, or answered a workload wrongly."""


@dataclasses.dataclass(frozen=True)
class Framework:
    """An application module (``module:app``), and where its processes find their packages."""

    name: str
    module: str
    python: Path = Path(sys.executable)
    #: Put first on sys.path (None: nothing is).
    source: Path | None = None
    #: Where the micropie its processes import must come from (None: not checked).
    micropie_home: Path | None = None

    @property
    def env(self) -> dict[str, str]:
        """What its processes' environment changes (an empty PYTHONPATH is none)."""
        return {"PYTHONPATH": str(self.source or ""), "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}


#: In the order of the table's columns (report.FRAMEWORKS): the floor first.
FRAMEWORKS = {
    "raw": Framework("raw", "app_raw"),
    "micropie": Framework(
        "micropie", "app_micropie", source=REPO_ROOT, micropie_home=REPO_ROOT / "micropie"
    ),
    "starlette": Framework("starlette", "app_starlette"),
    "pypi-micropie": Framework(
        "pypi-micropie", "app_micropie", python=PYPI_PYTHON, micropie_home=PYPI_VENV
    ),
}


def get_framework(name: str, micropie_source: Path | None = None) -> Framework:
    """Framework *name*; ``micropie`` from *micropie_source*'s micropie/ if given."""
    if name == "micropie" and micropie_source is not None:
        home = micropie_source / "micropie"
        return dataclasses.replace(FRAMEWORKS[name], source=micropie_source, micropie_home=home)
    return FRAMEWORKS[name]


def server_versions() -> dict[str, str]:
    """The versions of the SERVER_PACKAGES installed here."""
    installed = {d.metadata["Name"].lower(): d.version for d in importlib.metadata.distributions()}
    return {package: installed[package] for package in SERVER_PACKAGES if package in installed}


def ensure_pypi_venv() -> None:
    """Create the PyPI release's venv if need be; install micropie and the server there."""
    pins = [f"{package}=={version}" for package, version in server_versions().items()]
    env = os.environ | FRAMEWORKS["raw"].env
    pip = [str(PYPI_PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    try:
        if not PYPI_PYTHON.exists():
            print(f"creating {PYPI_VENV} (python -m venv), and installing micropie from PyPI")
            subprocess.run([sys.executable, "-m", "venv", str(PYPI_VENV)], check=True)
        subprocess.run([*pip, "micropie", *pins], check=True, cwd=SUITE_DIR, env=env)
    except (OSError, subprocess.CalledProcessError) as exc:
        problem = f"could not set up {PYPI_VENV} ({exc}); it needs `python -m venv` and PyPI once"
        advice = "delete it to start again, or leave the PyPI release out with --frameworks"
        raise BenchmarkFailed(f"{problem}: {advice} raw,micropie,starlette") from exc


def run_harness(framework: Framework, spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``suite/harness.py`` for *framework* in a new process; return its JSON."""
    argument, env = json.dumps({**spec, "module": framework.module}), os.environ | framework.env
    command = [str(framework.python), str(HARNESS), argument]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, cwd=SUITE_DIR, env=env, timeout=1800
        )
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkFailed(f"{framework.name}: the harness ran for {exc.timeout} s") from exc
    except (IndexError, json.JSONDecodeError):
        result = {}
    if done.returncode != 0 or "error" in result or not result:
        error = result.get("error", f"exit code {done.returncode}")
        raise BenchmarkFailed(f"{framework.name}: {error}\n{done.stderr[-3000:]}".rstrip())
    home, imported = framework.micropie_home, result.get("micropie_file")
    if home is not None and not (imported and Path(imported).resolve().is_relative_to(home)):
        raise BenchmarkFailed(f"{framework.name}: micropie came from {imported}, not {home}")
    return result


def uvicorn_options() -> dict[str, str]:
    """The fastest implementations installed here (the PyPI environment gets the same)."""
    sansio = importlib.util.find_spec("uvicorn.protocols.websockets.websockets_sansio_impl")
    return {
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "ws": "websockets-sansio" if sansio else "websockets",
    }


def server_options(server: str) -> list[str]:
    """The options of *server* in the end-to-end runs: its fastest event loop and parsers
    installed here, no compression, no access log, a long backlog."""
    uvloop = importlib.util.find_spec("uvloop") is not None
    if server == "uvicorn":
        options = [f"--{name}={value}" for name, value in uvicorn_options().items()]
        return [*options, "--ws-per-message-deflate=false", "--lifespan=off",
                "--log-level=warning", "--no-access-log", "--backlog=2048"]  # fmt: skip
    if server == "hypercorn":
        return ["--worker-class", "uvloop" if uvloop else "asyncio", "--backlog", "2048"]
    return ["--interface", "asgi", "--loop", "uvloop" if uvloop else "asyncio",
            "--log-level", "warning", "--backlog", "2048"]  # fmt: skip


#: Where the end-to-end server and its load run: a core each, when there are two.
PINNED = len(os.sched_getaffinity(0)) >= 2 if hasattr(os, "sched_getaffinity") else False


def _pin(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if PINNED else []


def serve(
    framework: Framework, server: str = "uvicorn"
) -> contextlib.AbstractContextManager[RunningServer]:
    """Serve *framework*'s application with one process of *server*, on the first core."""
    app, options = f"{framework.module}:app", server_options(server)
    return run_server(
        server, app, *options, cwd=SUITE_DIR, env=framework.env, python=framework.python,
        prefix=_pin(0), own_port=True,
    )  # fmt: skip


def process_cpu_seconds(pid: int) -> float | None:
    """The CPU time of process *pid*'s threads, from Linux's ``/proc`` (None without it)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return sum(int((task / "schedstat").read_text().split()[0]) for task in tasks) / 1e9
    return None


def group_cpu_seconds(group: int) -> float | None:
    """The CPU time of the processes of process group *group* (a server and its
    workers), from Linux's ``/proc`` (None without it): their threads' time on a CPU."""
    total = 0.0
    try:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[2]) == group:  # after the name: state, ppid, pgrp
                    total += process_cpu_seconds(int(entry.name)) or 0.0
    except OSError:
        return None
    return total


def e2e_run(
    framework: Framework, server: str, kind: str, clients: int, messages: int
) -> dict[str, Any]:
    """A fresh *server* for *framework*, and the load (``suite/load.py``) on the other
    core: *clients* connections echoing *messages* each, or *clients* loops of *messages*
    handshakes. The server's CPU time spans the timed part only."""
    # granian drops the headers of websocket.accept: no session cookie to check there.
    spec = {"kind": kind, "clients": clients, "messages": messages, "cookie": server != "granian"}
    with serve(framework, server) as running:
        spec["url"] = running.ws_url
        command = [*_pin(1), sys.executable, str(LOAD), json.dumps(spec)]
        load = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=SUITE_DIR
        )
        try:
            assert load.stdin is not None and load.stdout is not None
            ready = load.stdout.readline().strip()
            if ready != "ready":
                raise BenchmarkFailed(f"{framework.name} on {server}: the load said {ready!r}")
            before = group_cpu_seconds(running.process.pid)
            load.stdin.write("go\n")
            load.stdin.flush()
            line = load.stdout.readline()
            after = group_cpu_seconds(running.process.pid)
            load.wait(60)
        except BaseException:
            load.kill()
            load.wait()
            raise
        try:
            result: dict[str, Any] = json.loads(line)
        except json.JSONDecodeError:
            result = {"error": f"no result: {line!r}"}
        if load.returncode != 0 or "error" in result:
            problem = result.get("error", f"exit code {load.returncode}")
            raise BenchmarkFailed(
                f"{framework.name} on {server} ({kind}): {problem}\n{running.output[-3000:]}"
            )
    result["server_cpu_seconds"] = None if None in (before, after) else after - before
    return {**result, "clients": clients, "messages": messages}


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((li.split(":")[1].strip() for li in lines if li.startswith("model name")), cpu)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": platform.platform(terse=True),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "load_average_before": [round(x, 2) for x in load] if load else None,
    }


#: What the published figures depend on: a change here unpublished makes them unreproducible.
MEASURED_PATHS = ("micropie", "benchmarks")


def uncommitted(source: Path = REPO_ROOT) -> list[str]:
    """The files under MEASURED_PATHS that differ from the commit, as git's short status
    lines: none when the tree is clean (or *source* is no git checkout)."""
    command = ["git", "-C", str(source), "status", "--porcelain", "--", *MEASURED_PATHS]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return []
    return done.stdout.splitlines()


def collect_versions(frameworks: dict[str, str | None], source: Path) -> dict[str, Any]:
    """The frameworks' versions (as their processes reported them), the server's, git's."""
    git = ["git", "-C", str(source)]
    try:
        head, dirty = (
            subprocess.run([*git, *args], capture_output=True, text=True, check=True).stdout.strip()
            for args in (["rev-parse", "--short", "HEAD"], ["status", "--porcelain", "micropie"])
        )
        revision: str | None = head + ", with uncommitted changes to micropie/" * bool(dirty)
    except (OSError, subprocess.CalledProcessError):
        revision = None
    return {
        "frameworks": frameworks,
        "server": server_versions(),
        "uvicorn_options": uvicorn_options(),
        "git": revision,
        **({"micropie_source": str(source)} if source != REPO_ROOT else {}),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="MicroPie's benchmarks: every workload against raw ASGI (the floor), this "
        "repository's micropie, Starlette and the micropie release on PyPI. Writes results.json, "
        "results.md, results.inc (for the docs page) and results.png (with matplotlib).",
    )
    add, sizes = parser.add_argument, ", ".join(f"{k} {v:,}" for k, v in IN_PROCESS.items())
    # fmt: off
    add("--quick", action="store_true", help="--scale 0.1 and one round: a check of seconds")
    add("--scale", type=float, help="multiply each workload's size and the end-to-end "
        f"messages per client by this (default 1: {sizes})")
    add("--frameworks", default=",".join(FRAMEWORKS), help="%(default)s, or some of them")
    add("--workloads", default=",".join(WORKLOADS), help="%(default)s, or some of them")
    add("--micropie-source", type=lambda path: Path(path).resolve(), metavar="PATH",
        help="measure the micropie/ package of this directory (a `git worktree add` of "
        "another commit, say) instead of this repository's")
    add("--clients", type=int, default=50, help="end-to-end clients (default 50)")
    add("--rounds", type=int, help="in-process rounds, a new process each (default 5)")
    add("--e2e-rounds", type=int, help="end-to-end runs per framework (default 3)")
    add("--output-dir", type=Path, help=f"default {DEFAULT_OUTPUT.relative_to(REPO_ROOT)}, "
        "or build/benchmarks with --quick or --micropie-source")
    add("--render-from", type=Path, metavar="RESULTS_JSON",
        help="run nothing: write the results again from a results.json")
    add("--profile", action="store_true",
        help="run each in-process workload once under cProfile and print where the time went")
    # fmt: on
    args = parser.parse_args(argv)
    for option in ("scale", "clients", "rounds", "e2e_rounds"):
        value = getattr(args, option)
        if value is not None and not 0 < value < float("inf"):
            parser.error(f"argument --{option.replace('_', '-')}: {value} is not a number above 0")
    for option, known in (("frameworks", tuple(FRAMEWORKS)), ("workloads", WORKLOADS)):
        items = {item.strip() for item in getattr(args, option).split(",")} - {""}
        unknown = ", ".join(sorted(items.difference(known)))
        if unknown or not items:
            problem = f"unknown {unknown}" if unknown else "none given"
            parser.error(f"argument --{option}: {problem}; choose from {', '.join(known)}")
        setattr(args, option, [name for name in known if name in items])  # the table's order
    source = args.micropie_source
    if source is not None and not (source / "micropie" / "__init__.py").is_file():
        parser.error(f"argument --micropie-source: {source} holds no micropie/ package")
    scale = args.scale or (0.1 if args.quick else 1.0)
    args.sizes = {name: max(1, round(size * scale)) for name, size in IN_PROCESS.items()}
    args.client_messages = max(1, round(CLIENT_MESSAGES * scale))
    args.handshake_clients = HANDSHAKE_CLIENTS
    args.client_handshakes = max(1, round(CLIENT_HANDSHAKES * scale))
    args.rounds = 1 if args.profile else args.rounds or (1 if args.quick else 5)
    args.e2e_rounds = args.e2e_rounds or (1 if args.quick else 3)
    if args.profile:  # each in-process workload once, under cProfile; nothing written
        args.workloads = [w for w in args.workloads if w not in report.E2E_WORKLOADS]
    return args


def run(args: argparse.Namespace, command: str) -> report.Results:
    """Every workload, round and framework: the results (with ``--profile``, printed)."""
    settings = {key: getattr(args, key) for key in SAVED}
    settings["micropie_source"] = args.micropie_source and str(args.micropie_source)
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = report.Results(settings, machine_info(), {}, {}, {}, 0.0, command, date)
    chosen = [get_framework(name, args.micropie_source) for name in args.frameworks]
    started, versions = time.monotonic(), dict[str, str | None]()
    print(f"Frameworks: {', '.join(args.frameworks)}; workloads: {', '.join(args.workloads)}")
    for workload in args.workloads:
        e2e = workload in report.E2E_WORKLOADS
        rounds = args.e2e_rounds if e2e else args.rounds
        for number in range(rounds):
            turn = number % len(chosen)
            for framework in chosen[turn:] + chosen[:turn]:
                if e2e:
                    kind, server = report.e2e_parts(workload)
                    if framework.name == "pypi-micropie" and server != "uvicorn":
                        continue  # the release closed its echo connections under hypercorn
                    clients, count = (
                        (args.clients, args.client_messages)
                        if kind == "echo"
                        else (args.handshake_clients, args.client_handshakes)
                    )
                    timed = e2e_run(framework, server, kind, clients, count)
                    runs = results.end_to_end.setdefault(workload, {})
                    runs.setdefault(framework.name, []).append(timed)
                    continue
                size = args.sizes[workload]
                spec = {"workloads": {workload: size}, "profile": args.profile}
                outcome = run_harness(framework, spec)
                if args.profile:
                    print(f"=== {framework.name}: {workload} ({size:,} operations)")
                    print(outcome["results"][workload]["profile"])
                    continue
                package = "micropie" if "micropie" in framework.name else framework.name
                versions[framework.name] = outcome["versions"].get(package)  # raw ASGI: None
                empty = {"size": size, "wall_seconds": [], "cpu_seconds": []}
                cell = results.in_process.setdefault(workload, {}).setdefault(framework.name, empty)
                for key in ("wall_seconds", "cpu_seconds"):
                    cell[key].append(outcome["results"][workload][key])
            print(f"  {workload}: round {number + 1}/{rounds} done")
    results.versions = collect_versions(versions, args.micropie_source or REPO_ROOT)
    results.duration_seconds = time.monotonic() - started
    return results


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
        report.write_all(results, output)
        return 0
    command = shlex.join(["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)])
    if output == DEFAULT_OUTPUT and not args.profile and (changed := uncommitted()):
        print(
            f"benchmark refused: the published figures ({DEFAULT_OUTPUT.relative_to(REPO_ROOT)}) "
            "come from a clean commit, and these files differ from it:\n  "
            + "\n  ".join(changed)
            + "\ncommit them (or stash them), or measure into another directory with "
            "--output-dir or --quick",
            file=sys.stderr,
        )
        return 2
    try:
        if "pypi-micropie" in args.frameworks:
            ensure_pypi_venv()
        results = run(args, command)
    except (BenchmarkFailed, ServerError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    if args.profile:
        return 0
    print(report.markdown(results))
    report.write_all(results, output)
    return 0
