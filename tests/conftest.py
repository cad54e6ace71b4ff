"""Fixtures shared by the test modules of every folder (unit, e2e, docs)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from micropie.testing import TestClient
from tests.helpers.docs_site import sphinx_build
from tests.helpers.redis import RedisServer, run_redis
from tests.helpers.servers import write_log_config


@pytest.fixture
def make_client() -> Iterator[Callable[..., TestClient]]:
    """Make test clients (``make_client(app, session_id=None, **options)``), closed when
    the test ends; with *session_id*, the client starts with that session cookie."""
    clients: list[TestClient] = []

    def make(app: Any, session_id: str | None = None, **options: Any) -> TestClient:
        client = TestClient(app, **options)
        if session_id is not None:
            client.cookies["session_id"] = session_id
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


@pytest.fixture(scope="module")
def log_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A uvicorn ``--log-config`` file (see ``write_log_config``): MicroPie's log
    lines carry their level and the logger's name, to tell them from uvicorn's."""
    return write_log_config(tmp_path_factory.mktemp("logging"))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the whole run (127.0.0.1, an ephemeral port, no persistence).

    Tests that share it keep their keys and channels apart by name.
    """
    with run_redis() as server:
        yield server
