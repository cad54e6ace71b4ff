"""Apps written for MicroPie 0.x, in its style, run here unchanged (issue 12).

Each app below is written as 0.x's documentation and examples write them
(written here, not copied); the point numbers are the issue's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import Any, ClassVar

import pytest

import micropie
from micropie import (
    SESSION_TIMEOUT,
    App,
    ConnectionClosed,
    HttpMiddleware,
    InMemorySessionBackend,
    Request,
    SessionBackend,
    WebSocket,
    WebSocketMiddleware,
    WebSocketRequest,
)
from micropie.testing import TestClient, WebSocketRejected

# 0. What 0.x's module exported, and this project promises to support.
SUPPORTED_NAMES = [
    "App",
    "Request",
    "WebSocketRequest",
    "WebSocket",
    "ConnectionClosed",
    "HttpMiddleware",
    "WebSocketMiddleware",
    "SessionBackend",
    "InMemorySessionBackend",
    "SESSION_TIMEOUT",
    "current_request",
]


@pytest.mark.parametrize("name", SUPPORTED_NAMES)
def test_every_supported_0x_name_imports_from_micropie(name: str) -> None:
    assert name in micropie.__all__
    assert getattr(micropie, name) is not None


def test_0x_s_own_test_module_imports_its_names() -> None:
    namespace: dict[str, Any] = {}
    exec(  # the import statement of 0.x's unit test module, names as it lists them
        "from micropie import (App, InMemorySessionBackend, Request, WebSocketRequest, "
        "SESSION_TIMEOUT, ConnectionClosed, HttpMiddleware)",
        namespace,
    )
    assert namespace["SESSION_TIMEOUT"] == 8 * 3600


# 1. The middleware protocol


class Site(App):
    def index(self) -> str:
        return "home"

    def data(self) -> dict[str, int]:
        return {"n": 1}

    def feed(self) -> Any:
        yield "one,"
        yield "two"


class TokenGate(HttpMiddleware):
    async def before_request(self, request: Request) -> dict[str, Any] | None:
        if request.query_params.get("token") != ["s3cret"]:
            return {"status_code": 401, "body": "Unauthorized", "headers": [("X-Why", "token")]}
        return None

    async def after_request(
        self, request: Request, status_code: int, response_body: Any, extra_headers: list[Any]
    ) -> None:
        return None


def test_before_request_0x_dict_is_the_response() -> None:
    client = TestClient(Site(middlewares=[TokenGate()]))
    refused = client.get("/")
    assert (refused.status_code, refused.text) == (401, "Unauthorized")
    assert refused.headers["x-why"] == "token"
    assert client.get("/?token=s3cret").text == "home"


class Partial(HttpMiddleware):
    async def before_request(self, request: Request) -> dict[str, Any]:
        return {"body": "only a body"}


def test_a_0x_dict_without_status_or_headers_is_200_with_what_it_gives() -> None:
    response = TestClient(Site(middlewares=[Partial()])).get("/")
    assert (response.status_code, response.text) == (200, "only a body")
    assert response.headers["content-type"].startswith("text/html")


class Returns0x(HttpMiddleware):
    def __init__(self, result: Any) -> None:
        self.result = result

    async def before_request(self, request: Request) -> Any:
        return self.result


@pytest.mark.parametrize(
    ("result", "status", "body"),
    [
        # An int status_code makes it 0.x's answer, other keys ignored as 0.x did.
        ({"status_code": 401, "body": "no", "error": "x"}, 401, b"no"),
        # Without one, and with other keys: JSON, as from a handler.
        ({"user": "ada", "status_code": "401"}, 200, b'{"user":"ada","status_code":"401"}'),
        # {} and False meant "go on" in 0.x.
        ({}, 200, b"home"),
        (False, 200, b"home"),
    ],
)
def test_which_dicts_are_0x_answers(result: Any, status: int, body: bytes) -> None:
    response = TestClient(Site(middlewares=[Returns0x(result)])).get("/")
    assert (response.status_code, response.content) == (status, body)


class Suffix(HttpMiddleware):
    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def after_request(
        self, request: Request, status_code: int, response_body: Any, extra_headers: list[Any]
    ) -> dict[str, Any] | None:
        self.seen.append(response_body)
        if response_body is None:
            extra_headers.append(("X-Streamed", "yes"))  # in place, as 0.x allowed
            return None
        extra_headers.append(("X-Seen", "1"))
        return {"status_code": 201, "body": f"{response_body} + middleware"}


def test_after_request_gets_text_as_str_and_a_0x_dict_replaces_what_it_names() -> None:
    suffix = Suffix()
    client = TestClient(Site(middlewares=[suffix]))
    response = client.get("/")
    assert (response.status_code, response.text) == (201, "home + middleware")
    assert response.headers["x-seen"] == "1"  # the in-place edit is kept: no "headers" key
    assert response.headers["content-type"].startswith("text/html")
    data = client.get("/data")
    assert data.text == '{"n":1} + middleware'
    assert data.headers["content-type"] == "application/json"
    assert suffix.seen[:2] == ["home", '{"n":1}']


def test_after_request_edits_in_place_reach_a_streamed_response() -> None:
    suffix = Suffix()
    response = TestClient(Site(middlewares=[suffix])).get("/feed")
    assert response.text == "one,two"
    assert response.headers["x-streamed"] == "yes"
    assert suffix.seen == [None]


class KeepStream(HttpMiddleware):
    async def after_request(
        self, request: Request, status_code: int, response_body: Any, extra_headers: list[Any]
    ) -> dict[str, Any]:
        return {"status_code": 202}  # no body: the stream goes on


def test_a_0x_dict_without_body_keeps_a_stream() -> None:
    response = TestClient(Site(middlewares=[KeepStream()])).get("/feed")
    assert (response.status_code, response.text) == (202, "one,two")


class Chat(App):
    async def ws_chat(self, ws: WebSocket, user: str = "?") -> None:
        await ws.accept()
        await ws.send_text(f"welcome, {user}")


class DictGate(WebSocketMiddleware):
    async def before_websocket(self, request: WebSocketRequest) -> dict[str, Any] | None:
        if "user" not in request.query_params:
            return {"code": 4001, "reason": "say who you are"}
        if request.query_params["user"] == ["nobody"]:
            return {"reason": "not you"}  # 0.x's default code
        return {}  # as in 0.x: an empty dict lets the connection through

    async def after_websocket(self, request: WebSocketRequest) -> None:
        return None


@pytest.mark.parametrize(
    ("path", "code", "reason"),
    [("/chat", 4001, "say who you are"), ("/chat?user=nobody", 1008, "not you")],
)
def test_before_websocket_refuses_with_a_0x_dict(path: str, code: int, reason: str) -> None:
    client = TestClient(Chat(middlewares=[DictGate()]))
    with client.websocket_connect(path) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.receive_text()
    assert (closed.value.code, closed.value.reason) == (code, reason)
    with client.websocket_connect("/chat?user=ada") as ws:
        assert ws.receive_text() == "welcome, ada"


# 2. App.ws_middlewares


class Order(WebSocketMiddleware):
    def __init__(self, name: str, trace: list[str]) -> None:
        self.name, self.trace = name, trace

    async def before_websocket(self, request: WebSocketRequest) -> None:
        self.trace.append(f"before {self.name}")

    async def after_websocket(self, request: WebSocketRequest) -> None:
        self.trace.append(f"after {self.name}")


def test_ws_middlewares_run_after_the_middlewares_list_and_refuse_http_ones() -> None:
    trace: list[str] = []
    app = Chat(middlewares=[Order("middlewares", trace)])
    app.ws_middlewares.append(Order("ws_middlewares", trace))
    with TestClient(app).websocket_connect("/chat?user=ada") as ws:
        assert ws.receive_text() == "welcome, ada"
    assert trace == [
        "before middlewares",
        "before ws_middlewares",
        "after ws_middlewares",
        "after middlewares",
    ]
    with pytest.raises(TypeError, match=r"App\.ws_middlewares takes WebSocketMiddleware"):
        app.ws_middlewares.append(TokenGate())  # type: ignore[arg-type]
    app.ws_middlewares = [DictGate()]
    with TestClient(app).websocket_connect("/chat") as ws, pytest.raises(ConnectionClosed):
        ws.receive_text()


# 3. Explicit routing and mounting from a middleware


class Users(App):
    def user_record(self, user: str, record: str) -> str:
        return f"record {record} of {user}"

    async def ws_user_feed(self, ws: WebSocket, user: str) -> None:
        await ws.accept()
        await ws.send_text(f"feed of {user}")


class ExplicitRouter(HttpMiddleware):
    async def before_request(self, request: Request) -> None:
        parts = request.scope["path"].strip("/").split("/")
        if len(parts) == 4 and parts[0] == "users" and parts[2] == "records":
            request._route_handler = "user_record"  # type: ignore[attr-defined]
            request.path_params = [parts[1], parts[3]]
        if parts == ["broken"]:
            request._route_handler = "no_such_handler"  # type: ignore[attr-defined]


class WebSocketRouter(WebSocketMiddleware):
    async def before_websocket(self, request: WebSocketRequest) -> None:
        parts = request.scope["path"].strip("/").split("/")
        if len(parts) == 3 and parts[0] == "users" and parts[2] == "feed":
            request._ws_route_handler = "ws_user_feed"  # type: ignore[attr-defined]
            request.path_params = [parts[1]]


def test_a_middleware_routes_an_unknown_path_as_0x_documented(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Users(middlewares=[ExplicitRouter()])
    app.ws_middlewares.append(WebSocketRouter())
    client = TestClient(app)
    assert client.get("/users/ada/records/7").text == "record 7 of ada"
    assert client.get("/user_record/bob/2").text == "record 2 of bob"  # as before
    assert client.get("/users/ada").status_code == 404  # routed by nobody
    with client.websocket_connect("/users/ada/feed") as ws:
        assert ws.receive_text() == "feed of ada"
    with caplog.at_level(logging.WARNING, logger="micropie"):
        assert client.get("/broken").status_code == 404
    assert "'no_such_handler' for /broken, which names no HTTP handler" in caplog.text


class Child(App):
    def index(self) -> str:
        return f"child index, root_path={self.request.scope['root_path']!r}"

    def echo(self, word: str = "") -> dict[str, Any]:
        return {"path": self.request.scope["path"], "word": word, "form": self.request.form("x")}


class Mounter(HttpMiddleware):
    def __init__(self, child: Any) -> None:
        self.child = child

    async def before_request(self, request: Request) -> None:
        path = request.scope["path"]
        if path.startswith("/api/") or path == "/api":
            request._subapp = self.child  # type: ignore[attr-defined]
            request._subapp_path = path[len("/api") :] or "/"  # type: ignore[attr-defined]
            request._subapp_mount_path = "/api"  # type: ignore[attr-defined]


def test_a_middleware_hands_a_request_to_a_sub_application_as_0x_did() -> None:
    client = TestClient(Site(middlewares=[Mounter(Child())]))
    assert client.get("/api").text == "child index, root_path='/api'"
    posted = client.post("/api/echo/hi", form={"x": "the body, given again"})
    assert posted.json() == {"path": "/echo/hi", "word": "hi", "form": "the body, given again"}
    assert client.get("/").text == "home"


# 3b. App.mount


class Parent(App):
    def index(self) -> str:
        return "parent"


def test_mount_serves_any_asgi_app_with_root_path_grown_and_path_whole() -> None:
    seen: list[dict[str, Any]] = []

    async def raw(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append({"path": scope["path"], "root_path": scope["root_path"]})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"raw"})

    parent = Parent()
    parent.mount("/api", Child())
    parent.mount("/api/raw", raw)  # the longer prefix wins
    client = TestClient(parent)
    assert client.get("/").text == "parent"
    assert client.get("/api").text == "child index, root_path='/api'"
    assert client.get("/api/echo/hi").json() == {"path": "/api/echo/hi", "word": "hi", "form": None}
    assert client.get("/api/raw/x").text == "raw"
    assert seen == [{"path": "/api/raw/x", "root_path": "/api/raw"}]
    assert client.get("/apiary").status_code == 404  # not below /api


def test_mount_serves_websockets_and_nests() -> None:
    inner = Users()
    middle = Parent()
    middle.mount("/users", inner)
    outer = Parent()
    outer.mount("/v1", middle)
    client = TestClient(outer)
    with client.websocket_connect("/v1/users/user_feed/ada") as ws:
        assert ws.receive_text() == "feed of ada"
    assert client.get("/v1/users/user_record/ada/3").text == "record 3 of ada"
    with pytest.raises(WebSocketRejected), client.websocket_connect("/v1/users/nothing"):
        pass


@pytest.mark.parametrize(
    ("path", "error"),
    [("api", ValueError), ("/", ValueError), ("/x", TypeError)],
)
def test_mount_refuses_a_bad_path_or_app_saying_why(path: str, error: type[Exception]) -> None:
    app = Parent()
    target: Any = "not an app" if error is TypeError else Child()
    with pytest.raises(error):
        app.mount(path, target)
    app.mount("/taken", Child())
    with pytest.raises(ValueError, match="mounted already"):
        app.mount("/taken/", Child())


# 4. The index fallback and extra segments


class Pages(App):
    def index(self, *parts: str) -> str:
        return "index " + "/".join(parts)

    def greet(self, name: str) -> str:
        return f"Hello, {name}!"


class NoCatchAll(App):
    def index(self) -> str:
        return "index"


@pytest.mark.parametrize(
    ("app", "path", "status", "text"),
    [
        (Pages, "/about/team", 200, "index about/team"),
        (Pages, "/index/about", 200, "index about"),
        (Pages, "/greet/Ada/extra/parts", 200, "Hello, Ada!"),
        (Pages, "/_private", 404, None),
        (Pages, "/ws_chat", 404, None),
        (Pages, "/middlewares", 404, None),
        (NoCatchAll, "/about", 404, None),
        (NoCatchAll, "/", 200, "index"),
    ],
)
def test_the_index_fallback_and_extra_segments_as_in_0x(
    app: type[App], path: str, status: int, text: str | None
) -> None:
    response = TestClient(app()).get(path)
    assert response.status_code == status
    if text is not None:
        assert response.text == text


# 6. Sessions


class OldStyleBackend(SessionBackend):
    """A 0.x backend: save takes a timeout, load answers {} for an unknown ID."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}
        self.timeouts: list[int] = []

    async def load(self, session_id: str) -> dict[str, Any]:
        return self.data.get(session_id, {})

    async def save(self, session_id: str, data: dict[str, Any], timeout: int) -> None:
        self.timeouts.append(timeout)
        if data:
            self.data[session_id] = data
        else:
            self.data.pop(session_id, None)


