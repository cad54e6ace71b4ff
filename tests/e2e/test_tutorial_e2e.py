"""End-to-end: each step of the tutorial (docs/source/tutorial.rst) under a real uvicorn.

The reader saves each step's file as ``app.py`` in a directory of their own
and runs ``uvicorn app:app`` there. So do these tests: for each step, a
temporary directory holds only that step's file (examples/tutorial/stepN/app.py)
under that name, and uvicorn serves ``app:app`` from it on 127.0.0.1. Then
real clients do what the page tells the reader to do in a browser: load the
page, post the name form, and talk over the WebSocket with the session cookie
that the form's answer set. Last, the page's ``test_app.py``, saved next to
the finished ``app.py``, passes under ``python -m pytest`` in that directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import ClientConnection

from tests.helpers.clients import close_frame_of, receive, ws_connect
from tests.helpers.logs import assert_no_errors
from tests.helpers.servers import RunningServer, run_uvicorn
from tests.helpers.tutorial import FINAL, page_file, save_step, serve_step

TIMEOUT = 5.0
PYTEST_TIMEOUT = 120  # the page's tests take well under a second; this stops a hang
NAME_FORM = '<form method="post" action="/login">'


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """The step ``request.param`` served from a directory that holds only its app.py."""
    with serve_step(request.param, request.getfixturevalue("tmp_path_factory")) as running:
        yield running


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    # trust_env=False: never through a proxy from the environment.
    with httpx.Client(base_url=server.http_url, timeout=TIMEOUT, trust_env=False) as client:
        yield client


def steps(*numbers: int) -> pytest.MarkDecorator:
    """Run the test against the server of each of these steps."""
    return pytest.mark.parametrize("server", numbers, indirect=True, ids=lambda n: f"step{n}")


def cookie(session_id: str) -> dict[str, str]:
    return {"Cookie": f"session_id={session_id}"}


def chat(server: RunningServer, session_id: str | None = None) -> ClientConnection:
    """The chat's WebSocket, with the session's cookie if there is one."""
    cookie = f"session_id={session_id}" if session_id is not None else None
    return ws_connect(f"{server.ws_url}/chat", cookie=cookie)


@contextlib.contextmanager
def greeted_pair(
    server: RunningServer, grace: str, alan: str
) -> Iterator[tuple[ClientConnection, ClientConnection]]:
    """Grace and Alan in the chat (with their sessions *grace* and *alan*), both greeted."""
    with chat(server, grace) as ws, chat(server, alan) as other:
        assert receive(ws) == "Hello, Grace!"
        assert receive(other) == "Hello, Alan!"
        yield ws, other


@contextlib.contextmanager
def greeted(server: RunningServer, http: httpx.Client, name: str) -> Iterator[ClientConnection]:
    """The chat, signed in as *name* with the form, once it has greeted *name*."""
    with chat(server, log_in(http, name)) as ws:
        assert receive(ws) == f"Hello, {name}!"
        yield ws


def log_in(http: httpx.Client, name: str) -> str:
    """Post the form as a browser would; return the session ID from the cookie it sets."""
    response = http.post("/login", data={"name": name})
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == 1, cookies
    pair, *attributes = cookies[0].split("; ")
    assert pair.startswith("session_id=")
    assert sorted(attributes) == ["HttpOnly", "Path=/", "SameSite=Lax"]
    session_id = pair.removeprefix("session_id=")
    assert len(session_id) >= 43
    http.cookies.clear()  # the tests send the cookie themselves, as a header
    return session_id


# Step 1: a page.


@steps(1, 2, 3, FINAL)
def test_the_page_is_the_name_form(http: httpx.Client) -> None:
    response = http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert NAME_FORM in response.text
    assert '<input name="name" required>' in response.text
    assert "set-cookie" not in response.headers


@steps(1, FINAL)
def test_a_path_that_no_method_answers_is_not_found(http: httpx.Client) -> None:
    assert http.get("/nowhere").status_code == 404


# Step 2: remembering a name.


@steps(2, 3, FINAL)
def test_posting_the_form_sets_the_session_and_changes_the_page(http: httpx.Client) -> None:
    session_id = log_in(http, " Ada ")
    page = http.get("/", headers=cookie(session_id))
    assert page.status_code == 200
    assert "Signed in as Ada." in page.text
    assert NAME_FORM not in page.text
    assert "set-cookie" not in page.headers  # an unchanged session sets no cookie


@steps(2, 3, FINAL)
def test_the_name_is_escaped_in_the_page(http: httpx.Client) -> None:
    session_id = log_in(http, "<script>alert(1)</script>")
    page = http.get("/", headers=cookie(session_id)).text
    assert "Signed in as &lt;script&gt;alert(1)&lt;/script&gt;." in page
    assert "<script>alert(1)</script>" not in page


@steps(2, 3, FINAL)
def test_login_refuses_get_and_ignores_a_blank_name(http: httpx.Client) -> None:
    response = http.get("/login")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    response = http.post("/login", data={"name": "   "})
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    assert "set-cookie" not in response.headers


@steps(2, 3, FINAL)
def test_posting_the_form_again_changes_the_name(http: httpx.Client) -> None:
    """A visitor with a name posts the form again (a second tab, the back button):
    the new name replaces the old, in the same session."""
    session_id = log_in(http, "Ada")
    for name in ("Ada Lovelace", "Grace"):
        response = http.post("/login", data={"name": name}, headers=cookie(session_id))
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/"
        page = http.get("/", headers=cookie(session_id)).text
        assert f"Signed in as {name}." in page
    http.cookies.clear()


@steps(2)
def test_the_page_of_step_2_has_no_websocket_yet(http: httpx.Client) -> None:
    page = http.get("/", headers=cookie(log_in(http, "Ada"))).text
    assert "Signed in as Ada." in page
    assert "<script>" not in page


# Step 3: talking over a WebSocket.


@steps(3, FINAL)
def test_the_page_opens_the_websocket(http: httpx.Client) -> None:
    page = http.get("/", headers=cookie(log_in(http, "Ada"))).text
    assert '"/chat"' in page  # the script that opens the WebSocket
    assert "item.textContent = line;" in page  # messages shown as text, never as markup
    assert 'if (text.value.trim() !== "") socket.send(text.value);' in page


@steps(3, FINAL)
def test_the_websocket_greets_by_name_signs_messages_and_drops_blank_ones(
    server: RunningServer, http: httpx.Client
) -> None:
    with greeted(server, http, "Grace") as ws:
        for message in ["hello", "héllo wörld ✓", "<b>bold</b>"]:
            ws.send(message)
            assert receive(ws) == f"Grace: {message}"
        for blank in ["", "   ", "\n\t"]:
            ws.send(blank)
        ws.send("after the blanks")
        # Messages come back in order: the next one answers the message after the blanks.
        assert receive(ws) == "Grace: after the blanks"


@steps(3, FINAL)
def test_the_websocket_greets_by_the_name_given_last(
    server: RunningServer, http: httpx.Client
) -> None:
    session_id = log_in(http, "Ada")
    response = http.post("/login", data={"name": "Grace"}, headers=cookie(session_id))
    assert response.status_code == 303, response.text
    http.cookies.clear()
    with chat(server, session_id) as ws:
        assert receive(ws) == "Hello, Grace!"
        ws.send("hi")
        assert receive(ws) == "Grace: hi"


@steps(3, FINAL)
def test_the_websocket_turns_away_a_visitor_without_a_name(server: RunningServer) -> None:
    for session_id in (None, "not-a-session-the-server-made"):
        with chat(server, session_id) as ws:
            assert close_frame_of(ws) == (4001, "tell us your name first")


@steps(3, FINAL)
def test_the_websocket_closes_on_a_binary_message(
    server: RunningServer, http: httpx.Client
) -> None:
    with greeted(server, http, "Ada") as ws:
        ws.send(b"\x00\x01")
        assert close_frame_of(ws) == (1003, "text messages only")


# Step 4: a room.


@steps(FINAL)
def test_a_message_reaches_everyone_in_the_room(server: RunningServer, http: httpx.Client) -> None:
    grace = log_in(http, "Grace")
    alan = log_in(http, "Alan")
    assert grace != alan
    with greeted_pair(server, grace, alan) as (ws, other):
        for message in ["hello", "héllo wörld ✓"]:
            ws.send(message)
            assert receive(ws) == f"Grace: {message}"
            assert receive(other) == f"Grace: {message}"
        ws.send(" ")
        other.send("hi Grace")
        assert receive(ws) == "Alan: hi Grace"
        assert receive(other) == "Alan: hi Grace"
    # One who left is out of the room: a newcomer's message reaches the newcomer alone.
    with chat(server, log_in(http, "Ada")) as third:
        assert receive(third) == "Hello, Ada!"
        third.send("anyone?")
        assert receive(third) == "Ada: anyone?"


@steps(3)
def test_before_the_room_a_message_goes_back_to_its_sender_only(
    server: RunningServer, http: httpx.Client
) -> None:
    grace, alan = log_in(http, "Grace"), log_in(http, "Alan")
    with greeted_pair(server, grace, alan) as (ws, other):
        ws.send("hello")
        assert receive(ws) == "Grace: hello"
        other.send("hi")
        # Alan's next message is the answer to his own: Grace's never reached him.
        assert receive(other) == "Alan: hi"


@pytest.mark.parametrize("step", [3, FINAL], ids=lambda n: f"step{n}")
def test_a_whole_chat_leaves_nothing_in_the_server_log_but_access_lines(
    step: int, tmp_path: Path
) -> None:
    """Everything a visitor does, then the server stopped: its whole output has no error.

    Read once the server has exited, so that nothing it would print is still to come.
    """
    with run_uvicorn("app:app", cwd=save_step(step, tmp_path)) as server:
        with httpx.Client(base_url=server.http_url, timeout=TIMEOUT, trust_env=False) as http:
            assert http.get("/").status_code == 200
            grace, alan = log_in(http, "Grace"), log_in(http, "Alan")
            assert http.get("/", headers=cookie(grace)).status_code == 200
            assert http.get("/login").status_code == 405
        with greeted_pair(server, grace, alan) as (ws, _alan):
            ws.send("hello")
            assert receive(ws) == "Grace: hello"
            ws.send("")
        with chat(server) as ws:
            assert close_frame_of(ws) == (4001, "tell us your name first")
        with chat(server, alan) as ws:
            assert receive(ws) == "Hello, Alan!"
            ws.send(b"\x00")
            assert close_frame_of(ws) == (1003, "text messages only")
        printed = server.stop(TIMEOUT)
    assert "Finished server process" in printed  # the whole output, up to the end
    assert_no_errors(printed)


# Step 5: running and testing it.


def test_a_restart_of_the_server_forgets_the_names(tmp_path: Path) -> None:
    """The sessions live in the server's memory: after a restart, the form again."""
    directory = save_step(FINAL, tmp_path)
    with (
        run_uvicorn("app:app", cwd=directory) as server,
        httpx.Client(base_url=server.http_url, timeout=TIMEOUT, trust_env=False) as http,
    ):
        session_id = log_in(http, "Ada")
        assert "Signed in as Ada." in http.get("/", headers=cookie(session_id)).text
    with (
        run_uvicorn("app:app", cwd=directory) as server,
        httpx.Client(base_url=server.http_url, timeout=TIMEOUT, trust_env=False) as http,
    ):
        page = http.get("/", headers=cookie(session_id))
        assert page.status_code == 200
        assert NAME_FORM in page.text


def run_pytest(directory: Path) -> subprocess.CompletedProcess[str]:
    """``python -m pytest`` in *directory*, as the page tells the reader to run it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=PYTEST_TIMEOUT,
    )


def test_the_page_test_file_passes_next_to_the_finished_app(tmp_path: Path) -> None:
    directory = save_step(FINAL, tmp_path)
    test_file = page_file("test_app.py")
    (directory / "test_app.py").write_text(test_file, encoding="utf-8")
    result = run_pytest(directory)
    tests = len(re.findall(r"^def test_", test_file, re.M))
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(rf"^=+ {tests} passed in ", result.stdout, re.M), result.stdout


def test_the_page_test_file_fails_a_chat_without_a_room(tmp_path: Path) -> None:
    """The page's tests can fail: step 3's file, which has no room yet, fails the room's test."""
    directory = save_step(3, tmp_path)
    (directory / "test_app.py").write_text(page_file("test_app.py"), encoding="utf-8")
    result = run_pytest(directory)
    assert result.returncode == 1, result.stdout + result.stderr
    failed = re.findall(r"^FAILED test_app\.py::(\w+)", result.stdout, re.M)
    assert failed == ["test_a_message_reaches_everyone_in_the_room"], result.stdout
