"""The end-to-end load: picows clients (a compiled WebSocket client) in a process of
their own, so that they, not the server, have time to spare.

``python load.py '{"url": "ws://127.0.0.1:8000", "kind": "echo", "clients": 50,
"messages": 2000}'`` connects and warms up, prints ``ready``, waits for a line on its
standard input (the caller reads the server's CPU time meanwhile), runs, and prints one
line of JSON: how many operations, the seconds they took, and its CPU time over them.

* ``echo``: *clients* connections to ``/text``, each echoing *messages* text messages
  one at a time, every reply checked;
* ``handshake``: *clients* loops, each opening ``/session`` *messages* times: the
  handshake (the session cookie checked, unless *cookie* is false: granian drops it),
  one message echoed, the server's close.
"""

import asyncio
import functools
import json
import sys
import time
from typing import Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

PAYLOAD = b"The quick brown fox jumps over 1"


class Failed(AssertionError):
    pass


class Echoer(WSListener):  # type: ignore[misc]
    """One connection echoing its messages: each reply sends the next message."""

    def __init__(self, messages: int) -> None:
        self.left = messages
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def start(self, transport: WSTransport) -> None:
        transport.send(WSMsgType.TEXT, PAYLOAD)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            if not self.done.done():
                self.done.set_exception(Failed("the server closed the connection"))
            return
        if frame.get_payload_as_bytes() != PAYLOAD:
            if not self.done.done():
                self.done.set_exception(Failed(f"a wrong echo: {frame.get_payload_as_bytes()!r}"))
            return
        self.left -= 1
        if self.left:
            transport.send(WSMsgType.TEXT, PAYLOAD)
        elif not self.done.done():
            self.done.set_result(None)


class Visitor(WSListener):  # type: ignore[misc]
    """One handshake: the cookie checked, one message echoed, then the server's close."""

    def __init__(self) -> None:
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport: WSTransport) -> None:
        transport.send(WSMsgType.TEXT, PAYLOAD)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT and frame.get_payload_as_bytes() != PAYLOAD:
            self.fail(f"a wrong echo: {frame.get_payload_as_bytes()!r}")
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close()
            transport.disconnect()
            if not self.done.done():
                self.done.set_result(None)

    def fail(self, problem: str) -> None:
        if not self.done.done():
            self.done.set_exception(Failed(problem))


async def echo(url: str, clients: int, messages: int) -> tuple[int, float, float]:
    async def rounds(count: int) -> list[tuple[WSTransport, Echoer]]:
        listeners = []
        for _ in range(clients):
            transport, listener = await ws_connect(lambda: Echoer(count), url + "/text")
            listeners.append((transport, listener))
        return listeners

    async def run(listeners: list[tuple[WSTransport, Echoer]]) -> None:
        for transport, listener in listeners:
            listener.start(transport)
        await asyncio.wait_for(asyncio.gather(*(listener.done for _, listener in listeners)), 600)
        for transport, _ in listeners:
            transport.send_close()
            transport.disconnect()

    await run(await rounds(20))  # the warm-up
    listeners = await rounds(messages)
    started = await ready()
    await run(listeners)
    return clients * messages, *started


async def handshakes(
    url: str, clients: int, messages: int, cookie: bool = True
) -> tuple[int, float, float]:
    async def visits(count: int) -> None:
        for _ in range(count):
            transport, listener = await ws_connect(Visitor, url + "/session")
            given = transport.response.headers.get("set-cookie", "")
            if cookie and not str(given).startswith("session_id="):
                raise Failed(f"no session cookie in the handshake: {given!r}")
            await asyncio.wait_for(listener.done, 60)
            await transport.wait_disconnected()

    await asyncio.gather(*(visits(10) for _ in range(clients)))  # the warm-up
    started = await ready()
    await asyncio.gather(*(visits(messages) for _ in range(clients)))
    return clients * messages, *started


async def ready() -> tuple[float, float]:
    """Say so, wait for the caller's word, and start the clocks."""
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return time.perf_counter(), time.process_time()


def main(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["kind"] == "echo":
        run = echo
    else:
        run = functools.partial(handshakes, cookie=spec.get("cookie", True))
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        operations, wall, cpu = runner.run(run(spec["url"], spec["clients"], spec["messages"]))
        seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    return {"operations": operations, "seconds": seconds, "client_cpu_seconds": cpu_seconds}


if __name__ == "__main__":
    try:
        print(json.dumps(main(json.loads(sys.argv[1]))))
    except Failed as exc:
        print(json.dumps({"error": str(exc)}))
        raise SystemExit(1) from None
