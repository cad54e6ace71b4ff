"""The chat example (examples/chat/app.py, examples/chat/page.html) as
visitors get it: real uvicorn, real Chromium.

Two browser contexts are two visitors, each with its own cookies and so its
own session and name. The pages talk to ``uvicorn examples.chat.app:app`` on
127.0.0.1; any request elsewhere is refused and fails the test. Screenshots
land in ``build/screenshots/`` (``chat-1280.png``, ``chat-390.png``, and
``chat-reconnecting.png`` while the server is away).
The last tests check, with a plain WebSocket and HTTP client, what the server
does with input that the page never sends.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.helpers.browser import (
    TIMEOUT_MS,
    VIEWPORT,
    launch_chromium,
    open_page,
    wait_for_count,
)
from tests.helpers.clients import chat_receive, close_frame_of, ws_connect
from tests.helpers.redis import RedisServer
from tests.helpers.servers import REPO_ROOT, RunningServer, run_uvicorn

APP = "examples.chat.app:app"
PAGE = REPO_ROOT / "examples/chat/page.html"
SCREENSHOTS = REPO_ROOT / "build" / "screenshots"
NARROW = {"width": 390, "height": 844}
#: The page waits at most 10 s between attempts (MAX_DELAY_MS in page.html).
RECONNECT_MS = TIMEOUT_MS + 10_000
TIMEOUT = TIMEOUT_MS / 1000
GAP_NOTICE = "Messages sent while you were away may be missing."


# Chromium reports no empty frame to Playwright: the page's sends are counted at the source.
RECORD_SENDS = """
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
        (window.sentByPage ??= []).push(data);
        return send.call(this, data);
    };
