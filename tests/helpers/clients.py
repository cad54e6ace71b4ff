"""Real clients for the end-to-end tests: WebSocket and HTTP, over 127.0.0.1 only.

Every wait is bounded: a message, a handshake or a close that does not come
within :data:`TIMEOUT` seconds fails the test instead of hanging it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin
from websockets.uri import parse_uri

from micropie.broadcast import is_message_id
from tests.helpers.servers import RunningServer

#: Seconds to wait for any one message, handshake or close that must come.
TIMEOUT = 5.0
#: A line of the chat examples: the sender's name, then what they said.
CHAT_LINE = re.compile(r"(guest-\d+): (.*)", re.DOTALL)


def ws_connect(
    url: str,
    *,
    cookie: str | None = None,
    origin: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
    **options: Any,
) -> ClientConnection:
    """``websockets.sync.client.connect``, never through a proxy, with bounded waits.

    Use it in a ``with`` statement. *cookie* is sent as the ``Cookie`` header,
    *origin* as ``Origin``, *headers* as they are; *options* go to ``connect``
    (``ssl``, ``max_size``, ``source_address``...).
    """
    extra = dict(headers or {})
    if cookie is not None:
        extra["Cookie"] = cookie
    return connect(
        url,
        proxy=None,
        origin=Origin(origin) if origin is not None else None,
        additional_headers=extra or None,
        open_timeout=timeout,
        close_timeout=timeout,
        **options,
    )


def receive(ws: ClientConnection, timeout: float = TIMEOUT) -> str | bytes:
    """The next message; ``TimeoutError`` if none comes within *timeout* seconds."""
    return ws.recv(timeout=timeout)


def close_frame_of(ws: ClientConnection, timeout: float = TIMEOUT) -> tuple[int, str]:
    """Wait for the server to close *ws*; return the close code and reason it sent.

    Fails if a message comes instead, or if the TCP connection ends without a close frame.
    """
    with pytest.raises(ConnectionClosed) as closed:
        message = ws.recv(timeout=timeout)
        shown = message if len(message) < 200 else f"{len(message)} characters or bytes"
        pytest.fail(f"expected the server to close, but it sent {shown!r}")
    frame = closed.value.rcvd
    assert frame is not None, "the server closed the TCP connection without a close frame"
    return frame.code, frame.reason


def set_cookies(ws: ClientConnection) -> list[str]:
    """The ``Set-Cookie`` headers of the handshake's response."""
    assert ws.response is not None
    return ws.response.headers.get_all("Set-Cookie")


def session_cookie(ws: ClientConnection) -> tuple[str, list[str]]:
    """The session ID that the handshake set, and the cookie's attributes (one cookie only)."""
    cookies = [c for c in set_cookies(ws) if c.startswith("session_id=")]
    assert len(cookies) == 1, set_cookies(ws)
    pair, *attributes = cookies[0].split("; ")
    return pair.removeprefix("session_id="), attributes


def session_of(ws: ClientConnection) -> str | None:
    """The session ID that the handshake set, if it set one."""
    for cookie in set_cookies(ws):
        if cookie.startswith("session_id="):
            return cookie.split(";")[0].removeprefix("session_id=")
    return None


def chat_name(line: object, text: str) -> str:
    """The sender's name in the chat *line*, which must carry *text*."""
    assert isinstance(line, str), line
    match = CHAT_LINE.fullmatch(line)
    assert match is not None, f"not a chat line: {line!r}"
    assert match.group(2) == text
    return match.group(1)


def chat_joined(ws: ClientConnection, timeout: float = TIMEOUT) -> tuple[str, bool]:
    """The chat example's first frame on a connection: where the client is
    in the room, and whether it missed messages the room no longer keeps."""
    data = json.loads(receive(ws, timeout))
    assert set(data) == {"joined", "gap"} and is_message_id(data["joined"]), data
    assert isinstance(data["gap"], bool), data
    return data["joined"], data["gap"]


def chat_message(frame: str | bytes) -> tuple[str, str]:
    """The id and the line (``name: text``) of a message frame of the chat example."""
    assert isinstance(frame, str), frame
    data = json.loads(frame)
    assert set(data) == {"id", "text"} and is_message_id(data["id"]), data
    return data["id"], data["text"]


def chat_receive(ws: ClientConnection, timeout: float = TIMEOUT) -> str:
    """The next line a chat room sends (``name: text``).

    The room example sends each line as a text frame. The chat example sends
    JSON: :func:`chat_joined`'s frame as a connection starts (passed over
    here), then :func:`chat_message`'s.
    """
    while True:
        frame = receive(ws, timeout)
        assert isinstance(frame, str), frame
        if not frame.startswith("{"):
            return frame
        if '"joined"' in frame:
            data = json.loads(frame)
            assert set(data) == {"joined", "gap"} and is_message_id(data["joined"]), data
            continue
        return chat_message(frame)[1]


def chat_say(ws: ClientConnection, text: str) -> str:
    """Send *text* to a chat room; return the sender's name, read from the echo it gets."""
    ws.send(text)
    return chat_name(chat_receive(ws), text)


def converse(alice: ClientConnection, bob: ClientConnection) -> None:
    """Two members of a chat room talk: each hears the other, signed with the other's name,
    and each message once (a member hears the room in order, so what the other says
    next is the next thing each hears)."""
    alice_name = chat_say(alice, "hi, I am alice")
    assert chat_receive(bob) == f"{alice_name}: hi, I am alice"
    bob_name = chat_say(bob, "hello alice")
    assert chat_receive(alice) == f"{bob_name}: hello alice"
    assert chat_say(alice, "over") == alice_name
    assert chat_receive(bob) == f"{alice_name}: over"
    assert chat_say(bob, "out") == bob_name
    assert chat_receive(alice) == f"{bob_name}: out"


def http_get(
    server: RunningServer, path: str, timeout: float = TIMEOUT
) -> tuple[int, dict[str, str], str]:
    """GET *path* as it is written (no normalising); the status, headers (lower case), body."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, response.read().decode("utf-8")
    finally:
        connection.close()


@contextlib.contextmanager
def raw_websocket(
    server: RunningServer, path: str, *, receive_buffer: int | None = None
) -> Iterator[tuple[socket.socket, ClientProtocol]]:
    """An open WebSocket on a plain socket that the test controls entirely.

    websockets' sans-I/O client does the framing; nothing runs in the background,
    so the test decides when to read, and can drop the TCP connection whenever
    and however it likes. *receive_buffer* sets ``SO_RCVBUF`` (a small one
    makes the server's writes back up sooner).
    """
    protocol = ClientProtocol(parse_uri(f"{server.ws_url}{path}"))
    protocol.send_request(protocol.connect())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.settimeout(TIMEOUT)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"".join(protocol.data_to_send()))
        while protocol.state is State.CONNECTING:
            data = sock.recv(65536)
            assert data, "the server closed the connection during the handshake"
            protocol.receive_data(data)
        assert protocol.handshake_exc is None, protocol.handshake_exc
        assert protocol.state is State.OPEN
        yield sock, protocol
    finally:
        sock.close()


def reset_connection(sock: socket.socket) -> None:
    """Drop the TCP connection with a RST: no close frame, no FIN."""
    if sock.fileno() == -1:
        return  # closed already
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
