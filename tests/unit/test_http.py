"""HTTP through the App, in-process: the request, parameter binding, bodies,
responses and errors, driven by micropie.testing.TestClient."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import micropie
from micropie import App, HttpMiddleware, Request, UploadFile
from micropie.sessions import new_session_id
from micropie.testing import HTTPResponse, TestClient

#: Raised by failing handlers; no response may ever contain it.
SECRET = "do-not-leak: the database password is hunter2"
MULTIPART_HINT = "pip install python-multipart"
# Text that only exception reports and tracebacks contain.
TRACEBACK_MARKERS = ("Traceback", 'File "', "Error:", "Exception", SECRET)


def micropie_records(
    caplog: pytest.LogCaptureFixture, level: int = logging.ERROR
) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "micropie" and r.levelno >= level]


def assert_no_exception_text(response: HTTPResponse) -> None:
    for marker in TRACEBACK_MARKERS:
        assert marker not in response.text, response.text


def failed_get(make_client: Callable[..., TestClient], path: str) -> HTTPResponse:
    """GET *path* from ResponseApp: a 500 that says nothing of the exception."""
    response = make_client(ResponseApp()).get(path)
    assert response.status_code == 500
    assert_no_exception_text(response)
    return response


def start_session(app: App, client: TestClient, data: dict[str, Any]) -> str:
    """Store *data* as a session the backend knows, and give its cookie to *client*."""
    session_id = new_session_id()
    asyncio.run(app.session_backend.save(session_id, data))
    client.cookies["session_id"] = session_id
    return session_id


def multipart_body(boundary: str, parts: list[tuple[str, bytes]]) -> bytes:
    """A multipart/form-data body of plain fields, written out by hand."""
    pieces = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value
        + b"\r\n"
        for name, value in parts
    ]
    return b"".join(pieces) + f"--{boundary}--\r\n".encode()


# The request, as a handler sees it


class RequestApp(App):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.seen: list[Any] = []

    def method(self) -> str:
        return self.request.method

    def path(self, *rest: str) -> str:
        return self.request.path

    def header(self, name: str) -> dict[str, Any]:
        headers = self.request.headers
        return {
            "lower": headers.get(name.lower()),
            "upper": headers.get(name.upper()),
            "contains_upper": name.upper() in headers,
        }

    def cookies(self) -> dict[str, str]:
        return self.request.cookies

    def query_params(self) -> dict[str, list[str]]:
        return self.request.query_params

    def body_params(self) -> dict[str, list[str]]:
        return self.request.body_params

    def path_params(self, *rest: str) -> list[str]:
        return self.request.path_params

    def session(self) -> dict[str, Any]:
        return self.request.session

    def scope(self) -> dict[str, Any]:
        scope = self.request.scope
        return {
            "type": scope["type"],
            "method": scope["method"],
            "query_string": scope["query_string"].decode(),
        }

    def query_helper(self) -> list[Any]:
        request = self.request
        return [request.query("color"), request.query("size", "M"), request.query("missing")]

    def form_helper(self) -> list[Any]:
        request = self.request
        return [request.form("color"), request.form("size", "M"), request.form("missing")]

    def json_helper(self) -> dict[str, Any]:
        request = self.request
        return {
            "whole": request.json(),
            "key": request.json("user"),
            "missing_key": request.json("nope", "fallback"),
        }

    def json_default(self) -> list[Any]:
        request = self.request
        return [request.json(), request.json(default="no json"), request.json("k", "dflt")]

    async def identity(self) -> str:
        await asyncio.sleep(0)
        self.seen.append((self.request, micropie.current_request.get()))
        return "ok"


def test_request_method_is_the_http_method(make_client: Callable[..., TestClient]) -> None:
    client = make_client(RequestApp())
    assert client.get("/method").text == "GET"
    assert client.post("/method").text == "POST"
    assert client.request("PUT", "/method").text == "PUT"


def test_request_path_is_the_full_path(make_client: Callable[..., TestClient]) -> None:
    response = make_client(RequestApp()).get("/path/a/b?x=1")
    assert response.text == "/path/a/b"


def test_request_headers_are_case_insensitive(make_client: Callable[..., TestClient]) -> None:
    response = make_client(RequestApp()).get(
        "/header?name=X-Custom-Thing", headers={"X-Custom-Thing": "value-42"}
    )
    assert json.loads(response.content) == {
        "lower": "value-42",
        "upper": "value-42",
        "contains_upper": True,
    }


def test_request_cookies_are_parsed(make_client: Callable[..., TestClient]) -> None:
    response = make_client(RequestApp()).get(
        "/cookies", headers={"Cookie": "theme=dark; lang=fr; broken"}
    )
    assert json.loads(response.content) == {"theme": "dark", "lang": "fr"}


def test_request_query_params_keep_every_value(make_client: Callable[..., TestClient]) -> None:
    response = make_client(RequestApp()).get("/query_params?tag=a&tag=b&empty=&name=%C3%A9")
    assert json.loads(response.content) == {"tag": ["a", "b"], "empty": [""], "name": ["é"]}


def test_request_body_params_keep_every_value(make_client: Callable[..., TestClient]) -> None:
    response = make_client(RequestApp()).post(
        "/body_params",
        body=b"tag=a&tag=b&note=hello+world",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert json.loads(response.content) == {"tag": ["a", "b"], "note": ["hello world"]}


def test_request_path_params_are_the_segments_after_the_name(
    make_client: Callable[..., TestClient],
) -> None:
    response = make_client(RequestApp()).get("/path_params/one/two/three")
    assert json.loads(response.content) == ["one", "two", "three"]


def test_request_session_is_the_loaded_session(make_client: Callable[..., TestClient]) -> None:
    app = RequestApp()
    client = make_client(app)
    start_session(app, client, {"user": "ada", "visits": 3})
    assert json.loads(client.get("/session").content) == {"user": "ada", "visits": 3}


def test_request_scope_is_the_asgi_scope(make_client: Callable[..., TestClient]) -> None:
    response = make_client(RequestApp()).post("/scope?a=1")
    assert json.loads(response.content) == {"type": "http", "method": "POST", "query_string": "a=1"}


def test_request_query_helper_gives_first_value_or_default(
    make_client: Callable[..., TestClient],
) -> None:
    response = make_client(RequestApp()).get("/query_helper?color=red&color=blue")
    assert json.loads(response.content) == ["red", "M", None]


def test_request_form_helper_gives_first_value_or_default(
    make_client: Callable[..., TestClient],
) -> None:
    response = make_client(RequestApp()).post(
        "/form_helper",
        body=b"color=green&color=blue",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert json.loads(response.content) == ["green", "M", None]


def test_request_json_helper_gives_whole_body_key_and_default(
    make_client: Callable[..., TestClient],
) -> None:
    payload = {"user": "grace", "tags": [1, 2]}
    response = make_client(RequestApp()).post("/json_helper", json=payload)
    assert json.loads(response.content) == {
        "whole": payload,
        "key": "grace",
        "missing_key": "fallback",
    }


def test_request_json_helper_gives_default_when_body_is_not_json(
    make_client: Callable[..., TestClient],
) -> None:
    response = make_client(RequestApp()).post(
        "/json_default", body=b"k=v", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert json.loads(response.content) == [None, "no json", "dflt"]


def test_request_json_key_gives_default_when_body_is_a_json_array(
    make_client: Callable[..., TestClient],
) -> None:
    response = make_client(RequestApp()).post("/json_default", json=[1, 2, 3])
    assert json.loads(response.content) == [[1, 2, 3], [1, 2, 3], "dflt"]


def test_self_request_and_current_request_are_the_same_object(
    make_client: Callable[..., TestClient],
) -> None:
    app = RequestApp()
    assert make_client(app).get("/identity").text == "ok"
    assert len(app.seen) == 1
    from_property, from_contextvar = app.seen[0]
    assert isinstance(from_property, Request)
    assert from_property is from_contextvar


# Binding parameters: the session (which the request may not contradict), else
# path, then query, then body, then defaults


class BindApp(App):
    def pick(self, x: str) -> str:
        return x

    def pick_default(self, x: str = "the default") -> str:
        return x

    def upload_kind(self, doc: Any) -> str:
        return type(doc).__name__

    def files(self, root: str, *rest: str) -> dict[str, Any]:
        return {"root": root, "rest": list(rest)}

    def search(self, *, term: str, page: str = "1") -> list[str]:
        return [term, page]

    def needs(self, token: str) -> str:
        return token

    def one(self, a: str) -> str:
        return a


def test_path_segment_wins_over_query(make_client: Callable[..., TestClient]) -> None:
    response = make_client(BindApp()).get("/pick/from-path?x=from-query")
    assert response.text == "from-path"


def test_query_wins_over_form_body(make_client: Callable[..., TestClient]) -> None:
    response = make_client(BindApp()).post("/pick?x=from-query", form={"x": "from-body"})
    assert response.text == "from-query"


def test_query_wins_over_json_body(make_client: Callable[..., TestClient]) -> None:
    response = make_client(BindApp()).post("/pick?x=from-query", json={"x": "from-json"})
    assert response.text == "from-query"


@pytest.mark.parametrize("body", [{"form": {"x": "from-body"}}, {"json": {"x": "from-json"}}])
def test_body_cannot_replace_what_the_session_holds(
    make_client: Callable[..., TestClient], body: dict[str, Any]
) -> None:
    app = BindApp()
    client = make_client(app)
    start_session(app, client, {"x": "from-session"})
    response = client.post("/pick", **body)
    assert (response.status_code, response.text) == (
        400,
        "Bad Request: parameter 'x' comes from the session and may not be given in the body",
    )
    assert client.post("/pick").text == "from-session"


def test_uploaded_file_binds_to_parameter_of_its_field_name(
    make_client: Callable[..., TestClient],
) -> None:
    response = make_client(BindApp()).post(
        "/upload_kind", files={"doc": ("a.txt", b"hello", "text/plain")}
    )
    assert response.text == "UploadFile"


def test_session_wins_over_default(make_client: Callable[..., TestClient]) -> None:
    app = BindApp()
    client = make_client(app)
    start_session(app, client, {"x": "from-session"})
    assert client.get("/pick_default").text == "from-session"


def test_default_used_when_nothing_else_supplies_the_parameter(
    make_client: Callable[..., TestClient],
) -> None:
    assert make_client(BindApp()).get("/pick_default").text == "the default"


def test_star_args_take_the_remaining_path_segments(
    make_client: Callable[..., TestClient],
) -> None:
    response = make_client(BindApp()).get("/files/docs/2024/report.pdf")
    assert json.loads(response.content) == {"root": "docs", "rest": ["2024", "report.pdf"]}


def test_keyword_only_parameters_bind_from_query(make_client: Callable[..., TestClient]) -> None:
    client = make_client(BindApp())
    assert json.loads(client.get("/search?term=pie").content) == ["pie", "1"]
    assert json.loads(client.get("/search?term=pie&page=3").content) == ["pie", "3"]


def test_keyword_only_parameters_never_take_path_segments(
    make_client: Callable[..., TestClient],
) -> None:
    # The segment is left out (as 0.x did); the keyword-only one comes by name.
    response = make_client(BindApp()).get("/search/pie?page=3")
    assert response.status_code == 400
    assert "term" in response.text
    assert make_client(BindApp()).get("/search/cake?term=pie").json() == ["pie", "1"]


@pytest.mark.parametrize(
    ("path", "name"),
    [("/needs", "token"), ("/search?page=2", "term")],
    ids=["positional", "keyword-only"],
)
def test_missing_required_parameter_is_400_naming_it(
    make_client: Callable[..., TestClient], path: str, name: str
) -> None:
    response = make_client(BindApp()).get(path)
    assert response.status_code == 400
    assert name in response.text
    assert len(response.text) < 200
    assert_no_exception_text(response)


def test_path_segments_beyond_the_parameters_are_left_out_as_in_0x(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(BindApp())
    assert client.get("/one/a").text == "a"
    assert client.get("/one/a/b/c").text == "a"


# Request bodies


class BodyApp(App):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.calls: list[str] = []

    def greet(self, name: str, greeting: str = "Hello") -> str:
        self.calls.append("greet")
        return f"{greeting}, {name}!"

    def add(self, a: int, b: int) -> dict[str, Any]:
        self.calls.append("add")
        return {"sum": a + b, "types": [type(a).__name__, type(b).__name__]}

    def upload(self, title: str, doc: UploadFile) -> dict[str, Any]:
        self.calls.append("upload")
        return {
            "title": title,
            "filename": doc.filename,
            "content_type": doc.content_type,
            "size": doc.size,
            "content": doc.read().decode("latin-1"),
        }

    async def raw(self) -> dict[str, Any]:
        self.calls.append("raw")
        data = await self.request.body()
        return {"size": len(data)}

    async def raw_after_multipart(self) -> dict[str, Any]:
        self.calls.append("raw_after_multipart")
        data = await self.request.body()
        return {"size": len(data), "fields": self.request.body_params}

    def anything(self) -> str:
        self.calls.append("anything")
        return "ok"


FORM = {"content-type": "application/x-www-form-urlencoded"}


def test_urlencoded_body_binds_to_parameters(make_client: Callable[..., TestClient]) -> None:
    response = make_client(BodyApp()).post("/greet", form={"name": "Ada", "greeting": "Hi"})
    assert response.status_code == 200
    assert response.text == "Hi, Ada!"


def test_json_body_binds_to_parameters_with_json_types(
    make_client: Callable[..., TestClient],
) -> None:
    response = make_client(BodyApp()).post("/add", json={"a": 2, "b": 40})
    assert json.loads(response.content) == {"sum": 42, "types": ["int", "int"]}


def test_json_with_charset_and_plus_json_types_are_parsed(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(BodyApp())
    for content_type in ("application/json; charset=utf-8", "application/vnd.api+json"):
        response = client.post(
            "/add", body=b'{"a": 1, "b": 2}', headers={"content-type": content_type}
        )
        assert json.loads(response.content)["sum"] == 3, content_type


UPLOAD_CONTENT = b"line one\r\n--not-a-boundary\r\n\x00\xff binary tail"


@pytest.mark.parametrize("chunk_size", [None, 7], ids=["one-piece", "7-byte-chunks"])
def test_multipart_upload_gives_fields_and_upload_file(
    make_client: Callable[..., TestClient], chunk_size: int | None
) -> None:
    response = make_client(BodyApp()).post(
        "/upload",
        form={"title": "Quarterly ✓"},
        files={"doc": ("report.bin", UPLOAD_CONTENT, "application/x-report")},
        chunk_size=chunk_size,
    )
    assert response.status_code == 200, response.text
    assert json.loads(response.content) == {
        "title": "Quarterly ✓",
        "filename": "report.bin",
        "content_type": "application/x-report",
        "size": len(UPLOAD_CONTENT),
        "content": UPLOAD_CONTENT.decode("latin-1"),
    }


def test_multipart_upload_larger_than_memory_spool_is_read_whole(
    make_client: Callable[..., TestClient],
) -> None:
    content = bytes(range(256)) * (5 * 1024)  # 1.25 MiB, past the 1 MiB spool
    response = make_client(BodyApp()).post(
        "/upload",
        form={"title": "big"},
        files={"doc": ("big.bin", content, "application/octet-stream")},
        chunk_size=64 * 1024,
    )
    body = json.loads(response.content)
    assert body["size"] == len(content)
    assert body["content"] == content.decode("latin-1")


def test_form_body_over_max_body_size_is_413_and_handler_not_called(
    make_client: Callable[..., TestClient],
) -> None:
    app = BodyApp(max_body_size=100)
    response = make_client(app).post("/greet", form={"name": "x" * 200})
    assert response.status_code == 413
    assert app.calls == []


def test_json_body_over_max_body_size_is_413(make_client: Callable[..., TestClient]) -> None:
    app = BodyApp(max_body_size=100)
    response = make_client(app).post("/add", json={"a": 1, "b": 2, "pad": "x" * 200}, chunk_size=16)
    assert response.status_code == 413
    assert app.calls == []


def test_body_of_exactly_max_body_size_is_accepted(make_client: Callable[..., TestClient]) -> None:
    body = b"name=" + b"x" * 95
    assert len(body) == 100
    app = BodyApp(max_body_size=100)
    response = make_client(app).post("/greet", body=body, headers=FORM)
    assert response.status_code == 200
    assert response.text == f"Hello, {'x' * 95}!"


def test_multipart_body_over_max_body_size_is_413(make_client: Callable[..., TestClient]) -> None:
    app = BodyApp(max_body_size=1000)
    response = make_client(app).post(
        "/upload",
        form={"title": "t"},
        files={"doc": ("a.bin", b"x" * 5000, "application/octet-stream")},
        chunk_size=256,
    )
    assert response.status_code == 413
    assert app.calls == []


def test_raw_body_read_in_handler_over_max_body_size_is_413(
    make_client: Callable[..., TestClient],
) -> None:
    app = BodyApp(max_body_size=100)
    client = make_client(app)
    small = client.post("/raw", body=b"y" * 100, headers={"content-type": "text/plain"})
    assert json.loads(small.content) == {"size": 100}
    big = client.post(
        "/raw", body=b"y" * 101, headers={"content-type": "text/plain"}, chunk_size=10
    )
    assert big.status_code == 413
    assert app.calls == ["raw", "raw"]


def test_raw_body_read_after_multipart_parse_does_not_hang(
    make_client: Callable[..., TestClient],
) -> None:
    # The App has consumed a multipart body to fill body_params and files;
    # asking for the raw body afterwards must answer, not wait forever for
    # more body from a client that has sent it all.
    client = make_client(BodyApp(), timeout=2.0)
    response = client.post(
        "/raw_after_multipart",
        form={"a": "b"},
        files={"f": ("x.txt", b"abc", "text/plain")},
    )
    assert response.status_code in (200, 500)
    assert_no_exception_text(response)


def test_malformed_json_is_400_with_short_message(make_client: Callable[..., TestClient]) -> None:
    app = BodyApp()
    response = make_client(app).post(
        "/add", body=b'{"a": 1,', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "JSON" in response.text
    assert len(response.text) < 200
    assert "Expecting" not in response.text  # json.JSONDecodeError's own text
    assert app.calls == []


def test_invalid_percent_encoded_utf8_in_form_is_400(
    make_client: Callable[..., TestClient],
) -> None:
    app = BodyApp()
    response = make_client(app).post("/greet", body=b"name=%ff%fe", headers=FORM)
    assert response.status_code == 400
    assert "codec" not in response.text  # UnicodeDecodeError's own text
    assert app.calls == []


def test_raw_non_ascii_bytes_in_form_are_400(make_client: Callable[..., TestClient]) -> None:
    response = make_client(BodyApp()).post("/greet", body="name=é".encode(), headers=FORM)
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n'),
        ("multipart/form-data; boundary=abc", b"this is not multipart at all"),
        (
            "multipart/form-data; boundary=abc",
            b'--abc\r\nContent-Disposition: form-data; name="a"\r\n\r\nunfinished',
        ),
        ("multipart/form-data; boundary=abc", b"--abc\r\nno colon in this header\r\n\r\n--abc--"),
    ],
    ids=["no-boundary", "garbage", "truncated", "bad-part-header"],
)
def test_malformed_multipart_is_400(
    make_client: Callable[..., TestClient], content_type: str, body: bytes
) -> None:
    app = BodyApp()
    response = make_client(app).post("/anything", body=body, headers={"content-type": content_type})
    assert response.status_code == 400
    assert "multipart" in response.text
    assert_no_exception_text(response)
    assert app.calls == []


@pytest.fixture
def without_python_multipart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "python_multipart", None)
    monkeypatch.setitem(sys.modules, "python_multipart.multipart", None)


@pytest.mark.usefixtures("without_python_multipart")
def test_multipart_without_python_multipart_is_415_and_logs_install_hint(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    app = BodyApp()
    with caplog.at_level(logging.WARNING, logger="micropie"):
        response = make_client(app).post(
            "/upload", form={"title": "t"}, files={"doc": ("a.txt", b"abc", "text/plain")}
        )
    assert response.status_code == 415
    assert_no_exception_text(response)
    assert "ImportError" not in response.text
    assert app.calls == []
    logged = micropie_records(caplog, logging.WARNING)
    warnings = [r for r in logged if r.levelno == logging.WARNING]
    assert any(MULTIPART_HINT in r.getMessage() for r in warnings), caplog.text


@pytest.mark.usefixtures("without_python_multipart")
def test_head_with_multipart_body_without_python_multipart_has_no_body(
    make_client: Callable[..., TestClient],
) -> None:
    response = make_client(BodyApp()).request(
        "HEAD", "/anything", form={"a": "b"}, files={"doc": ("a.txt", b"abc", "text/plain")}
    )
    assert response.status_code == 415
    assert response.content == b""


@pytest.mark.usefixtures("without_python_multipart")
def test_forms_and_json_work_without_python_multipart(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(BodyApp())
    assert client.post("/greet", form={"name": "Ada"}).text == "Hello, Ada!"
    assert json.loads(client.post("/add", json={"a": 1, "b": 1}).content)["sum"] == 2


def test_urlencoded_form_of_1000_fields_is_accepted(make_client: Callable[..., TestClient]) -> None:
    body = "&".join(f"f{i}=v" for i in range(1000)).encode()
    assert make_client(BodyApp()).post("/anything", body=body, headers=FORM).status_code == 200


def test_urlencoded_form_of_more_than_1000_fields_is_413(
    make_client: Callable[..., TestClient],
) -> None:
    app = BodyApp()
    body = "&".join(f"f{i}=v" for i in range(1001)).encode()
    response = make_client(app).post("/anything", body=body, headers=FORM)
    assert response.status_code == 413
    assert app.calls == []


def test_multipart_form_of_more_than_1000_fields_is_413(
    make_client: Callable[..., TestClient],
) -> None:
    app = BodyApp()
    body = multipart_body("b0und", [(f"f{i}", b"v") for i in range(1001)])
    response = make_client(app).post(
        "/anything", body=body, headers={"content-type": "multipart/form-data; boundary=b0und"}
    )
    assert response.status_code == 413
    assert app.calls == []


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"content-type": "application/json"}, b"{nope", 400),
        ({"content-type": "application/json"}, b'"\xff\xfe"', 400),
        (FORM, b"a=%c3%28", 400),
        (FORM, b"f=v&" * 1200, 413),
        ({"content-type": "multipart/form-data; boundary=zz"}, b"--zz\r\n\x00\x01", 400),
        ({"content-type": "text/plain"}, b"z" * 6000, 413),
    ],
    ids=["json-syntax", "json-encoding", "form-utf8", "form-fields", "multipart", "oversized"],
)
def test_bad_body_responses_contain_no_exception_text(
    make_client: Callable[..., TestClient],
    headers: dict[str, str],
    body: bytes,
    status: int,
) -> None:
    client = make_client(BodyApp(max_body_size=5000))
    path = "/raw" if headers["content-type"] == "text/plain" else "/anything"
    response = client.post(path, body=body, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/plain")
    assert_no_exception_text(response)


# Responses


class ResponseApp(App):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.stream: Any = None

    def html(self) -> str:
        return "<p>héllo</p>"

    def binary(self) -> bytes:
        return b"\x00\x01\x02"

    def mapping(self) -> dict[str, Any]:
        return {"a": 1, "nested": {"b": [True, None]}}

    def sequence(self) -> list[Any]:
        return [1, "two", None]

    def nothing(self) -> None:
        return None

    def created(self) -> tuple[int, str]:
        return 201, "made"

    def with_dict_headers(self) -> tuple[int, str, dict[str, str]]:
        return 202, "accepted", {"X-Trace": "abc", "Cache-Control": "no-store"}

    def with_pair_headers(self) -> tuple[int, str, list[tuple[str, str]]]:
        return 200, "two cookies", [("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/")]

    def own_content_type(self) -> tuple[int, str, dict[str, str]]:
        return 200, "plain words", {"Content-Type": "text/plain; charset=utf-8"}

    def sync_stream(self) -> Iterator[str | bytes]:
        yield "one"
        yield b"two"
        yield "thré"

    async def async_stream(self) -> AsyncIterator[str]:
        for piece in ("alpha", "beta", "gamma"):
            await asyncio.sleep(0)
            yield piece

    def failing_stream(self) -> Iterator[str]:
        yield "first"
        yield "second"
        raise RuntimeError(SECRET)

    async def failing_async_stream(self) -> AsyncIterator[str]:
        yield "first"
        raise RuntimeError(SECRET)

    def bad_chunk_stream(self) -> Iterator[Any]:
        yield "fine"
        yield 12345

    def go(self) -> Any:
        return self._redirect("/x")

    def moved(self) -> Any:
        return self._redirect("/new-home", status=301)

    def bad_redirect(self) -> Any:
        return self._redirect("/x", status=200)

    def redirect_injection(self) -> Any:
        return self._redirect("/x\r\nSet-Cookie: evil=1")

    def page(self) -> tuple[int, str, dict[str, str]]:
        return 200, "<h1>page</h1>", {"X-Page": "yes"}

    def head_stream(self, kind: str) -> Iterator[str] | AsyncIterator[str]:
        """A generator, sync or async, that notes whether it ever ran."""

        def produce() -> Iterator[str]:
            self.events.append("started")
            yield "never"

        async def produce_async() -> AsyncIterator[str]:
            self.events.append("started")
            yield "never"

        self.stream = produce() if kind == "sync" else produce_async()
        return self.stream

    def head_iterator(self) -> Iterator[str]:
        app = self

        class Recording:
            def __iter__(self) -> Recording:
                return self

            def __next__(self) -> str:
                app.events.append("next")
                raise StopIteration

            def close(self) -> None:
                app.events.append("closed")

        return Recording()

    def value_injection(self) -> tuple[int, str, dict[str, str]]:
        return 200, "x", {"X-Note": "fine\r\nSet-Cookie: evil=1"}

    def name_injection(self) -> tuple[int, str, dict[str, str]]:
        return 200, "x", {"X-Evil\r\nSet-Cookie": "evil=1"}

    def lf_injection(self) -> tuple[int, str, list[tuple[str, str]]]:
        return 200, "x", [("X-Note", "fine\nSet-Cookie: evil=1")]

    def unsupported(self) -> Any:
        return object()

    def bad_tuple(self) -> Any:
        return (200, "a", {}, "extra")

    def bad_status(self) -> Any:
        return ("200", "a")

    def boom(self) -> str:
        raise RuntimeError(SECRET)

    async def async_boom(self) -> str:
        await asyncio.sleep(0)
        raise ValueError(SECRET)


def test_str_is_html_utf8(make_client: Callable[..., TestClient]) -> None:
    response = make_client(ResponseApp()).get("/html")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.content == "<p>héllo</p>".encode()
    assert response.headers["content-length"] == str(len(response.content))


def test_bytes_are_octet_stream(make_client: Callable[..., TestClient]) -> None:
    response = make_client(ResponseApp()).get("/binary")
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == b"\x00\x01\x02"


def test_dict_is_json(make_client: Callable[..., TestClient]) -> None:
    response = make_client(ResponseApp()).get("/mapping")
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.content) == {"a": 1, "nested": {"b": [True, None]}}


def test_list_is_json(make_client: Callable[..., TestClient]) -> None:
    response = make_client(ResponseApp()).get("/sequence")
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.content) == [1, "two", None]


def test_none_is_an_empty_body(make_client: Callable[..., TestClient]) -> None:
    response = make_client(ResponseApp()).get("/nothing")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers.get("content-length") == "0"


def test_status_body_tuple_sets_status(make_client: Callable[..., TestClient]) -> None:
    response = make_client(ResponseApp()).get("/created")
    assert (response.status_code, response.text) == (201, "made")
    assert response.headers["content-type"] == "text/html; charset=utf-8"


def test_status_body_headers_tuple_with_dict(make_client: Callable[..., TestClient]) -> None:
    response = make_client(ResponseApp()).get("/with_dict_headers")
    assert (response.status_code, response.text) == (202, "accepted")
    assert response.headers["x-trace"] == "abc"
    assert response.headers["Cache-Control"] == "no-store"


def test_headers_as_pairs_keep_both_set_cookie_headers(
    make_client: Callable[..., TestClient],
) -> None:
    response = make_client(ResponseApp()).get("/with_pair_headers")
    cookies = [value for name, value in response.raw_headers if name.lower() == b"set-cookie"]
    assert cookies == [b"a=1; Path=/", b"b=2; Path=/"]


def test_handler_content_type_replaces_the_default(make_client: Callable[..., TestClient]) -> None:
    response = make_client(ResponseApp()).get("/own_content_type")
    types = [value for name, value in response.raw_headers if name.lower() == b"content-type"]
    assert types == [b"text/plain; charset=utf-8"]


def test_sync_generator_is_streamed_chunk_by_chunk(make_client: Callable[..., TestClient]) -> None:
    response = make_client(ResponseApp()).get("/sync_stream")
    assert response.status_code == 200
    assert response.complete
    assert [chunk for chunk in response.chunks if chunk] == [b"one", b"two", "thré".encode()]
    assert "content-length" not in response.headers


def test_async_generator_is_streamed_chunk_by_chunk(make_client: Callable[..., TestClient]) -> None:
    response = make_client(ResponseApp()).get("/async_stream")
    assert response.complete
    assert [chunk for chunk in response.chunks if chunk] == [b"alpha", b"beta", b"gamma"]


@pytest.mark.parametrize("path", ["/failing_stream", "/failing_async_stream"])
def test_generator_failing_midway_leaves_response_incomplete_and_logs(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture, path: str
) -> None:
    response = make_client(ResponseApp()).get(path)
    assert response.status_code == 200  # sent before the failure
    assert response.chunks[0] == b"first"
    assert not response.complete
    assert SECRET.encode() not in response.content
    logged = micropie_records(caplog)
    assert len(logged) == 1
    assert logged[0].exc_info is not None
    assert SECRET in caplog.text


def test_stream_chunk_of_wrong_type_ends_response_incomplete_and_logs(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    response = make_client(ResponseApp()).get("/bad_chunk_stream")
    assert response.chunks[0] == b"fine"
    assert not response.complete
    assert micropie_records(caplog)


def test_redirect_is_302_with_location(make_client: Callable[..., TestClient]) -> None:
    response = make_client(ResponseApp()).get("/go")
    assert response.status_code == 302
    assert response.headers["location"] == "/x"


def test_redirect_with_status_301(make_client: Callable[..., TestClient]) -> None:
    response = make_client(ResponseApp()).get("/moved")
    assert response.status_code == 301
    assert response.headers["location"] == "/new-home"


def test_redirect_with_invalid_status_is_500_and_logged(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    response = make_client(ResponseApp()).get("/bad_redirect")
    assert response.status_code == 500
    assert "location" not in response.headers
    assert micropie_records(caplog)


def test_redirect_location_with_crlf_is_percent_encoded_never_a_header(
    make_client: Callable[..., TestClient],
) -> None:
    response = make_client(ResponseApp()).get("/redirect_injection")
    assert response.status_code == 302
    assert response.headers["location"] == "/x%0D%0ASet-Cookie:%20evil=1"
    assert "set-cookie" not in response.headers


def test_head_has_same_status_and_headers_as_get_and_no_body(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(ResponseApp())
    get = client.get("/page")
    head = client.head("/page")
    assert get.content == b"<h1>page</h1>"
    assert head.status_code == get.status_code == 200
    assert head.raw_headers == get.raw_headers
    assert head.headers["content-length"] == str(len(get.content))
    assert head.content == b""


@pytest.mark.parametrize("path", ["/no_such_route", "/boom", "/_private"])
def test_head_error_responses_have_no_body(
    make_client: Callable[..., TestClient], path: str
) -> None:
    client = make_client(ResponseApp())
    get = client.get(path)
    head = client.head(path)
    assert get.status_code >= 400
    assert get.content != b""
    assert head.status_code == get.status_code
    assert head.content == b""


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_head_closes_a_generator_without_iterating_it(
    make_client: Callable[..., TestClient], kind: str
) -> None:
    app = ResponseApp()
    response = make_client(app).head(f"/head_stream/{kind}")
    assert response.status_code == 200
    assert response.content == b""
    assert response.complete
    assert app.events == []
    if kind == "sync":
        assert inspect.getgeneratorstate(app.stream) == inspect.GEN_CLOSED
    else:
        assert app.stream.ag_frame is None  # finished: closed, never to run


def test_head_calls_close_of_a_streamed_iterator_and_never_next(
    make_client: Callable[..., TestClient],
) -> None:
    app = ResponseApp()
    response = make_client(app).head("/head_iterator")
    assert response.content == b""
    assert app.events == ["closed"]


@pytest.mark.parametrize("path", ["/value_injection", "/name_injection", "/lf_injection"])
def test_header_with_cr_or_lf_is_500_and_not_sent(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture, path: str
) -> None:
    response = make_client(ResponseApp()).get(path)
    assert response.status_code == 500
    names = [name.lower() for name, _ in response.raw_headers]
    assert b"x-note" not in names
    assert b"set-cookie" not in names
    assert all(b"evil" not in value for _, value in response.raw_headers)
    assert micropie_records(caplog)


@pytest.mark.parametrize("path", ["/unsupported", "/bad_tuple", "/bad_status"])
def test_unsupported_return_value_is_500_and_logged(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture, path: str
) -> None:
    failed_get(make_client, path)
    assert micropie_records(caplog)


# Errors


def test_unknown_route_is_404(make_client: Callable[..., TestClient]) -> None:
    response = make_client(ResponseApp()).get("/does_not_exist")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/plain")


def test_private_method_is_not_a_route(make_client: Callable[..., TestClient]) -> None:
    assert make_client(ResponseApp()).get("/_redirect").status_code == 404


@pytest.mark.parametrize("path", ["/boom", "/async_boom"])
def test_raising_handler_is_500_without_exception_text_and_traceback_logged(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture, path: str
) -> None:
    response = failed_get(make_client, path)
    assert "RuntimeError" not in response.text
    assert "ValueError" not in response.text
    logged = micropie_records(caplog)
    assert len(logged) == 1
    assert logged[0].exc_info is not None
    assert SECRET in caplog.text
    assert "Traceback" in caplog.text


def test_a_response_sent_twice_carries_one_content_length_each_time() -> None:
    from micropie.responses import to_response

    response = to_response("hello")
    starts: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            starts.append(message)

    asyncio.run(response.send(send))
    asyncio.run(response.send(send))
    lengths = [[v for k, v in start["headers"] if k == b"content-length"] for start in starts]
    assert lengths == [[b"5"], [b"5"]]
    assert all(k != b"content-length" for k, _ in response.headers)


class OwnLength(App):
    def text(self) -> tuple[int, str, dict[str, str]]:
        return 200, "héllo", {"Content-Length": "5"}  # characters, not bytes: wrong

    def smuggle(self) -> tuple[int, str, list[tuple[str, str]]]:
        return 200, "ok", [("content-length", "0"), ("X-Kept", "yes")]


class AddsLength(HttpMiddleware):
    async def after_request(
        self, request: Request, status_code: int, response_body: Any, extra_headers: Any
    ) -> None:
        extra_headers.append(("Content-Length", "1"))


@pytest.mark.parametrize("middlewares", [[], [AddsLength()]], ids=["handler", "middleware"])
@pytest.mark.parametrize("path", ["/text", "/smuggle"])
def test_a_whole_body_has_one_content_length_the_framework_s(
    path: str, middlewares: list[HttpMiddleware]
) -> None:
    response = TestClient(OwnLength(middlewares=middlewares)).get(path)
    lengths = [value for name, value in response.raw_headers if name == b"content-length"]
    assert lengths == [str(len(response.content)).encode()]
    if path == "/smuggle":
        assert response.headers["x-kept"] == "yes"