class Counter(App):
    def count(self) -> str:
        session = self.request.session
        session["n"] = session.get("n", 0) + 1
        return str(session["n"])


def test_a_0x_backend_gets_its_timeout_and_a_client_cannot_choose_its_session_id() -> None:
    backend = OldStyleBackend()
    client = TestClient(Counter(session_backend=backend))
    client.cookies["session_id"] = "chosen-by-the-client"
    assert client.get("/count").text == "1"
    assert "chosen-by-the-client" not in backend.data  # {} from load is no session
    assert client.get("/count").text == "2"
    assert backend.timeouts == [SESSION_TIMEOUT, SESSION_TIMEOUT]
    assert list(backend.data.values()) == [{"n": 2}]


def test_in_memory_backend_takes_0x_s_timeout_argument() -> None:
    backend = InMemorySessionBackend()

    async def scenario() -> tuple[Any, Any]:
        await backend.save("a", {"user": "ada"}, SESSION_TIMEOUT)
        await backend.save("b", {"user": "bob"}, 0)  # 0x: a timeout of 0 deletes
        return await backend.load("a"), await backend.load("b")

    assert asyncio.run(scenario()) == ({"user": "ada"}, None)


# 7. Request details


class Details(App):
    def echo_json(self) -> Any:
        return {"got": self.request.get_json}

    def away(self) -> Any:
        return self._redirect("/café?q=ü", [("Cache-Control", "no-store")])

    def away_named(self) -> Any:
        return self._redirect("/next", extra_headers=[("X-Why", "moved")])


