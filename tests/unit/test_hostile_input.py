"""Hostile input, targeted: what an attacker can put in a path, a cookie, a
query string or a body, sent in process through ``TestClient`` (or as raw
ASGI where a client could not express it). A few of them go over the wire to
a real uvicorn in tests/e2e/test_hostile_input_e2e.py.

Also: error bodies and close reasons never carry exception text, and session
IDs carry at least 128 bits.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from micropie import (
    App,
    ConnectionClosed,
    WebSocket,
)
from micropie.sessions import InMemorySessionBackend, new_session_id
from micropie.testing import HTTPResponse, TestClient, WebSocketRejected
from tests.helpers.apps.hostile_app import (
    DOCUMENTED_APP_NAMES,
    ERROR_BODY,
    ERROR_REASON,
    MAX_BODY_SIZE,
    SECRET,
    TRACEBACK_MARKERS,
    Site,
)
from tests.helpers.asgi import (
    CONNECT,
    HookTrap,
    call_asgi,
    disconnect,
    http_scope,
    websocket_scope,
)
from tests.helpers.logs import assert_no_errors
from tests.helpers.support import assert_strong_session_id, micropie_errors


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(Site())


def assert_no_exception_text(text: str) -> None:
    assert_no_errors(text, TRACEBACK_MARKERS)


# Paths: nothing but a handler of the subclass is routable

#: Every public name App has: its class attributes and methods, and what __init__ sets.
APP_PUBLIC_NAMES = sorted(
    {name for name in dir(App) if not name.startswith("_")}
    | {name for name in vars(App()) if not name.startswith("_")}
)
#: And its private and special ones, which no path may reach either.
APP_PRIVATE_NAMES = sorted(
    {name for name in dir(App) if name.startswith("_")}
    | {name for name in vars(App()) if name.startswith("_")}
)


def test_the_list_of_app_names_covers_what_app_has() -> None:
    # The parametrised tests below are only as good as this list.
    assert set(DOCUMENTED_APP_NAMES) <= set(APP_PUBLIC_NAMES)
    assert {"__init__", "__call__", "_App__routes", "_redirect"} <= set(APP_PRIVATE_NAMES)
    # Site (and its base, Target) defines no handler of any of these names,
    # over HTTP or WebSocket.
    own = {name for cls in Site.__mro__[: Site.__mro__.index(App)] for name in vars(cls)}
    for name in APP_PUBLIC_NAMES + APP_PRIVATE_NAMES:
        assert "ws_" + name not in own
    for name in APP_PUBLIC_NAMES:
        assert name not in own


@pytest.mark.parametrize("name", APP_PUBLIC_NAMES + APP_PRIVATE_NAMES)
def test_no_name_app_has_is_routable_over_http(client: TestClient, name: str) -> None:
    for path in (f"/{name}", f"/{name}/", f"/{name}/x", f"/ws_{name}"):
        for method in ("GET", "POST", "HEAD"):
            response = client.request(method, path)
            assert response.status_code == 404, (method, path)
            assert SECRET.encode() not in response.content
    # An empty first segment is skipped: "//name" names "name" (TestClient would
    # read "//name" as a host, so this one goes in as raw ASGI).
    sent = call_asgi(Site(), http_scope(f"//{name}"))
    assert sent[0]["status"] == 404


@pytest.mark.parametrize("name", APP_PUBLIC_NAMES + APP_PRIVATE_NAMES)
def test_no_name_app_has_is_routable_as_a_websocket(client: TestClient, name: str) -> None:
    for path in (f"/{name}", f"/{name}/x", f"/ws_{name}"):
        with pytest.raises(WebSocketRejected) as info, client.websocket_connect(path):
            pass
        assert info.value.status_code == 403, path


HOSTILE_PATHS = [
    "/..",
    "/../..",
    "/../index",
    "/../echo/x",
    "/./echo",
    "/%2e%2e",
    "/%2E%2E/%2e%2e/etc/passwd",
    "/.%2e/_private",
    "/%2e%2e%2f_private",
    "/%2F_private",
    "/%2f%2e%2e%2fboom",
    "/_private",
    "/__init__",
    "/__class__/__init__",
    "/__dict__",
    "/_routes",
    "/ws_echo",
    "/ws__private",
    "/ws_",
    "/%00",
    "/index%00",
    "/ECHO",
    "/\uff45\uff43\uff48\uff4f",
    "/echo%20",
    "/%20echo",
    "/" + "a" * 100_000,
]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_hostile_path_is_404_over_http(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.content == b"Not Found"


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_hostile_path_is_rejected_as_a_websocket(client: TestClient, path: str) -> None:
    with pytest.raises(WebSocketRejected) as info, client.websocket_connect(path):
        pass
    assert info.value.status_code == 403


def test_dot_segments_after_a_handler_name_are_plain_arguments(client: TestClient) -> None:
    # Not resolved against anything: a handler gets ".." as the string it is.
    assert client.get("/echo/..").text == ".."
    assert client.get("/echo/%2e%2e/boom").text == ".."


# Cookies: malformed and oversized

HOSTILE_COOKIES = {
    "no equals sign": "session_id",
    "empty value": "session_id=",
    "only semicolons": ";" * 100_000,
    "only equals signs": "=;=;==;;=",
    "64 KiB session id": "session_id=" + "a" * 65_536,
    "64 KiB of other cookies": "x=" + "b" * 65_536 + "; session_id=abc",
    "10,000 cookies": "; ".join(f"c{i}=v{i}" for i in range(10_000)),
    "quoted": 'session_id="quoted-value"',
    "unbalanced quotes": 'session_id="abc; x="',
    "non-ASCII bytes": "session_id=\xff\xfe\x80; caf\xe9=\xe9",
    "control characters": "session_id=\x00\x01\x7f; a=\t",
    "path traversal": "session_id=../../etc/passwd",
    "repeated": "session_id=first; session_id=second",
    "percent-encoded CRLF": "session_id=%0d%0aSet-Cookie:%20evil=1",
    "junk after a real-looking id": f"session_id={new_session_id()}!!junk;;",
}


def session_id_from(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == b"set-cookie" and value.startswith(b"session_id="):
            return value.split(b";", 1)[0].split(b"=", 1)[1].decode("ascii")
    return None


@pytest.mark.parametrize("cookie", HOSTILE_COOKIES.values(), ids=HOSTILE_COOKIES.keys())
def test_hostile_cookie_is_an_anonymous_visitor_over_http(client: TestClient, cookie: str) -> None:
    response = client.get("/whoami", headers={"cookie": cookie})
    assert response.status_code == 200
    assert response.text == "anonymous"
    assert session_id_from(response.raw_headers) is None  # nothing adopted, nothing set
    # Logging in under a hostile cookie starts a new session: never the client's ID.
    response = client.get("/login", headers={"cookie": cookie})
    assert response.status_code == 200
    session_id = session_id_from(response.raw_headers)
    assert_strong_session_id(session_id)
    assert f"session_id={session_id}" not in cookie


@pytest.mark.parametrize("cookie", HOSTILE_COOKIES.values(), ids=HOSTILE_COOKIES.keys())
def test_hostile_cookie_does_not_stop_a_websocket(client: TestClient, cookie: str) -> None:
    with client.websocket_connect("/echo", headers={"cookie": cookie}) as ws:
        ws.send_text("still here")
        assert ws.receive_text() == "still here"


def test_many_repeated_cookie_headers_are_joined_in_linear_time() -> None:
    # HTTP/2 clients send one cookie per header; uvicorn (httptools) puts no
    # limit on the number of headers. 100,000 of them is 1.3 MB on the wire;
    # joined one at a time they cost seconds of CPU, joined at once milliseconds.
    headers = [(b"cookie", b"c=1")] * 100_000
    started = time.perf_counter()
    sent = call_asgi(Site(), http_scope("/whoami", headers=headers))
    elapsed = time.perf_counter() - started
    assert sent[0]["status"] == 200
    assert elapsed < 0.5, f"{len(headers)} cookie headers took {elapsed:.1f} s"


# Invalid UTF-8 in paths and query strings (raw bytes in the scope)

# What servers put in "path" for a raw path that is not UTF-8: they percent-decode
# with errors="replace", so the bytes become U+FFFD; "raw_path" keeps the bytes.
INVALID_UTF8_PATHS = [
    ("/\ufffd\ufffd", b"/%ff%fe", 404),
    ("/\ufffd", b"/\xff", 404),
    ("/echo\ufffd", b"/echo%c3", 404),
    ("/echo/\ufffd", b"/echo/%ff", 200),
    ("/echo/\ufffd(", b"/echo/%c3%28", 200),
]


@pytest.mark.parametrize(("path", "raw_path", "status"), INVALID_UTF8_PATHS)
def test_invalid_utf8_in_the_path_is_handled(path: str, raw_path: bytes, status: int) -> None:
    sent = call_asgi(Site(), http_scope(path, raw_path=raw_path))
    assert sent[0]["status"] == status
    body = b"".join(m.get("body", b"") for m in sent[1:])
    if status == 200:
        assert body.decode("utf-8") == path.rsplit("/", 1)[1]


@pytest.mark.parametrize(
    ("query_string", "word"),
    [
        (b"word=%ff%fe", "\ufffd\ufffd"),
        (b"word=%c3%28", "\ufffd("),
        (b"word=ok&%ff=%fe", "ok"),
        (b"%ff%fe%fd=x&word=ok", "ok"),
        (b"word=ok&\xff\xfe=\x80", "ok"),
        (b"\xc3\x28=\xa0\xa1&word=ok", "ok"),
    ],
)
def test_invalid_utf8_in_the_query_string_is_handled(query_string: bytes, word: str) -> None:
    sent = call_asgi(Site(), http_scope("/echo", query_string=query_string))
    assert sent[0]["status"] == 200
    assert b"".join(m.get("body", b"") for m in sent[1:]).decode("utf-8") == word


@pytest.mark.parametrize("query_string", [b"\xff\xfe", b"word=\x80\x81", b"%ff=%fe&\xff"])
def test_raw_non_utf8_bytes_in_the_query_string_give_a_valid_utf8_answer(
    query_string: bytes,
) -> None:
    sent = call_asgi(Site(), http_scope("/echo", query_string=query_string))
    assert sent[0]["status"] == 200
    b"".join(m.get("body", b"") for m in sent[1:]).decode("utf-8")  # raises if not UTF-8


def test_invalid_utf8_in_a_websocket_path_and_query_is_handled() -> None:
    rejected = call_asgi(Site(), websocket_scope("/\ufffd\ufffd"))
    assert [m["type"] for m in rejected] == ["websocket.close"]
    sent = call_asgi(
        Site(),
        websocket_scope("/query", query_string=b"a=%ff&\xff\xfe=1&b=%c3%28"),
        [{"type": "websocket.connect"}],
        then={"type": "websocket.disconnect", "code": 1000},
    )
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert sent[1]["text"] == "3"


# Thousands of query parameters and form fields


def test_ten_thousand_query_parameters_are_answered(client: TestClient) -> None:
    query = "&".join(f"p{i}=v{i}" for i in range(10_000))
    started = time.perf_counter()
    response = client.get(f"/count?{query}")
    assert response.status_code == 200
    assert json.loads(response.text) == {"params": 10_000, "values": 10_000}
    assert time.perf_counter() - started < 5


def test_ten_thousand_values_of_one_query_parameter_bind_the_first(client: TestClient) -> None:
    query = "&".join(f"word=w{i}" for i in range(10_000))
    response = client.get(f"/echo?{query}")
    assert response.status_code == 200
    assert response.text == "w0"


def test_ten_thousand_query_parameters_on_a_websocket(client: TestClient) -> None:
    query = "&".join(f"p{i}=v" for i in range(10_000))
    with client.websocket_connect(f"/query?{query}") as ws:
        assert ws.receive_text() == "10000"


def test_ten_thousand_form_fields_are_413(client: TestClient, caplog: Any) -> None:
    body = "&".join(["a="] * 10_000).encode()  # 30 KB: under the size limit
    response = client.post(
        "/fields", body=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413
    assert_no_exception_text(response.text)
    assert micropie_errors(caplog) == []


def test_ten_thousand_multipart_fields_are_413(make_client: Callable[..., TestClient]) -> None:
    site = Site()
    site.max_body_size = 10 * 1024 * 1024
    client = make_client(site)
    form = {f"f{i}": "v" for i in range(10_000)}
    response = client.post("/fields", form=form, files={"doc": ("a.txt", b"x", "text/plain")})
    assert response.status_code == 413
    assert_no_exception_text(response.text)


# Oversized bodies


@pytest.mark.parametrize(
    ("path", "options"),
    [
        ("/fields", {"form": {"a": "x" * MAX_BODY_SIZE}}),
        ("/add", {"json": {"a": "x" * MAX_BODY_SIZE}}),
        ("/raw", {"body": b"x" * (MAX_BODY_SIZE + 1)}),
        ("/raw", {"body": b"x" * (4 * MAX_BODY_SIZE), "chunk_size": 1000}),
        ("/upload", {"files": {"doc": ("big.bin", b"x" * MAX_BODY_SIZE, "text/plain")}}),
    ],
    ids=["form", "json", "raw", "raw in 1000-byte chunks", "multipart"],
)
def test_oversized_body_is_413(
    client: TestClient, caplog: Any, path: str, options: dict[str, Any]
) -> None:
    response = client.post(path, **options)
    assert response.status_code == 413
    assert response.text == f"the request body is larger than {MAX_BODY_SIZE} bytes"
    assert micropie_errors(caplog) == []


# Deeply nested JSON


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b"[" * 5_000 + b"]" * 5_000,
        b"[" * 100_000,  # and never closed
    ],
    ids=["100,000 arrays", "100,000 objects", "5,000 arrays", "100,000 unclosed"],
)
def test_deeply_nested_json_is_400_not_a_crash(body: bytes) -> None:
    site = Site()
    site.max_body_size = len(body) + 1
    client = TestClient(site)
    try:
        response = client.post("/add", body=body, headers={"content-type": "application/json"})
    except RecursionError as exc:
        pytest.fail(f"RecursionError escaped the App (a 500 with a traceback on a server): {exc}")
    finally:
        client.close()
    # Refused as JSON the app cannot use, or parsed after all: either is handled.
    assert response.status_code in (200, 400)
    if response.status_code == 400 or body.count(b"[") != body.count(b"]"):
        assert response.status_code == 400
        assert response.text in ("the body is not valid JSON", "the JSON body is nested too deeply")


def test_json_nested_a_little_is_parsed(client: TestClient) -> None:
    response = client.post("/add", json=[[[[[[[[[[1]]]]]]]]]])
    assert response.status_code == 200
    assert response.text == '{"json":"list"}'


# Multipart headers and bodies cut short


def test_multipart_with_an_overlong_boundary_is_400_not_a_crash(client: TestClient) -> None:
    boundary = "b" * 300  # python-multipart refuses boundaries over 256 bytes
    body = f"--{boundary}\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--{boundary}--\r\n"
    try:
        response = client.post(
            "/fields",
            body=body.encode(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
    except Exception as exc:
        pytest.fail(f"{type(exc).__name__} escaped the App: {exc}")
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("path", "content_type", "first_part"),
    [
        ("/raw", "application/octet-stream", b"x" * 100),
        ("/fields", "multipart/form-data; boundary=XyZ", b"--XyZ\r\nContent-Disposition: form"),
        ("/fields", "application/x-www-form-urlencoded", b"a=1&b="),
    ],
    ids=["raw body read by the handler", "multipart", "urlencoded"],
)
def test_client_leaving_mid_body_gets_no_answer_and_logs_no_error(
    caplog: Any, path: str, content_type: str, first_part: bytes
) -> None:
    scope = http_scope(path, method="POST", headers=[(b"content-type", content_type.encode())])
    sent = call_asgi(
        Site(), scope, [{"type": "http.request", "body": first_part, "more_body": True}]
    )
    # The client has gone: there is nobody to answer, and nothing failed.
    assert sent == []
    assert micropie_errors(caplog) == []


# Error bodies and close reasons never carry exception text


def websocket_once(app: App, path: str, fail: str = "") -> list[dict[str, Any]]:
    """What *app* sends for a WebSocket to *path* that connects, then leaves (with 1000);
    *fail* names the hook that :func:`leaky` makes fail."""
    headers = [(b"x-fail", fail.encode())] if fail else []
    return call_asgi(app, websocket_scope(path, headers=headers), [CONNECT], then=disconnect(1000))


def leaky() -> HookTrap:
    """Raises SECRET from the hook named in the request's ``x-fail`` header."""
    return HookTrap("x-fail", SECRET)


