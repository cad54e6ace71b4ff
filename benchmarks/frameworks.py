"""The frameworks under test: which Python runs each, and how its process is started.

Every framework runs in processes of its own, started from ``benchmarks/suite``
(the harness and the four applications). The repository root is on the
path only for this repository's MicroPie; the ``micropie`` release on PyPI,
another project under the same name, runs from its own virtual environment,
``benchmarks/.venvs/pypi-micropie``, which :func:`ensure_pypi_venv` creates.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS_DIR.parent
SUITE_DIR = BENCHMARKS_DIR / "suite"
HARNESS = SUITE_DIR / "harness.py"
PYPI_VENV = BENCHMARKS_DIR / ".venvs" / "pypi-micropie"

#: In the order of the table's columns: the floor first.
FRAMEWORKS = ("raw", "micropie", "starlette", "pypi-micropie")
LABELS = {
    "raw": "raw ASGI",
    "micropie": "micropie (this repo)",
    "starlette": "Starlette",
    "pypi-micropie": "micropie (PyPI)",
}
APP_MODULES = {
    "raw": "app_raw",
    "micropie": "app_micropie",
    "starlette": "app_starlette",
    "pypi-micropie": "app_pypi_micropie",
}

#: What the PyPI environment needs besides micropie, pinned to the versions
#: this environment has, so that both sides of the comparison run the same server.
SERVER_PACKAGES = ("uvicorn", "websockets", "uvloop", "httptools")

HARNESS_TIMEOUT = 1800.0


class BenchmarkFailed(RuntimeError):
    """A framework's process failed, or answered a workload wrongly."""


@dataclass(frozen=True)
class Framework:
    """One framework: the Python that runs it, and the environment of its processes."""

    name: str
    python: Path
    env: dict[str, str]
    #: Where its ``micropie`` must be imported from (None: not checked).
    micropie_home: Path | None

    @property
    def label(self) -> str:
        return LABELS[self.name]

    @property
    def app_module(self) -> str:
        return APP_MODULES[self.name]


def venv_python(venv: Path) -> Path:
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def _clean_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_COLOR"] = "1"
    return env


def get_framework(name: str) -> Framework:
    if name not in FRAMEWORKS:
        raise ValueError(f"unknown framework {name!r}; the frameworks are {', '.join(FRAMEWORKS)}")
    env = _clean_env()
    python = Path(sys.executable)
    home: Path | None = None
    if name == "micropie":
        env["PYTHONPATH"] = str(REPO_ROOT)  # this checkout, whatever is installed
        home = REPO_ROOT / "micropie"
    elif name == "pypi-micropie":
        python = venv_python(PYPI_VENV)
        home = PYPI_VENV
    return Framework(name, python, env, home)


def pypi_venv_exists() -> bool:
    return venv_python(PYPI_VENV).exists()


def server_pins() -> list[str]:
    """``name==version`` for each server package installed here."""
    pins = []
    for package in SERVER_PACKAGES:
        try:
            pins.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return pins


def _installed_in(python: Path, packages: list[str]) -> dict[str, str | None]:
    script = (
        "import importlib.metadata as m, json, sys\n"
        "found = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        found[name] = m.version(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        found[name] = None\n"
        "print(json.dumps(found))\n"
    )
    result = subprocess.run(
        [str(python), "-c", script, *packages],
        capture_output=True,
        text=True,
        cwd=SUITE_DIR,
        env=_clean_env(),
        check=True,
    )
    found: dict[str, str | None] = json.loads(result.stdout)
    return found


def ensure_pypi_venv(log: Any = print) -> None:
    """Create ``benchmarks/.venvs/pypi-micropie`` with ``python -m venv`` and
    ``pip install micropie``, plus the server packages at this environment's
    versions; reuse it when it already has them. Needs PyPI the first time."""
    pins = server_pins()
    python = venv_python(PYPI_VENV)
    where = PYPI_VENV.relative_to(REPO_ROOT)
    try:
        if python.exists():
            names = ["micropie", *(pin.split("==")[0] for pin in pins)]
            installed = _installed_in(python, names)
            missing = [p for p in pins if installed.get(p.split("==")[0]) != p.split("==")[1]]
            if installed.get("micropie") and not missing:
                return
        else:
            log(f"creating {where} (python -m venv)")
            subprocess.run([sys.executable, "-m", "venv", str(PYPI_VENV)], check=True)
        log(f"installing micropie from PyPI into {where}, with {', '.join(pins)}")
        command = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*command, "micropie", *pins], check=True, cwd=SUITE_DIR, env=_clean_env())
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BenchmarkFailed(
            f"could not set up {where} ({exc}); it needs `python -m venv` and PyPI once. "
            "Delete the directory to start it again, or leave the PyPI release out with "
            "--frameworks raw,micropie,starlette"
        ) from exc


def server_options() -> dict[str, str]:
    """The uvicorn implementations every framework is served with: the fastest
    ones installed here (the PyPI environment gets the same versions)."""

    def has(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            return False

    sansio = has("uvicorn.protocols.websockets.websockets_sansio_impl")
    return {
        "loop": "uvloop" if has("uvloop") else "asyncio",
        "http": "httptools" if has("httptools") else "h11",
        "ws": "websockets-sansio" if sansio else "websockets",
    }


def run_harness(framework: Framework, spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``suite/harness.py`` for *framework* in a new process; return its JSON."""
    command = [
        str(framework.python),
        str(HARNESS),
        json.dumps({**spec, "framework": framework.name}),
    ]
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=SUITE_DIR,
            env=framework.env,
            timeout=HARNESS_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkFailed(f"{framework.label}: the harness ran for {exc.timeout} s") from exc
    lines = completed.stdout.strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        result = {}
    if completed.returncode != 0 or "error" in result or not result:
        error = result.get("error", f"exit code {completed.returncode}")
        raise BenchmarkFailed(f"{framework.label}: {error}\n{completed.stderr[-3000:]}".rstrip())
    check_origin(framework, result.get("module_file"))
    return result


def check_origin(framework: Framework, module_file: str | None) -> None:
    """Fail unless *framework*'s micropie came from where it must."""
    if framework.micropie_home is None:
        return
    if module_file is None or not Path(module_file).resolve().is_relative_to(
        framework.micropie_home.resolve()
    ):
        raise BenchmarkFailed(
            f"{framework.label}: micropie was imported from {module_file}, "
            f"not from {framework.micropie_home}"
        )
