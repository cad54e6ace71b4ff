"""CORSMiddleware: preflights, actual requests, refusals; in process.

Under uvicorn and in Chromium: tests/e2e/test_cors_e2e.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from micropie import App, CORSMiddleware, HttpMiddleware, Request, StaticFiles
from micropie.staticfiles import FileReply
from micropie.testing import HTTPResponse, TestClient

ORIGIN = "https://app.example.com"
OTHER = "https://evil.example"


class Api(App):
    """Counts the calls that reach its handlers: a preflight must never be one."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.calls: list[str] = []

    def items(self) -> dict[str, str]:
        self.calls.append(self.request.method)
        return {"method": self.request.method}

    def vary(self) -> tuple[int, str, dict[str, str]]:
        return 200, "x", {"Vary": "Accept-Encoding"}

    def feed(self) -> Iterator[str]:
        yield "one "
        yield "two"


def client_for(cors: CORSMiddleware, *more: HttpMiddleware) -> tuple[TestClient, Api]:
    app = Api(middlewares=[cors, *more])
    return TestClient(app), app


def preflight(
    client: TestClient,
    origin: str = ORIGIN,
    method: str = "POST",
    headers: str | None = "content-type",
    path: str = "/items",
) -> HTTPResponse:
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        asked["Access-Control-Request-Headers"] = headers
    return client.request("OPTIONS", path, headers=asked)


def cors_headers(response: HTTPResponse) -> dict[str, str]:
    return {
        name.decode(): value.decode()
        for name, value in response.raw_headers
        if name.startswith(b"access-control-")
    }


# Preflights


def test_an_allowed_preflight_is_answered_without_the_handler() -> None:
    client, app = client_for(CORSMiddleware([ORIGIN], allow_headers=["Content-Type"]))
    response = preflight(client)
    assert response.status_code == 204
    assert response.content == b""
    assert "content-length" not in response.headers  # a 204 must not have one
    assert cors_headers(response) == {
        "access-control-allow-origin": ORIGIN,
        "access-control-allow-methods": "GET, HEAD, POST",
        "access-control-allow-headers": "content-type",
        "access-control-max-age": "600",
    }
    assert response.headers["vary"] == "Origin"
    assert app.calls == []


def test_origins_match_without_regard_to_case_or_a_trailing_slash() -> None:
    client, _ = client_for(CORSMiddleware(["HTTPS://App.Example.com/"]))
    response = preflight(client, origin="https://APP.example.com", headers=None)
    assert response.status_code == 204
    # Echoed as the browser sent it: it compares the header with its own origin.
    assert response.headers["access-control-allow-origin"] == "https://APP.example.com"
    assert "access-control-allow-headers" not in response.headers


@pytest.mark.parametrize(
    ("origin", "method", "headers", "reason"),
    [
        (OTHER, "POST", "content-type", "the origin is not allowed"),
        ("https://app.example.com.evil.example", "GET", None, "the origin is not allowed"),
        ("null", "GET", None, "the origin is not allowed"),
        (ORIGIN, "PUT", None, "PUT is not allowed"),
        (ORIGIN, "PUT\x7f", None, "this method is not allowed"),
        (ORIGIN, "POST", "content-type, x-token", "header x-token is not allowed"),
        (ORIGIN, "POST", "x-a,x-b", "header x-a, x-b is not allowed"),
        (ORIGIN, "POST", "x a", "header these headers is not allowed"),
    ],
)
def test_a_refused_preflight_gets_403_with_the_reason_and_no_cors_header(
    origin: str, method: str, headers: str | None, reason: str
) -> None:
    client, app = client_for(CORSMiddleware([ORIGIN], allow_headers=["content-type"]))
    response = preflight(client, origin=origin, method=method, headers=headers)
    assert response.status_code == 403
    assert response.text == f"CORS preflight refused: {reason}"
    assert cors_headers(response) == {}
    assert app.calls == []


def test_any_method_and_any_header_echo_what_was_asked() -> None:
    client, _ = client_for(CORSMiddleware([ORIGIN], allow_methods=["*"], allow_headers=["*"]))
    response = preflight(client, method="PATCH", headers="X-Token, Content-Type")
    assert response.status_code == 204
    assert response.headers["access-control-allow-methods"] == "PATCH"
    assert response.headers["access-control-allow-headers"] == "x-token, content-type"


