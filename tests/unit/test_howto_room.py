"""The chat room of examples/room/app.py, shown by the proxy, workers and Redis how-tos, in process.

Under real servers (uvicorn with workers, nginx, Redis) it is tested by
tests/e2e/test_workers.py, tests/e2e/test_proxy.py, tests/e2e/test_redis_e2e.py
and tests/e2e/test_howto_room_e2e.py.
"""

from __future__ import annotations

import re

import pytest

from examples.room.app import ROOM, ChatRoom
from micropie import ConnectionClosed, WebSocket
from micropie.broadcast import Broadcast, Subscription
from micropie.testing import TestClient, WebSocketRejected
from tests.helpers.clients import chat_name


def name_in(line: str, text: str) -> str:
    """The guest name (``guest-`` and four digits) that signs *line*, which carries *text*."""
    name = chat_name(line, text)
    assert re.fullmatch(r"guest-\d{4}", name), name
    return name


def test_the_page_opens_the_websocket() -> None:
    with TestClient(ChatRoom()) as client:
        response = client.get("/")
    assert response.status_code == 200
    assert "new WebSocket(" in response.text
    assert 'location.host + "/chat"' in response.text


def test_every_member_hears_every_message_signed_with_a_guest_name() -> None:
    with TestClient(ChatRoom()) as first:
        second = first.another_client()
        with first.websocket_connect("/chat") as ada, second.websocket_connect("/chat") as bob:
            ada.send_text("hello")
            ada_name = name_in(bob.receive_text(), "hello")
            assert ada.receive_text() == f"{ada_name}: hello"
            bob.send_text("<b>hi</b>")
            bob_name = name_in(ada.receive_text(), "<b>hi</b>")
            assert bob.receive_text() == f"{bob_name}: <b>hi</b>"
        assert first.cookies["session_id"] != second.cookies["session_id"]


def test_the_session_keeps_the_name_and_sets_no_new_cookie() -> None:
    with TestClient(ChatRoom()) as client:
        with client.websocket_connect("/chat") as ws:
            assert b"set-cookie" in [name.lower() for name, _ in ws.response_headers]
            ws.send_text("first")
            name = name_in(ws.receive_text(), "first")
        with client.websocket_connect("/chat") as ws:
            assert b"set-cookie" not in [name.lower() for name, _ in ws.response_headers]
            ws.send_text("again")
            assert ws.receive_text() == f"{name}: again"


def test_a_binary_message_closes_with_1003() -> None:
    with TestClient(ChatRoom()) as client, client.websocket_connect("/chat") as ws:
        ws.send_bytes(b"\x00")
        with pytest.raises(ConnectionClosed) as closed:
            ws.receive_text()
    assert (closed.value.code, closed.value.reason) == (1003, "text messages only")


def test_settings_go_to_app_so_the_room_answers_only_its_hosts() -> None:
    """docs/source/howto/proxy.rst: ``ChatRoom(..., allowed_hosts=["chat.example.com"])``."""
    app = ChatRoom(None, allowed_hosts=["chat.example.com"])
    assert app.allowed_hosts == {"chat.example.com"}
    with TestClient(app) as client:
        assert client.get("/", headers={"Host": "chat.example.com:8443"}).status_code == 200
        assert client.get("/", headers={"Host": "attacker.example"}).status_code == 400
        attacker = {"Host": "attacker.example"}
        with (
            pytest.raises(WebSocketRejected) as rejected,
            client.websocket_connect("/chat", headers=attacker),
        ):
            pass
    assert rejected.value.status_code == 403


class FloodedRoom(ChatRoom):
    """The room, with more published at once than a member's queue holds."""

    async def _relay(self, room: Subscription, ws: WebSocket) -> None:
        # Before the relay reads anything, its subscription overflows.
        for number in range(3):
            await self.broadcast.publish(ROOM, f"flood {number}")
        await super()._relay(room, ws)


def test_a_member_too_far_behind_is_closed_with_1013() -> None:
    app = FloodedRoom()
    app.broadcast = Broadcast(max_queue=2)
    with TestClient(app) as client, client.websocket_connect("/chat") as ws:
        heard = [ws.receive_text(), ws.receive_text()]  # what was queued is still delivered
        with pytest.raises(ConnectionClosed) as closed:
            ws.receive_text()
    assert heard == ["flood 0", "flood 1"]
    assert (closed.value.code, closed.value.reason) == (1013, "missed messages; reconnect")
