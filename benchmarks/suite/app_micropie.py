"""The benchmark application written with this repository's MicroPie."""

from __future__ import annotations

from typing import Any

from micropie import App, WebSocket
from micropie.sessions import new_session_id


class Bench(App):
    async def ws_text(self, ws: WebSocket) -> None:
        await ws.accept()
        # Ends when the client leaves: receive_text() raises ConnectionClosed,
        # which the App takes as the handler's normal end.
        while True:
            await ws.send_text(await ws.receive_text())

    async def ws_bytes(self, ws: WebSocket) -> None:
        await ws.accept()
        while True:
            await ws.send_bytes(await ws.receive_bytes())

    async def ws_session(self, ws: WebSocket) -> None:
        await ws.accept(session_id=new_session_id())  # sets the session_id cookie
        await ws.send_text(await ws.receive_text())
        await ws.close()

    async def json(self) -> dict[str, Any]:
        return {"message": "Hello, World!"}


app = Bench()
