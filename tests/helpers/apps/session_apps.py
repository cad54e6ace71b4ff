"""Applications whose handlers use the session, over HTTP and WebSocket, for the
in-process session tests (tests/unit/test_http_sessions.py, test_session_backends.py),
and the visits those tests pay them."""

from __future__ import annotations

from micropie import App, WebSocket
from micropie.sessions import new_session_id
from micropie.testing import TestClient


class SessionWebApp(App):
    """Logs in and out, counts visits, and reads or renames the user over a WebSocket."""

    # Not named "user": a parameter the session holds is filled from it, and
    # a request that gives it too is refused (so is logging in again).
    def login(self, name: str) -> str:
        self.request.session["user"] = name
        return "welcome"

    def whoami(self) -> str:
        return str(self.request.session.get("user", "anonymous"))

    def visit(self) -> str:
        session = self.request.session
        session["visits"] = session.get("visits", 0) + 1
        return str(session["visits"])

    def logout(self) -> str:
        self.request.session.clear()
        return "bye"

    def plain(self) -> str:
        return "no session here"

    async def ws_whoami(self, ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(str(self.request.session.get("user", "anonymous")))

    async def ws_rename(self, ws: WebSocket, name: str) -> None:
        await ws.accept()
        self.request.session["user"] = name
        self.request.session["renamed_over"] = "websocket"
        await ws.send_text("renamed")


class GuestApp(App):
    """Gives every visitor a guest name, kept in its session, as the chat example
    does: over HTTP (``/``), or at the WebSocket handshake (``/chat``)."""

    def index(self) -> str:
        session = self.request.session
        if "name" not in session:
            session["name"] = f"guest-{new_session_id()[:8]}"
        return str(session["name"])

    def name(self) -> str:
        """Reads only: the name, or ``nobody``."""
        return str(self.request.session.get("name", "nobody"))

    async def ws_chat(self, ws: WebSocket) -> None:
        session = self.request.session
        known = "name" in session  # a returning visitor: its cookie was valid
        if not known:
            session["name"] = f"guest-{new_session_id()[:8]}"
        await ws.accept(session_id=None if known else new_session_id())
        await ws.send_text(session["name"])


def visit_without_cookie(client: TestClient, n: int) -> tuple[str, str]:
    """A visit to a :class:`GuestApp` by a client that sends no cookie: a page
    or a chat handshake in turn; the session ID it was given, and its guest name."""
    client.cookies = {}
    if n % 2:
        name = client.get("/").text
    else:
        with client.websocket_connect("/chat") as ws:
            name = ws.receive_text()
    return client.cookies["session_id"], name
