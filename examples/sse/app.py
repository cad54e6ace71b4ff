"""A live feed over server-sent events: what anyone posts reaches every open page.

Save this file as ``app.py`` and the page as ``index.html`` beside it, serve
them with ``uvicorn app:app --timeout-graceful-shutdown 5`` and open
http://127.0.0.1:8000/ in two browser tabs.
"""

import asyncio
import re
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

from micropie import App

PAGE = (Path(__file__).parent / "index.html").read_text(encoding="utf-8")

#: An event stream must not be cached, nor held back by nginx until it fills a buffer.
STREAM_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
#: The longest message, in characters.
MAX_MESSAGE = 1000


def event(event_id: int, text: str) -> str:
    """One event: its ID, then a ``data:`` line for each line of *text*."""
    # The format ends lines with CR, LF or CRLF (and nothing else).
    data = "".join(f"data: {line}\n" for line in re.split(r"\r\n|\r|\n", text))
    return f"id: {event_id}\n{data}\n"


class Feed(App):
    def __init__(self, *, heartbeat: float = 15.0, history: int = 100) -> None:
        super().__init__()
        self.heartbeat = heartbeat  # seconds of silence before a keep-alive comment
        self.messages: deque[str] = deque(maxlen=history)  # the newest ones
        self.last_id = 0  # the ID of the newest message; the first one is 1
        self.listening = 0  # streams open right now
        self._news = asyncio.Event()  # set, and replaced, when a message arrives

    def index(self) -> str:
        return PAGE

    def stats(self) -> dict[str, int]:
        return {"listening": self.listening, "last_id": self.last_id}

    # async def: it sets an asyncio.Event, which only the event loop may touch
    # (a plain def handler runs in a worker thread).
    async def publish(self) -> tuple[int, str] | tuple[int, str, list[tuple[str, str]]]:
        if self.request.method != "POST":
            return 405, "publish with POST", [("Allow", "POST")]
        text = (self.request.form("text") or "").strip()
        if not text:
            return 400, "the form field 'text' is missing or empty"
        if len(text) > MAX_MESSAGE:
            return 413, f"a message has at most {MAX_MESSAGE} characters"
        self.messages.append(text)
        self.last_id += 1
        news, self._news = self._news, asyncio.Event()
        news.set()  # wakes every stream that waits
        return self._redirect("/", 303)

    def events(self) -> tuple[int, str] | tuple[int, AsyncIterator[str], dict[str, str]]:
        # Checked here, before the stream starts: once it has, the status is sent.
        seen = self.request.headers.get("last-event-id", "0") or "0"
        if not (seen.isascii() and seen.isdigit()):
            return 400, "Last-Event-ID must be the ID of an event, such as 42"
        after = int(seen)
        if after > self.last_id:
            after = 0  # an ID from before a restart: start again from the oldest kept
        return 200, self._stream(after), STREAM_HEADERS

    async def _stream(self, seen: int) -> AsyncIterator[str]:
        self.listening += 1
        try:
            yield "retry: 3000\n\n"  # reconnect 3 s after a lost connection
            while True:
                while seen < self.last_id:  # replay what this reader missed
                    oldest = self.last_id - len(self.messages) + 1
                    seen = max(seen + 1, oldest)
                    yield event(seen, self.messages[seen - oldest])
                news = self._news
                try:
                    async with asyncio.timeout(self.heartbeat):
                        await news.wait()
                except TimeoutError:
                    yield ": keep-alive\n\n"  # a comment: proxies see traffic, pages ignore it
        finally:
            # Runs when the client leaves: MicroPie closes the generator.
            self.listening -= 1


app = Feed()
