"""HttpMiddleware and WebSocketMiddleware around handlers, driven in-process."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from micropie import (
    App,
    ConnectionClosed,
    HttpMiddleware,
    Request,
    WebSocket,
    WebSocketMiddleware,
    WebSocketRequest,
)
from micropie.testing import HTTPResponse, TestClient
from tests.helpers.support import assert_logged_once, micropie_errors

SECRET = "do-not-leak: middleware secret"
#: What ``after_request`` gets as the response's extra headers.
Headers = list[tuple[str, str]]


class TracedApp(App):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.trace: list[str] = []

    def hello(self, name: str = "world") -> str:
        self.trace.append("handler")
        return f"Hello, {name}!"

    def stream(self) -> Iterator[str]:
        self.trace.append("handler")
        yield "a"
        yield "b"

    def created(self) -> tuple[int, str, dict[str, str]]:
        self.trace.append("handler")
        return 201, "made", {"X-Made-By": "handler"}

    async def ws_echo(self, ws: WebSocket) -> None:
        self.trace.append("ws handler")
        await ws.accept()
        await ws.send_text(await ws.receive_text())

    async def ws_fail(self, ws: WebSocket) -> None:
        self.trace.append("ws handler")
        await ws.accept()
        raise RuntimeError(SECRET)


class Recorder(HttpMiddleware):
    """Records its calls in the app's trace under *name*."""

    def __init__(self, trace: list[str], name: str) -> None:
        self.trace = trace
        self.name = name
        self.seen: list[tuple[int, bytes | None, list[tuple[str, str]]]] = []

    async def before_request(self, request: Request) -> Any:
        self.trace.append(f"{self.name} before")
        return None

    async def after_request(
        self, request: Request, status_code: int, body: bytes | None, headers: Headers
    ) -> Any:
        self.trace.append(f"{self.name} after")
        self.seen.append((status_code, body, list(headers)))
        return None


class Gate(Recorder):
    """Answers every request itself, before the handler."""

    async def before_request(self, request: Request) -> Any:
        self.trace.append(f"{self.name} before")
        return 403, "halt: " + request.path


class Replacer(Recorder):
    async def after_request(
        self, request: Request, status_code: int, body: str | bytes | None, headers: Headers
    ) -> Any:
        await super().after_request(request, status_code, body, headers)
        original = body  # text: a str
        return 299, {"replaced": original, "status": status_code}, {"X-Replaced": "yes"}


class RaisingBefore(HttpMiddleware):
    async def before_request(self, request: Request) -> Any:
        raise RuntimeError(SECRET)


class RaisingAfter(HttpMiddleware):
    async def after_request(self, request: Request, *response: Any) -> Any:
        raise RuntimeError(SECRET)


def recorded(
    make_client: Callable[[App], TestClient], path: str
) -> tuple[HTTPResponse, tuple[int, bytes | None, list[tuple[str, str]]]]:
    """GET *path* with a :class:`Recorder` around the handler: the response, and what
    the recorder's ``after_request`` saw (once)."""
    app = TracedApp()
    recorder = Recorder(app.trace, "rec")
    app.middlewares.append(recorder)
    response = make_client(app).get(path)
    assert len(recorder.seen) == 1
    return response, recorder.seen[0]


# HttpMiddleware


def test_before_request_returning_a_response_short_circuits(
    make_client: Callable[[App], TestClient],
) -> None:
    app = TracedApp()
    first = Recorder(app.trace, "first")
    gate = Gate(app.trace, "gate")
    last = Recorder(app.trace, "last")
    app.middlewares.extend([first, gate, last])
    response = make_client(app).get("/hello")
    assert response.status_code == 403
    assert response.text == "halt: /hello"
    assert "handler" not in app.trace
    assert "last before" not in app.trace
    assert app.trace[:2] == ["first before", "gate before"]


def test_before_request_returning_none_lets_the_request_through(
    make_client: Callable[[App], TestClient],
) -> None:
    app = TracedApp()
    app.middlewares.append(Recorder(app.trace, "only"))
    response = make_client(app).get("/hello/ada")
    assert response.text == "Hello, ada!"
    assert app.trace == ["only before", "handler", "only after"]


