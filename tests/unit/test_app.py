"""The App, driven in-process through micropie.testing.TestClient."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from micropie import App, ConnectionClosed, WebSocket, WebSocketRequest
from micropie.sessions import InMemorySessionBackend, SessionBackend, new_session_id
from micropie.testing import TestClient, WebSocketRejected
from tests.helpers.apps.e2e_apps import SECRET_ERROR_TEXT, E2EApp
from tests.helpers.support import assert_logged_once, micropie_errors, the_logged_error

SECRET = "s3cr3t-detail-that-must-not-leak"


def assert_rejected(client: TestClient, path: str) -> None:
    with pytest.raises(WebSocketRejected) as info, client.websocket_connect(path):
        pass
    assert info.value.status_code == 403


# WebSocket routing


class RoutingApp(App):
    async def ws_chat(self, ws: WebSocket) -> None:
        await ws.accept()
        message = await ws.receive_text()
        await ws.send_text(f"chat got {message}")

    async def ws_index(self, ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text("index")

    async def ws_room(self, ws: WebSocket, room: str, color: str = "red") -> None:
        await ws.accept()
        await ws.send_text(json.dumps([room, color]))

    async def ws_search(self, ws: WebSocket, *, term: str, page: str = "1") -> None:
        await ws.accept()
        await ws.send_text(json.dumps([term, page]))

    async def ws_files(self, ws: WebSocket, root: str, *rest: str) -> None:
        await ws.accept()
        await ws.send_text(json.dumps([root, list(rest)]))

    async def ws_needs(self, ws: WebSocket, token: str) -> None:
        await ws.accept()
        await ws.send_text(token)

    async def ws__private(self, ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text("private")

    async def ws_request_kind(self, ws: WebSocket) -> None:
        await ws.accept()
        request = self.request
        await ws.send_text(json.dumps([type(request).__name__, request.path]))


def test_ws_chat_handles_path_chat(make_client: Callable[[App], TestClient]) -> None:
    client = make_client(RoutingApp())
    with client.websocket_connect("/chat") as ws:
        ws.send_text("hello")
        assert ws.receive_text() == "chat got hello"


@pytest.mark.parametrize(
    ("path", "answer"),
    [
        pytest.param("/", "index", id="the root path is ws_index"),
        pytest.param("/room/lobby/blue", ["lobby", "blue"], id="segments bind positionally"),
        pytest.param("/room/lobby", ["lobby", "red"], id="a default where a segment is missing"),
        pytest.param("/room/lobby?color=green", ["lobby", "green"], id="a query binds by name"),
        pytest.param("/room?room=kitchen&color=white", ["kitchen", "white"], id="query only"),
        pytest.param("/search?term=pie&page=3", ["pie", "3"], id="keyword-only from the query"),
        pytest.param("/search?term=cake", ["cake", "1"], id="keyword-only default"),
        pytest.param("/files/home/a/b/c.txt", ["home", ["a", "b", "c.txt"]], id="*args: the rest"),
        pytest.param("/files/home", ["home", []], id="*args: nothing left"),
        pytest.param(
            "/request_kind",
            [WebSocketRequest.__name__, "/request_kind"],
            id="self.request is a WebSocketRequest",
        ),
    ],
)
def test_ws_routes_bind_their_parameters(
    make_client: Callable[[App], TestClient], path: str, answer: Any
) -> None:
    with make_client(RoutingApp()).websocket_connect(path) as ws:
        text = ws.receive_text()
    assert (text if isinstance(answer, str) else json.loads(text)) == answer


# Handshake rejections


def test_ws_unknown_route_is_rejected(make_client: Callable[[App], TestClient]) -> None:
    assert_rejected(make_client(RoutingApp()), "/nowhere")


def test_ws_private_name_is_rejected(make_client: Callable[[App], TestClient]) -> None:
    # RoutingApp defines ws__private: a leading underscore must never be routable.
    assert_rejected(make_client(RoutingApp()), "/_private")


def test_ws_missing_required_parameter_is_rejected(
    make_client: Callable[[App], TestClient],
) -> None:
    client = make_client(RoutingApp())
    assert_rejected(client, "/needs")
    with client.websocket_connect("/needs/abc") as ws:  # the same route, bound: accepted
        assert ws.receive_text() == "abc"


def test_ws_path_segments_beyond_the_parameters_are_left_out_as_in_0x(
    make_client: Callable[[App], TestClient],
) -> None:
    client = make_client(RoutingApp())
    with client.websocket_connect("/room/lobby/blue/extra") as ws:
        assert json.loads(ws.receive_text()) == ["lobby", "blue"]
    with client.websocket_connect("/chat/extra") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "chat got hi"


class HandshakeApp(E2EApp):
    """The end-to-end tests' handlers (``ws_returns``, ``ws_fail``...), and more."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Any] = []

    async def ws_silent(self, ws: WebSocket) -> None:
        self.events.append("silent ran")

    async def ws_refuse(self, ws: WebSocket) -> None:
        self.events.append("refuse ran")
        await ws.close()

    async def ws_crash_early(self, ws: WebSocket) -> None:
        self.events.append("crash_early ran")
        raise RuntimeError(SECRET)

    async def ws_wait(self, ws: WebSocket) -> None:
        await ws.accept()
        try:
            await ws.receive_text()
        except ConnectionClosed as exc:
            self.events.append(("closed", exc.code))
            raise


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("silent", id="returning without accept"),
        pytest.param("refuse", id="closing before accept"),
    ],
)
def test_ws_handler_that_does_not_accept_is_rejected(
    make_client: Callable[[App], TestClient], name: str
) -> None:
    app = HandshakeApp()
    assert_rejected(make_client(app), f"/{name}")
    assert app.events == [f"{name} ran"]