class LeakyBackend(InMemorySessionBackend):
    async def save(self, session_id: str, data: dict[str, Any]) -> None:
        raise ConnectionError(SECRET)


class LeakySite(Site):
    def __init__(self, **options: Any) -> None:
        App.__init__(self, max_body_size=MAX_BODY_SIZE, **options)

    def stream(self) -> Iterator[str]:
        def chunks() -> Iterator[str]:
            yield "first"
            raise RuntimeError(SECRET)

        return chunks()

    def bad_return(self) -> Any:
        return (299, object())

    def bad_header(self) -> Any:
        return 200, "x", {"X-Secret": f"{SECRET}\r\nSet-Cookie: a=1"}

    async def ws_bad_close(self, ws: WebSocket) -> None:
        await ws.accept()
        await ws.close(1005, SECRET)  # ValueError: 1005 is never sent

    async def ws_session(self, ws: WebSocket) -> None:
        await ws.accept()
        self.request.session["user"] = "x"
        await ws.send_text("changed")


def assert_error_page(response: HTTPResponse) -> None:
    assert response.status_code == 500
    assert response.content == ERROR_BODY
    assert_no_exception_text(response.text)
    assert SECRET not in repr(response.raw_headers)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/boom", {}),
        ("/index", {"x-fail": "before"}),
        ("/index", {"x-fail": "after"}),
        ("/bad_return", {}),
        ("/bad_header", {}),
    ],
)
def test_http_500_body_carries_no_exception_text(
    make_client: Callable[..., TestClient], path: str, headers: dict[str, str]
) -> None:
    client = make_client(LeakySite(middlewares=[leaky()]))
    assert_error_page(client.get(path, headers=headers))


