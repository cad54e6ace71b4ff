"""Sphinx configuration for MicroPie's documentation (sources in docs/source)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the package and examples/, without installing

import micropie  # noqa: E402

project = "MicroPie"
author = "MicroPie developers"
copyright = "2026, MicroPie developers"
release = micropie.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx_autodoc_typehints",
]

html_theme = "furo"
html_title = f"MicroPie {release}"
templates_path: list[str] = []
exclude_patterns: list[str] = []

# The reference pages show each object under its public name: micropie.WebSocket.
add_module_names = False
autodoc_member_order = "bysource"
autodoc_class_signature = "mixed"
autodoc_typehints = "signature"
typehints_document_rtype = True
typehints_use_rtype = False
always_document_param_types = False

# No intersphinx: the build must work offline, so references into the
# standard library's documentation cannot resolve; everything of ours must.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(collections\.abc|typing|asyncio|contextvars|types|abc|enum)\..*"),
    (r"py:.*", r"(Any|Callable|Awaitable|MutableMapping|Mapping|Iterable|TracebackType)"),
]

# The examples import micropie themselves, so that they can be copied as they are.
doctest_test_doctest_blocks = "default"


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


def setup(app: Sphinx) -> None:
    app.connect("missing-reference", resolve_websocket_methods)
    app.connect("autodoc-process-signature", hide_exception_signature, priority=400)
