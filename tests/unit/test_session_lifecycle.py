"""Sessions shared by a long-lived WebSocket and HTTP requests made meanwhile."""

from __future__ import annotations

import asyncio

from micropie import App, WebSocket
from micropie.testing import TestClient


class Site(App):
    def login(self, user: str) -> str:
        self.request.renew_session()
        self.request.session["user"] = user
        return "in"

    def logout(self) -> str:
        self.request.session.clear()
        return "out"

    def theme(self, name: str) -> str:
        self.request.session["theme"] = name
        return "set"

    def me(self) -> dict[str, object]:
        return dict(self.request.session)

    async def ws_counter(self, ws: WebSocket) -> None:
        await ws.accept()
        self.request.session["clicks"] = 0
        while True:
            await ws.receive_text()
            self.request.session["clicks"] += 1
            await ws.send_text(str(self.request.session["clicks"]))


def test_a_logout_during_a_websocket_is_not_undone_when_it_ends() -> None:
    app = Site()
    client = TestClient(app)
    client.get("/login/ada")
    old_cookie = client.cookies["session_id"]
    with client.websocket_connect("/counter") as ws:
        ws.send_text("click")
        assert ws.receive_text() == "1"
        assert client.get("/logout").text == "out"
    assert asyncio.run(app.session_backend.load(old_cookie)) is None
    client.cookies["session_id"] = old_cookie  # an attacker replaying the old cookie
    assert client.get("/me").text == "{}"


def test_changes_made_over_http_meanwhile_survive_the_websockets_own() -> None:
    client = TestClient(Site())
    client.get("/login/ada")
    with client.websocket_connect("/counter") as ws:
        client.get("/theme/dark")
        ws.send_text("click")
        assert ws.receive_text() == "1"
    session = client.get("/me").text
    assert '"theme":"dark"' in session and '"clicks":1' in session and '"user":"ada"' in session


def test_renew_session_moves_the_session_to_a_new_id_and_retires_the_old() -> None:
    app = Site()
    client = TestClient(app)
    client.get("/theme/light")  # a session exists before the login
    before = client.cookies["session_id"]
    client.get("/login/ada")
    after = client.cookies["session_id"]
    assert after != before
    assert asyncio.run(app.session_backend.load(before)) is None
    assert asyncio.run(app.session_backend.load(after)) == {"theme": "light", "user": "ada"}


def test_renew_session_without_a_session_just_starts_one() -> None:
    client = TestClient(Site())
    client.get("/login/ada")
    assert client.get("/me").text == '{"user":"ada"}'
