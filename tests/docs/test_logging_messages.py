"""The table of docs/source/howto/logging.rst lists every record MicroPie logs, at its level.

The records are found in the code: each call of ``logger.info()``,
``.warning()``, ``.error()``, ``.exception()`` (and the others) in
``micropie/``, with its message's format string. A record added to the code
must be added to the table, and one removed from the code, removed from it.
"""

from __future__ import annotations

import ast
import logging
import re

from tests.helpers.servers import REPO_ROOT

PAGE = REPO_ROOT / "docs" / "source" / "howto" / "logging.rst"
PACKAGE = REPO_ROOT / "micropie"
LEVELS = {
    "debug": "DEBUG",
    "info": "INFO",
    "warning": "WARNING",
    "error": "ERROR",
    "exception": "ERROR",
    "critical": "CRITICAL",
}


def logged_in_code() -> set[tuple[str, str]]:
    """(level, format string) of every call to a method of a ``logger`` in the package."""
    found = set()
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LEVELS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "logger"
            ):
                continue
            first = node.args[0] if node.args else None
            assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
                f"{path.name}:{node.lineno}: a log message that is not a plain string"
            )
            found.add((LEVELS[node.func.attr], first.value))
    return found


def listed_on_page() -> set[tuple[str, str]]:
    """(level, message) of each row of the page's table."""
    text = PAGE.read_text(encoding="utf-8")
    rows = re.findall(r"^   \* - ([A-Z]+)\n     - ``(.+)``$", text, re.M)
    return {(level, message) for level, message in rows}


def test_the_code_uses_the_micropie_logger_only() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        for name in re.findall(r"getLogger\(([^)]*)\)", path.read_text(encoding="utf-8")):
            assert name == '"micropie"', f"{path.name} logs on {name}"


def test_the_table_lists_every_record_at_its_level() -> None:
    code, page = logged_in_code(), listed_on_page()
    assert len(code) >= 15  # the scan found the calls
    missing = sorted(code - page)
    assert not missing, f"logged by the code, missing from {PAGE.name}: {missing}"
    stale = sorted(page - code)
    assert not stale, f"listed on {PAGE.name}, logged nowhere in the code: {stale}"


def test_the_table_is_in_order_of_level() -> None:
    levels = [
        level
        for level, _ in re.findall(
            r"^   \* - ([A-Z]+)\n     - ``(.+)``$", PAGE.read_text(encoding="utf-8"), re.M
        )
    ]
    numbers = [logging.getLevelName(level) for level in levels]
    assert numbers == sorted(numbers)
