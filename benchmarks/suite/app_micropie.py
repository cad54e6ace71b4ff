"""The benchmark application written with MicroPie: this repository's, or the PyPI release
(another project of that name, in benchmarks/.venvs/pypi-micropie). Here the handler gives
``accept()`` a new session ID for the cookie; there the App gives one to every visitor.
"""

from typing import Any

from micropie import App

try:
    from micropie.sessions import new_session_id

    def _session() -> dict[str, Any]:
        return {"session_id": new_session_id()}
except ImportError:  # the PyPI release: micropie is a module, not a package

    def _session() -> dict[str, Any]:
        return {}


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
        await ws.accept(**_session())
        await ws.send_text(await ws.receive_text())
        await ws.close()

    async def json(self) -> dict[str, Any]:
        return {"message": "Hello, World!"}

    def json_sync(self) -> dict[str, Any]:
        return {"message": "Hello, World!"}


app = Bench()
