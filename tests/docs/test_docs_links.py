"""Every link of the built site leads somewhere, checked offline in the HTML output.

Sphinx's ``-n`` resolves the references it knows about, and ``-b linkcheck``
(run by ``tox -e docs``) checks links to local files; neither looks at the
HTML that readers click. These tests do: each internal ``href``/``src``/
``action`` of every page must name a file of the site, and its ``#fragment``
an ``id`` on that page; every page must be reachable from the front page; and
the pages' text must not link off the site where the link check could not
follow offline.
"""

from __future__ import annotations

import re
import runpy
from collections import deque
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import pytest

from tests.helpers.docs_site import DOCS_CONF, DOCS_SOURCE, Link, Page, read_site, sphinx_build

# A URL with a scheme (https:, mailto:, javascript:, data:) or a network path (//host).
_EXTERNAL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*:|//)")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Page]]:
    outdir = tmp_path_factory.mktemp("site")
    sphinx_build("html", outdir)
    return outdir, read_site(outdir)


def _resolve(outdir: Path, page: str, url: str) -> tuple[str, str] | None:
    """The file (relative to *outdir*) and fragment that an internal *url* of *page*
    leads to, or ``None`` for an external URL. The file is ``""`` when the URL
    leaves the site's directory."""
    if _EXTERNAL.match(url):
        return None
    parts = urlsplit(url)
    fragment = unquote(parts.fragment)
    if not parts.path:
        return page, fragment  # "#anchor", or "?query" on the same page
    base = PurePosixPath("/") if parts.path.startswith("/") else PurePosixPath("/", page).parent
    resolved: list[str] = []
    for segment in (base / unquote(parts.path)).parts[1:]:
        if segment == "..":
            if not resolved:
                return "", fragment
            resolved.pop()
        elif segment != ".":
            resolved.append(segment)
    target = "/".join(resolved)
    if not target or parts.path.endswith("/") or (outdir / target).is_dir():
        target = f"{target}/index.html".lstrip("/")
    return target, fragment


def _describe(page: str, link: Link) -> str:
    return f"{page}:{link.line}: <{link.tag} {link.attribute}={link.url!r}>"


def test_the_whole_site_is_read(site: tuple[Path, dict[str, Page]]) -> None:
    _, pages = site
    for expected in ("index.html", "reference/websocket.html", "search.html", "genindex.html"):
        assert expected in pages
    internal = [link for page in pages.values() for link in page.links if link.in_content]
    assert len(internal) > 100, "the pages' text has suspiciously few links"
    assert "micropie.WebSocket.receive_text" in pages["reference/websocket.html"].ids


def test_every_internal_link_leads_to_a_file_and_an_anchor(
    site: tuple[Path, dict[str, Page]],
) -> None:
    outdir, pages = site
    broken = []
    checked = 0
    for name, page in pages.items():
        for link in page.links:
            resolved = _resolve(outdir, name, link.url)
            if resolved is None:
                continue
            checked += 1
            target, fragment = resolved
            if not target:
                broken.append(f"{_describe(name, link)}: leads out of the site")
            elif not (outdir / target).is_file():
                broken.append(f"{_describe(name, link)}: no file {target}")
            elif fragment and target.endswith(".html") and fragment not in pages[target].ids:
                broken.append(f"{_describe(name, link)}: {target} has no id {fragment!r}")
    assert checked > 1000, f"only {checked} internal links were found"
    assert not broken, f"{len(broken)} broken internal links:\n" + "\n".join(broken[:60])


def _orphans() -> set[str]:
    """Pages whose source says ``:orphan:``: Sphinx lets them stay out of every toctree."""
    orphans = set()
    for source in DOCS_SOURCE.rglob("*.rst"):
        head = source.read_text(encoding="utf-8").lstrip().splitlines()[:1]
        if head and head[0].strip() == ":orphan:":
            orphans.add(source.relative_to(DOCS_SOURCE).with_suffix(".html").as_posix())
    return orphans


