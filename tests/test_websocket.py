"""The WebSocket class, driven directly through scripted ASGI ``receive``/``send``."""

from __future__ import annotations

import asyncio
import enum
from typing import Any

import pytest

from micropie import ConnectionClosed, MessageTypeError, WebSocket
from micropie.testing import ClientDisconnected

CONNECT = {"type": "websocket.connect"}


def text_frame(data: str | None, **extra: Any) -> dict[str, Any]:
    return {"type": "websocket.receive", "text": data, **extra}


def binary_frame(data: bytes | None, **extra: Any) -> dict[str, Any]:
    return {"type": "websocket.receive", "bytes": data, **extra}


def disconnect(code: int = 1000, reason: str = "") -> dict[str, Any]:
    return {"type": "websocket.disconnect", "code": code, "reason": reason}


class Peer:
    """The ASGI server side: hands out scripted messages and records what is sent.

    While *send_error* is set, ``send`` raises it instead of recording the message.
    """

    def __init__(self, *incoming: dict[str, Any], send_error: OSError | None = None) -> None:
        self.incoming = list(incoming)
        self.sent: list[dict[str, Any]] = []
        self.receive_calls = 0
        self.send_calls = 0
        self.send_error = send_error

    async def receive(self) -> dict[str, Any]:
        self.receive_calls += 1
        if not self.incoming:
            raise AssertionError("the WebSocket read more messages than the test scripted")
        return self.incoming.pop(0)

    async def send(self, message: dict[str, Any]) -> None:
        self.send_calls += 1
        if self.send_error is not None:
            raise self.send_error
        self.sent.append(message)

    def websocket(self) -> WebSocket:
        return WebSocket(self.receive, self.send)


async def opened(peer: Peer) -> WebSocket:
    """A WebSocket on *peer* that has been accepted (the peer must script CONNECT first)."""
    ws = peer.websocket()
    await ws.accept()
    return ws


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


# accept()


def test_accept_sends_accept_message_with_subprotocol() -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = peer.websocket()
        await ws.accept(subprotocol="chat.v1")

    run(scenario())
    assert len(peer.sent) == 1
    message = peer.sent[0]
    assert message["type"] == "websocket.accept"
    assert message["subprotocol"] == "chat.v1"
    assert list(message.get("headers", [])) == []


def test_accept_without_subprotocol_sends_none() -> None:
    peer = Peer(CONNECT)
    run(opened(peer))
    assert peer.sent[0]["type"] == "websocket.accept"
    assert peer.sent[0].get("subprotocol") is None


def test_accept_with_session_id_sends_set_cookie_and_sets_attribute() -> None:
    peer = Peer(CONNECT)

    async def scenario() -> WebSocket:
        ws = peer.websocket()
        assert ws.session_id is None
        await ws.accept(session_id="abc-123_XYZ")
        return ws

    ws = run(scenario())
    assert ws.session_id == "abc-123_XYZ"
    headers = [tuple(pair) for pair in peer.sent[0]["headers"]]
    assert headers == [(b"set-cookie", b"session_id=abc-123_XYZ; Path=/; HttpOnly; SameSite=Lax")]


def test_accepted_is_false_before_and_true_after_accept() -> None:
    peer = Peer(CONNECT)
    seen: list[bool] = []

    async def scenario() -> None:
        ws = peer.websocket()
        seen.append(ws.accepted)
        await ws.accept()
        seen.append(ws.accepted)

    run(scenario())
    assert seen == [False, True]


def test_accept_twice_raises_runtime_error() -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = await opened(peer)
        with pytest.raises(RuntimeError):
            await ws.accept()

    run(scenario())
    assert [m["type"] for m in peer.sent] == ["websocket.accept"]
    assert peer.receive_calls == 1


def test_accept_when_client_already_disconnected_raises_connection_closed() -> None:
    peer = Peer(disconnect(1001, "gone"))

    async def scenario() -> WebSocket:
        ws = peer.websocket()
        with pytest.raises(ConnectionClosed) as info:
            await ws.accept()
        assert info.value.code == 1001
        assert info.value.reason == "gone"
        return ws

    ws = run(scenario())
    assert ws.accepted is False
    assert peer.sent == []


def test_accept_when_send_raises_oserror_raises_connection_closed() -> None:
    peer = Peer(CONNECT, send_error=ClientDisconnected("client left"))

    async def scenario() -> WebSocket:
        ws = peer.websocket()
        with pytest.raises(ConnectionClosed):
            await ws.accept()
        return ws

    ws = run(scenario())
    assert peer.send_calls == 1
    assert ws.accepted is False


