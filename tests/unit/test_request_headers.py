"""The headers MicroPie reads itself (cookie, content type, and a handshake's Origin and
Host) are read the same whether each name comes once (looked up in a dictionary) or
some name repeats (every value counts), and whatever shape of pairs the server passes."""

from __future__ import annotations

from typing import Any

import pytest

from micropie import App, HTTPConnection, Request, WebSocket
from micropie.testing import TestClient, WebSocketRejected


class Echo(App):
    async def ws_echo(self, ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text("hello")


def connection(headers: Any, cls: type[HTTPConnection] = HTTPConnection) -> Any:
    return cls({"type": "http", "path": "/", "headers": headers})


@pytest.mark.parametrize(
    ("raw", "cookies", "content_type", "name", "values"),
    [
        (  # each name once: read through the dictionary
            [
                (b"host", b"example.com"),
                (b"cookie", b"a=1; session_id=xyz"),
                (b"content-type", b"Application/JSON; charset=utf-8"),
                (b"accept", b"*/*"),
            ],
            {"a": "1", "session_id": "xyz"},
            "application/json",
            b"host",
            ["example.com"],
        ),
        (  # another name repeated: the ones read are as they are
            [
                (b"accept", b"text/html"),
                (b"cookie", b"session_id=xyz"),
                (b"accept", b"*/*"),
                (b"content-type", b"text/plain"),
            ],
            {"session_id": "xyz"},
            "text/plain",
            b"accept",
            ["text/html", "*/*"],
        ),
    ],
)
def test_headers_read_alike_whether_a_name_repeats_or_not(
    raw: list[tuple[bytes, bytes]],
    cookies: dict[str, str],
    content_type: str,
    name: bytes,
    values: list[str],
) -> None:
    request = connection(raw, Request)
    assert request.cookies == cookies
    assert request.content_type == content_type
    assert request.headers._get(name) == values
    assert request.headers._get(b"origin") == []


def test_nothing_to_read() -> None:
    request = connection([], Request)
    assert (request.cookies, request.content_type) == ({}, "")


def test_cookie_headers_sent_one_per_cookie_all_count() -> None:
    # HTTP/2 clients send each cookie in a header of its own.
    raw = [(b"cookie", b"a=1"), (b"accept", b"*/*"), (b"cookie", b"session_id=xyz")]
    assert connection(raw).cookies == {"a": "1", "session_id": "xyz"}


def test_a_repeated_content_type_is_read_from_its_first() -> None:
    raw = [(b"content-type", b"text/plain"), (b"content-type", b"application/json")]
    assert connection(raw, Request).content_type == "text/plain"


def test_pairs_as_lists_and_latin_1_values() -> None:
    raw = [[b"cookie", b"name=caf\xe9"], [b"host", b"h"]]
    assert connection(raw).cookies == {"name": "café"}
    assert connection(raw).headers._get(b"host") == ["h"]


def test_a_name_in_upper_case_is_not_what_asgi_servers_send_and_is_not_read() -> None:
    # ASGI servers lower-case header names; the look-up is exact, either way.
    assert connection([(b"Cookie", b"a=1")]).cookies == {}
    assert connection([(b"Cookie", b"a=1"), (b"Cookie", b"b=2")]).cookies == {}


def test_what_is_not_a_list_of_pairs_fails_as_a_scan_of_it_does() -> None:
    with pytest.raises(ValueError, match="too many values to unpack"):
        connection([(b"cookie", b"a=1", b"extra")]).cookies  # noqa: B018
    # An unhashable name cannot go in a dictionary: compared one by one, as it was.
    assert connection([(bytearray(b"cookie"), b"a=1")]).cookies == {"a": "1"}


@pytest.mark.parametrize(
    ("origin", "accepted"), [("http://testserver", True), ("http://evil.example", False)]
)
def test_a_handshake_with_a_repeated_header_is_judged_as_one_without(
    origin: str, accepted: bool
) -> None:
    client = TestClient(Echo())
    for extra in ([], [("Accept", "a"), ("Accept", "b")]):
        try:
            with client.websocket_connect("/echo", headers=[("Origin", origin), *extra]) as ws:
                assert ws.receive_text() == "hello"
            status = 101
        except WebSocketRejected as rejected:
            status = rejected.status_code
        assert status == (101 if accepted else 403), extra
