"""Fixtures of the in-process tests."""

from __future__ import annotations

import types

import pytest

from micropie import sessions
from tests.helpers.broadcast import Kind
from tests.helpers.support import FakeClock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A clock that only micropie.sessions sees (asyncio keeps the real one); move it by hand."""
    fake = FakeClock()
    monkeypatch.setattr(sessions, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


@pytest.fixture(params=["memory", "redis"])
def kind(request: pytest.FixtureRequest) -> Kind:
    """Each broadcast backend in turn; Redis is a real redis-server."""
    if request.param == "redis":
        return Kind("redis", request.getfixturevalue("redis_server").url)
    return Kind("memory")
