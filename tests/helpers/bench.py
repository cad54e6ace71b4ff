"""The benchmark suite's frameworks, as the smoke tests of benchmarks/ take them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks.run import PYPI_PYTHON, PYPI_VENV, REPO_ROOT, Framework, get_framework


def framework(name: str) -> Framework:
    """The benchmarks' framework *name*; the PyPI release is skipped where it is not installed."""
    if name == "pypi-micropie" and not PYPI_PYTHON.exists():
        pytest.skip(
            f"{PYPI_VENV.relative_to(REPO_ROOT)} does not exist; `python -m benchmarks` "
            "creates it from PyPI, and the smoke test never downloads"
        )
    return get_framework(name)


#: What a copy made by :func:`micropie_copy` says its version is, and prints when imported.
COPY_VERSION = "0.0.0+copy"
COPY_MARK = "micropie imported from the copy"


def micropie_copy(directory: Path) -> Path:
    """Copy this repository's micropie/ into *directory*, marked: a tree for --micropie-source."""
    package = directory / "micropie"
    shutil.copytree(REPO_ROOT / "micropie", package, ignore=shutil.ignore_patterns("__pycache__"))
    with open(package / "__init__.py", "a", encoding="utf-8") as init:
        init.write(f"\n__version__ = {COPY_VERSION!r}\n")
        init.write(f"import sys\nprint({COPY_MARK!r}, file=sys.stderr, flush=True)\n")
    return directory


#: The rows ``python -m benchmarks.fanout`` always measures (broadcaster's needs redis-py 7).
FANOUT_ROWS = {
    "micropie-memory",
    "micropie-redis",
    "micropie-redis-history",
    "publish-redis",
    "publish-redis-history",
}


def fanout_rates(output: str) -> dict[str, float]:
    """The rate of each row of ``python -m benchmarks.fanout``'s table, checked: every
    row it always measures is there, above zero, and broadcaster's is there or says why not."""
    rates, skipped = {}, {}
    for line in output.splitlines():
        name, _, rest = line.partition(" ")
        figure = rest.split()[0].replace(",", "") if rest.split() else ""
        if figure.isdigit():
            rates[name] = float(figure)
        elif rest.strip().startswith("not run: "):
            skipped[name] = rest.strip()
    assert set(rates) >= FANOUT_ROWS, output
    assert all(rate > 0 for rate in rates.values()), output
    assert "broadcaster-redis" in rates or "broadcaster-redis" in skipped, output
    return rates
