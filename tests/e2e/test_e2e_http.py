"""End-to-end HTTP: tests/helpers/apps/e2e_http_apps.py served by real servers, driven by httpx.

Every test runs under uvicorn, hypercorn and daphne (see ``tests/helpers/servers.py``);
each server starts once for the module.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers.apps.e2e_http_apps import MAX_BODY_SIZE, SECRET_ERROR_TEXT
from tests.helpers.clients import receive, ws_connect
from tests.helpers.servers import RunningServer, run_server

TIMEOUT = 10.0


@pytest.fixture(scope="module", params=["uvicorn", "hypercorn", "daphne"])
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with run_server(request.param, "tests.helpers.apps.e2e_http_apps:app") as running:
        yield running


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    # trust_env=False: never through a proxy from the environment.
    with httpx.Client(base_url=server.http_url, timeout=TIMEOUT, trust_env=False) as http:
        yield http


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text
    assert 'File "' not in text
    assert SECRET_ERROR_TEXT not in text


def test_form_post_binds_fields_to_parameters(client: httpx.Client) -> None:
    response = client.post("/greet", data={"name": "Ada", "greeting": "Bonjour"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == "Bonjour, Ada!"


def test_json_post_binds_keys_to_parameters(client: httpx.Client) -> None:
    response = client.post("/add", json={"a": 40, "b": 2})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"sum": 42}


def test_multipart_upload_of_3_mib_arrives_whole(client: httpx.Client) -> None:
    content = os.urandom(3 * 1024 * 1024)
    response = client.post(
        "/upload",
        data={"title": "big one"},
        files={"doc": ("blob.bin", content, "application/x-blob")},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "title": "big one",
        "filename": "blob.bin",
        "content_type": "application/x-blob",
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }


@pytest.mark.parametrize("kind", ["form", "multipart"])
def test_body_over_max_body_size_is_413(client: httpx.Client, kind: str) -> None:
    oversized = b"x" * (MAX_BODY_SIZE + 64 * 1024)
    if kind == "form":
        response = client.post(
            "/greet",
            content=b"name=" + oversized,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    else:
        response = client.post(
            "/upload",
            data={"title": "too big"},
            files={"doc": ("big.bin", oversized, "application/octet-stream")},
        )
    assert response.status_code == 413
    assert_no_traceback(response.text)


def test_streamed_response_arrives_chunk_by_chunk(
    client: httpx.Client, server: RunningServer
) -> None:
    token = secrets.token_hex(8)
    with client.stream("GET", f"/stream/{token}") as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers
        chunks = response.iter_raw()
        # The handler holds the rest back until released: this chunk came alone.
        assert next(chunks) == b"first"
        with httpx.Client(base_url=server.http_url, timeout=TIMEOUT, trust_env=False) as other:
            assert other.get(f"/release/{token}").text == "released"
        rest = b"".join(chunks)
    assert rest == b"secondthird"


def test_head_has_headers_but_no_body(client: httpx.Client) -> None:
    get = client.get("/page")
    head = client.head("/page")
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(get.content))
    assert head.headers["x-page"] == "yes"
    assert head.headers["content-type"] == get.headers["content-type"]


def test_redirect_is_302_with_location(client: httpx.Client) -> None:
    response = client.get("/go", follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == "/page"
    followed = client.get("/go", follow_redirects=True)
    assert followed.text == "<h1>a page</h1>"


def test_session_from_http_login_is_seen_by_websocket(
    client: httpx.Client, server: RunningServer
) -> None:
    response = client.post("/login", data={"user": "grace"})
    assert response.status_code == 200
    set_cookie = response.headers["set-cookie"]
    pair = set_cookie.split(";", 1)[0]
    assert pair.startswith("session_id=")
    assert len(pair.removeprefix("session_id=")) >= 32
    for cookie, expected in ((pair, "grace"), (None, "anonymous")):
        with ws_connect(f"{server.ws_url}/whoami", cookie=cookie, timeout=TIMEOUT) as ws:
            assert receive(ws, TIMEOUT) == expected


def test_unknown_route_is_404_without_traceback(client: httpx.Client) -> None:
    response = client.get("/no_such_page")
    assert response.status_code == 404
    assert_no_traceback(response.text)


def test_failing_handler_is_500_without_traceback_and_is_logged(
    client: httpx.Client, server: RunningServer
) -> None:
    mark = server.mark()
    response = client.get("/boom")
    assert response.status_code == 500
    assert_no_traceback(response.text)
    assert "RuntimeError" not in response.text
    printed = server.wait_for_output(SECRET_ERROR_TEXT, since=mark)
    assert "Traceback" in printed
