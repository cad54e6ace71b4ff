"""Fixtures shared by the in-process test modules."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from micropie.testing import TestClient


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
