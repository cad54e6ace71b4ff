"""The benchmark application written for the ``micropie`` release on PyPI.

That release is another project under the same name, with its own API: it
runs from its own virtual environment (benchmarks/.venvs/pypi-micropie).
There, the App gives every WebSocket visitor without a session cookie a new
session ID, and ``accept()`` sends it as the ``session_id`` cookie; a
``ConnectionClosed`` raised out of a handler is the connection's normal end.
"""

from __future__ import annotations

from typing import Any

from micropie import App


class Bench(App):
    async def ws_text(self, ws: Any) -> None:
        await ws.accept()
        while True:
            await ws.send_text(await ws.receive_text())

    async def ws_bytes(self, ws: Any) -> None:
        await ws.accept()
        while True:
            await ws.send_bytes(await ws.receive_bytes())

    async def ws_session(self, ws: Any) -> None:
        await ws.accept()  # sends the session_id cookie the App made for this visitor
        await ws.send_text(await ws.receive_text())
        await ws.close()

    async def json(self) -> dict[str, Any]:
        return {"message": "Hello, World!"}


app = Bench()