def test_accept_with_non_str_session_id_raises_type_error() -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = peer.websocket()
        with pytest.raises(TypeError):
            await ws.accept(session_id=12345)  # type: ignore[arg-type]

    run(scenario())
    assert peer.sent == []


@pytest.mark.parametrize("bad_id", ["a;b", "a b", "id\r\nSet-Cookie: evil=1", "a,b", ""])
def test_accept_with_invalid_session_id_raises_value_error(bad_id: str) -> None:
    peer = Peer(CONNECT)

    async def scenario() -> WebSocket:
        ws = peer.websocket()
        with pytest.raises(ValueError):
            await ws.accept(session_id=bad_id)
        return ws

    ws = run(scenario())
    assert peer.sent == []
    assert ws.accepted is False


# receive_text() / receive_bytes()


def test_receive_text_returns_str() -> None:
    peer = Peer(CONNECT, text_frame("héllo"))

    async def scenario() -> str:
        ws = await opened(peer)
        return await ws.receive_text()

    result = run(scenario())
    assert result == "héllo"
    assert type(result) is str


def test_receive_text_returns_empty_text_frame_as_empty_str() -> None:
    peer = Peer(CONNECT, text_frame(""))

    async def scenario() -> str:
        ws = await opened(peer)
        return await ws.receive_text()

    result = run(scenario())
    assert result == ""
    assert type(result) is str


def test_receive_text_accepts_empty_text_with_bytes_key_none() -> None:
    peer = Peer(CONNECT, text_frame("", bytes=None))

    async def scenario() -> str:
        ws = await opened(peer)
        return await ws.receive_text()

    result = run(scenario())
    assert result == ""
    assert type(result) is str


def test_receive_text_with_hypercorn_style_message() -> None:
    peer = Peer(CONNECT, {"type": "websocket.receive", "text": "hi", "bytes": None})

    async def scenario() -> str:
        ws = await opened(peer)
        return await ws.receive_text()

    assert run(scenario()) == "hi"


def test_receive_bytes_with_hypercorn_style_message() -> None:
    peer = Peer(CONNECT, {"type": "websocket.receive", "text": None, "bytes": b"x"})

    async def scenario() -> bytes:
        ws = await opened(peer)
        return await ws.receive_bytes()

    result = run(scenario())
    assert result == b"x"
    assert type(result) is bytes


def test_receive_bytes_returns_bytes() -> None:
    peer = Peer(CONNECT, binary_frame(b"\x00\xffdata"))

    async def scenario() -> bytes:
        ws = await opened(peer)
        return await ws.receive_bytes()

    result = run(scenario())
    assert result == b"\x00\xffdata"
    assert type(result) is bytes


def test_receive_bytes_returns_empty_binary_frame_as_empty_bytes() -> None:
    hypercorn_style = {"type": "websocket.receive", "text": None, "bytes": b""}
    peer = Peer(CONNECT, binary_frame(b""), hypercorn_style)

    async def scenario() -> list[bytes]:
        ws = await opened(peer)
        return [await ws.receive_bytes(), await ws.receive_bytes()]

    results = run(scenario())
    assert results == [b"", b""]
    assert all(type(r) is bytes for r in results)


def test_receive_text_on_binary_message_raises_message_type_error() -> None:
    peer = Peer(CONNECT, binary_frame(b"\x01\x02"))

    async def scenario() -> None:
        ws = await opened(peer)
        with pytest.raises(ValueError) as info:
            await ws.receive_text()
        assert isinstance(info.value, MessageTypeError)
        assert info.value.data == b"\x01\x02"

    run(scenario())


def test_receive_bytes_on_text_message_raises_message_type_error() -> None:
    peer = Peer(CONNECT, text_frame("not binary"))

    async def scenario() -> None:
        ws = await opened(peer)
        with pytest.raises(ValueError) as info:
            await ws.receive_bytes()
        assert isinstance(info.value, MessageTypeError)
        assert info.value.data == "not binary"

    run(scenario())


def test_message_type_error_does_not_close_the_connection() -> None:
    peer = Peer(CONNECT, binary_frame(b"bin"), text_frame("next"))

    async def scenario() -> str:
        ws = await opened(peer)
        with pytest.raises(MessageTypeError):
            await ws.receive_text()
        return await ws.receive_text()

    assert run(scenario()) == "next"