"""


@dataclass
class Visitor:
    """One visitor: a page in a browser context of its own, and what went wrong in it."""

    page: Any
    problems: list[str] = field(default_factory=list)

    def sent(self) -> list[str]:
        """What the page has sent on its WebSockets since it loaded, empty messages included."""
        return list(self.page.evaluate("() => window.sentByPage ?? []"))

    def name(self) -> str:
        return str(self.page.locator("#me").text_content())

    def wait_for_state(self, state: str, timeout: float = TIMEOUT_MS) -> None:
        self.page.wait_for_function(
            "state => document.getElementById('status').dataset.state === state",
            arg=state,
            timeout=timeout,
        )

    def say(self, text: str, *, click: bool = False) -> None:
        """Type *text* and send it, with the Send button or the Enter key."""
        self.page.fill("#text", text)
        if click:
            self.page.click("#send")
        else:
            self.page.press("#text", "Enter")

    def rename(self, name: str) -> None:
        self.page.click("#rename-open")
        self.page.fill("#new-name", name)
        self.page.click("#rename-save")

    def messages(self) -> list[tuple[str, str]]:
        """The chat messages shown, oldest first: (author as shown, text)."""
        rows = self.page.evaluate(
            """() => [...document.querySelectorAll('#messages li.message')].map(
                   item => [item.querySelector('.author').textContent,
                            item.querySelector('.text').textContent])"""
        )
        return [(author, text) for author, text in rows]

    def notices(self) -> list[str]:
        return list(
            self.page.evaluate(
                """() => [...document.querySelectorAll('#messages li.notice')]
                       .map(notice => notice.textContent)"""
            )
        )

    def wait_for_messages(self, count: int) -> list[tuple[str, str]]:
        """Wait until at least *count* messages are shown; return them all."""
        wait_for_count(self.page, "#messages li.message", count)
        return self.messages()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def chat_server() -> Iterator[RunningServer]:
    with run_uvicorn(APP) as server:
        yield server


@contextlib.contextmanager
def visitor(browser: Any, server: RunningServer) -> Iterator[Visitor]:
    """A new visitor on the chat page, connected; its page is closed on exit."""
    problems: list[str] = []
    # The origin is the same after a restart: the port is kept.
    options = {"init_script": RECORD_SENDS, "color_scheme": "light"}
    with open_page(browser, server.http_url, problems, **options) as page:
        guest = Visitor(page, problems)
        guest.wait_for_state("connected")
        yield guest


@pytest.fixture
def two(browser: Any, chat_server: RunningServer) -> Iterator[tuple[Visitor, Visitor]]:
    with visitor(browser, chat_server) as first, visitor(browser, chat_server) as second:
        yield first, second
        assert first.problems == [] and second.problems == []


def sign_in(ada: Visitor, grace: Visitor) -> None:
    ada.rename("Ada")
    grace.rename("Grace")
    for guest, name in ((ada, "Ada"), (grace, "Grace")):
        guest.page.wait_for_function(
            "name => document.getElementById('me').textContent === name", arg=name
        )
        guest.wait_for_state("connected")  # again, under the new name


def signed_in(
    pages: contextlib.ExitStack, browser: Any, server: RunningServer
) -> tuple[Visitor, Visitor]:
    """Ada and Grace, each on a page of their own that *pages* closes, signed in."""
    ada = pages.enter_context(visitor(browser, server))
    grace = pages.enter_context(visitor(browser, server))
    sign_in(ada, grace)
    return ada, grace


def converse(ada: Visitor, grace: Visitor, lines: list[tuple[Visitor, str]]) -> None:
    """Each of *lines* is typed in turn; both pages then show them all, in that order
    (without the spaces around them, which the page trims)."""
    before = {id(ada): len(ada.messages()), id(grace): len(grace.messages())}
    names = {id(ada): "Ada", id(grace): "Grace"}
    for number, (speaker, text) in enumerate(lines):
        speaker.say(text, click=number % 2 == 1)
        # The next line only once this one is shown, so that the order is the speakers'.
        for guest in (ada, grace):
            guest.wait_for_messages(before[id(guest)] + number + 1)
    for guest in (ada, grace):
        expected = [
            ("You" if speaker is guest else names[id(speaker)], text.strip())
            for speaker, text in lines
        ]
        assert guest.messages()[before[id(guest)] :] == expected


# The page, two visitors at a time.


def test_each_visitor_has_a_name_of_its_own_and_can_change_it(
    two: tuple[Visitor, Visitor],
) -> None:
    ada, grace = two
    first_names = [ada.name(), grace.name()]
    for name in first_names:
        assert name.startswith("guest-") and len(name) == len("guest-0000"), name
    assert first_names[0] != first_names[1]
    for guest in two:
        assert guest.page.locator("#status").text_content() == "Connected"
        assert guest.page.locator("#send").is_enabled()
        assert guest.page.locator("#hint").is_hidden()
    # A name the server refuses: the page says why, and keeps the old one.
    ada.rename("a:b")
    error = ada.page.locator("#rename-error")
    error.wait_for(state="visible")
    assert error.text_content() == "a name cannot contain ':'"
    assert ada.name() == first_names[0]
    ada.page.click("#rename-cancel")
    sign_in(ada, grace)
    converse(ada, grace, [(ada, "hello, I am Ada"), (grace, "and I am Grace")])
    # The session keeps the name: a reload shows it again.
    ada.page.reload()
    ada.wait_for_state("connected")
    assert ada.name() == "Ada"
    assert ada.problems == [] and grace.problems == []


def test_messages_cross_both_ways_in_order(two: tuple[Visitor, Visitor]) -> None:
    ada, grace = two
    sign_in(ada, grace)
    converse(
        ada,
        grace,
        [
            (ada, "Hi Grace! Is the new server up?"),
            (grace, "Up and running, on two cores."),
            (grace, "Try the reconnect: restart it while we talk."),
            (ada, "  Done. Your messages came back by themselves ✓  "),
            (ada, "And the draft I typed meanwhile was still in the box."),
            (grace, "Nothing lost, then. Héllo again!"),
            (ada, "<b>tags</b> stay text, too"),
        ],
    )
    _screenshots(ada)


def test_blank_input_sends_nothing(two: tuple[Visitor, Visitor]) -> None:
    ada, grace = two
    shown = len(grace.messages())
    ada.say("")
    ada.say("   \t  ", click=True)
    ada.say("   ")
    # Messages keep their order: had a blank one gone out, it would come before this.
    ada.say("after the blanks")
    assert grace.wait_for_messages(shown + 1)[shown:] == [(ada.name(), "after the blanks")]
    assert ada.wait_for_messages(shown + 1)[shown:] == [("You", "after the blanks")]
    assert ada.sent() == ["after the blanks"]  # the page itself sent nothing else
    assert ada.page.input_value("#text") == ""


def test_markup_in_a_message_is_shown_as_text(two: tuple[Visitor, Visitor]) -> None:
    ada, grace = two
    markup = (
        '<img src=x onerror="window.injected = true"><b>bold?</b> '
        "<script>window.injected = true</script>"
    )
    ada.say(markup)
    assert grace.wait_for_messages(1)[-1] == (ada.name(), markup)
    assert ada.wait_for_messages(1)[-1] == ("You", markup)
    for guest in two:
        assert guest.page.locator("#messages img, #messages b, #messages script").count() == 0
        assert guest.page.evaluate("() => window.injected") is None
    # A name with markup in it is text too.
    ada.rename("<b>Ada</b>")
    ada.page.wait_for_function("() => document.getElementById('me').textContent === '<b>Ada</b>'")
    ada.wait_for_state("connected")
    ada.say("bold name?")
    assert grace.wait_for_messages(2)[-1] == ("<b>Ada</b>", "bold name?")
    assert grace.page.locator("#messages b").count() == 0
    assert ada.page.locator("header b").count() == 0
    ada.page.reload()  # the name now comes from the session, through the server's HTML
    ada.wait_for_state("connected")
    assert ada.name() == "<b>Ada</b>"
    assert ada.page.locator("header b").count() == 0


SCROLL_STATE = """() => {
    const list = document.getElementById('messages');
    const last = list.lastElementChild.getBoundingClientRect();
    const box = list.getBoundingClientRect();
    return {overflows: list.scrollHeight > list.clientHeight + 100,
            atBottom: list.scrollHeight - list.scrollTop - list.clientHeight < 2,
            lastInView: last.bottom <= box.bottom + 1 && last.top >= box.top,
            top: list.scrollTop};
}"""


def test_the_page_scrolls_to_the_newest_message(two: tuple[Visitor, Visitor]) -> None:
    ada, grace = two
    sign_in(ada, grace)
    for number in range(30):
        grace.say(f"line {number}")
    assert ada.wait_for_messages(30)[-1] == ("Grace", "line 29")
    state = ada.page.evaluate(SCROLL_STATE)
    assert state["overflows"] and state["atBottom"] and state["lastInView"], state
    # A visitor who scrolled up to read stays there while others talk...
    ada.page.evaluate("() => { document.getElementById('messages').scrollTop = 0; }")
    grace.say("while you read")
    assert ada.wait_for_messages(31)[-1] == ("Grace", "while you read")
    assert ada.page.evaluate(SCROLL_STATE)["top"] == 0
    # ...and is taken to the bottom by a message of its own.
    ada.say("back to the bottom")
    assert ada.wait_for_messages(32)[-1] == ("You", "back to the bottom")
    state = ada.page.evaluate(SCROLL_STATE)
    assert state["atBottom"] and state["lastInView"], state


def _screenshots(guest: Visitor) -> None:
    """The page at 1280x900 and at a phone's width: saved, and without sideways scrolling."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for size, name in ((VIEWPORT, "chat-1280.png"), (NARROW, "chat-390.png")):
        guest.page.set_viewport_size(size)
        widths = guest.page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1], f"sideways scrolling at {size}: {widths}"
        # The newest message is still in view once the window has changed size.
        guest.page.wait_for_function(f"() => ({SCROLL_STATE})().lastInView")
        path = SCREENSHOTS / name
        guest.page.screenshot(path=str(path), animations="disabled")
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", data[16:24]) == (size["width"], size["height"])
        assert len(data) > 10_000, f"{path} is nearly empty"


