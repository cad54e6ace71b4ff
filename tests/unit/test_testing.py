"""micropie.testing.TestClient itself: the tool every other test leans on."""

from __future__ import annotations

import asyncio

import pytest

from micropie import App, WebSocket
from micropie.testing import TestClient


class Room(App):
    def __init__(self) -> None:
        super().__init__()
        self.members: list[WebSocket] = []

    # Not named "name": once the session holds "name", a request that gives
    # it too (joining again) would be refused with 400.
    def join(self, who: str) -> str:
        self.request.session["name"] = who
        return "joined"

    def leave(self) -> str:
        self.request.session.clear()
        return "left"

    async def ws_room(self, ws: WebSocket) -> None:
        await ws.accept()
        self.members.append(ws)
        while True:
            text = await ws.receive_text()
            for member in self.members:
                await member.send_text(f"{self.request.session.get('name')}: {text}")

    async def ws_slow(self, ws: WebSocket) -> None:
        await ws.accept()
        await ws.receive_text()  # the go-ahead
        await ws.send_text("first")
        await ws.send_text("second")


def test_another_client_has_its_own_cookies_and_meets_the_first_in_one_app() -> None:
    ada = TestClient(Room())
    ada.get("/join/Ada")
    bob = ada.another_client()
    assert bob.cookies == {}
    bob.get("/join/Bob")
    assert bob.cookies["session_id"] != ada.cookies["session_id"]
    with ada.websocket_connect("/room") as a, bob.websocket_connect("/room") as b:
        b.send_text("hi")
        assert a.receive_text() == "Bob: hi"
        assert b.receive_text() == "Bob: hi"
    bob.close()  # the loop belongs to ada: closing bob leaves it running
    assert ada.get("/join/Ada").text == "joined"


def test_a_time_out_loses_no_message() -> None:
    client = TestClient(Room(), timeout=0.2)
    with client.websocket_connect("/slow") as ws:
        with pytest.raises(TimeoutError, match=r"0\.2 seconds"):
            ws.receive_text()  # nothing comes until the go-ahead
        ws.send_text("go")
        assert ws.receive_text() == "first"
        assert ws.receive_text() == "second"


def test_a_cookie_cleared_by_the_application_leaves_the_jar() -> None:
    client = TestClient(Room())
    client.get("/join/Ada")
    assert "session_id" in client.cookies
    client.get("/leave")
    assert "session_id" not in client.cookies


def test_messages_of_the_wrong_type_are_refused_by_the_client_too() -> None:
    with TestClient(Room()).websocket_connect("/room") as ws:
        with pytest.raises(TypeError, match="str"):
            ws.send_text(b"bytes")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="bytes"):
            ws.send_bytes("text")  # type: ignore[arg-type]


def test_the_client_refuses_to_run_inside_a_running_event_loop() -> None:
    client = TestClient(Room())

    async def inside() -> None:
        client.get("/join/Ada")

    with pytest.raises(RuntimeError, match="synchronous"):
        asyncio.run(inside())
