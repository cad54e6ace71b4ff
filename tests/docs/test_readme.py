"""The README's example and commands are the ones that run."""

from __future__ import annotations

import ast
import re

from tests.helpers.support import REPO_ROOT

ROOT = REPO_ROOT
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _code_without_docstring(source: str) -> str:
    module = ast.parse(source)
    if module.body and isinstance(module.body[0], ast.Expr):
        module.body = module.body[1:]  # the module docstring is not shown
    return ast.unparse(module)


def test_readme_example_is_examples_echo() -> None:
    block = re.search(r"```python\n(.*?)```", README, re.S)
    assert block is not None, "the README has no Python example"
    echo = (ROOT / "examples" / "echo" / "app.py").read_text(encoding="utf-8")
    assert _code_without_docstring(block.group(1)) == _code_without_docstring(echo)


def test_ci_runs_the_readme_test_command() -> None:
    section = README.split("## Run every test", 1)[1]
    command = re.search(r"```sh\n(.*?)\n```", section, re.S)
    assert command is not None
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert command.group(1).strip() in [line.strip() for line in ci_lines]