def test_retry_delays_double_up_to_a_cap(two: tuple[Visitor, Visitor]) -> None:
    ada, _ = two
    # Each wait is between half and all of min(10 s, 0.5 s * 2**attempt).
    samples = ada.page.evaluate(
        "() => [...Array(12).keys()].map(n => [...Array(200)].map(() => retryDelay(n)))"
    )
    for attempt, delays in enumerate(samples):
        ceiling = min(10_000, 500 * 2**attempt)
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays), (attempt, delays)
        assert max(delays) - min(delays) > ceiling / 10  # spread out, not in step


# A server restart, with a server of its own.


def test_both_pages_reconnect_by_themselves_after_a_server_restart(browser: Any) -> None:
    with contextlib.ExitStack() as pages:
        with run_uvicorn(APP) as server:
            ada, grace = signed_in(pages, browser, server)
            converse(ada, grace, [(ada, "before the restart"), (grace, "me too")])
        # The server has stopped; the pages stay open and say so.
        for guest in (ada, grace):
            guest.wait_for_state("reconnecting")
            assert str(guest.page.locator("#status").text_content()).startswith("Reconnecting")
            assert guest.page.locator("#send").is_disabled()
            hint = guest.page.locator("#hint")
            assert hint.is_visible()
            assert "sending is paused" in str(hint.text_content())
            assert "Connection lost. Reconnecting…" in guest.notices()
            # Every message had come back from the room: none is put back in the box.
            assert guest.page.input_value("#text") == ""
            assert not any("may not have reached" in notice for notice in guest.notices())
        # What Ada types meanwhile is kept, not sent into the void.
        draft = "typed while the server was away"
        ada.say(draft)
        assert ada.page.input_value("#text") == draft
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        ada.page.screenshot(path=str(SCREENSHOTS / "chat-reconnecting.png"), animations="disabled")

        with run_uvicorn(APP, port=server.port):  # a new process: it remembers no session
            for guest in (ada, grace):
                guest.wait_for_state("connected", timeout=RECONNECT_MS)
                assert guest.page.locator("#send").is_enabled()
                assert guest.page.locator("#hint").is_hidden()
                # Nor the room's history: the page cannot be sure it missed nothing.
                assert f'notice("{GAP_NOTICE}")' in PAGE.read_text(encoding="utf-8")
                guest.page.wait_for_function(
                    "() => document.querySelector('#messages').lastElementChild"
                    ".textContent.includes('may be missing')"
                )
                assert guest.notices()[-2:] == ["Reconnected.", GAP_NOTICE]
            assert ada.page.input_value("#text") == draft
            assert (ada.name(), grace.name()) == ("Ada", "Grace")
            ada.page.press("#text", "Enter")  # the draft, now
            assert grace.wait_for_messages(3)[-1] == ("Ada", draft)
            assert ada.wait_for_messages(3)[-1] == ("You", draft)
            converse(ada, grace, [(grace, "welcome back"), (ada, "thanks")])
            # The new server learned the name from the page, and keeps it in a new session.
            ada.page.reload()
            ada.wait_for_state("connected")
            assert ada.name() == "Ada"
        assert ada.problems == [] and grace.problems == []