def test_every_page_is_reachable_from_the_front_page(site: tuple[Path, dict[str, Page]]) -> None:
    """By following what a reader can click: links and the search form, not <link> or <script>.

    This is what puts the index of terms and classes (genindex.html) within reach.
    A page marked ``:orphan:`` is left out of the toctrees on purpose and linked
    from elsewhere; the pages it links to count as reachable.
    """
    outdir, pages = site
    orphans = _orphans() & set(pages)
    seen = {"index.html", *orphans}
    queue = deque(seen)
    while queue:
        name = queue.popleft()
        for link in pages[name].links:
            if link.tag not in ("a", "area", "form"):
                continue
            resolved = _resolve(outdir, name, link.url)
            if resolved and resolved[0] in pages and resolved[0] not in seen:
                seen.add(resolved[0])
                queue.append(resolved[0])
    unreachable = sorted(set(pages) - seen)
    assert not unreachable, (
        "pages that no chain of links from index.html reaches (add them to a toctree "
        f"or link them from a page): {unreachable}"
    )


def test_the_text_links_off_the_site_only_where_the_link_check_ignores_it(
    site: tuple[Path, dict[str, Page]],
) -> None:
    """``tox -e docs`` runs ``-b linkcheck`` offline: a link it would have to fetch fails it.

    The theme's own links (furo's footer credits) are outside the pages' text,
    and linkcheck never sees them.
    """
    _, pages = site
    ignored = [re.compile(pattern) for pattern in _linkcheck_ignore()]
    offending = [
        _describe(name, link)
        for name, page in pages.items()
        for link in page.links
        if link.in_content
        and link.url.startswith(("http:", "https:", "//"))
        and not any(pattern.match(link.url) for pattern in ignored)
    ]
    assert not offending, (
        "external links in the pages' text: link to the site's own pages, or add the "
        "URL to linkcheck_ignore in docs/conf.py:\n" + "\n".join(offending)
    )


def _linkcheck_ignore() -> list[str]:
    settings = runpy.run_path(str(DOCS_CONF / "conf.py"))
    patterns = settings["linkcheck_ignore"]
    assert isinstance(patterns, list)
    return [str(pattern) for pattern in patterns]


def test_link_resolution_rules() -> None:
    """The resolver itself, on the shapes of URL that Sphinx and furo write."""
    outdir = Path("/nonexistent")
    assert _resolve(outdir, "reference/app.html", "#api") == ("reference/app.html", "api")
    assert _resolve(outdir, "reference/app.html", "../index.html") == ("index.html", "")
    assert _resolve(outdir, "reference/app.html", "websocket.html#micropie.WebSocket") == (
        "reference/websocket.html",
        "micropie.WebSocket",
    )
    assert _resolve(outdir, "index.html", "_static/furo.css?v=1") == ("_static/furo.css", "")
    assert _resolve(outdir, "index.html", "../outside.html") == ("", "")
    assert _resolve(outdir, "a/b.html", "/search.html") == ("search.html", "")
    assert _resolve(outdir, "index.html", "guide/") == ("guide/index.html", "")
    assert _resolve(outdir, "index.html", "#term-close%20code") == ("index.html", "term-close code")
    for external in ("https://example.org/", "mailto:a@b.c", "javascript:void(0)", "//cdn/x.js"):
        assert _resolve(outdir, "index.html", external) is None


def test_the_readme_builds_the_site_with_the_command_the_tests_use() -> None:
    """The README's documentation command: the docs extra, then the build that tox checks."""
    readme = (DOCS_CONF.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Documentation", 1)[1].split("\n## ", 1)[0]
    command = re.search(r"```sh\n(.*?)\n```", section, re.S)
    assert command is not None, "the README's Documentation section has no command"
    steps = [step.strip() for step in command.group(1).split("&&")]
    assert ".venv/bin/pip install -e '.[docs]'" in steps
    assert steps[-1] == ".venv/bin/sphinx-build -W -n -E -b html -c docs docs/source build/site"
    assert "build/site/_screenshots/" in section
