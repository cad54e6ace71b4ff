"""WebSocket states under concurrency and server quirks: no lost message, no broken protocol."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from micropie import ConnectionClosed, WebSocket
from micropie.websocket import _Handshake
from tests.helpers.asgi import CONNECT, Peer, disconnect, opened, run, text_frame


class GatedPeer(Peer):
    """A peer whose ``receive`` waits until the test opens the gate."""

    def __init__(self, *incoming: dict[str, Any]) -> None:
        super().__init__(*incoming)
        self.gate = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.gate.wait()
        return await super().receive()


def test_a_second_concurrent_accept_fails_at_once_and_loses_no_message() -> None:
    peer = GatedPeer(CONNECT, text_frame("kept"))

    async def scenario() -> str:
        ws = peer.websocket()
        first = asyncio.create_task(ws.accept())
        await asyncio.sleep(0)  # the first accept() is now waiting for the client
        with pytest.raises(RuntimeError, match="accept"):
            await ws.accept()
        peer.gate.set()
        await first
        return await ws.receive_text()

    assert run(scenario()) == "kept"
    assert [m["type"] for m in peer.sent] == ["websocket.accept"]


def test_close_while_accept_waits_never_sends_accept_after_close() -> None:
    peer = GatedPeer(CONNECT)

    async def scenario() -> WebSocket:
        ws = peer.websocket()
        accepting = asyncio.create_task(ws.accept())
        await asyncio.sleep(0)
        await ws.close()
        peer.gate.set()
        with pytest.raises(RuntimeError, match="closed while accept"):
            await accepting
        return ws

    ws = run(scenario())
    assert [m["type"] for m in peer.sent] == ["websocket.close"]
    assert ws.accepted is False


def test_server_echoing_the_apps_close_keeps_sends_a_runtime_error() -> None:
    # uvicorn's wsproto back-end hands a waiting reader a disconnect carrying
    # the application's own close code; the socket is still closed by the app.
    peer = GatedPeer(CONNECT, disconnect(4000, "done"))

    async def scenario() -> None:
        ws = peer.websocket()
        peer.gate.set()
        await ws.accept()
        peer.gate.clear()
        reader = asyncio.create_task(ws.receive_text())
        await asyncio.sleep(0)  # the reader now waits for the server
        await ws.close(4000, "done")
        peer.gate.set()
        with pytest.raises(ConnectionClosed) as info:
            await reader
        assert info.value.code == 4000
        with pytest.raises(RuntimeError, match="closed"):
            await ws.send_text("after my own close")

    run(scenario())


def test_receive_with_neither_text_nor_bytes_is_a_clear_runtime_error() -> None:
    peer = Peer(CONNECT, {"type": "websocket.receive", "text": None, "bytes": None})

    async def scenario() -> None:
        ws = await opened(peer)
        with pytest.raises(RuntimeError, match="neither text nor bytes"):
            await ws.receive_text()

    run(scenario())


def test_unexpected_message_type_while_receiving_is_a_runtime_error() -> None:
    peer = Peer(CONNECT, {"type": "websocket.connect"})

    async def scenario() -> None:
        ws = await opened(peer)
        with pytest.raises(RuntimeError, match=r"unexpected ASGI message 'websocket\.connect'"):
            await ws.receive_bytes()

    run(scenario())


class RefusingPeer(Peer):
    """daphne's way: a bare Exception for close codes it will not send."""

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.close" and message["code"] not in (1000, 4000):
            raise Exception(f"invalid close code {message['code']}")  # what daphne raises
        await super().send(message)


def test_a_refused_close_code_falls_back_to_1000_and_a_refused_1000_raises() -> None:
    peer = RefusingPeer(CONNECT)

    async def scenario() -> None:
        ws = await opened(peer)
        await ws.close(1003, "text only")
        with pytest.raises(RuntimeError, match="closed"):
            await ws.send_text("after close")

    run(scenario())
    assert [(m["type"], m.get("code")) for m in peer.sent] == [
        ("websocket.accept", None),
        ("websocket.close", 1000),
    ]


def test_on_an_asgi_2_0_server_accept_sets_no_cookie_and_starts_no_session() -> None:
    peer = Peer(CONNECT)
    started: list[str] = []

    async def start(session_id: str) -> None:
        started.append(session_id)

    async def scenario() -> WebSocket:
        handshake = _Handshake(subprotocols=[], on_session_start=start, accept_headers=False)
        ws = WebSocket._for_handshake(peer.receive, peer.send, handshake, watch_sends=False)
        await ws.accept(session_id="abc")
        return ws

    ws = run(scenario())
    assert peer.sent[0]["headers"] == []
    assert ws.session_id is None and started == []