def test_get_json_redirect_with_a_header_list_and_encoded_location() -> None:
    client = TestClient(Details())
    assert client.post("/echo_json", json={"key": "value"}).json() == {"got": {"key": "value"}}
    assert client.get("/echo_json").json() == {"got": {}}
    away = client.get("/away")
    assert away.status_code == 302
    assert away.headers["location"] == "/caf%C3%A9?q=%C3%BC"
    assert away.headers["cache-control"] == "no-store"
    named = client.get("/away_named")
    assert (named.status_code, named.headers["x-why"]) == (302, "moved")


# 8. Return values


class Returns(App):
    def number(self) -> int:
        return 42

    def ratio(self) -> float:
        return 0.5

    def nothing(self) -> None:
        return None

    def blob(self) -> bytes:
        return b"\x00\x01"


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        ("/number", b"42", "text/html; charset=utf-8"),
        ("/ratio", b"0.5", "text/html; charset=utf-8"),
        ("/nothing", b"", None),  # not 0.x's "None": an empty body
        ("/blob", b"\x00\x01", "application/octet-stream"),  # not text/html: never a page
    ],
)
def test_numbers_bytes_and_none_are_answered(
    path: str, body: bytes, content_type: str | None
) -> None:
    response = TestClient(Returns()).get(path)
    assert (response.status_code, response.content) == (200, body)
    assert response.headers.get("content-type") == content_type


