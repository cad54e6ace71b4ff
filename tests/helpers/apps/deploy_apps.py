"""Small applications that find out how a server behaves, for the deployment tests.

Served from the repository root, for example with
``uvicorn tests.helpers.apps.deploy_apps:app``. They are not examples: the how-to pages
show what these tests learn with them.
"""

from __future__ import annotations

import asyncio
import os

from micropie import App, ConnectionClosed, WebSocket

#: What the probes saw, by the name the client gave them (``?probe=...``).
OUTCOMES: dict[str, str] = {}
#: How long ``ws_send_after_leave`` keeps sending to a client that left.
SEND_AFTER_LEAVE_SECONDS = 0.5


def describe_close(code: int, reason: str) -> str:
    """A close code and reason as the table on the servers page writes them."""
    return f'{code}, reason "{reason}"' if reason else f"{code}, no reason"


class ServerProbe(App):
    async def ws_returns(self, ws: WebSocket) -> None:
        """Accepts, says one thing, and returns with the socket still open."""
        await ws.accept()
        await ws.send_text("bye")

    async def ws_send_after_leave(self, ws: WebSocket, probe: str) -> None:
        """Says "ready", then keeps sending text and bytes, never reading, after the client left.

        Records under *probe* whether a send raised, and with which close code.
        """
        OUTCOMES[probe] = "open"
        await ws.accept()
        await ws.send_text("ready")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SEND_AFTER_LEAVE_SECONDS
        try:
            while loop.time() < deadline:
                await asyncio.sleep(0.02)
                await ws.send_text("are you there?")
                await ws.send_bytes(b"are you there?")
        except ConnectionClosed as closed:
            OUTCOMES[probe] = f"raises ConnectionClosed, code {closed.code}"
        except Exception as error:
            OUTCOMES[probe] = f"raises {type(error).__name__}: {error}"
            raise
        else:
            OUTCOMES[probe] = "returns without error"

    async def ws_listen(self, ws: WebSocket, probe: str) -> None:
        """Reads until the client leaves; records the close code and reason it saw."""
        OUTCOMES[probe] = "open"
        await ws.accept()
        await ws.send_text("ready")
        try:
            while True:
                await ws.receive_text()
        except ConnectionClosed as closed:
            OUTCOMES[probe] = describe_close(closed.code, closed.reason)
            raise

    async def ws_close_with(self, ws: WebSocket, code: str, reason: str = "") -> None:
        """Accepts, then closes with *code* and *reason* (both from the query string)."""
        await ws.accept()
        await ws.close(int(code), reason)

    async def ws_fail(self, ws: WebSocket) -> None:
        """Accepts, then fails as a buggy handler would."""
        await ws.accept()
        await ws.send_text("about to fail")
        raise RuntimeError("a bug in the handler")

    def start_session(self) -> str:
        """Starts a session over HTTP: the response sets the cookie."""
        self.request.session["started_over"] = "http"
        return "started"

    async def ws_session(self, ws: WebSocket) -> None:
        """Tells the client what its session holds."""
        await ws.accept()
        await ws.send_text(repr(self.request.session))

    async def ws_spec_version(self, ws: WebSocket) -> None:
        """Tells the client which ASGI spec version the server announced, if any."""
        await ws.accept()
        asgi = self.request.scope.get("asgi", {})
        await ws.send_text(asgi.get("spec_version", "not announced"))

    def declared_length(self, pad: str = "") -> tuple[int, str, list[tuple[str, str]]]:
        """Returns "héllo " and *pad*, with its own Content-Length: in characters, not bytes."""
        text = "héllo " + pad
        return 200, text, [("Content-Length", str(len(text)))]

    def outcome(self, probe: str) -> str:
        return OUTCOMES.get(probe, "unknown")

    def pid(self) -> str:
        """The process that answered: with several workers, which one."""
        return str(os.getpid())

    async def ws_pid(self, ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(str(os.getpid()))
        await ws.receive_text()  # stays connected until the client leaves


app = ServerProbe()
