"""A handler that takes who is asking as parameters, which the session fills (as
MicroPie 0.x apps do), for tests/e2e/test_session_binding_e2e.py."""

from __future__ import annotations

from typing import Any

from micropie import App, WebSocket


class Guarded(App):
    def login(self) -> str:
        self.request.session.update(user="alice", is_admin=False)
        return "logged in"

    def admin(self, user: str = "anonymous", is_admin: Any = False) -> dict[str, Any]:
        return {"user": user, "is_admin": is_admin}

    async def ws_admin(self, ws: WebSocket, user: str = "anonymous", is_admin: Any = False) -> None:
        await ws.accept()
        await ws.send_text(f"{user} {is_admin}")


app = Guarded()
