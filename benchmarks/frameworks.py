"""The frameworks: an application module of ``benchmarks/suite`` each, and the Python
and ``sys.path`` of its processes. They start in ``benchmarks/suite``, so a micropie is
importable only where a framework puts one: this repository's (or ``--micropie-source``'s)
by ``PYTHONPATH``, the PyPI release (another project of that name) in its own venv.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS_DIR.parent
SUITE_DIR = BENCHMARKS_DIR / "suite"
HARNESS = SUITE_DIR / "harness.py"
PYPI_VENV = BENCHMARKS_DIR / ".venvs" / "pypi-micropie"
PYPI_PYTHON = PYPI_VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
#: Installed into the PyPI environment at this environment's versions, so that
#: both sides of the comparison run the same server.
SERVER_PACKAGES = ("uvicorn", "websockets", "uvloop", "httptools")


class BenchmarkFailed(RuntimeError):
    """A framework's process failed, or answered a workload wrongly."""


@dataclasses.dataclass(frozen=True)
class Framework:
    """An application module (``module:app``), and where its processes find their packages."""

    name: str
    label: str
    module: str
    colour: str
    python: Path = Path(sys.executable)
    #: Put first on sys.path (None: nothing is).
    source: Path | None = None
    #: Where the micropie its processes import must come from (None: not checked).
    micropie_home: Path | None = None

    @property
    def env(self) -> dict[str, str]:
        """What its processes' environment changes (an empty PYTHONPATH is none)."""
        path = "" if self.source is None else str(self.source)
        return {"PYTHONPATH": path, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}


#: In the order of the table's columns: the floor first.
FRAMEWORKS = {
    "raw": Framework("raw", "raw ASGI", "app_raw", "#9e9e9e"),
    "micropie": Framework(
        "micropie", "micropie (this repo)", "app_micropie", "#d9480f",
        source=REPO_ROOT, micropie_home=REPO_ROOT / "micropie",
    ),
    "starlette": Framework("starlette", "Starlette", "app_starlette", "#1971c2"),
    "pypi-micropie": Framework(
        "pypi-micropie", "micropie (PyPI)", "app_micropie", "#f59f00",
        python=PYPI_PYTHON, micropie_home=PYPI_VENV,
    ),
}  # fmt: skip
LABELS = {name: framework.label for name, framework in FRAMEWORKS.items()}


def get_framework(name: str, micropie_source: Path | None = None) -> Framework:
    """Framework *name*; ``micropie`` from *micropie_source*'s micropie/ if given."""
    if name == "micropie" and micropie_source is not None:
        home = micropie_source / "micropie"
        return dataclasses.replace(FRAMEWORKS[name], source=micropie_source, micropie_home=home)
    return FRAMEWORKS[name]


def server_versions() -> dict[str, str]:
    """The versions of the SERVER_PACKAGES installed here."""
    versions = {}
    for package in SERVER_PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return versions


def ensure_pypi_venv() -> None:
    """Create ``benchmarks/.venvs/pypi-micropie`` if need be, and install micropie and the
    server packages there (pip does nothing, offline, when they already are)."""
    pins = [f"{package}=={version}" for package, version in server_versions().items()]
    env = {**os.environ, **FRAMEWORKS["raw"].env}
    pip = [str(PYPI_PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    try:
        if not PYPI_PYTHON.exists():
            print(f"creating {PYPI_VENV} (python -m venv), and installing micropie from PyPI")
            subprocess.run([sys.executable, "-m", "venv", str(PYPI_VENV)], check=True)
        subprocess.run([*pip, "micropie", *pins], check=True, cwd=SUITE_DIR, env=env)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BenchmarkFailed(
            f"could not set up {PYPI_VENV} ({exc}); it needs `python -m venv` and PyPI once. "
            "Delete the directory to start it again, or leave the PyPI release out with "
            "--frameworks raw,micropie,starlette"
        ) from exc


def run_harness(framework: Framework, spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``suite/harness.py`` for *framework* in a new process; return its JSON."""
    command = [
        str(framework.python),
        str(HARNESS),
        json.dumps({**spec, "module": framework.module}),
    ]
    env = {**os.environ, **framework.env}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, cwd=SUITE_DIR, env=env, timeout=1800
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkFailed(f"{framework.label}: the harness ran for {exc.timeout} s") from exc
    try:
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        result = {}
    if done.returncode != 0 or "error" in result or not result:
        error = result.get("error", f"exit code {done.returncode}")
        raise BenchmarkFailed(f"{framework.label}: {error}\n{done.stderr[-3000:]}".rstrip())
    home, imported = framework.micropie_home, result.get("micropie_file")
    if home is not None and not (imported and Path(imported).resolve().is_relative_to(home)):
        raise BenchmarkFailed(f"{framework.label}: micropie came from {imported}, not {home}")
    return result
