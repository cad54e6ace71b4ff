"""The auth example (examples/auth/app.py) made with ``allowed_origins``, for
tests/e2e/test_howto_auth_e2e.py.

Served with ``uvicorn --factory tests.helpers.apps.auth_apps:allowing_www``.
"""

from __future__ import annotations

from examples.auth.app import Private

#: The other origin of the site, which :func:`allowing_www` lets in.
WWW = "https://www.example.com"


def allowing_www() -> Private:
    """The example's application, letting in the pages of one more origin."""
    return Private(allowed_origins=[WWW])