@pytest.mark.parametrize(
    ("path", "said", "code", "failed"),
    [
        pytest.param("/returns", "bye", 1000, False, id="returning after accept: 1000"),
        pytest.param("/fail", "about to fail", 1011, True, id="raising: 1011, generic, logged"),
    ],
)
def test_ws_handler_that_ends_closes_the_connection(
    make_client: Callable[[App], TestClient],
    caplog: pytest.LogCaptureFixture,
    path: str,
    said: str,
    code: int,
    failed: bool,
) -> None:
    client = make_client(HandshakeApp())
    with client.websocket_connect(path) as ws:
        assert ws.receive_text() == said
        with pytest.raises(ConnectionClosed) as info:
            ws.receive_text()
    assert info.value.code == ws.close_code == code
    # The reason never carries the exception's text; the log has it, with the traceback.
    assert SECRET_ERROR_TEXT not in info.value.reason
    assert SECRET_ERROR_TEXT not in (ws.close_reason or "")
    if failed:
        assert isinstance(the_logged_error(caplog), RuntimeError)
        assert "Traceback" in caplog.text
        assert SECRET_ERROR_TEXT in caplog.text
    else:
        assert micropie_errors(caplog) == []


def test_ws_handler_exception_before_accept_is_rejected_and_logged(
    make_client: Callable[[App], TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    app = HandshakeApp()
    assert_rejected(make_client(app), "/crash_early")
    assert app.events == ["crash_early ran"]
    assert_logged_once(caplog, SECRET)


def test_ws_connection_closed_escaping_handler_is_quiet(
    make_client: Callable[[App], TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    app = HandshakeApp()
    client = make_client(app)
    with client.websocket_connect("/wait") as ws:
        ws.close(1001)
    assert app.events == [("closed", 1001)]
    assert micropie_errors(caplog) == []


class SubprotocolApp(App):
    async def ws_pick(self, ws: WebSocket, choice: str) -> None:
        await ws.accept(subprotocol=choice)
        await ws.send_text(json.dumps(self.request.subprotocols))  # type: ignore[attr-defined]


def test_ws_accepts_an_offered_subprotocol(make_client: Callable[[App], TestClient]) -> None:
    client = make_client(SubprotocolApp())
    with client.websocket_connect("/pick/v2", subprotocols=["v1", "v2"]) as ws:
        assert ws.subprotocol == "v2"
        assert json.loads(ws.receive_text()) == ["v1", "v2"]


def test_ws_subprotocol_the_client_did_not_offer_is_refused(
    make_client: Callable[[App], TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    # Clients drop a handshake whose subprotocol they never offered: the
    # application's mistake is a ValueError naming both sides, and a 403.
    assert_rejected(make_client(SubprotocolApp()), "/pick/v3")
    error = the_logged_error(caplog)
    assert isinstance(error, ValueError)
    assert "'v3'" in str(error) and "not offered" in str(error)


def test_sync_ws_method_is_a_type_error_at_class_definition() -> None:
    with pytest.raises(TypeError, match="ws_sync"):

        class BadApp(App):
            def ws_sync(self, ws: WebSocket) -> None:
                pass


# Sessions over WebSocket


class SessionApp(App):
    def __init__(self, session_backend: SessionBackend | None = None) -> None:
        super().__init__(session_backend)
        self.seen: list[dict[str, Any]] = []

    async def ws_whoami(self, ws: WebSocket) -> None:
        self.seen.append(dict(self.request.session))  # before accept
        await ws.accept()
        await ws.send_text(str(self.request.session.get("user", "anonymous")))

    async def ws_login(self, ws: WebSocket, user: str) -> None:
        session_id = new_session_id()
        self.request.session["user"] = user
        await ws.accept(session_id=session_id)
        await ws.send_text(session_id)
        # Changes after the handshake count too: saved when the handler ends.
        self.request.session["greeting"] = await ws.receive_text()

    async def ws_count(self, ws: WebSocket) -> None:
        self.request.session["count"] = self.request.session.get("count", 0) + 1
        await ws.accept()
        await ws.send_text(str(self.request.session["count"]))

    async def ws_touch(self, ws: WebSocket) -> None:
        self.seen.append(dict(self.request.session))
        self.request.session["touched"] = True
        await ws.accept()
        await ws.send_text("ok")


def ws_log_in(
    client: TestClient, user: str, greeting: str, *, secure: bool = False
) -> tuple[str, list[bytes]]:
    """Log *user* in over ``/login`` and say *greeting*; the new session ID, and the
    ``Set-Cookie`` values of the handshake."""
    with client.websocket_connect(f"/login/{user}", secure=secure) as ws:
        session_id = ws.receive_text()
        ws.send_text(greeting)
    cookies = [value for name, value in ws.response_headers if name.lower() == b"set-cookie"]
    return session_id, cookies


def load(app: App, session_id: str) -> dict[str, Any] | None:
    return asyncio.run(app.session_backend.load(session_id))


def save(app: App, session_id: str, data: dict[str, Any]) -> None:
    asyncio.run(app.session_backend.save(session_id, data))


def test_ws_session_cookie_loads_saved_session_before_handler(
    make_client: Callable[[App], TestClient],
) -> None:
    app = SessionApp()
    save(app, "known-session", {"user": "ada"})
    client = make_client(app, session_id="known-session")
    with client.websocket_connect("/whoami") as ws:
        assert ws.receive_text() == "ada"
    assert app.seen == [{"user": "ada"}]


def test_ws_accept_with_session_id_sets_cookie_and_saves_session(
    make_client: Callable[[App], TestClient],
) -> None:
    app = SessionApp()
    session_id, cookies = ws_log_in(make_client(app), "grace", "hello")
    assert cookies == [f"session_id={session_id}; Path=/; HttpOnly; SameSite=Lax".encode()]
    assert load(app, session_id) == {"user": "grace", "greeting": "hello"}


@pytest.mark.parametrize("secure", [True, False], ids=["over wss: Secure", "over ws: not"])
def test_ws_session_cookie_is_secure_over_wss_only(
    make_client: Callable[[App], TestClient], secure: bool
) -> None:
    session_id, cookies = ws_log_in(make_client(SessionApp()), "grace", "hi", secure=secure)
    assert len(cookies) == 1
    attributes = cookies[0].decode().split("; ")
    assert attributes[0] == f"session_id={session_id}"
    assert ("Secure" in attributes[1:]) is (b"Secure" in cookies[0]) is secure
    assert {"Path=/", "HttpOnly", "SameSite=Lax"} <= set(attributes[1:])


def test_ws_session_is_found_by_a_second_connection(
    make_client: Callable[[App], TestClient],
) -> None:
    app = SessionApp()
    client = make_client(app)
    ws_log_in(client, "linus", "hey")
    with client.websocket_connect("/whoami") as ws:  # the client sends the cookie back
        assert ws.receive_text() == "linus"
    assert app.seen == [{"user": "linus", "greeting": "hey"}]


def test_ws_changes_to_a_loaded_session_are_saved(
    make_client: Callable[[App], TestClient],
) -> None:
    app = SessionApp()
    save(app, "counter-session", {"count": 41})
    client = make_client(app, session_id="counter-session")
    with client.websocket_connect("/count") as ws:
        assert ws.receive_text() == "42"
    assert load(app, "counter-session") == {"count": 42}


def test_ws_unknown_session_id_in_cookie_is_not_adopted(
    make_client: Callable[[App], TestClient],
) -> None:
    app = SessionApp()
    client = make_client(app, session_id="forged-session-id")
    with client.websocket_connect("/touch") as ws:
        assert ws.receive_text() == "ok"
    assert app.seen == [{}]
    assert load(app, "forged-session-id") is None
    assert isinstance(app.session_backend, InMemorySessionBackend)
    assert len(app.session_backend) == 0


class RecordingBackend(SessionBackend):
    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {"existing": {"user": "custom"}}
        self.calls: list[tuple[str, str]] = []

    async def load(self, session_id: str) -> dict[str, Any] | None:
        self.calls.append(("load", session_id))
        found = self.data.get(session_id)
        return dict(found) if found is not None else None

    async def save(self, session_id: str, data: dict[str, Any]) -> None:
        self.calls.append(("save", session_id))
        self.data[session_id] = dict(data)


def test_custom_session_backend_is_used(make_client: Callable[[App], TestClient]) -> None:
    backend = RecordingBackend()
    app = SessionApp(session_backend=backend)
    assert app.session_backend is backend
    client = make_client(app, session_id="existing")
    with client.websocket_connect("/count") as ws:
        assert ws.receive_text() == "1"
    with client.websocket_connect("/whoami") as ws:
        assert ws.receive_text() == "custom"
    assert ("load", "existing") in backend.calls
    assert ("save", "existing") in backend.calls
    assert backend.data["existing"] == {"user": "custom", "count": 1}


# HTTP routing


class WebApp(App):
    def index(self) -> str:
        return "<h1>home</h1>"

    def greet(self, name: str = "world") -> str:
        return f"Hello, {name}!"

    async def add(self, a: str, b: str) -> dict[str, int]:
        return {"sum": int(a) + int(b)}

    def items(self) -> list[Any]:
        return [1, "two", None]

    def raw(self) -> bytes:
        return b"\x00\x01binary"

    def created(self) -> tuple[int, str]:
        return 201, "made it"

    def teapot(self) -> tuple[int, dict[str, bool], dict[str, str]]:
        return 418, {"tea": True}, {"X-Kind": "teapot"}

    def need(self, token: str) -> str:
        return token

    def boom(self) -> str:
        raise RuntimeError(SECRET)

    def path(self) -> str:
        return self.request.path

    def _private(self) -> str:
        return "private"

    async def ws_chat(self, ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text("chat")


@pytest.mark.parametrize(
    ("path", "status", "text"),
    [
        pytest.param("/", 200, "<h1>home</h1>", id="the root calls index"),
        pytest.param("/greet/Alice", 200, "Hello, Alice!", id="a segment binds positionally"),
        pytest.param("/greet?name=Bob", 200, "Hello, Bob!", id="a query binds by name"),
        pytest.param("/greet", 200, "Hello, world!", id="a default where nothing binds"),
        pytest.param("/path", 200, "/path", id="the handler reads self.request"),
        pytest.param("/created", 201, "made it", id="a (status, body) tuple"),
        pytest.param("/need", 400, None, id="a missing required parameter is 400"),
        pytest.param("/need/xyz", 200, "xyz", id="the required parameter given"),
    ],
)
def test_http_routes_bind_and_answer(
    make_client: Callable[[App], TestClient], path: str, status: int, text: str | None
) -> None:
    response = make_client(WebApp()).get(path)
    assert response.status_code == status
    if text is not None:
        assert response.text == text


@pytest.mark.parametrize("path", ["/_private", "/ws_chat", "/nothing", "/request"])
def test_http_unroutable_paths_are_404(make_client: Callable[[App], TestClient], path: str) -> None:
    response = make_client(WebApp()).get(path)
    assert response.status_code == 404
    assert "private" not in response.text


@pytest.mark.parametrize(
    "name", ["request", "startup_handlers", "shutdown_handlers", "session_backend"]
)
def test_app_attributes_are_not_routes(make_client: Callable[[App], TestClient], name: str) -> None:
    client = make_client(WebApp())
    assert client.get(f"/{name}").status_code == 404
    assert_rejected(client, f"/{name}")


def test_app_attribute_names_stay_unroutable_when_a_subclass_defines_them(
    make_client: Callable[[App], TestClient],
) -> None:
    class OverridingApp(App):
        def session_backend(self) -> str:  # type: ignore[override]
            return "leaked"

        def shutdown_handlers(self) -> str:  # type: ignore[override]
            return "leaked"

    client = make_client(OverridingApp())
    assert client.get("/session_backend").status_code == 404
    assert client.get("/shutdown_handlers").status_code == 404


def test_ws_method_answers_as_websocket_but_not_http(
    make_client: Callable[[App], TestClient],
) -> None:
    client = make_client(WebApp())
    assert client.get("/chat").status_code == 404
    assert client.get("/ws_chat").status_code == 404
    with client.websocket_connect("/chat") as ws:
        assert ws.receive_text() == "chat"
    assert_rejected(client, "/ws_chat")


def test_http_route_is_not_a_websocket_route(make_client: Callable[[App], TestClient]) -> None:
    assert_rejected(make_client(WebApp()), "/greet")


NOT_HTML = "anything but text/html"


@pytest.mark.parametrize(
    ("path", "status", "content_type", "content", "headers"),
    [
        pytest.param("/greet/Zoë", 200, "text/html", "Hello, Zoë!".encode(), {}, id="str: HTML"),
        pytest.param("/raw", 200, NOT_HTML, b"\x00\x01binary", {}, id="bytes: as they are"),
        pytest.param("/add/1/2", 200, "application/json", {"sum": 3}, {}, id="dict: JSON"),
        pytest.param("/add/2?b=40", 200, "application/json", {"sum": 42}, {}, id="async: JSON"),
        pytest.param("/items", 200, "application/json", [1, "two", None], {}, id="list: JSON"),
        pytest.param(
            "/teapot",
            418,
            "application/json",
            {"tea": True},
            {"x-kind": "teapot"},
            id="(status, body, headers) tuple",
        ),
    ],
)
def test_http_return_values_become_responses(
    make_client: Callable[[App], TestClient],
    path: str,
    status: int,
    content_type: str,
    content: Any,
    headers: dict[str, str],
) -> None:
    response = make_client(WebApp()).get(path)
    assert response.status_code == status
    received_type = response.headers.get("content-type", "")
    if content_type == NOT_HTML:
        assert not received_type.startswith("text/html")
    else:
        assert received_type.startswith(content_type)
    if content_type == "application/json":
        assert json.loads(response.content) == content
    else:
        assert response.content == content
    for name, value in headers.items():
        assert response.headers[name] == value


def test_http_handler_exception_is_500_without_details_and_logged(
    make_client: Callable[[App], TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    response = make_client(WebApp()).get("/boom")
    assert response.status_code == 500
    assert SECRET not in response.text
    assert "RuntimeError" not in response.text
    assert_logged_once(caplog, SECRET)


def test_http_session_gets_a_new_id_not_the_forged_one(
    make_client: Callable[[App], TestClient],
) -> None:
    class CartApp(App):
        def add(self, item: str) -> str:
            self.request.session.setdefault("cart", []).append(item)
            return "ok"

    app = CartApp()
    client = make_client(app, session_id="forged-id")
    response = client.get("/add/apple")
    assert response.status_code == 200
    new_id = client.cookies["session_id"]
    assert new_id != "forged-id"
    assert load(app, "forged-id") is None
    assert load(app, new_id) == {"cart": ["apple"]}
    client.get("/add/pear")
    assert load(app, new_id) == {"cart": ["apple", "pear"]}


# Lifespan


def test_lifespan_runs_sync_and_async_startup_then_shutdown() -> None:
    events: list[str] = []

    async def async_startup() -> None:
        await asyncio.sleep(0)
        events.append("async startup")

    async def async_shutdown() -> None:
        events.append("async shutdown")

    app = WebApp()
    app.startup_handlers.append(lambda: events.append("sync startup"))
    app.startup_handlers.append(async_startup)
    app.shutdown_handlers.append(async_shutdown)
    app.shutdown_handlers.append(lambda: events.append("sync shutdown"))

    with TestClient(app) as client:
        assert events == ["sync startup", "async startup"]
        assert client.get("/").status_code == 200
        assert events == ["sync startup", "async startup"]
    assert events == ["sync startup", "async startup", "async shutdown", "sync shutdown"]


def test_failing_startup_handler_makes_client_raise(caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("database unreachable")

    app = WebApp()
    app.startup_handlers.append(broken)
    app.startup_handlers.append(lambda: ran.append("after broken"))
    client = TestClient(app)
    try:
        with pytest.raises(RuntimeError, match="startup failed"), client:
            pass
    finally:
        client.close()
    assert ran == []
    assert micropie_errors(caplog)


# self.request


def test_self_request_outside_handler_raises_runtime_error() -> None:
    app = WebApp()
    with pytest.raises(RuntimeError):
        _ = app.request


def test_self_request_after_handler_still_raises(make_client: Callable[[App], TestClient]) -> None:
    app = WebApp()
    assert make_client(app).get("/path").text == "/path"
    with pytest.raises(RuntimeError):
        _ = app.request


class LongLivedSessionApp(App):
    async def ws_room(self, ws: WebSocket) -> None:
        session = self.request.session
        if "name" in session:
            await ws.accept()
        else:
            session["name"] = f"visitor-{len(self.session_backend)}"  # type: ignore[arg-type]
            await ws.accept(session_id=new_session_id())
        await ws.send_text(session["name"])
        await ws.receive_text()  # stays open until the client leaves


def test_ws_new_session_is_stored_on_accept_not_only_at_the_end(
    make_client: Callable[[App], TestClient],
) -> None:
    # A second tab opened while the first is still connected must find the
    # session whose cookie the first handshake handed out.
    client = make_client(LongLivedSessionApp())
    with client.websocket_connect("/room") as first:
        name = first.receive_text()
        assert "session_id" in client.cookies
        with client.websocket_connect("/room") as second:
            assert second.receive_text() == name


# A value the session holds cannot be replaced by the request (issue 15): a
# handler that takes who is asking as parameters, which the session fills.


class AdminApp(App):
    """Takes ``user`` and ``is_admin`` by parameter, as 0.x apps do, and records each call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[Any]] = []

    def admin(self, user: str = "anonymous", is_admin: Any = False, page: str = "1") -> list[Any]:
        self.calls.append([user, is_admin, page])
        return [user, is_admin, page]

    async def ws_admin(self, ws: WebSocket, user: str = "anonymous", is_admin: Any = False) -> None:
        self.calls.append([user, is_admin])
        await ws.accept()
        await ws.send_text(json.dumps([user, is_admin]))


ALICE = {"user": "alice", "is_admin": False}


def alice_client(make_client: Callable[[App], TestClient]) -> tuple[AdminApp, TestClient]:
    """An AdminApp and a client whose session says it is alice, no administrator."""
    app = AdminApp()
    save(app, "alice-session", dict(ALICE))
    return app, make_client(app, session_id="alice-session")


@pytest.mark.parametrize(
    ("method", "path", "options", "name", "where"),
    [
        pytest.param("GET", "/admin?is_admin=1&user=root", {}, "user", "query string", id="query"),
        pytest.param("GET", "/admin?is_admin=", {}, "is_admin", "query string", id="empty query"),
        pytest.param("GET", "/admin/root", {}, "user", "path", id="path segment"),
        pytest.param("POST", "/admin", {"json": {"is_admin": True}}, "is_admin", "body", id="true"),
        pytest.param(
            "POST", "/admin", {"json": {"user": {"$ne": None}}}, "user", "body", id="json operator"
        ),
        pytest.param("POST", "/admin", {"form": {"is_admin": "on"}}, "is_admin", "body", id="form"),
        pytest.param(
            "POST", "/admin?page=2", {"json": {"is_admin": True}}, "is_admin", "body", id="mixed"
        ),
    ],
)
def test_http_request_cannot_replace_what_the_session_holds(
    make_client: Callable[[App], TestClient],
    method: str,
    path: str,
    options: dict[str, Any],
    name: str,
    where: str,
) -> None:
    app, client = alice_client(make_client)
    response = client.request(method, path, **options)
    assert (response.status_code, response.text) == (
        400,
        f"Bad Request: parameter {name!r} comes from the session"
        f" and may not be given in the {where}",
    )
    assert app.calls == []  # the handler never ran
    assert json.loads(client.get("/admin").content) == ["alice", False, "1"]  # still alice


def test_the_request_fills_what_the_session_does_not_hold(
    make_client: Callable[[App], TestClient],
) -> None:
    _, client = alice_client(make_client)
    assert json.loads(client.get("/admin?page=2").content) == ["alice", False, "2"]
    # Without a session, the request fills every parameter, as in MicroPie 0.x:
    # only what a session holds is out of the request's reach.
    anonymous = make_client(AdminApp())
    assert json.loads(anonymous.get("/admin/bob?page=3").content) == ["bob", False, "3"]
    assert json.loads(anonymous.post("/admin", json={"is_admin": True}).content) == [
        "anonymous",
        True,
        "1",
    ]


@pytest.mark.parametrize(
    "path", ["/admin?is_admin=1&user=root", "/admin?is_admin=true", "/admin/root"]
)
def test_ws_request_cannot_replace_what_the_session_holds(
    make_client: Callable[[App], TestClient], path: str, caplog: pytest.LogCaptureFixture
) -> None:
    app, client = alice_client(make_client)
    with caplog.at_level("INFO", logger="micropie"):
        assert_rejected(client, path)
    assert app.calls == []
    assert "comes from the session and may not be given in the" in caplog.text
    with client.websocket_connect("/admin") as ws:
        assert json.loads(ws.receive_text()) == ["alice", False]
