"""Handlers whose ends the end-to-end tests watch from a real client (they return,
fail, close with a code of their own); tests/unit/test_app.py drives them in process.

Served with ``uvicorn tests.helpers.apps.e2e_apps:app`` from the repository root.
"""

from micropie import App, WebSocket

#: Raised by ``ws_fail``; the client must never see this text.
SECRET_ERROR_TEXT = "do-not-leak: database password is hunter2"
CUSTOM_CLOSE_CODE = 4000
CUSTOM_CLOSE_REASON = "room closed by the moderator"


class E2EApp(App):
    async def ws_returns(self, ws: WebSocket) -> None:
        """Accepts, says one thing, and returns with the socket still open."""
        await ws.accept()
        await ws.send_text("bye")

    async def ws_fail(self, ws: WebSocket) -> None:
        """Accepts, then fails as a buggy handler would."""
        await ws.accept()
        await ws.send_text("about to fail")
        raise RuntimeError(SECRET_ERROR_TEXT)

    async def ws_custom_close(self, ws: WebSocket) -> None:
        """Closes with an application close code and a reason."""
        await ws.accept()
        await ws.close(CUSTOM_CLOSE_CODE, CUSTOM_CLOSE_REASON)


app = E2EApp()