def test_a_json_response_body_reaches_after_request_as_text() -> None:
    class Reader(HttpMiddleware):
        async def after_request(
            self, request: Request, status_code: int, response_body: Any, extra_headers: Any
        ) -> None:
            extra_headers.append(("X-Keys", ",".join(json.loads(response_body))))

    response = TestClient(Site(middlewares=[Reader()])).get("/data")
    assert response.headers["x-keys"] == "n"


# What the survey of 0.x's own example apps found


class Decorated(App):
    """0.x's explicit-routing example names its handlers privately, so that
    only its router middleware reaches them."""

    def _get_record(self, record_id: str) -> str:
        return f"record {record_id}"

    async def _chat(self, ws: WebSocket, room: str) -> None:
        await ws.accept()
        await ws.send_text(f"room {room}")

    def _sync_socket(self, ws: WebSocket) -> None:
        return None


class PrivateRouter(HttpMiddleware):
    async def before_request(self, request: Request) -> None:
        parts = request.scope["path"].strip("/").split("/")
        if parts[0] == "records":
            request._route_handler = "_get_record"  # type: ignore[attr-defined]
            request.path_params = parts[1:]
        elif parts[0] == "machinery":
            request._route_handler = "_redirect"  # type: ignore[attr-defined]


class PrivateSocketRouter(WebSocketMiddleware):
    async def before_websocket(self, request: WebSocketRequest) -> None:
        parts = request.scope["path"].strip("/").split("/")
        names = {"rooms": "_chat", "sync": "_sync_socket", "request": "request"}
        if parts[0] in names:
            request._ws_route_handler = names[parts[0]]  # type: ignore[attr-defined]
            request.path_params = parts[1:]


