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
