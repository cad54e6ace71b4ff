"""The applications of tests/e2e/test_allowed_hosts_e2e.py: something worth
stealing from a local service (a page and a WebSocket), served with and
without ``App.allowed_hosts``.

Served as ``tests.helpers.apps.host_apps:open_to_any_host`` and ``...:local_only``.
"""

from __future__ import annotations

from micropie import App, WebSocket

#: What ``/secret`` answers: what a rebound page is after.
SECRET = "the router's admin password"
#: The names the local service is reached by.
LOCAL_NAMES = ["localhost", "127.0.0.1", "[::1]"]


class Router(App):
    """A service on 127.0.0.1 that trusts everything that can reach it."""

    def secret(self) -> str:
        return SECRET

    async def ws_echo(self, ws: WebSocket) -> None:
        await ws.accept()
        async for text in ws.iter_text():
            await ws.send_text(text)


#: As every App is unless told otherwise: any Host.
open_to_any_host = Router()
#: Reached by its local names only.
local_only = Router(allowed_hosts=LOCAL_NAMES)