def test_before_request_sees_the_request(make_client: Callable[[App], TestClient]) -> None:
    seen: list[tuple[str, str, str | None]] = []

    class Spy(HttpMiddleware):
        async def before_request(self, request: Request) -> Any:
            seen.append((request.method, request.path, request.query("q")))
            return None

    app = TracedApp(middlewares=[Spy()])
    make_client(app).post("/hello?q=1")
    assert seen == [("POST", "/hello", "1")]


def test_after_request_sees_status_body_and_headers(
    make_client: Callable[[App], TestClient],
) -> None:
    _, (status, body, headers) = recorded(make_client, "/created")
    assert status == 201
    assert body == "made"  # text comes as str, as in MicroPie 0.x
    lowered = [(name.lower(), value) for name, value in headers]
    assert ("x-made-by", "handler") in lowered
    assert ("content-type", "text/html; charset=utf-8") in lowered


def test_after_request_may_replace_the_response(make_client: Callable[[App], TestClient]) -> None:
    app = TracedApp()
    app.middlewares.append(Replacer(app.trace, "replacer"))
    response = make_client(app).get("/hello/ada")
    assert response.status_code == 299
    assert json.loads(response.content) == {"replaced": "Hello, ada!", "status": 200}
    assert response.headers["x-replaced"] == "yes"
    assert response.headers["content-type"] == "application/json"


def test_middlewares_run_before_in_order_and_after_in_reverse(
    make_client: Callable[[App], TestClient],
) -> None:
    app = TracedApp()
    app.middlewares.extend(Recorder(app.trace, name) for name in ("one", "two", "three"))
    assert make_client(app).get("/hello").status_code == 200
    assert app.trace == [
        "one before",
        "two before",
        "three before",
        "handler",
        "three after",
        "two after",
        "one after",
    ]


def test_outer_middleware_after_sees_inner_replacement(
    make_client: Callable[[App], TestClient],
) -> None:
    app = TracedApp()
    outer = Recorder(app.trace, "outer")
    app.middlewares.extend([outer, Replacer(app.trace, "inner")])
    make_client(app).get("/hello")
    assert outer.seen[0][0] == 299
    assert outer.seen[0][1] is not None
    assert json.loads(outer.seen[0][1]) == {"replaced": "Hello, world!", "status": 200}


@pytest.mark.parametrize("middleware", [RaisingBefore(), RaisingAfter()], ids=["before", "after"])
def test_raising_middleware_is_500_and_logged(
    make_client: Callable[[App], TestClient],
    caplog: pytest.LogCaptureFixture,
    middleware: HttpMiddleware,
) -> None:
    app = TracedApp(middlewares=[middleware])
    response = make_client(app).get("/hello")
    assert response.status_code == 500
    assert SECRET not in response.text
    assert_logged_once(caplog, SECRET)


def test_after_request_gets_none_body_for_a_streamed_response(
    make_client: Callable[[App], TestClient],
) -> None:
    response, (status, body, _) = recorded(make_client, "/stream")
    assert [chunk for chunk in response.chunks if chunk] == [b"a", b"b"]
    assert status == 200
    assert body is None


def test_http_middleware_does_not_run_for_websockets(
    make_client: Callable[[App], TestClient],
) -> None:
    app = TracedApp()
    app.middlewares.append(Recorder(app.trace, "http"))
    with make_client(app).websocket_connect("/echo") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "hi"
    assert app.trace == ["ws handler"]


# WebSocketMiddleware


class WsRecorder(WebSocketMiddleware):
    def __init__(self, trace: list[str], name: str, refusal: tuple[int, str] | None = None):
        self.trace = trace
        self.name = name
        self.refusal = refusal
        self.requests: list[WebSocketRequest] = []

    async def before_websocket(self, request: WebSocketRequest) -> tuple[int, str] | None:
        self.trace.append(f"{self.name} before")
        self.requests.append(request)
        return self.refusal

    async def after_websocket(self, request: WebSocketRequest) -> None:
        self.trace.append(f"{self.name} after")


class RaisingWsAfter(WebSocketMiddleware):
    async def after_websocket(self, request: WebSocketRequest) -> None:
        raise RuntimeError(SECRET)


def test_before_websocket_refusal_closes_with_its_code_and_reason(
    make_client: Callable[[App], TestClient],
) -> None:
    app = TracedApp()
    app.middlewares.append(WsRecorder(app.trace, "guard", refusal=(4003, "members only")))
    client = make_client(app)
    with client.websocket_connect("/echo") as ws, pytest.raises(ConnectionClosed) as closed:
        ws.receive_text()
    assert closed.value.code == 4003
    assert closed.value.reason == "members only"
    assert ws.close_code == 4003
    assert ws.close_reason == "members only"
    assert "ws handler" not in app.trace


