"""Code that blocks, and a WebSocket echo beside it, for tests/e2e/test_sync_handlers_e2e.py.

Served with ``uvicorn tests.helpers.apps.blocking_app:app`` from the repository root.
Each handler prints what it does; *token* tells one request's lines from another's.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

from micropie import App, WebSocket

#: How long the blocking code blocks, in seconds.
BLOCK = 0.5


def say(line: str) -> None:
    print(line, flush=True)


class Blocking(App):
    def sleepy(self, token: str) -> str:
        say(f"asleep {token}")
        time.sleep(BLOCK)  # as a blocking database call would
        say(f"awake {token}")
        return "rested"

    def sleepy_stream(self, token: str) -> Iterator[str]:
        yield "first\n"
        say(f"asleep {token}")
        time.sleep(BLOCK)
        say(f"awake {token}")
        yield "second\n"

    def ticks(self, token: str) -> Iterator[str]:
        """Blocks a little between its chunks; ends only when the client leaves."""
        try:
            for n in itertools.count():
                say(f"step {token} {n}")
                yield f"tick {n}\n"
                time.sleep(0.05)
        finally:
            say(f"finally {token} in {threading.current_thread().name}")

    def fail(self, token: str) -> str:
        say(f"failing {token} in {threading.current_thread().name}")
        raise LookupError(f"row {token} is gone")

    def marker(self, token: str) -> str:
        say(f"marker {token}")
        return "marked"

    async def ws_echo(self, ws: WebSocket) -> None:
        await ws.accept()
        async for text in ws.iter_text():
            say(f"echoed {text}")
            await ws.send_text(text)


app = Blocking()
