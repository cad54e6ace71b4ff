"""Servers older than ASGI 2.4 (hypercorn, granian, daphne) drop a send to a
client that has left, silently: the WebSocket finds out by itself, within a
few sends, and without a task per message for a handler that reads.

The server here is such a server, in memory: its receive() waits for the
next message, its send() yields to the loop as a real one does, and once
the client has left it drops every send and answers the disconnect.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from micropie import ConnectionClosed, WebSocket
from micropie.websocket import _Handshake
from tests.helpers.asgi import CONNECT, disconnect, text_frame


class SilentServer:
    def __init__(self) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.incoming.put_nowait(CONNECT)
        self.delivered: list[Any] = []
        self.left = False
        self.tasks_seen: set[int] = set()

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.tasks_seen.add(len(asyncio.all_tasks()))
        await asyncio.sleep(0)
        if not self.left and message["type"] == "websocket.send":
            self.delivered.append(message.get("text", message.get("bytes")))

    def client_says(self, text: str) -> None:
        self.incoming.put_nowait(text_frame(text))

    def client_leaves(self, code: int = 1001) -> None:
        self.left = True
        self.incoming.put_nowait(disconnect(code))

    async def websocket(self) -> WebSocket:
        ws = WebSocket._for_handshake(self.receive, self.send, _Handshake(), watch_sends=True)
        await ws.accept()
        return ws


async def sends_until_closed(ws: WebSocket, limit: int = 10) -> tuple[int, int]:
    """Send until a send raises ConnectionClosed: how many sends it took, and the code."""
    for number in range(1, limit + 1):
        try:
            await ws.send_text(f"are you there? {number}")
        except ConnectionClosed as closed:
            return number, closed.code
    pytest.fail(f"{limit} sends to a client that left, and none raised")


def test_a_handler_that_only_sends_learns_that_the_client_left_within_two_sends() -> None:
    async def scenario() -> tuple[int, int]:
        server = SilentServer()
        ws = await server.websocket()
        await ws.send_text("news")
        server.client_leaves(1001)
        return await sends_until_closed(ws)

    # The first send may go out before the pending receive has seen the
    # disconnect; the next one raises, with the client's own code.
    sends, code = asyncio.run(scenario())
    assert sends <= 2 and code == 1001


def test_a_handler_that_read_last_learns_it_within_three_sends() -> None:
    async def scenario() -> tuple[int, int]:
        server = SilentServer()
        ws = await server.websocket()
        server.client_says("hello")
        assert await ws.receive_text() == "hello"
        server.client_leaves(1000)
        return await sends_until_closed(ws)

    sends, code = asyncio.run(scenario())
    assert sends <= 3 and code == 1000


def test_an_echo_starts_no_task_and_learns_of_the_departure_from_its_receive() -> None:
    async def scenario() -> tuple[set[int], list[Any], int]:
        server = SilentServer()
        ws = await server.websocket()
        for number in range(50):
            server.client_says(f"message {number}")
            await ws.send_text(await ws.receive_text())
        server.client_leaves(4001)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.receive_text()
        return server.tasks_seen, server.delivered, closed.value.code

    tasks_seen, delivered, code = asyncio.run(scenario())
    assert tasks_seen == {1}  # only the handler's own task, at every send
    assert delivered == [f"message {number}" for number in range(50)]
    assert code == 4001


def test_messages_that_arrive_while_a_handler_sends_reach_its_receive_in_order() -> None:
    async def scenario() -> list[str]:
        server = SilentServer()
        ws = await server.websocket()
        await ws.send_text("one")
        await ws.send_text("two")  # a receive is pending now, watching for a departure
        for text in ("first", "second", "third"):
            server.client_says(text)
        await ws.send_text("three")
        return [await ws.receive_text() for _ in range(3)]

    assert asyncio.run(scenario()) == ["first", "second", "third"]


def test_a_handler_that_only_sends_learns_it_even_after_its_client_spoke() -> None:
    """The client says something the handler never reads, then leaves: the
    message is kept, and the watch goes on after it."""

    async def scenario() -> tuple[int, int]:
        server = SilentServer()
        ws = await server.websocket()
        await ws.send_text("news")
        server.client_says("thanks")
        for number in range(3):
            await ws.send_text(f"more news {number}")
        server.client_leaves(1001)
        return await sends_until_closed(ws)

    sends, code = asyncio.run(scenario())
    assert sends <= 2 and code == 1001


def test_what_the_client_said_while_the_handler_sent_comes_in_order() -> None:
    async def scenario() -> list[str]:
        server = SilentServer()
        ws = await server.websocket()
        for number in range(10):
            if number < 5:
                server.client_says(f"said {number}")
            await ws.send_text(f"sent {number}")
        server.client_says("said last")
        return [await ws.receive_text() for _ in range(6)]

    assert asyncio.run(scenario()) == [*(f"said {n}" for n in range(5)), "said last"]


class LastWaiterServer(SilentServer):
    """A server that hands each message to the receive() that asked last
    (servers owe no order among concurrent receives)."""

    def __init__(self) -> None:
        super().__init__()
        self.waiters: list[asyncio.Future[dict[str, Any]]] = []

    async def receive(self) -> dict[str, Any]:
        if not self.incoming.empty():
            return self.incoming.get_nowait()
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        return await waiter

    def client_says(self, text: str) -> None:
        self.waiters.pop().set_result(text_frame(text))


def test_a_handler_reading_while_another_task_sends_gets_every_message() -> None:
    """The chat's shape: one task reads the client, another relays the room
    to it. No second receive competes with the reader's."""

    async def scenario() -> tuple[str, int]:
        server = LastWaiterServer()
        ws = await server.websocket()
        reading = asyncio.create_task(ws.receive_text())
        await asyncio.sleep(0)  # the reader waits now
        for number in range(5):  # the relay sends
            await ws.send_text(f"room line {number}")
        waiting = len(server.waiters)
        server.client_says("hello room")
        return await asyncio.wait_for(reading, 1), waiting

    heard, waiting = asyncio.run(scenario())
    assert heard == "hello room"
    assert waiting == 1  # the reader's receive only


def test_a_handler_whose_receive_timed_out_still_learns_it_when_it_only_sends() -> None:
    async def scenario() -> tuple[int, int]:
        server = SilentServer()
        ws = await server.websocket()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.receive_text(), 0.01)  # nothing came: it sends instead
        await ws.send_text("news")
        server.client_leaves(1001)
        return await sends_until_closed(ws)

    # A receive that ended by cancellation is over too: the sends watch again.
    sends, code = asyncio.run(scenario())
    assert sends <= 3 and code == 1001
