"""One suite, two session backends: InMemorySessionBackend and RedisSessionBackend.

Every test of the shared part runs against both, the Redis one on a real
``redis-server`` (started here on 127.0.0.1, an ephemeral port). Expiry is
checked in real time, with a max_age of one second.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis

from micropie import App, RedisUnavailable
from micropie.redis_sessions import RedisSessionBackend
from micropie.sessions import InMemorySessionBackend, SessionBackend
from micropie.testing import TestClient
from tests.helpers.apps.session_apps import GuestApp, SessionWebApp, visit_without_cookie
from tests.helpers.redis import RedisServer, run_sentinel_group
from tests.helpers.servers import free_port

Scenario = Callable[[SessionBackend], Awaitable[Any]]


class Backends:
    """Makes backends of one kind; Redis ones get a prefix of their own per test."""

    def __init__(self, kind: str, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        self.prefix = f"test:{uuid.uuid4().hex}:"
        self.url = request.getfixturevalue("redis_server").url if kind == "redis" else ""

    def make(self, max_age: float = 60.0, **options: Any) -> SessionBackend:
        if self.kind == "memory":
            return InMemorySessionBackend(max_age=max_age, cleanup_interval=0.1, **options)
        return RedisSessionBackend(self.url, max_age=max_age, prefix=self.prefix, **options)

    def run(self, scenario: Scenario, max_age: float = 60.0, **options: Any) -> Any:
        """Run *scenario* with a new backend on a new event loop, then close the backend."""

        async def main() -> Any:
            backend = self.make(max_age, **options)
            try:
                return await scenario(backend)
            finally:
                if isinstance(backend, RedisSessionBackend):
                    await backend.aclose()

        return asyncio.run(main())

    def app(self, app: App, max_age: float = 60.0, **options: Any) -> App:
        """*app* with a backend of this kind, checked at startup and closed at shutdown."""
        backend = self.make(max_age, **options)
        app.session_backend = backend
        if isinstance(backend, RedisSessionBackend):
            app.startup_handlers.append(backend.check)
            app.shutdown_handlers.append(backend.aclose)
        return app


@pytest.fixture(params=["memory", "redis"])
def backends(request: pytest.FixtureRequest) -> Backends:
    return Backends(request.param, request)


# The backend on its own.


def test_load_of_unknown_id_returns_none(backends: Backends) -> None:
    async def scenario(backend: SessionBackend) -> Any:
        return await backend.load("nobody")

    assert backends.run(scenario) is None


def test_save_then_load_returns_the_data(backends: Backends) -> None:
    async def scenario(backend: SessionBackend) -> Any:
        await backend.save("sid", {"user": "ada", "visits": 3, "cart": ["apple"], "n": None})
        return await backend.load("sid")

    assert backends.run(scenario) == {"user": "ada", "visits": 3, "cart": ["apple"], "n": None}


def test_sessions_are_kept_apart_by_id(backends: Backends) -> None:
    async def scenario(backend: SessionBackend) -> Any:
        await backend.save("one", {"n": 1})
        await backend.save("two", {"n": 2})
        return await backend.load("one"), await backend.load("two")

    assert backends.run(scenario) == ({"n": 1}, {"n": 2})


def test_save_replaces_previous_data(backends: Backends) -> None:
    async def scenario(backend: SessionBackend) -> Any:
        await backend.save("sid", {"a": 1, "b": 2})
        await backend.save("sid", {"a": 5})
        return await backend.load("sid")

    assert backends.run(scenario) == {"a": 5}


def test_load_returns_a_copy(backends: Backends) -> None:
    async def scenario(backend: SessionBackend) -> Any:
        await backend.save("sid", {"cart": ["apple"]})
        first = await backend.load("sid")
        assert first is not None
        first["cart"].append("pear")
        first["new"] = 1
        return await backend.load("sid")

    assert backends.run(scenario) == {"cart": ["apple"]}


def test_saving_empty_data_deletes_the_session(backends: Backends) -> None:
    async def scenario(backend: SessionBackend) -> Any:
        await backend.save("sid", {"user": "ada"})
        await backend.save("sid", {})
        await backend.save("never-saved", {})  # deleting what is not there is fine
        return await backend.load("sid"), await backend.load("never-saved")

    assert backends.run(scenario) == (None, None)


def test_a_session_expires_max_age_after_its_last_save(backends: Backends) -> None:
    async def scenario(backend: SessionBackend) -> Any:
        await backend.save("sid", {"user": "ada"})
        fresh = await backend.load("sid")
        await asyncio.sleep(1.4)
        return fresh, await backend.load("sid")

    assert backends.run(scenario, max_age=1.0) == ({"user": "ada"}, None)


def test_saving_again_renews_the_expiry(backends: Backends) -> None:
    async def scenario(backend: SessionBackend) -> Any:
        await backend.save("sid", {"v": 1})
        await asyncio.sleep(0.7)
        await backend.save("sid", {"v": 2})
        await asyncio.sleep(0.7)  # 1.4 s after the first save, 0.7 s after the second
        kept = await backend.load("sid")
        await asyncio.sleep(0.7)
        return kept, await backend.load("sid")

    assert backends.run(scenario, max_age=1.0) == ({"v": 2}, None)


def test_a_new_session_expires_soon_unless_its_client_comes_back(backends: Backends) -> None:
    async def scenario(backend: SessionBackend) -> Any:
        await backend.create("forgotten", {"n": 1})
        await backend.create("returning", {"n": 2})
        await backend.replace("forgotten", {"n": 3})  # saved again: still new
        back = await backend.load("returning")
        await asyncio.sleep(1.4)
        return back, await backend.load("forgotten"), await backend.load("returning")

    assert backends.run(scenario, max_age=60, new_session_max_age=1.0) == ({"n": 2}, None, {"n": 2})


def test_replace_never_brings_a_deleted_session_back(backends: Backends) -> None:
    async def scenario(backend: SessionBackend) -> Any:
        await backend.save("sid", {"user": "ada"})
        replaced = await backend.replace("sid", {"user": "ada", "seen": 1})
        await backend.save("sid", {})  # a logout
        return (
            replaced,
            await backend.replace("sid", {"user": "ada", "seen": 2}),
            await backend.replace("never", {"n": 1}),
            await backend.load("sid"),
            await backend.load("never"),
        )

    assert backends.run(scenario) == (True, False, False, None, None)


def test_cookieless_visits_leave_nothing_once_their_first_lifetime_is_over(
    backends: Backends,
) -> None:
    app = backends.app(GuestApp(), max_age=60, new_session_max_age=1.0)
    with TestClient(app) as client:
        regular = client.another_client()
        name = regular.get("/").text
        assert regular.get("/name").text == name  # back with its cookie
        # Pages and chat handshakes, never a cookie sent back.
        started = [visit_without_cookie(client, n)[0] for n in range(40)]
        time.sleep(1.4)
        assert regular.get("/name").text == name
        for session_id in started:
            client.cookies = {"session_id": session_id}
            assert client.get("/name").text == "nobody"


def test_max_age_must_be_positive(backends: Backends) -> None:
    with pytest.raises(ValueError, match="max_age must be positive"):
        backends.make(max_age=0)


# The backend behind an App.


def test_app_keeps_a_session_across_requests(backends: Backends) -> None:
    with TestClient(backends.app(SessionWebApp())) as client:
        assert client.get("/whoami").text == "anonymous"
        assert client.get("/login/ada").text == "welcome"
        assert "session_id" in client.cookies
        assert client.get("/whoami").text == "ada"
        assert [client.get("/visit").text for _ in range(3)] == ["1", "2", "3"]
        assert client.get("/logout").text == "bye"
        assert client.get("/whoami").text == "anonymous"


def test_app_sessions_are_kept_apart_by_visitor(backends: Backends) -> None:
    with TestClient(backends.app(SessionWebApp())) as ada:
        bob = ada.another_client()
        ada.get("/login/ada")
        bob.get("/login/bob")
        assert (ada.get("/whoami").text, bob.get("/whoami").text) == ("ada", "bob")


def test_app_never_adopts_an_unknown_session_id(backends: Backends) -> None:
    with TestClient(backends.app(SessionWebApp())) as client:
        client.cookies["session_id"] = "made-up-by-the-client"
        client.get("/login/ada")
        assert client.cookies["session_id"] != "made-up-by-the-client"
        assert client.get("/whoami").text == "ada"


def test_app_shares_the_session_with_websockets(backends: Backends) -> None:
    with TestClient(backends.app(SessionWebApp())) as client:
        client.get("/login/ada")
        with client.websocket_connect("/whoami") as ws:
            assert ws.receive_text() == "ada"
        with client.websocket_connect("/rename/grace"):
            pass
        assert client.get("/whoami").text == "grace"


def test_app_forgets_an_expired_session(backends: Backends) -> None:
    with TestClient(backends.app(SessionWebApp(), max_age=1.0)) as client:
        client.get("/login/ada")
        assert client.get("/whoami").text == "ada"
        time.sleep(1.4)
        assert client.get("/whoami").text == "anonymous"


def test_a_subclass_that_seals_its_sessions_in_save_and_load_sees_every_one(
    backends: Backends,
) -> None:
    """A subclass that changes save() and load() (to encrypt, say) gets create() and
    replace() built on them: nothing reaches the store without passing its save()."""
    backend = backends.make()

    class Sealing(type(backend)):  # type: ignore[misc]
        async def save(self, session_id: str, data: dict[str, Any], *args: Any) -> None:
            sealed = {"sealed": json.dumps(data)[::-1]} if data else {}
            await super().save(session_id, sealed, *args)

        async def load(self, session_id: str) -> dict[str, Any] | None:
            sealed = await super().load(session_id)
            return None if sealed is None else dict(json.loads(sealed["sealed"][::-1]))

    backend.__class__ = Sealing
    app = SessionWebApp()
    app.session_backend = backend
    with TestClient(app) as client:
        assert client.get("/login/grace").text == "welcome"  # create()
        assert [client.get("/visit").text for _ in range(2)] == ["1", "2"]  # replace()
        assert client.get("/whoami").text == "grace"
        session_id = client.cookies["session_id"]

    if isinstance(backend, RedisSessionBackend):
        raw: Any = redis.Redis.from_url(backends.url).get(backends.prefix + session_id)
    else:
        raw = asyncio.run(InMemorySessionBackend.load(backend, session_id))
    assert "grace" not in str(raw)  # sealed, never plain
    assert "sealed" in str(raw)


# Redis only: what is stored, and what happens without Redis.


def test_redis_stores_json_with_an_expiry(redis_server: RedisServer) -> None:
    import redis.asyncio

    async def scenario() -> tuple[Any, int]:
        client = redis.asyncio.from_url(redis_server.url)
        try:
            backend = RedisSessionBackend(client, max_age=30, prefix="inspect:")
            await backend.save("sid", {"user": "ada"})
            return await client.get("inspect:sid"), await client.pttl("inspect:sid")
        finally:
            await client.aclose()

    raw, ttl = asyncio.run(scenario())
    assert json.loads(raw) == {"user": "ada"}
    assert 25_000 < ttl <= 30_000


def test_redis_keeps_cookieless_sessions_ten_minutes_and_returning_ones_max_age(
    redis_server: RedisServer,
) -> None:
    """3,000 cookie-less chat handshakes once stored 3,000 sessions for 14 days."""
    import redis

    prefix = f"first:{uuid.uuid4().hex}:"
    backend = RedisSessionBackend(redis_server.url, prefix=prefix)
    app = GuestApp(session_backend=backend)
    app.shutdown_handlers.append(backend.aclose)
    with TestClient(app) as client:
        returning = []
        for n in range(300):
            session_id, _ = visit_without_cookie(client, n)
            if n in (0, 1):  # one started by a handshake, one by a page: both come back
                returning.append(session_id)
                with client.websocket_connect("/chat") as ws:
                    ws.receive_text()
    with redis.Redis(port=redis_server.port) as inspector:
        ttls = {
            key.decode().removeprefix(prefix): inspector.pttl(key)
            for key in inspector.scan_iter(match=f"{prefix}*")
        }
    assert len(ttls) == 300
    day = 24 * 3600 * 1000
    assert all(13 * day < ttls.pop(session_id) <= 14 * day for session_id in returning)
    assert all(0 < ttl <= 600_000 for ttl in ttls.values()), sorted(ttls.values())[-3:]


def test_redis_ignores_a_value_it_did_not_write(redis_server: RedisServer) -> None:
    import redis.asyncio

    async def scenario() -> Any:
        client = redis.asyncio.from_url(redis_server.url)
        try:
            await client.set("odd:sid", b"not json")
            await client.set("odd:list", b"[1, 2]")
            await client.set("odd:deep", b"[" * 100_000 + b"]" * 100_000)  # RecursionError
            await client.rpush("odd:wrongtype", b"x")  # WRONGTYPE for GET
            backend = RedisSessionBackend(client, prefix="odd:")
            names = ("sid", "list", "deep", "wrongtype")
            return [await backend.load(name) for name in names]
        finally:
            await client.aclose()

    # Each taken as an unknown session, never a 500.
    assert asyncio.run(scenario()) == [None, None, None, None]


def check_fails(url: str) -> RedisUnavailable:
    """What ``check()`` raises for a backend on *url*, where nothing listens."""

    async def scenario() -> None:
        backend = RedisSessionBackend(url)
        try:
            await backend.check()
        finally:
            await backend.aclose()

    with pytest.raises(RedisUnavailable) as caught:
        asyncio.run(scenario())
    return caught.value


def test_check_names_the_url_when_redis_is_unreachable() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    assert f"cannot reach Redis at {url}" in str(check_fails(url))


@pytest.mark.parametrize("credentials", ["user:s3cret@", ":s3cret@"])
def test_check_names_the_server_but_never_its_credentials(credentials: str) -> None:
    port = free_port()
    error = str(check_fails(f"redis://{credentials}127.0.0.1:{port}/0"))
    assert f"cannot reach Redis at redis://127.0.0.1:{port}/0:" in error
    assert "s3cret" not in error and "user" not in error


def test_a_password_with_unencoded_slashes_is_refused_without_printing_it() -> None:
    pytest.importorskip("redis")
    port = free_port()
    with pytest.raises(ValueError) as refused:
        RedisSessionBackend(f"redis://:s3/c?r#et@127.0.0.1:{port}/0")
    assert f"redis://127.0.0.1:{port}/0: not a Redis URL that can be read" in str(refused.value)
    assert "s3" not in str(refused.value) and refused.value.__suppress_context__


def test_a_password_in_the_query_string_is_never_printed() -> None:
    port = free_port()
    error = str(check_fails(f"redis://127.0.0.1:{port}/0?password=s3cret&socket_timeout=1"))
    assert f"redis://127.0.0.1:{port}/0:" in error
    assert "s3cret" not in error


def test_the_app_fails_at_startup_when_redis_is_unreachable() -> None:
    port = free_port()
    backend = RedisSessionBackend(f"redis://127.0.0.1:{port}/0")
    app = SessionWebApp(backend)
    app.startup_handlers.append(backend.check)
    app.shutdown_handlers.append(backend.aclose)
    client = TestClient(app)
    with pytest.raises(RuntimeError, match=f"application startup failed.*127.0.0.1:{port}"):
        client.__enter__()
    client.close()


def test_a_missing_redis_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ImportError, match="pip install redis"):
        RedisSessionBackend("redis://127.0.0.1:6379/0")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://127.0.0.1:26379", "give the Sentinel service name"),
        ("redis+sentinel://127.0.0.1:x/mymaster", "'127.0.0.1:x' is not host:port"),
        ("redis+sentinel://127.0.0.1:26379/mymaster/zero", "give the Sentinel service name"),
    ],
)
def test_a_sentinel_url_with_a_mistake_fails_at_once_saying_what(url: str, problem: str) -> None:
    pytest.importorskip("redis")
    from micropie.broadcast import Broadcast
    from micropie.redis_sessions import RedisSessionBackend

    for make in (RedisSessionBackend, Broadcast.from_url):
        with pytest.raises(ValueError, match=re.escape(problem)):
            make(url)


def test_a_sentinel_url_names_its_sentinels_without_the_password() -> None:
    pytest.importorskip("redis")
    from micropie.redis_sessions import RedisSessionBackend

    backend = RedisSessionBackend("redis+sentinel://:s3cret@127.0.0.1:26379,10.0.0.2:26380/svc/2")
    assert backend.where == "redis+sentinel://127.0.0.1:26379,10.0.0.2:26380/svc/2"
    kwargs = backend.client.connection_pool.connection_kwargs
    assert (kwargs["db"], kwargs["password"]) == (2, "s3cret")
    assert backend.client.connection_pool.service_name == "svc"


def test_backends_on_a_sentinel_url_close_what_they_opened() -> None:
    """Both backends ask the sentinel where the primary is; closing them
    closes those connections too, not only the primary's."""
    import redis

    from micropie.broadcast import Broadcast

    with run_sentinel_group() as group:
        sentinel = redis.Redis(port=group.sentinel_port, socket_timeout=5)

        def clients_of_sentinel() -> int:
            return int(sentinel.info("clients")["connected_clients"])

        async def scenario() -> tuple[int, int]:
            sessions = RedisSessionBackend(group.url)
            broadcast = Broadcast.from_url(group.url)
            await sessions.save("s", {"name": "ada"})
            assert await sessions.load("s") == {"name": "ada"}
            await broadcast.connect()
            await broadcast.publish("room", "hello")
            during = clients_of_sentinel()
            await sessions.aclose()
            await broadcast.disconnect()
            # The sentinel counts a closed connection out once it has read the close.
            deadline = time.monotonic() + 5
            while clients_of_sentinel() > before and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            return during, clients_of_sentinel()

        with sentinel:
            before = clients_of_sentinel()
            during, after = asyncio.run(scenario())
        assert during > before
        assert after == before


def test_check_fails_when_the_redis_user_may_not_run_scripts(redis_server: RedisServer) -> None:
    # Saving a session runs a script: a user without them would get a 500 at every
    # returning visit, so the startup check says so at once.
    admin = redis.Redis.from_url(redis_server.url)
    admin.execute_command(
        "ACL", "SETUSER", "noscript", "on", ">s3cret#pw", "~*", "+@all", "-@scripting"
    )
    url = redis_server.url.replace("redis://", "redis://noscript:s3cret%23pw@", 1)

    async def check() -> None:
        backend = RedisSessionBackend(url)
        try:
            await backend.check()
        finally:
            await backend.aclose()

    with pytest.raises(PermissionError, match=r"\+@scripting") as refused:
        asyncio.run(check())
    assert "s3cret" not in str(refused.value)
    assert redis_server.url.split("://", 1)[1].rstrip("/0") in str(refused.value)