def test_http_500_from_a_failing_session_save_carries_no_exception_text(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(LeakySite(session_backend=LeakyBackend()))
    assert_error_page(client.get("/login"))


def test_a_stream_failing_midway_sends_no_exception_text(
    make_client: Callable[..., TestClient],
) -> None:
    response = make_client(LeakySite()).get("/stream")
    assert response.status_code == 200
    assert response.content == b"first"
    assert response.complete is False


@pytest.mark.parametrize("path", ["/boom", "/bad_close"])
def test_websocket_1011_reason_carries_no_exception_text(
    make_client: Callable[..., TestClient], path: str
) -> None:
    client = make_client(LeakySite(middlewares=[leaky()]))
    with client.websocket_connect(path) as ws, pytest.raises(ConnectionClosed) as info:
        ws.receive_text()
    assert info.value.code == 1011
    assert info.value.reason == ERROR_REASON
    assert SECRET not in str(info.value)


def test_websocket_whose_after_hook_fails_closes_without_exception_text() -> None:
    sent = websocket_once(LeakySite(middlewares=[leaky()]), "/query", fail="after")
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert all(SECRET not in repr(m) for m in sent)


def test_websocket_1011_from_a_failing_session_save_carries_no_exception_text() -> None:
    sent = websocket_once(LeakySite(session_backend=LeakyBackend()), "/login")
    closes = [m for m in sent if m["type"] == "websocket.close"]
    assert closes, sent
    assert all(SECRET not in repr(m) for m in sent)
    assert closes[0]["code"] == 1011
    assert closes[0]["reason"] == ERROR_REASON


def test_websocket_refused_by_a_failing_middleware_sends_no_exception_text() -> None:
    sent = websocket_once(LeakySite(middlewares=[leaky()]), "/echo", fail="before")
    assert sent and sent[0]["type"] == "websocket.close"  # before accept: a 403
    assert all(SECRET not in repr(m) for m in sent)
    assert sent[0].get("reason") in (None, "", ERROR_REASON)


# Session IDs: at least 128 bits


def observed_bits(ids: list[str]) -> float:
    """An empirical lower bound on the entropy: per position, log2 of the symbols seen."""
    length = min(map(len, ids))
    return sum(math.log2(len({i[position] for i in ids})) for position in range(length))


def test_new_session_id_has_at_least_128_bits() -> None:
    ids = [new_session_id() for _ in range(2_000)]
    assert len(set(ids)) == len(ids)
    for session_id in ids:
        assert_strong_session_id(session_id)
    alphabet = set().union(*ids)
    assert len(alphabet) >= 60, sorted(alphabet)  # really the 64 symbols of base64url
    assert min(map(len, ids)) * math.log2(len(alphabet)) >= 128
    assert observed_bits(ids) >= 128  # no constant or time-based part


def test_session_ids_from_real_logins_have_at_least_128_bits(
    make_client: Callable[..., TestClient],
) -> None:
    site = Site()
    ids = []
    for _ in range(300):
        client = make_client(site)
        response = client.get("/login")
        assert response.status_code == 200
        session_id = session_id_from(response.raw_headers)
        assert_strong_session_id(session_id)
        assert client.get("/whoami").text == "ada"  # it is the session's real ID
        ids.append(session_id)
    assert len(set(ids)) == len(ids)
    assert observed_bits(ids) >= 128


def test_session_id_from_a_websocket_login_has_at_least_128_bits(client: TestClient) -> None:
    with client.websocket_connect("/login") as ws:
        assert ws.receive_text() == "logged in"
        session_id = session_id_from(ws.response_headers)
    assert_strong_session_id(session_id)
    assert client.get("/whoami").text == "websocket"