def test_a_middleware_may_choose_a_private_handler_but_never_app_s_machinery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Decorated(middlewares=[PrivateRouter(), PrivateSocketRouter()])
    client = TestClient(app)
    assert client.get("/records/7").text == "record 7"
    assert client.get("/_get_record/7").status_code == 404  # the path alone: still private
    with client.websocket_connect("/rooms/lobby") as ws:
        assert ws.receive_text() == "room lobby"
    with caplog.at_level(logging.WARNING, logger="micropie"):
        assert client.get("/machinery").status_code == 404
        for path in ("/sync", "/request"):
            with pytest.raises(WebSocketRejected), client.websocket_connect(path):
                pass
    assert "'_redirect' for /machinery, which names no HTTP handler" in caplog.text
    assert "WebSocket handler '_sync_socket' must be 'async def'" in caplog.text
    assert "'request' for /request, which names no WebSocket handler" in caplog.text


def test_on_startup_and_on_shutdown_take_0x_s_lists() -> None:
    events: list[str] = []

    class Lifespan(App):
        async def _open(self) -> None:
            events.append("open")

        def _close(self) -> None:
            events.append("close")

    app = Lifespan()
    app.on_startup([app._open])
    app.on_shutdown(app._close)  # a single function, too
    with TestClient(app):
        assert events == ["open"]
    assert events == ["open", "close"]
    with pytest.raises(TypeError, match="on_startup"):
        app.on_startup(["not callable"])  # type: ignore[list-item]


# 9. Handlers attached to an instance, as 0.x's own tests attach them