def test_pages_whose_server_restarts_get_what_they_missed_from_redis(
    browser: Any, redis_server: RedisServer
) -> None:
    """The room in Redis: while the pages' server restarts, a second one
    carries on the conversation; the pages reconnect with the id of the last
    message they showed, and show every message they missed, once, in order."""
    with pytest.MonkeyPatch.context() as env, contextlib.ExitStack() as pages:
        env.setenv("MICROPIE_REDIS_URL", redis_server.url)
        with run_uvicorn(APP) as other:
            with run_uvicorn(APP) as server:
                ada, grace = signed_in(pages, browser, server)
                converse(ada, grace, [(ada, "before the restart"), (grace, "me too")])
            for guest in (ada, grace):
                guest.wait_for_state("reconnecting")
            missed = [f"said while you were away, {n}" for n in range(5)]
            with ws_connect(f"{other.ws_url}/chat?name=Edith") as edith:
                for text in missed:
                    edith.send(text)
                    assert chat_receive(edith) == f"Edith: {text}"
            with run_uvicorn(APP, port=server.port):
                for guest in (ada, grace):
                    guest.wait_for_state("connected", timeout=RECONNECT_MS)
                    shown = guest.wait_for_messages(7)
                    assert shown[2:] == [("Edith", text) for text in missed]
                converse(ada, grace, [(ada, "all caught up")])
                for guest in (ada, grace):
                    assert len(guest.messages()) == 8  # nothing twice
                    assert guest.notices()[-1] == "Reconnected."
                    assert GAP_NOTICE not in guest.notices()
        assert ada.problems == [] and grace.problems == []