@pytest.mark.parametrize("method", ["receive_text", "receive_bytes"])
def test_receive_after_disconnect_raises_connection_closed_with_code_and_reason(
    method: str,
) -> None:
    peer = Peer(CONNECT, disconnect(4001, "bye now"))

    async def scenario() -> None:
        ws = await opened(peer)
        with pytest.raises(ConnectionClosed) as info:
            await getattr(ws, method)()
        assert info.value.code == 4001
        assert info.value.reason == "bye now"

    run(scenario())


@pytest.mark.parametrize("method", ["receive_text", "receive_bytes"])
def test_second_receive_after_disconnect_raises_without_calling_receive(method: str) -> None:
    peer = Peer(CONNECT, disconnect(1001, "away"))

    async def scenario() -> None:
        ws = await opened(peer)
        with pytest.raises(ConnectionClosed):
            await getattr(ws, method)()
        calls = peer.receive_calls
        with pytest.raises(ConnectionClosed) as info:
            await getattr(ws, method)()
        assert peer.receive_calls == calls
        assert info.value.code == 1001
        assert info.value.reason == "away"

    run(scenario())


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("receive_text", ()),
        ("receive_bytes", ()),
        ("send_text", ("hi",)),
        ("send_bytes", (b"hi",)),
    ],
)
def test_use_before_accept_raises_runtime_error_mentioning_accept(
    method: str, args: tuple[Any, ...]
) -> None:
    peer = Peer(CONNECT, text_frame("x"))

    async def scenario() -> None:
        ws = peer.websocket()
        with pytest.raises(RuntimeError, match=r"accept\(\)"):
            await getattr(ws, method)(*args)

    run(scenario())
    assert peer.sent == []
    assert peer.receive_calls == 0


# send_text() / send_bytes()


def test_send_text_sends_websocket_send_with_text() -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = await opened(peer)
        await ws.send_text("hello")

    run(scenario())
    assert peer.sent[-1]["type"] == "websocket.send"
    assert peer.sent[-1]["text"] == "hello"
    assert peer.sent[-1].get("bytes") is None


def test_send_bytes_sends_websocket_send_with_bytes() -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = await opened(peer)
        await ws.send_bytes(b"\x00\x01")

    run(scenario())
    assert peer.sent[-1]["type"] == "websocket.send"
    assert peer.sent[-1]["bytes"] == b"\x00\x01"
    assert peer.sent[-1].get("text") is None


@pytest.mark.parametrize(("method", "args"), [("send_text", ("x",)), ("send_bytes", (b"x",))])
def test_send_after_client_disconnect_raises_connection_closed(
    method: str, args: tuple[Any, ...]
) -> None:
    peer = Peer(CONNECT, disconnect(1001, "tab closed"))

    async def scenario() -> None:
        ws = await opened(peer)
        with pytest.raises(ConnectionClosed):
            await ws.receive_text()
        with pytest.raises(ConnectionClosed) as info:
            await getattr(ws, method)(*args)
        assert info.value.code == 1001

    run(scenario())
    assert [m["type"] for m in peer.sent] == ["websocket.accept"]


@pytest.mark.parametrize(("method", "args"), [("send_text", ("x",)), ("send_bytes", (b"x",))])
def test_send_when_send_callable_raises_oserror_raises_connection_closed(
    method: str, args: tuple[Any, ...]
) -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = await opened(peer)
        peer.send_error = ClientDisconnected("the client has left")
        with pytest.raises(ConnectionClosed):
            await getattr(ws, method)(*args)

    run(scenario())


def test_sends_after_a_failed_send_keep_raising_connection_closed() -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = await opened(peer)
        peer.send_error = ConnectionResetError("reset by peer")
        with pytest.raises(ConnectionClosed):
            await ws.send_text("first")
        # Even if the transport stopped failing, the connection is known dead.
        peer.send_error = None
        with pytest.raises(ConnectionClosed):
            await ws.send_text("second")
        with pytest.raises(ConnectionClosed):
            await ws.send_bytes(b"third")

    run(scenario())
    assert [m["type"] for m in peer.sent] == ["websocket.accept"]


# close()


@pytest.mark.parametrize(("method", "args"), [("send_text", ("x",)), ("send_bytes", (b"x",))])
def test_send_after_own_close_raises_runtime_error_saying_closed(
    method: str, args: tuple[Any, ...]
) -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = await opened(peer)
        await ws.close()
        with pytest.raises(RuntimeError, match="closed"):
            await getattr(ws, method)(*args)

    run(scenario())
    assert [m["type"] for m in peer.sent] == ["websocket.accept", "websocket.close"]


def test_close_sends_close_message_with_code_and_reason() -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = await opened(peer)
        await ws.close(4000, "done here")

    run(scenario())
    close = peer.sent[-1]
    assert close["type"] == "websocket.close"
    assert close["code"] == 4000
    assert close["reason"] == "done here"


