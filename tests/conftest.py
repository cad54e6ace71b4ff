"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from micropie.testing import TestClient
from tests.docs_site import sphinx_build


@pytest.fixture
def make_client() -> Iterator[Callable[..., TestClient]]:
    """Make test clients (``make_client(app, **options)``), closed when the test ends."""
    clients: list[TestClient] = []

    def make(app: Any, **options: Any) -> TestClient:
        client = TestClient(app, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture(scope="session")
def site_doctrees(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site's doctrees, from one real build (``-W -n``) shared by the documentation tests."""
    out = tmp_path_factory.mktemp("site")
    doctrees = out / "doctrees"
    sphinx_build("dummy", out / "dummy", "-d", str(doctrees))
    return doctrees
