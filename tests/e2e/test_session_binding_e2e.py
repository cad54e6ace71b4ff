"""A request cannot replace a value its session holds (issue 15), under uvicorn.

The in-process tests (tests/unit/test_app.py, ``*_cannot_replace_what_the_session_holds``)
cover every place a request can give a value; these send the attack over the wire.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.helpers.clients import receive, ws_connect
from tests.helpers.logs import quiet
from tests.helpers.servers import RunningServer, run_uvicorn

APP = "tests.helpers.apps.session_binding_app:app"
REFUSED = "Bad Request: parameter {!r} comes from the session and may not be given in the {}"


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    """The app under uvicorn; none of the attacks may cost an error in its output."""
    with quiet(run_uvicorn(APP)) as running:
        yield running


@pytest.fixture
def alice(server: RunningServer) -> Iterator[httpx.Client]:
    """A client logged in: its session says it is alice, no administrator."""
    with httpx.Client(base_url=server.http_url, timeout=10, trust_env=False) as http:
        assert http.get("/login").text == "logged in"
        assert "session_id" in http.cookies
        yield http


@pytest.mark.parametrize(
    ("method", "path", "options", "name", "where"),
    [
        ("GET", "/admin?is_admin=1&user=root", {}, "user", "query string"),
        ("GET", "/admin/root", {}, "user", "path"),
        ("POST", "/admin", {"json": {"is_admin": True}}, "is_admin", "body"),
        ("POST", "/admin", {"json": {"user": {"$ne": None}}}, "user", "body"),
        ("POST", "/admin", {"data": {"is_admin": "1"}}, "is_admin", "body"),
    ],
)
def test_http_request_cannot_replace_what_the_session_holds(
    alice: httpx.Client, method: str, path: str, options: dict[str, Any], name: str, where: str
) -> None:
    response = alice.request(method, path, **options)
    assert (response.status_code, response.text) == (400, REFUSED.format(name, where))
    assert alice.get("/admin").json() == {"user": "alice", "is_admin": False}


def test_without_a_session_the_request_fills_the_parameters(server: RunningServer) -> None:
    with httpx.Client(base_url=server.http_url, timeout=10, trust_env=False) as http:
        answer = http.get("/admin?user=bob").json()
    assert answer == {"user": "bob", "is_admin": False}


@pytest.mark.parametrize(
    "path", ["/admin?is_admin=1&user=root", "/admin?is_admin=true", "/admin/root"]
)
def test_ws_request_cannot_replace_what_the_session_holds(
    server: RunningServer, alice: httpx.Client, path: str
) -> None:
    cookie = f"session_id={alice.cookies['session_id']}"
    with pytest.raises(InvalidStatus) as refused, ws_connect(server.ws_url + path, cookie=cookie):
        pass
    assert refused.value.response.status_code == 403
    with ws_connect(server.ws_url + "/admin", cookie=cookie) as ws:
        assert receive(ws) == "alice False"
