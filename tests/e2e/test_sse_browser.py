"""The live feed of docs/source/howto/server-sent-events.rst in Chromium, under uvicorn.

The page's files are saved into an empty directory and served with
``uvicorn app:app``, as the page says; two browser pages read the feed with
``EventSource``. The server is then stopped (SIGTERM) and another started
on the same port, with the feed wrapped to print the ``Last-Event-ID`` of
each stream: the pages reconnect by themselves, naming the last event they had.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.browser import (
    TIMEOUT_MS,
    launch_chromium,
    open_page,
    wait_for_count,
)
from tests.helpers.servers import run_uvicorn
from tests.helpers.sse import save_feed

TIMEOUT = TIMEOUT_MS / 1000
#: The stream of a stopped server is cut after 1 s.
SERVE_ARGS = ("--timeout-graceful-shutdown", "1")
#: The feed, wrapped to print the Last-Event-ID of each stream it opens.
SPY = """from app import app as feed


async def app(scope, receive, send):
    if scope["type"] == "http" and scope["path"] == "/events":
        headers = dict(scope["headers"])
        print("/events with Last-Event-ID", headers.get(b"last-event-id"), flush=True)
    await feed(scope, receive, send)
"""


@dataclass
class Reader:
    """A browser page on the feed, and what went wrong in it."""

    page: Any
    problems: list[str] = field(default_factory=list)

    def wait_for_status(self, text: str) -> None:
        self.page.wait_for_function(
            "text => document.getElementById('status').textContent === text",
            arg=text,
            timeout=TIMEOUT_MS,
        )

    def messages(self) -> list[tuple[str, str]]:
        """The messages shown, oldest first: (event ID, text)."""
        rows = self.page.evaluate(
            """() => [...document.querySelectorAll('#messages li')].map(
                   item => [item.dataset.id, item.textContent])"""
        )
        return [(event_id, text) for event_id, text in rows]

    def wait_for_messages(self, count: int) -> list[tuple[str, str]]:
        wait_for_count(self.page, "#messages li", count)
        return self.messages()


@contextlib.contextmanager
def reader(browser: Any, origin: str) -> Iterator[Reader]:
    """A page on the feed, connected; closed on exit."""
    problems: list[str] = []
    with open_page(browser, origin, problems) as page:
        visitor = Reader(page, problems)
        visitor.wait_for_status("connected")
        yield visitor


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as browser:
        yield browser


def publish(origin: str, text: str) -> None:
    response = httpx.post(
        f"{origin}/publish", data={"text": text}, timeout=TIMEOUT, trust_env=False
    )
    assert response.status_code == 303, response.text


def test_pages_show_the_feed_live_and_reconnect_after_a_restart(
    browser: Any, tmp_path: Path
) -> None:
    directory = save_feed(tmp_path)
    with run_uvicorn("app:app", *SERVE_ARGS, cwd=directory) as first:
        origin = first.http_url
        with reader(browser, origin) as ada, reader(browser, origin) as grace:
            # Posted with the page's form: the page reloads, and gets what was kept.
            ada.page.fill("input[name=text]", "first, from the form")
            with ada.page.expect_navigation():
                ada.page.click("button")
            ada.wait_for_status("connected")
            assert ada.wait_for_messages(1) == [("1", "first, from the form")]
            # The other page got it live, with no reload.
            assert grace.wait_for_messages(1) == [("1", "first, from the form")]
            publish(origin, "<b>second</b>\nin two lines")
            for visitor in (ada, grace):
                assert visitor.wait_for_messages(2)[1] == ("2", "<b>second</b>\nin two lines")
                assert visitor.page.locator("#messages b").count() == 0  # text, never markup

            # The server stops (its streams cut after 1 s), and another takes its port.
            first.stop(TIMEOUT)  # SIGTERM, as a service manager sends it
            grace.wait_for_status("reconnecting...")
            (directory / "spy.py").write_text(SPY)
            with run_uvicorn("spy:app", *SERVE_ARGS, port=first.port, cwd=directory) as second:
                grace.wait_for_status("connected")
                # EventSource came back by itself, naming the last event it had.
                second.wait_for_output("/events with Last-Event-ID b'2'", timeout=TIMEOUT)
                # The new server's feed starts afresh, and reaches the page that stayed open.
                publish(origin, "after the restart")
                assert grace.wait_for_messages(3)[2] == ("1", "after the restart")
            assert ada.problems == [] and grace.problems == []
