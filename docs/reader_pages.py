"""What a page asks its reader to save, and where it asks for a new Python session.

The documentation is tested as a reader follows it (``tests/helpers/reader.py``);
Sphinx's doctest builder (``docs/conf.py``) runs each page's examples beside
the same files. Both read pages through this module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from docutils import nodes

#: A paragraph that starts so tells the reader to restart Python.
NEW_SESSION = "Start a new Python session"

# A caption names a file when it is a relative path whose last part has a
# suffix ("app.py", "static/style.css") or is one of the usual suffix-less names.
_FILE_NAME = re.compile(r"^(?:[\w.-]+/)*(?:[\w-][\w.-]*\.\w+|Dockerfile|Procfile|Makefile)$")


def file_caption(node: nodes.Element) -> str | None:
    """The file name that captions the code block *node*, or None (no caption, or a title)."""
    parent = node.parent
    if not (isinstance(parent, nodes.container) and parent.get("literal_block")):
        return None
    for child in parent.children:
        if isinstance(child, nodes.caption):
            caption = child.astext().strip()
            if _FILE_NAME.match(caption) and ".." not in caption.split("/"):
                return caption
    return None


def shown_files(doctree: nodes.Node) -> Iterator[tuple[str, nodes.literal_block]]:
    """Each code block of the page that is a file to save, with its name, in page order."""
    for node in doctree.findall(nodes.literal_block):
        name = file_caption(node)
        if name:
            yield name, node


def file_text(node: nodes.literal_block) -> str:
    """What the reader saves from the block: its text, ending in a newline."""
    text = node.astext()
    return text if text.endswith("\n") else text + "\n"


def starts_new_session(node: nodes.Node) -> bool:
    return isinstance(node, nodes.paragraph) and node.astext().startswith(NEW_SESSION)
