"""The tutorial's chat page in a real browser: headless Chromium, driven by Playwright.

Each step file is saved as ``app.py`` in a directory of its own and served
with ``uvicorn app:app`` there, as the page tells the reader. Then the
browser does what the reader does: sign in with the form, and type. It
checks what the page promises: a message shows as text, never as markup; a
blank text box sends nothing (each call of ``WebSocket.send`` is recorded);
the reason of a close is shown; with the room of step 4, two visitors see each
other's messages in order. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.browser import TIMEOUT_MS, VIEWPORT, launch_chromium, playwright_api
from tests.helpers.servers import RunningServer
from tests.helpers.support import REPO_ROOT
from tests.helpers.tutorial import FINAL, serve_step

#: Where the last test leaves a picture of the chat page (build/ is gitignored).
SCREENSHOTS = REPO_ROOT / "build" / "screenshots"
# Runs before the page's own script: records each call of WebSocket.send.
# (Playwright's "framesent" event leaves out empty frames, the very ones to catch.)
RECORD_SENDS = """
window.sentByPage = [];
const originalSend = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  window.sentByPage.push(typeof data === "string" ? data : "(binary)");
  return originalSend.call(this, data);
};
"""
MARKUP = '<img src="x" onerror="window.pwned = 1"><b>bold</b>'


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """The step ``request.param`` served from a directory that holds only its app.py."""
    with serve_step(request.param, request.getfixturevalue("tmp_path_factory")) as running:
        yield running


class Visitor:
    """One browser context on the chat: its page, and what the page sent on its WebSocket."""

    def __init__(self, browser: Any, server: RunningServer) -> None:
        self.context = browser.new_context(viewport=VIEWPORT)
        self.refused: list[str] = []
        self.context.route(re.compile(r"^(?!https?://127\.0\.0\.1:)"), self._refuse)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.add_init_script(RECORD_SENDS)
        self.server = server

    def _refuse(self, route: Any) -> None:
        self.refused.append(route.request.url)
        route.abort()

    def sign_in(self, name: str) -> None:
        self.page.goto(f"{self.server.http_url}/")
        self.page.fill('input[name="name"]', name)
        self.page.click("button")
        self.page.wait_for_url(f"{self.server.http_url}/")
        expect = playwright_api().expect
        expect(self.page.locator("p")).to_have_text(f"Signed in as {name}.")
        expect(self.messages).to_have_text([f"Hello, {name}!"])

    @property
    def sent(self) -> list[str]:
        """Every message the page's script has sent on its WebSocket, empty ones included."""
        sent: list[str] = self.page.evaluate("window.sentByPage")
        return sent

    @property
    def messages(self) -> Any:
        return self.page.locator("#messages li")

    def say(self, text: str) -> None:
        self.page.fill("#text", text)
        self.page.press("#text", "Enter")

    def close(self) -> None:
        self.context.close()


@pytest.mark.parametrize("server", [3, FINAL], indirect=True, ids=lambda n: f"step{n}")
def test_the_chat_page_shows_text_and_sends_no_blank_message(
    browser: Any, server: RunningServer
) -> None:
    expect = playwright_api().expect
    ada = Visitor(browser, server)
    try:
        ada.sign_in("Ada")
        ada.say("hello")
        expect(ada.messages).to_have_text(["Hello, Ada!", "Ada: hello"])
        assert ada.page.input_value("#text") == ""
        ada.page.press("#text", "Enter")  # an empty box
        ada.say("   ")
        assert ada.page.input_value("#text") == ""
        ada.say(MARKUP)
        expect(ada.messages).to_have_text(["Hello, Ada!", "Ada: hello", f"Ada: {MARKUP}"])
        # The answers come in order, so every message the page sent has been answered.
        assert ada.sent == ["hello", MARKUP]
        assert ada.page.locator("#messages img, #messages b").count() == 0
        assert ada.page.evaluate("window.pwned") is None
        # A binary message is refused: the page shows why the connection closed.
        ada.page.evaluate("socket.send(new Uint8Array([0, 1]))")
        expect(ada.messages.last).to_have_text("Disconnected. text messages only")
        assert ada.refused == []
    finally:
        ada.close()


@pytest.mark.parametrize("server", [FINAL], indirect=True, ids=lambda n: f"step{n}")
def test_two_visitors_see_each_others_messages_in_order(
    browser: Any, server: RunningServer
) -> None:
    expect = playwright_api().expect
    ada, grace = Visitor(browser, server), Visitor(browser, server)
    try:
        ada.sign_in("Ada")
        grace.sign_in("Grace")
        ada.say("hi Grace")
        grace.say("")
        expect(grace.messages).to_have_text(["Hello, Grace!", "Ada: hi Grace"])
        grace.say("hi Ada, <b>!</b>")
        for visitor, greeting in ((ada, "Hello, Ada!"), (grace, "Hello, Grace!")):
            expect(visitor.messages).to_have_text(
                [greeting, "Ada: hi Grace", "Grace: hi Ada, <b>!</b>"]
            )
            assert visitor.page.locator("#messages b").count() == 0
            assert visitor.refused == []
        assert (ada.sent, grace.sent) == (["hi Grace"], ["hi Ada, <b>!</b>"])
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        ada.page.screenshot(path=str(SCREENSHOTS / "tutorial-chat.png"))
    finally:
        ada.close()
        grace.close()


@pytest.mark.parametrize("server", [FINAL], indirect=True, ids=lambda n: f"step{n}")
def test_the_form_left_open_in_another_tab_changes_the_name(
    browser: Any, server: RunningServer
) -> None:
    """Two tabs of one browser share the session: the form still open in one,
    posted after the other signed in, gives the new name to both."""
    expect = playwright_api().expect
    visitor = Visitor(browser, server)
    try:
        first_tab = visitor.context.new_page()
        first_tab.set_default_timeout(TIMEOUT_MS)
        first_tab.goto(f"{server.http_url}/")
        visitor.page.goto(f"{server.http_url}/")
        visitor.page.fill('input[name="name"]', "Ada")
        visitor.page.click("button")
        expect(visitor.page.locator("p")).to_have_text("Signed in as Ada.")
        first_tab.fill('input[name="name"]', "Grace")
        first_tab.click("button")
        expect(first_tab.locator("p")).to_have_text("Signed in as Grace.")
        expect(first_tab.locator("#messages li")).to_have_text(["Hello, Grace!"])
        visitor.page.reload()
        expect(visitor.page.locator("p")).to_have_text("Signed in as Grace.")
        expect(visitor.messages).to_have_text(["Hello, Grace!"])
        assert visitor.refused == []
    finally:
        visitor.close()


# Opens a WebSocket from the page and resolves to the code and reason of its close.
CLOSE_OF = """(path) => new Promise((resolve) => {
  const ws = new WebSocket("ws://" + location.host + path);
  ws.onclose = (event) => resolve([event.code, event.reason]);
})"""


@pytest.mark.parametrize("server", [3, FINAL], indirect=True, ids=lambda n: f"step{n}")
def test_a_visitor_without_a_name_learns_why_in_the_browser(
    browser: Any, server: RunningServer
) -> None:
    """Accepted, then closed with 4001 and a reason; a refused handshake would say only 1006."""
    stranger = Visitor(browser, server)
    try:
        stranger.page.goto(f"{server.http_url}/")  # the form: no name, no session
        assert stranger.page.evaluate(CLOSE_OF, "/chat") == [4001, "tell us your name first"]
        assert stranger.page.evaluate(CLOSE_OF, "/nowhere") == [1006, ""]
        assert stranger.refused == []
    finally:
        stranger.close()