def test_a_message_the_server_never_heard_back_goes_back_into_the_box(browser: Any) -> None:
    with contextlib.ExitStack() as pages:
        with run_uvicorn(APP) as server:
            ada, grace = signed_in(pages, browser, server)
            # The server freezes, then dies: the message goes out, and nothing comes back.
            os.kill(server.process.pid, signal.SIGSTOP)
            try:
                ada.say("said as the server froze")
                ada.page.wait_for_function(
                    "() => (window.sentByPage ?? []).includes('said as the server froze')"
                )
                assert ada.page.input_value("#text") == ""
            finally:
                server.process.kill()
                server.process.wait(TIMEOUT)
        ada.wait_for_state("reconnecting")
        assert ada.page.input_value("#text") == "said as the server froze"
        assert (
            "Your last message may not have reached the room: it is back in the box."
            in ada.notices()
        )
        with run_uvicorn(APP, port=server.port):
            for guest in (ada, grace):
                guest.wait_for_state("connected", timeout=RECONNECT_MS)
            ada.page.press("#text", "Enter")
            assert grace.wait_for_messages(1)[-1] == ("Ada", "said as the server froze")
        assert ada.problems == [] and grace.problems == []


# What the server does with input that the page never sends.


def test_the_server_drops_blank_messages(chat_server: RunningServer) -> None:
    with ws_connect(f"{chat_server.ws_url}/chat?name=Blanche") as ws:
        for blank in ["", " ", "\t\n  ", "\u3000"]:
            ws.send(blank)
        ws.send("not blank")
        # One connection's messages keep their order: a blank one would come first.
        assert chat_receive(ws) == "Blanche: not blank"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "bad name: a name cannot be empty"),
        ("   ", "bad name: a name cannot be empty"),
        ("x" * 25, "bad name: a name has at most 24 characters"),
        ("Ada: hi", "bad name: a name cannot contain ':'"),
        ("Ada\x00", "bad name: a name cannot contain control or invisible characters"),
    ],
)
def test_a_bad_name_closes_the_connection_with_1008(
    chat_server: RunningServer, name: str, reason: str
) -> None:
    path = f"/chat?{urlencode({'name': name})}"
    with ws_connect(f"{chat_server.ws_url}{path}") as ws:
        assert close_frame_of(ws) == (1008, reason)


def post_rename(server: RunningServer, body: bytes, method: str = "POST") -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        connection.request(method, "/rename", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", "send the new name as the form field 'name'"),
        (b"nom=Ada", "send the new name as the form field 'name'"),
        (b"name=", "a name cannot be empty"),
        (b"name=a%3Ab", "a name cannot contain ':'"),
        (b"name=" + b"x" * 25, "a name has at most 24 characters"),
        (b"name=a%0Ab", "a name cannot contain control or invisible characters"),
    ],
)
def test_rename_refuses_a_bad_name_with_400(
    chat_server: RunningServer, body: bytes, error: str
) -> None:
    assert post_rename(chat_server, body) == (400, {"error": error})


def test_rename_takes_post_only(chat_server: RunningServer) -> None:
    assert post_rename(chat_server, b"", method="GET") == (
        405,
        {"error": "send the new name with POST"},
    )


def test_rename_answers_the_name_it_took(chat_server: RunningServer) -> None:
    assert post_rename(chat_server, b"name=++Ada+Lovelace++") == (200, {"name": "Ada Lovelace"})