def test_an_options_request_that_is_no_preflight_goes_to_the_handler() -> None:
    client, app = client_for(CORSMiddleware([ORIGIN]))
    response = client.request("OPTIONS", "/items", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert app.calls == ["OPTIONS"]
    assert response.headers["access-control-allow-origin"] == ORIGIN
    client.request("OPTIONS", "/items", headers={"Access-Control-Request-Method": "GET"})
    assert app.calls == ["OPTIONS", "OPTIONS"]


def test_a_middleware_after_cors_never_sees_a_preflight() -> None:
    class LoginRequired(HttpMiddleware):
        async def before_request(self, request: Request) -> Any:
            return 401, "log in first"

    client, _ = client_for(CORSMiddleware([ORIGIN]), LoginRequired())
    assert preflight(client, headers=None).status_code == 204
    response = client.get("/items", headers={"Origin": ORIGIN})
    assert response.status_code == 401  # the refusal itself, readable by the page
    assert response.headers["access-control-allow-origin"] == ORIGIN


# Actual requests


def test_an_allowed_origin_gets_the_headers_on_the_answer() -> None:
    cors = CORSMiddleware([ORIGIN], expose_headers=["X-Total", "X-Page"])
    client, app = client_for(cors)
    response = client.post("/items", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert response.text == '{"method":"POST"}'
    assert cors_headers(response) == {
        "access-control-allow-origin": ORIGIN,
        "access-control-expose-headers": "X-Total, X-Page",
    }
    assert response.headers["vary"] == "Origin"
    assert app.calls == ["POST"]


def test_credentials_are_allowed_for_listed_origins_only() -> None:
    client, _ = client_for(CORSMiddleware([ORIGIN], allow_credentials=True))
    response = client.get("/items", headers={"Origin": ORIGIN})
    assert response.headers["access-control-allow-credentials"] == "true"
    response = preflight(client, headers=None)
    assert response.headers["access-control-allow-credentials"] == "true"
    assert cors_headers(client.get("/items", headers={"Origin": OTHER})) == {}


@pytest.mark.parametrize("origin", [OTHER, None])
def test_other_origins_get_no_cors_header_but_the_vary(origin: str | None) -> None:
    client, app = client_for(CORSMiddleware([ORIGIN]))
    response = client.get("/items", headers={"Origin": origin} if origin else {})
    assert response.status_code == 200  # CORS hides the answer; it does not stop the request
    assert cors_headers(response) == {}
    assert response.headers["vary"] == "Origin"  # so that no cache hands it to ORIGIN
    assert app.calls == ["GET"]


def test_vary_is_merged_with_the_handlers_own() -> None:
    client, _ = client_for(CORSMiddleware([ORIGIN]))
    assert client.get("/vary", headers={"Origin": ORIGIN}).headers["vary"] == (
        "Accept-Encoding, Origin"
    )
    assert client.get("/vary").headers["vary"] == "Accept-Encoding, Origin"
    assert len([n for n, _ in client.get("/vary").raw_headers if n == b"vary"]) == 1


def test_any_origin_gets_a_star_and_no_vary() -> None:
    client, _ = client_for(CORSMiddleware(["*"]))
    response = client.get("/items", headers={"Origin": OTHER})
    assert response.headers["access-control-allow-origin"] == "*"
    assert "vary" not in response.headers
    response = preflight(client, origin=OTHER, headers=None)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers


def test_a_streamed_answer_keeps_its_stream_and_gets_the_headers() -> None:
    client, _ = client_for(CORSMiddleware([ORIGIN]))
    response = client.get("/feed", headers={"Origin": ORIGIN})
    assert response.chunks == [b"one ", b"two", b""]
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "content-length" not in response.headers


def test_static_files_keep_their_length_and_body_with_cors(tmp_path: Path) -> None:
    (tmp_path / "font.woff2").write_bytes(b"wOF2" + bytes(1000))
    files = StaticFiles(tmp_path)

    class Fonts(App):
        async def static(self, *path: str) -> FileReply:
            return await files.serve(*path)

    client = TestClient(Fonts(middlewares=[CORSMiddleware(["*"])]))
    response = client.get("/static/font.woff2", headers={"Origin": OTHER})
    assert response.content == b"wOF2" + bytes(1000)
    assert response.headers["access-control-allow-origin"] == "*"
    assert [v for n, v in response.raw_headers if n == b"content-length"] == [b"1004"]
    head = client.head("/static/font.woff2", headers={"Origin": OTHER})
    assert head.headers["content-length"] == "1004" and head.content == b""


# The after_request contract the middleware relies on (micropie/app.py)


class AddHeader(HttpMiddleware):
    """Adds a header to each response's extra headers, in place; keeps what it found there."""

    def __init__(self, name: str, value: str) -> None:
        self.header = (name, value)
        self.seen: list[list[tuple[str, str]]] = []

    async def after_request(self, request: Request, *response: Any) -> Any:
        extra_headers: list[tuple[str, str]] = response[-1]
        self.seen.append(list(extra_headers))
        extra_headers.append(self.header)
        return None


def test_headers_changed_in_place_are_sent_and_the_stream_kept() -> None:
    stamp = AddHeader("X-Stamp", "yes")

    class Site(App):
        def page(self) -> str:
            return "page"

        async def stream(self) -> AsyncIterator[bytes]:
            yield b"a"
            yield b"b"

    client = TestClient(Site(middlewares=[stamp]))
    page = client.get("/page")
    assert (page.text, page.headers["x-stamp"], page.headers["content-length"]) == (
        "page",
        "yes",
        "4",
    )
    stream = client.get("/stream")
    assert (stream.chunks, stream.headers["x-stamp"]) == ([b"a", b"b", b""], "yes")
    assert all(name != "content-length" for headers in stamp.seen for name, _ in headers)


def test_a_bad_header_changed_in_place_is_a_500_not_a_broken_response(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = TestClient(Api(middlewares=[AddHeader("X-Bad", "a\r\nSet-Cookie: x=1")]))
    response = client.get("/items")
    assert response.status_code == 500
    assert "set-cookie" not in response.headers


# Settings


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"allow_origins": ORIGIN}, TypeError, "takes a list"),
        ({"allow_origins": [ORIGIN], "allow_methods": "GET"}, TypeError, "takes a list"),
        ({"allow_origins": [ORIGIN, 7]}, TypeError, "holds strings"),
        ({"allow_origins": ["*"], "allow_credentials": True}, ValueError, "cannot go with"),
        ({"allow_origins": ["app.example.com"]}, ValueError, "is not an origin"),
        ({"allow_origins": ["https://app.example.com/path"]}, ValueError, "is not an origin"),
        ({"allow_origins": ["https://user@app.example.com"]}, ValueError, "is not an origin"),
        ({"allow_origins": ["null"]}, ValueError, "'null'"),
        ({"allow_origins": [ORIGIN], "allow_headers": ["x token"]}, ValueError, "header name"),
        ({"allow_origins": [ORIGIN], "allow_methods": ["GET\r\n"]}, ValueError, "method"),
        ({"allow_origins": [ORIGIN], "max_age": -1}, ValueError, "max_age"),
        ({"allow_origins": [ORIGIN], "max_age": 1.5}, ValueError, "max_age"),
    ],
)
def test_settings_that_cannot_work_are_refused(
    arguments: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        CORSMiddleware(**arguments)


def test_the_example_answers_as_the_page_says(monkeypatch: pytest.MonkeyPatch) -> None:
    from examples.cors.app import Api as NotesApi

    client = TestClient(NotesApi())
    response = preflight(client, method="DELETE", path="/notes")
    assert response.status_code == 204
    assert response.headers["access-control-allow-methods"] == "GET, POST, DELETE"
    assert response.headers["access-control-max-age"] == "3600"
    response = client.post("/notes", json={"text": " hi "}, headers={"Origin": ORIGIN})
    assert (response.status_code, response.text) == (201, '["hi"]')
    assert response.headers["x-note-count"] == "1"
    assert response.headers["access-control-expose-headers"] == "X-Note-Count"
    assert client.post("/notes", json={"text": " "}).status_code == 400


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
def test_a_preflight_for_a_safelisted_method_is_allowed_whatever_allow_methods_says(
    method: str,
) -> None:
    client, app = client_for(
        CORSMiddleware([ORIGIN], allow_methods=["PUT"], allow_headers=["x-token"])
    )
    response = preflight(client, method=method, headers="x-token")
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert app.calls == []
