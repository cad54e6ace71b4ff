"""Every page of the site, followed as a reader follows it (see ``tests/helpers/reader.py``).

For each page: a fresh directory outside the repository, the package
installed and nothing else importable; the files the page shows are saved
under the names it gives, and its ``>>>`` examples run in page order. The
number of examples run on each page is written to
``build/docs-reader-report.txt``.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from tests.helpers.docs_site import DOCS_SOURCE, ROOT
from tests.helpers.reader import PageError, reader_sessions, run_session

PAGES = sorted(str(p.relative_to(DOCS_SOURCE).with_suffix("")) for p in DOCS_SOURCE.rglob("*.rst"))
REPORT = ROOT / "build" / "docs-reader-report.txt"


@pytest.fixture(scope="module")
def report() -> dict[str, str]:
    lines: dict[str, str] = {}
    yield lines
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("".join(f"{page}: {lines[page]}\n" for page in sorted(lines)), "utf-8")


@pytest.mark.parametrize("page", PAGES)
def test_a_reader_can_follow_the_page(
    page: str, site_doctrees: Path, tmp_path: Path, report: dict[str, str]
) -> None:
    with (site_doctrees / f"{page}.doctree").open("rb") as file:
        doctree = pickle.load(file)  # written by this run's build
    try:
        sessions = reader_sessions(doctree, page)
    except PageError as exc:
        pytest.fail(str(exc))
    if not sessions:
        report[page] = "no examples"
        pytest.skip("the page has no examples and shows no files")
    directory = tmp_path / "reader"
    directory.mkdir()
    examples, files = 0, []
    for number, steps in enumerate(sessions, 1):
        result = run_session(steps, directory)
        examples += result.examples
        files += result.files
        assert result.examples or result.files, f"session {number} of {page} ran nothing"
    report[page] = f"{examples} examples in {len(sessions)} session(s); files saved: " + (
        ", ".join(dict.fromkeys(files)) or "none"
    )
    assert examples or files
