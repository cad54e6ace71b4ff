"""An application whose handlers use the session, over HTTP and WebSocket, for the
in-process session tests (tests/unit/test_http_sessions.py, test_session_backends.py)."""

from __future__ import annotations

from micropie import App, WebSocket


class SessionWebApp(App):
    """Logs in and out, counts visits, and reads or renames the user over a WebSocket."""

    def login(self, user: str) -> str:
        self.request.session["user"] = user
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

    async def ws_rename(self, ws: WebSocket, user: str) -> None:
        await ws.accept()
        self.request.session["user"] = user
        self.request.session["renamed_over"] = "websocket"
        await ws.send_text("renamed")
