"""Sphinx configuration for MicroPie's documentation (sources in docs/source)."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.ext.doctest import DocTestBuilder
from sphinx.util import logging

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the package and examples/, without installing

import micropie  # noqa: E402
from docs.reader_pages import file_text, shown_files, starts_new_session  # noqa: E402

project = "MicroPie"
author = "MicroPie developers"
copyright = "2026, MicroPie developers"
release = micropie.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx_autodoc_typehints",
    "sphinx_copybutton",
]

html_theme = "furo"
html_title = f"MicroPie {release}"
# Read the Docs says where it serves the site (for <link rel="canonical">);
# a local build has no such address, and leaves it out.
html_baseurl = os.environ.get("READTHEDOCS_CANONICAL_URL", "")
templates_path: list[str] = []
exclude_patterns: list[str] = []
# Only the stylesheet: source/_static/ also holds the benchmark data, which the
# Performance page includes, and which the site need not serve as files.
html_static_path = ["source/_static/css"]
html_css_files = ["micropie.css"]

# The copy button copies what the reader would type: a ">>>" example without
# its prompts and its output, a console line without its "$ " prompt. A bare
# "..." keeps its empty line, which ends a block at the interactive prompt;
# a line ending in a backslash carries a shell command on to the next one.
copybutton_prompt_text = r">>> |\.\.\.(?: |$)|\$ "
copybutton_prompt_is_regexp = True
copybutton_only_copy_prompt_lines = True
copybutton_remove_prompts = True
copybutton_line_continuation_character = "\\"

# The reference pages show each object under its public name: micropie.WebSocket.
add_module_names = False
autodoc_member_order = "bysource"
autodoc_class_signature = "mixed"
autodoc_typehints = "signature"
typehints_document_rtype = True
typehints_document_rtype_none = False  # "Return type: None" says nothing
typehints_use_rtype = False
always_document_param_types = False

# No intersphinx: the build must work offline, so references into the
# standard library's documentation cannot resolve; everything of ours must.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(collections\.abc|typing|asyncio|contextvars|types|abc|enum|pathlib)\..*"),
    (r"py:.*", r"(Any|Callable|Awaitable|MutableMapping|Mapping|Iterable|TracebackType)"),
]

# The examples import micropie themselves, so that they can be copied as they are.
doctest_test_doctest_blocks = "default"

# The link check (``sphinx-build -b linkcheck``) runs offline. The site links
# only to its own pages: ``-n`` already fails the build on a reference that
# does not resolve, and linkcheck checks the links to local files. The only
# URLs in the text are the addresses of a server that the reader starts
# ("open http://127.0.0.1:8000/"), which are not there to be checked. Any other
# http(s) link is reported as a warning (an error under ``-W``) and never
# fetched: link to a page of this site instead, or, for a link that must
# stay, add a pattern here and note it in the pull request.
linkcheck_ignore = [r"https?://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/.*)?$"]
linkcheck_timeout = 5
linkcheck_retries = 1

logger = logging.getLogger(__name__)


def resolve_websocket_methods(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.reference | None:
    """Point :meth:`receive_text` inside ConnectionClosed's text at WebSocket.

    The reference page's wording names the methods without their class; inside
    ``ConnectionClosed`` Sphinx would look for ``ConnectionClosed.receive_text``.
    """
    if node.get("refdomain") != "py" or node.get("reftype") != "meth":
        return None
    target = node.get("reftarget", "")
    if "." in target or not hasattr(micropie.WebSocket, target):
        return None
    domain: Any = env.get_domain("py")
    return domain.resolve_xref(  # type: ignore[no-any-return]
        env, node["refdoc"], app.builder, "meth", f"micropie.WebSocket.{target}", node, contnode
    )


def hide_exception_signature(
    app: Sphinx,
    what: str,
    name: str,
    obj: object,
    options: object,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str, str | None] | None:
    """Show ``ConnectionClosed`` as the reference page does: you catch it, never build it."""
    if name == "micropie.ConnectionClosed":
        return "", return_annotation
    return None


def keep_link_check_offline(app: Sphinx, uri: str) -> str | None:
    """Report an external link that ``linkcheck_ignore`` does not list, and skip it.

    The rewritten URI has a scheme that linkcheck does not check, so the
    network is never touched; the warning fails a ``-W`` build instead.
    """
    if not uri.startswith(("http:", "https:")):
        return None  # a local file, checked on disk, or a mailto:
    if any(re.match(pattern, uri) for pattern in app.config.linkcheck_ignore):
        return None  # listed: linkcheck reports it as ignored
    logger.warning(
        "external link %s: the link check runs offline, so the site links only to "
        "itself; link to a page of the site, or list the URL in linkcheck_ignore "
        "(docs/conf.py)",
        uri,
        location=app.env.docname or None,
        type="micropie",
        subtype="external_link",
    )
    return f"offline://{uri}"


class PageFilesDocTestBuilder(DocTestBuilder):
    """Sphinx's doctest builder, run beside the files each page shows.

    A page's examples import the files it shows (``from app import app``), as
    a reader's do; this runs them in a directory holding those files. A page
    that changes its files as it goes (the tutorial's steps) needs a new
    Python session per step, which one builder process cannot give:
    ``tests/docs/test_docs_reader.py`` follows such pages, and this builder says
    that it leaves them.
    """

    def test_doc(self, docname: str, doctree: nodes.Node) -> bool:
        files = list(shown_files(doctree))
        names = [name for name, _ in files]
        if len(set(names)) < len(names) or any(doctree.findall(starts_new_session)):
            logger.info("%s: changes its files step by step; the reader test runs it", docname)
            return True
        # A fresh directory for every page, with or without files: what the
        # examples write lands there, not in the repository.
        with tempfile.TemporaryDirectory(prefix="micropie-page-") as directory:
            for name, node in files:
                path = Path(directory, name)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(file_text(node), encoding="utf-8")
            previous = os.getcwd()
            os.chdir(directory)
            sys.path.insert(0, directory)
            try:
                return super().test_doc(docname, doctree)
            finally:
                os.chdir(previous)
                sys.path.remove(directory)
                # The next page may show another app.py: forget this page's modules.
                for name, module in list(sys.modules.items()):
                    if str(getattr(module, "__file__", None) or "").startswith(directory):
                        del sys.modules[name]


def setup(app: Sphinx) -> None:
    app.add_builder(PageFilesDocTestBuilder, override=True)
    app.connect("missing-reference", resolve_websocket_methods)
    app.connect("linkcheck-process-uri", keep_link_check_offline)
    app.connect("autodoc-process-signature", hide_exception_signature, priority=400)