def test_refusal_stops_later_websocket_middlewares(
    make_client: Callable[[App], TestClient],
) -> None:
    app = TracedApp()
    app.middlewares.append(WsRecorder(app.trace, "guard", refusal=(4001, "no")))
    app.middlewares.append(WsRecorder(app.trace, "later"))
    with make_client(app).websocket_connect("/echo") as ws, pytest.raises(ConnectionClosed):
        ws.receive_text()
    assert "later before" not in app.trace
    assert "ws handler" not in app.trace


def test_before_websocket_returning_none_lets_the_connection_through(
    make_client: Callable[[App], TestClient],
) -> None:
    app = TracedApp()
    recorder = WsRecorder(app.trace, "pass")
    app.middlewares.append(recorder)
    with make_client(app).websocket_connect("/echo?room=7") as ws:
        ws.send_text("ping")
        assert ws.receive_text() == "ping"
    assert app.trace == ["pass before", "ws handler", "pass after"]
    assert isinstance(recorder.requests[0], WebSocketRequest)
    assert recorder.requests[0].path == "/echo"
    assert recorder.requests[0].query("room") == "7"


def test_after_websocket_runs_in_reverse_order_after_the_handler(
    make_client: Callable[[App], TestClient],
) -> None:
    app = TracedApp()
    app.middlewares.extend([WsRecorder(app.trace, "one"), WsRecorder(app.trace, "two")])
    with make_client(app).websocket_connect("/echo") as ws:
        ws.send_text("x")
        ws.receive_text()
    assert app.trace == ["one before", "two before", "ws handler", "two after", "one after"]


def test_after_websocket_runs_when_the_handler_raised(
    make_client: Callable[[App], TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    app = TracedApp()
    app.middlewares.append(WsRecorder(app.trace, "rec"))
    with make_client(app).websocket_connect("/fail") as ws, pytest.raises(ConnectionClosed):
        ws.receive_text()
    assert ws.close_code == 1011
    assert app.trace == ["rec before", "ws handler", "rec after"]
    assert micropie_errors(caplog)


def test_raising_after_websocket_is_logged_and_connection_still_closes(
    make_client: Callable[[App], TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    app = TracedApp()
    outer = WsRecorder(app.trace, "outer")
    app.middlewares.extend([outer, RaisingWsAfter()])
    client = make_client(app)
    with client.websocket_connect("/echo") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "hi"
        with pytest.raises(ConnectionClosed):
            ws.receive_text()  # the handler returned: the App closes the socket
    assert ws.close_code == 1000
    assert "outer after" in app.trace  # the failure did not stop the others
    assert_logged_once(caplog, SECRET)


def test_websocket_middleware_does_not_run_for_http(
    make_client: Callable[[App], TestClient],
) -> None:
    app = TracedApp()
    app.middlewares.append(WsRecorder(app.trace, "ws", refusal=(4003, "no")))
    assert make_client(app).get("/hello").text == "Hello, world!"
    assert app.trace == ["handler"]


# Registering middlewares


def test_middlewares_passed_to_the_constructor_are_used(
    make_client: Callable[[App], TestClient],
) -> None:
    trace: list[str] = []
    app = TracedApp(middlewares=[Recorder(trace, "http"), WsRecorder(trace, "ws")])
    client = make_client(app)
    client.get("/hello")
    with client.websocket_connect("/echo") as ws:
        ws.send_text("x")
        ws.receive_text()
    assert trace == ["http before", "http after", "ws before", "ws after"]


def test_middlewares_appended_after_construction_are_used(
    make_client: Callable[[App], TestClient],
) -> None:
    trace: list[str] = []
    app = TracedApp()
    client = make_client(app)
    client.get("/hello")
    assert trace == []
    app.middlewares.append(Recorder(trace, "http"))
    app.middlewares.append(WsRecorder(trace, "ws"))
    client.get("/hello")
    with client.websocket_connect("/echo") as ws:
        ws.send_text("x")
        ws.receive_text()
    assert trace == ["http before", "http after", "ws before", "ws after"]