def test_close_defaults_to_code_1000() -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = await opened(peer)
        await ws.close()

    run(scenario())
    assert peer.sent[-1]["type"] == "websocket.close"
    assert peer.sent[-1]["code"] == 1000


def test_second_close_sends_nothing_more() -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = await opened(peer)
        await ws.close()
        await ws.close(4000, "again")

    run(scenario())
    assert [m["type"] for m in peer.sent] == ["websocket.accept", "websocket.close"]


def test_close_before_accept_sends_close_to_reject_handshake() -> None:
    peer = Peer(CONNECT)

    async def scenario() -> WebSocket:
        ws = peer.websocket()
        await ws.close()
        return ws

    ws = run(scenario())
    assert [m["type"] for m in peer.sent] == ["websocket.close"]
    assert ws.accepted is False


def test_close_after_client_left_sends_nothing() -> None:
    peer = Peer(CONNECT, disconnect(1001))

    async def scenario() -> None:
        ws = await opened(peer)
        with pytest.raises(ConnectionClosed):
            await ws.receive_bytes()
        await ws.close()

    run(scenario())
    assert [m["type"] for m in peer.sent] == ["websocket.accept"]


def test_close_when_send_raises_oserror_does_not_raise() -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = await opened(peer)
        peer.send_error = ClientDisconnected("the client has left")
        await ws.close()

    run(scenario())
    assert peer.send_calls == 2  # the close was attempted


def test_close_reason_of_123_bytes_is_accepted() -> None:
    peer = Peer(CONNECT)
    reason = "a" * 123

    async def scenario() -> None:
        ws = await opened(peer)
        await ws.close(1000, reason)

    run(scenario())
    assert peer.sent[-1]["reason"] == reason


def test_close_reason_of_61_two_byte_chars_is_accepted() -> None:
    peer = Peer(CONNECT)
    reason = "é" * 61  # 122 bytes in UTF-8

    async def scenario() -> None:
        ws = await opened(peer)
        await ws.close(1000, reason)

    run(scenario())
    assert peer.sent[-1]["type"] == "websocket.close"
    assert peer.sent[-1]["reason"] == reason


@pytest.mark.parametrize("reason", ["é" * 62, "a" * 124, "€" * 42])
def test_close_reason_over_123_utf8_bytes_raises_value_error(reason: str) -> None:
    # "é" * 62 is only 62 characters but 124 bytes: the limit is on bytes.
    assert len(reason.encode("utf-8")) > 123
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = await opened(peer)
        with pytest.raises(ValueError):
            await ws.close(1000, reason)

    run(scenario())
    assert [m["type"] for m in peer.sent] == ["websocket.accept"]


@pytest.mark.parametrize("code", [999, 1005, 1006, 1015, 2000, 5000])
def test_close_with_invalid_code_raises_value_error(code: int) -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = await opened(peer)
        with pytest.raises(ValueError):
            await ws.close(code)

    run(scenario())
    assert [m["type"] for m in peer.sent] == ["websocket.accept"]


@pytest.mark.parametrize("code", [1000, 1011, 3000, 4999])
def test_close_with_valid_code_sends_it(code: int) -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = await opened(peer)
        await ws.close(code)

    run(scenario())
    assert peer.sent[-1]["type"] == "websocket.close"
    assert peer.sent[-1]["code"] == code


@pytest.mark.parametrize("code", ["1000", 1000.0, None])
def test_close_with_non_int_code_raises_type_error(code: Any) -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = await opened(peer)
        with pytest.raises(TypeError):
            await ws.close(code)

    run(scenario())
    assert [m["type"] for m in peer.sent] == ["websocket.accept"]


# Argument types of send_text() / send_bytes()


def test_send_text_with_bytes_raises_type_error_naming_str() -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = await opened(peer)
        with pytest.raises(TypeError, match=r"\bstr\b"):
            await ws.send_text(b"x")  # type: ignore[arg-type]

    run(scenario())
    assert [m["type"] for m in peer.sent] == ["websocket.accept"]


def test_send_bytes_with_str_raises_type_error_naming_bytes() -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = await opened(peer)
        with pytest.raises(TypeError, match=r"\bbytes\b"):
            await ws.send_bytes("x")  # type: ignore[arg-type]

    run(scenario())
    assert [m["type"] for m in peer.sent] == ["websocket.accept"]


