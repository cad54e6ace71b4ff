"""The tutorial page (docs/source/tutorial.rst) and its step files agree.

Each step shows the whole of ``app.py`` as it stands after the step
(examples/tutorial/stepN/app.py) and highlights what the step changed; the
last step shows ``test_app.py`` in the page itself. These checks read the
page's source: the reader's walk through the page (its files saved in a
blank directory, its doctests run) is tests/docs/test_docs_reader.py's, and the
step files under a real server are tests/e2e/test_tutorial_e2e.py's.
"""

from __future__ import annotations

import difflib
import re

import pytest

from tests.helpers.support import REPO_ROOT
from tests.helpers.tutorial import APP_NAME, STEP_FILES, page_file, page_text

_INCLUDE = re.compile(
    r"^\.\. literalinclude:: \.\./\.\./(?P<path>\S+)\n(?P<options>(?:   :[\w-]+:.*\n)*)", re.M
)


def _includes() -> list[tuple[str, dict[str, str]]]:
    found = []
    for match in _INCLUDE.finditer(page_text()):
        options = dict(re.findall(r"^   :([\w-]+):\s*(.*)$", match["options"], re.M))
        found.append((match["path"], options))
    return found


def _lines(spec: str) -> list[int]:
    """``"3-4, 20"`` -> ``[3, 4, 20]``."""
    numbers: list[int] = []
    for part in spec.split(","):
        first, _, last = part.strip().partition("-")
        numbers.extend(range(int(first), int(last or first) + 1))
    return numbers


def _changed_lines(before: list[str], after: list[str]) -> set[int]:
    """The numbers (from 1) of the non-blank lines of *after* that are not in *before*."""
    changed = set()
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    for tag, _, _, first, last in matcher.get_opcodes():
        if tag in ("replace", "insert"):
            changed.update(n + 1 for n in range(first, last) if after[n].strip())
    return changed


def test_each_step_shows_its_whole_file_in_order_under_one_name() -> None:
    includes = _includes()
    assert [path for path, _ in includes] == list(STEP_FILES.values())
    for path, options in includes:
        assert options.get("caption") == APP_NAME, path
        # The reader saves what the block shows: the whole file, nothing cut.
        assert set(options) <= {"caption", "language", "emphasize-lines"}, (path, options)
        assert options.get("language") == "python", path


@pytest.mark.parametrize("step", sorted(STEP_FILES)[1:])
def test_the_highlighted_lines_are_what_the_step_changed(step: int) -> None:
    options = dict(_includes())[STEP_FILES[step]]
    before = (REPO_ROOT / STEP_FILES[step - 1]).read_text(encoding="utf-8").splitlines()
    after = (REPO_ROOT / STEP_FILES[step]).read_text(encoding="utf-8").splitlines()
    changed = _changed_lines(before, after)
    highlighted = _lines(options["emphasize-lines"])
    assert changed, f"step {step} changes nothing"
    missing = sorted(changed - set(highlighted))
    assert not missing, f"step {step} changes lines {missing}, which the page does not highlight"
    # Each highlighted run starts and ends on a changed line (blank lines
    # inside a run are fine): nothing that stayed the same is marked new.
    for spec in options["emphasize-lines"].split(","):
        first, _, last = spec.strip().partition("-")
        ends = {int(first), int(last or first)}
        assert ends <= changed, f"step {step}: the run {spec.strip()} ends on an unchanged line"


def test_the_first_step_highlights_nothing() -> None:
    options = dict(_includes())[STEP_FILES[1]]
    assert "emphasize-lines" not in options  # the whole file is new


def test_the_test_file_is_shown_on_the_page_and_imports_the_app() -> None:
    text = page_file("test_app.py")
    assert "from app import ChatRoom" in text
    assert len(re.findall(r"^def test_", text, re.M)) >= 5