def test_handlers_attached_to_an_instance_are_routed() -> None:
    async def index(self: App, name: str = "World") -> tuple[int, str]:
        return 200, f"Hello, {name}!"

    async def ws_echo(self: App, ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(f"Echo: {await ws.receive_text()}")

    async def _hidden(self: App) -> str:
        return "never"

    app = App()
    app.index = index.__get__(app, App)  # type: ignore[attr-defined]
    setattr(app, "ws_echo", ws_echo.__get__(app, App))  # noqa: B010  (0.x's tests' own way)
    app.plain = lambda word="x": f"plain {word}"  # type: ignore[attr-defined]
    app.hasher = hashlib.sha256  # type: ignore[attr-defined]  # kept, not a handler
    setattr(app, "_hidden", _hidden.__get__(app, App))  # noqa: B010
    client = TestClient(app)
    assert client.get("/?name=Test").text == "Hello, Test!"
    assert client.get("/index/Ada").text == "Hello, Ada!"
    assert client.get("/plain/y").text == "plain y"
    assert client.get("/_hidden").status_code == 404
    assert client.get("/hasher").status_code == 404
    assert client.get("/ws_echo").status_code == 404
    with client.websocket_connect("/echo") as ws:
        ws.send_text("Hello")
        assert ws.receive_text() == "Echo: Hello"
    assert TestClient(App()).get("/plain").status_code == 404  # that instance's only


def test_a_class_route_is_not_slowed_or_replaced_by_instance_attributes() -> None:
    site = Site()
    site.index = lambda: "instance"  # type: ignore[method-assign]
    assert TestClient(site).get("/").text == "home"  # the class's route table serves it


# What a review of the first cut found


class Catalogue(Pages):
    def _user(self, user_id: str) -> str:
        return f"user {user_id}"


class UserRouter(HttpMiddleware):
    async def before_request(self, request: Request) -> None:
        if request.scope["path"].startswith("/users/"):
            request._route_handler = "_user"  # type: ignore[attr-defined]


def test_a_middleware_s_route_gets_the_segments_after_the_name_even_with_a_catch_all() -> None:
    client = TestClient(Catalogue(middlewares=[UserRouter()]))
    assert client.get("/users/7").text == "user 7"  # not _user("users")
    assert client.get("/about/us").text == "index about/us"  # index still gets the rest


def test_a_multipart_request_handed_to_a_sub_application_is_refused_clearly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = TestClient(Site(middlewares=[Mounter(Child())]))
    with caplog.at_level(logging.ERROR, logger="micropie"):
        response = client.post("/api/echo", files={"f": ("a.txt", b"data", "text/plain")})
    assert response.status_code == 501
    assert "serve that application with App.mount instead" in caplog.text


class StaticBackend(SessionBackend):
    """A 0.x backend written with static methods: no self to skip."""

    store: ClassVar[dict[str, dict[str, Any]]] = {}
    timeouts: ClassVar[list[int]] = []

    @staticmethod
    async def load(session_id: str) -> dict[str, Any]:
        return StaticBackend.store.get(session_id, {})

    @staticmethod
    async def save(session_id: str, data: dict[str, Any], timeout: int) -> None:  # type: ignore[override]
        StaticBackend.timeouts.append(timeout)
        StaticBackend.store[session_id] = data


def test_a_0x_backend_with_static_methods_gets_its_timeout() -> None:
    client = TestClient(Counter(session_backend=StaticBackend()))
    assert [client.get("/count").text for _ in range(2)] == ["1", "2"]
    assert StaticBackend.timeouts == [SESSION_TIMEOUT, SESSION_TIMEOUT]


class Redirects(App):
    def none_second(self) -> Any:
        return self._redirect("/a", None)  # type: ignore[arg-type]

    def none_named(self) -> Any:
        return self._redirect("/b", extra_headers=None)

    def text_status(self) -> Any:
        return self._redirect("/c", "301")  # type: ignore[arg-type]


def test_redirect_takes_0x_s_none_and_refuses_a_str_status_clearly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = TestClient(Redirects())
    assert client.get("/none_second").headers["location"] == "/a"
    assert client.get("/none_named").headers["location"] == "/b"
    with caplog.at_level(logging.ERROR, logger="micropie"):
        assert client.get("/text_status").status_code == 500
    assert "the redirect status must be an int such as 302, not str" in caplog.text


def test_a_root_path_with_a_trailing_slash_still_routes() -> None:
    seen: list[int] = []

    async def server(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await Parent()({**scope, "root_path": "/api/", "path": "/api/"}, receive, send)

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            seen.append(message["status"])

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    asyncio.run(server(scope, receive, send))
    assert seen == [200]


def test_assigning_ws_middlewares_to_middlewares_makes_a_list_of_its_own() -> None:
    app = Chat()
    app.ws_middlewares.append(DictGate())
    app.middlewares = app.ws_middlewares
    assert app.middlewares is not app.ws_middlewares
    app.middlewares.append(TokenGate())  # an HTTP one is fine in App.middlewares
