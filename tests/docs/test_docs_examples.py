"""No untested example on the site: an audit of every code block Sphinx renders.

Each Python example on the site must be one of:

* a doctest (``>>>`` lines in a page's text, in a docstring the page shows,
  or in a ``.. doctest::`` block), which the reader test
  (``tests/docs/test_docs_reader.py``) runs as a reader would, and Sphinx's
  doctest builder runs too;
* a file the page shows with its name as the caption, which the reader
  saves, and which a doctest of the same page imports or names; or
* a ``literalinclude`` of a file under ``examples/`` that a test refers to,
  by module (``examples.echo.app``) or by path (``examples/echo/app.py``).

Other blocks are allowed when they are not Python: shell commands, and
configuration files pulled in with ``literalinclude`` (those, too, must be
files that a test refers to, or that the page shows under a file name). A
``.. code-block:: python`` or a ``::`` block that holds Python code without
being such a file, a skipped doctest, or a ``testcode`` block fails the audit.

The audit reads the doctrees of a real build, so that it sees what readers
see, docstrings included; its findings, one line per block, are printed and
written to ``build/docs-examples-audit.txt``.
"""

from __future__ import annotations

import ast
import pickle
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from docutils import nodes

from docs.reader_pages import file_caption
from tests.helpers.docs_site import DOCS_SOURCE, ROOT

EXAMPLES = ROOT / "examples"
TESTS = ROOT / "tests"
REPORT = ROOT / "build" / "docs-examples-audit.txt"

PYTHON_LANGUAGES = {"python", "python3", "py", "py3", "pycon", "ipython", "ipython3"}
# A block without a language is highlighted as "default": Python if it parses.
UNDECLARED = {None, "", "default", "guess"}
# Statements and expressions that only code has; a lone word ("tox") parses too.
_CODE_NODES = (
    ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
    ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Call, ast.Await, ast.With,
    ast.AsyncWith, ast.For, ast.AsyncFor, ast.While, ast.If, ast.Try, ast.Return,
)  # fmt: skip


@dataclass(frozen=True)
class Block:
    """One code block of the site, and the audit's verdict on it."""

    where: str  # page source and line
    kind: str  # doctest, literalinclude, shell, ...
    detail: str  # what it is: the included file, the language
    problem: str | None  # None when the block is covered


@pytest.fixture(scope="module")
def blocks(site_doctrees: Path) -> list[Block]:
    references = _test_references()
    found = []
    for path in sorted(site_doctrees.rglob("*.doctree")):
        with path.open("rb") as file:
            doctree = pickle.load(file)  # written by this run's build
        page_doctests = "\n".join(
            node.astext() for node in doctree.findall(_is_code) if _is_doctest(node)
        )
        for node in doctree.findall(_is_code):
            found.append(_audit(node, references, page_doctests))
    _write_report(found)
    return found


def _is_code(node: nodes.Node) -> bool:
    return isinstance(node, (nodes.literal_block, nodes.doctest_block))


def _is_doctest(node: nodes.Element) -> bool:
    return isinstance(node, nodes.doctest_block) or node.get("testnodetype") == "doctest"


def _where(node: nodes.Element) -> str:
    source = str(node.source or node.get("source") or "?")
    for base in (DOCS_SOURCE, ROOT):
        if source.startswith(f"{base}/"):
            source = source[len(str(base)) + 1 :]
            break
    return f"{source}:{node.line or '?'}"


def _audit(node: nodes.Element, references: dict[str, set[str]], page_doctests: str) -> Block:
    where = _where(node)
    text = node.astext()
    if _is_doctest(node):
        return Block(where, "doctest", _first_line(text), _doctest_problem(text))

    test_kind = node.get("testnodetype")
    if test_kind in ("testcode", "testoutput", "testsetup", "testcleanup"):
        return Block(
            where, test_kind, _first_line(text),
            f"a {test_kind} block is not what a reader runs: write it as a >>> doctest, "
            "or show the code as a file with its name as the caption",
        )  # fmt: skip

    language = node.get("language")
    included = node.get("source")
    shown_as = file_caption(node)
    if shown_as and _names_file(page_doctests, shown_as):
        kind = "literalinclude" if included else "page file"
        return Block(where, kind, f"{shown_as} (used by the page's doctests)", None)
    if included:
        return _audit_include(where, Path(included), language, references)
    if language in PYTHON_LANGUAGES or (language in UNDECLARED and _looks_like_python(text)):
        return Block(
            where, "code block", f"[{language or '::'}] {_first_line(text)}",
            "Python that nothing runs: make it a >>> doctest, or a file under examples/ "
            "that a test runs, shown with literalinclude",
        )  # fmt: skip
    return Block(where, "not Python", f"[{language or '::'}] {_first_line(text)}", None)


def _names_file(doctests: str, file_name: str) -> bool:
    """Whether the page's doctests import the shown file, or name it."""
    module = file_name.removesuffix(".py").replace("/", ".")
    name = re.escape(module)
    imported = rf"(?m)^(>>>|\.\.\.)\s+(from\s+{name}\s+import|import\s+{name}\b)"
    return file_name in doctests or bool(re.search(imported, doctests))


def _doctest_problem(text: str) -> str | None:
    if re.search(r"doctest:.*\+SKIP", text):
        return "a skipped doctest is an untested example"
    return None