@pytest.mark.parametrize("payload", [bytearray(b"ab\x00"), memoryview(b"ab\x00")])
def test_send_bytes_accepts_bytes_like_and_sends_bytes(payload: Any) -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = await opened(peer)
        await ws.send_bytes(payload)

    run(scenario())
    sent = peer.sent[-1]["bytes"]
    assert sent == b"ab\x00"
    assert type(sent) is bytes


# ConnectionClosed


def test_connection_closed_has_code_reason_and_readable_str() -> None:
    exc = ConnectionClosed(4002, "server restarting")
    assert exc.code == 4002
    assert exc.reason == "server restarting"
    assert isinstance(exc, Exception)
    text = str(exc)
    assert "4002" in text
    assert "server restarting" in text
    assert text != str((4002, "server restarting"))  # not the bare tuple of arguments


def test_connection_closed_without_reason_str_names_code() -> None:
    exc = ConnectionClosed(1001)
    assert exc.code == 1001
    assert exc.reason == ""
    assert "1001" in str(exc)


# What the reference page adds below the reference text (reference/websocket.rst).


def test_failed_send_reports_code_1006_and_no_reason() -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = await opened(peer)
        peer.send_error = ConnectionResetError("reset by peer")
        with pytest.raises(ConnectionClosed) as info:
            await ws.send_text("hello")
        assert (info.value.code, info.value.reason) == (1006, "")
        assert str(info.value) == "the WebSocket connection closed with code 1006"

    run(scenario())


@pytest.mark.parametrize("message", [disconnect(1005), {"type": "websocket.disconnect"}])
def test_close_without_a_code_reports_1005_and_no_reason(message: dict[str, Any]) -> None:
    peer = Peer(CONNECT, message)

    async def scenario() -> None:
        ws = await opened(peer)
        with pytest.raises(ConnectionClosed) as info:
            await ws.receive_text()
        assert (info.value.code, info.value.reason) == (1005, "")

    run(scenario())


def test_message_type_error_is_a_value_error_saying_which_method_to_use() -> None:
    peer = Peer(CONNECT, binary_frame(b"\x89PNG"), text_frame("caption"))

    async def scenario() -> None:
        ws = await opened(peer)
        with pytest.raises(ValueError, match=r"use receive_bytes\(\)") as info:
            await ws.receive_text()
        assert type(info.value) is MessageTypeError
        assert info.value.data == b"\x89PNG"
        with pytest.raises(MessageTypeError, match=r"use receive_text\(\)") as text:
            await ws.receive_bytes()
        assert text.value.data == "caption"

    run(scenario())


class CloseCode(enum.IntEnum):
    GOING_AWAY = 1001


def test_close_takes_an_int_enum_member_and_sends_its_plain_value() -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = peer.websocket()
        await ws.accept()
        await ws.close(CloseCode.GOING_AWAY, "bye")

    run(scenario())
    code = peer.sent[-1]["code"]
    assert peer.sent[-1] == {"type": "websocket.close", "code": 1001, "reason": "bye"}
    assert type(code) is int


@pytest.mark.parametrize(
    ("method", "args", "error", "words"),
    [
        ("send_text", (b"hello",), TypeError, "send_text() expects str, got bytes"),
        ("send_text", (42,), TypeError, "send_text() expects str, got int"),
        ("send_bytes", ("hello",), TypeError, "send_bytes() expects bytes, got str"),
        ("send_bytes", ([1, 2],), TypeError, "send_bytes() expects bytes, got list"),
        ("close", ("1000",), TypeError, "close code must be an int, not str"),
        ("close", (True,), TypeError, "close code must be an int, not bool"),
        ("close", (1006,), ValueError, "close code 1006 cannot be sent: use 1000-1003, 1007-1014"),
        ("close", (4000, b"bye"), TypeError, "close reason must be a str, not bytes"),
        ("close", (4000, "é" * 62), ValueError, "close reason is 124 bytes in UTF-8"),
    ],
)
@pytest.mark.parametrize("state", ["before accept", "open", "closed", "client gone"])
def test_wrong_arguments_raise_in_every_state_and_send_nothing(
    method: str, args: tuple[Any, ...], error: type[Exception], words: str, state: str
) -> None:
    peer = Peer(CONNECT, disconnect(1001))

    async def scenario() -> None:
        ws = peer.websocket()
        if state != "before accept":
            await ws.accept()
        if state == "closed":
            await ws.close()
        elif state == "client gone":
            with pytest.raises(ConnectionClosed):
                await ws.receive_text()
        sent = len(peer.sent)
        with pytest.raises(error) as info:
            await getattr(ws, method)(*args)
        assert words in str(info.value)
        assert len(peer.sent) == sent

    run(scenario())