def _audit_include(
    where: str, path: Path, language: str | None, references: dict[str, set[str]]
) -> Block:
    path = path.resolve()
    try:
        relative = path.relative_to(ROOT).as_posix()
    except ValueError:
        return Block(where, "literalinclude", str(path), "includes a file outside the repository")
    python = path.suffix == ".py" or language in PYTHON_LANGUAGES
    if python and not path.is_relative_to(EXAMPLES):
        return Block(
            where, "literalinclude", relative,
            "shows Python from outside examples/: examples are what the tests run",
        )  # fmt: skip
    users = sorted(test for test, refs in references.items() if _refers_to(refs, relative))
    if not users:
        named = f"by its path, or as the module {_module(relative)}" if python else "by its path"
        problem = f"no test under tests/ refers to {relative} ({named})"
        return Block(where, "literalinclude", relative, problem)
    return Block(where, "literalinclude", f"{relative} (used by {', '.join(users)})", None)


def _module(relative: str) -> str:
    return relative.removesuffix(".py").replace("/", ".")


def _refers_to(references: set[str], relative: str) -> bool:
    module = re.compile(rf"(?<![\w.]){re.escape(_module(relative))}(?![\w])")
    for reference in references:
        if relative in reference:
            return True
        if relative.endswith(".py") and module.search(reference):
            return True
    return False


def _test_references() -> dict[str, set[str]]:
    """For each Python file under tests/: the strings its code names files and modules with.

    String constants (docstrings and comments left out), paths built with
    ``/`` or ``Path(...)``/``os.path.join(...)`` from string parts, and
    imported modules. A mention in a comment or a docstring does not count.
    """
    references = {}
    for path in sorted(TESTS.rglob("*.py")):
        if path.resolve() == Path(__file__).resolve():
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        references[path.relative_to(ROOT).as_posix()] = _references_in(tree)
    return references


def _references_in(tree: ast.Module) -> set[str]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings:
                found.add(node.value)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            found.add("/".join(_string_parts(node)))
        elif isinstance(node, ast.Call):
            parts = [a.value for a in node.args if isinstance(a, ast.Constant)]
            if len(parts) > 1 and all(isinstance(part, str) for part in parts):
                found.add("/".join(str(part) for part in parts))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _string_parts(node: ast.expr) -> list[str]:
    """The string pieces of ``ROOT / "examples" / "echo" / "app.py"``, in order."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        return _string_parts(node.left) + _string_parts(node.right)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    return []


def _looks_like_python(text: str) -> bool:
    if re.search(r"^\s*>>>", text, re.M):
        return True
    try:
        tree = ast.parse(textwrap.dedent(text))
    except SyntaxError:
        return False  # shell commands, configuration, HTML, output
    return any(isinstance(node, _CODE_NODES) for node in ast.walk(tree))


def _first_line(text: str) -> str:
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line if len(line) <= 60 else line[:57] + "..."


def _write_report(found: list[Block]) -> None:
    lines = [
        f"{'OK ' if block.problem is None else 'BAD'} {block.where}: {block.kind}: {block.detail}"
        + (f"\n      {block.problem}" if block.problem else "")
        for block in found
    ]
    counts: dict[str, int] = {}
    for block in found:
        counts[block.kind] = counts.get(block.kind, 0) + 1
    summary = ", ".join(f"{count} {kind}" for kind, count in sorted(counts.items()))
    report = f"{len(found)} code blocks on the site: {summary}\n" + "\n".join(lines) + "\n"
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(report, encoding="utf-8")
    sys.stdout.write(report)


def test_the_site_has_examples_of_each_kind(blocks: list[Block]) -> None:
    kinds = {block.kind for block in blocks}
    assert {"doctest", "literalinclude"} <= kinds, kinds
    assert sum(block.kind == "doctest" for block in blocks) > 50


def test_every_python_example_on_the_site_is_tested(blocks: list[Block]) -> None:
    untested = [f"{b.where}: {b.kind}: {b.detail}\n    {b.problem}" for b in blocks if b.problem]
    assert not untested, f"{len(untested)} untested code blocks:\n" + "\n".join(untested)


@pytest.mark.parametrize(
    ("text", "python"),
    [
        ("pip install '.[server]'", False),
        ("uvicorn examples.echo.app:app", False),
        ("python3 -m venv .venv && .venv/bin/pip install tox", False),
        ("tox", False),
        ('{"type": "websocket.send", "text": "hi"}', False),
        ("server {\n    listen 443 ssl;\n}", False),
        ("from micropie import App\n\napp = App()", True),
        ("class Echo(App):\n    async def ws_echo(self, ws):\n        await ws.accept()", True),
        ("await ws.send_text('hi')", True),
        (">>> 1 + 1\n2", True),
    ],
)
def test_python_is_told_from_shell_and_configuration(text: str, python: bool) -> None:
    assert _looks_like_python(text) is python


def test_references_count_in_code_only() -> None:
    tree = ast.parse(
        '"""Docstring: examples/docstring/app.py."""\n'
        "# examples/comment/app.py\n"
        'run("examples.served.app:app")\n'
        'path = ROOT / "examples" / "joined" / "app.py"\n'
        "from examples.imported.app import app\n"
        "from examples.parent import app\n"
    )
    refs = _references_in(tree)
    assert _refers_to(refs, "examples/served/app.py")
    assert _refers_to(refs, "examples/joined/app.py")
    assert _refers_to(refs, "examples/imported/app.py")
    assert _refers_to(refs, "examples/parent/app.py")
    assert not _refers_to(refs, "examples/docstring/app.py")
    assert not _refers_to(refs, "examples/comment/app.py")
    assert not _refers_to({"examples.served.app_two:app"}, "examples/served/app.py")
