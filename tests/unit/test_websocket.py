"""The WebSocket class, driven directly through scripted ASGI ``receive``/``send``."""

from __future__ import annotations

import enum
from typing import Any

import pytest

from micropie import ConnectionClosed, MessageTypeError, WebSocket
from micropie.testing import ClientDisconnected
from tests.helpers.asgi import CONNECT, Peer, binary_frame, disconnect, opened, run, text_frame

VALID_CODES = [1000, 1011, 3000, 4999]
SENDS = [("send_text", ("x",)), ("send_bytes", (b"x",))]

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


HYPERCORN_TEXT = {"type": "websocket.receive", "text": "hi", "bytes": None}
HYPERCORN_BYTES = {"type": "websocket.receive", "text": None, "bytes": b"x"}
HYPERCORN_EMPTY_BYTES = {"type": "websocket.receive", "text": None, "bytes": b""}


@pytest.mark.parametrize(
    ("incoming", "method", "expected"),
    [
        pytest.param([text_frame("héllo")], "receive_text", ["héllo"], id="text returns str"),
        pytest.param([text_frame("")], "receive_text", [""], id="empty text frame, empty str"),
        pytest.param(
            [text_frame("", bytes=None)], "receive_text", [""], id="empty text, bytes key None"
        ),
        pytest.param([HYPERCORN_TEXT], "receive_text", ["hi"], id="hypercorn-style text"),
        pytest.param([HYPERCORN_BYTES], "receive_bytes", [b"x"], id="hypercorn-style bytes"),
        pytest.param(
            [binary_frame(b"\x00\xffdata")], "receive_bytes", [b"\x00\xffdata"], id="bytes"
        ),
        pytest.param(
            [binary_frame(b""), HYPERCORN_EMPTY_BYTES],
            "receive_bytes",
            [b"", b""],
            id="empty binary frames, empty bytes",
        ),
    ],
)
def test_receive_returns_the_message_as_the_type_it_came_in(
    incoming: list[dict[str, Any]], method: str, expected: list[str | bytes]
) -> None:
    peer = Peer(CONNECT, *incoming)

    async def scenario() -> list[str | bytes]:
        ws = await opened(peer)
        return [await getattr(ws, method)() for _ in incoming]

    results = run(scenario())
    assert results == expected
    assert [type(r) for r in results] == [type(e) for e in expected]


@pytest.mark.parametrize(
    ("incoming", "method", "data"),
    [
        (binary_frame(b"\x01\x02"), "receive_text", b"\x01\x02"),
        (text_frame("not binary"), "receive_bytes", "not binary"),
    ],
)
def test_receiving_the_other_type_raises_message_type_error_holding_it(
    incoming: dict[str, Any], method: str, data: str | bytes
) -> None:
    peer = Peer(CONNECT, incoming)

    async def scenario() -> None:
        ws = await opened(peer)
        with pytest.raises(ValueError) as info:
            await getattr(ws, method)()
        assert isinstance(info.value, MessageTypeError)
        assert info.value.data == data

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


@pytest.mark.parametrize(
    ("method", "payload", "key", "other"),
    [("send_text", "hello", "text", "bytes"), ("send_bytes", b"\x00\x01", "bytes", "text")],
)
def test_send_sends_websocket_send_with_the_payload_under_its_key(
    method: str, payload: str | bytes, key: str, other: str
) -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = await opened(peer)
        await getattr(ws, method)(payload)

    run(scenario())
    assert peer.sent[-1]["type"] == "websocket.send"
    assert peer.sent[-1][key] == payload
    assert peer.sent[-1].get(other) is None


@pytest.mark.parametrize(("method", "args"), SENDS)
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


TRANSPORT_ERRORS = [
    ClientDisconnected("the client has left"),
    ConnectionResetError("reset by peer"),
    BrokenPipeError("gone"),
]


@pytest.mark.parametrize(("method", "args"), SENDS)
@pytest.mark.parametrize("error", TRANSPORT_ERRORS, ids=lambda error: type(error).__name__)
def test_a_failed_send_raises_connection_closed_1006_and_the_connection_stays_dead(
    method: str, args: tuple[Any, ...], error: OSError
) -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = await opened(peer)
        peer.send_error = error
        with pytest.raises(ConnectionClosed) as first:
            await getattr(ws, method)(*args)
        assert (first.value.code, first.value.reason) == (1006, "")
        assert str(first.value) == "the WebSocket connection closed with code 1006"
        # Even if the transport stopped failing, the connection is known dead...
        peer.send_error = None
        for again, payload in SENDS:
            with pytest.raises(ConnectionClosed):
                await getattr(ws, again)(*payload)
        # ... and a receive says so with the same code, asking nobody.
        with pytest.raises(ConnectionClosed) as later:
            await ws.receive_text()
        assert later.value.code == 1006

    run(scenario())
    assert peer.sent_types() == ["websocket.accept"]
    assert peer.receive_calls == 1  # only the handshake


# close()


@pytest.mark.parametrize(("method", "args"), SENDS)
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


class CloseCode(enum.IntEnum):
    GOING_AWAY = 1001


@pytest.mark.parametrize(
    ("args", "code", "reason"),
    [
        pytest.param((4000, "done here"), 4000, "done here", id="code and reason"),
        pytest.param((), 1000, "", id="defaults to 1000"),
        pytest.param((1000, "a" * 123), 1000, "a" * 123, id="reason of 123 bytes"),
        pytest.param((1000, "é" * 61), 1000, "é" * 61, id="reason of 61 two-byte chars"),
        *[pytest.param((code,), code, "", id=f"valid code {code}") for code in VALID_CODES],
        pytest.param((CloseCode.GOING_AWAY, "bye"), 1001, "bye", id="an IntEnum member"),
    ],
)
def test_close_sends_the_code_as_a_plain_int_and_the_reason(
    args: tuple[Any, ...], code: int, reason: str
) -> None:
    assert len(reason.encode("utf-8")) <= 123
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = await opened(peer)
        await ws.close(*args)

    run(scenario())
    assert peer.sent[-1] == {"type": "websocket.close", "code": code, "reason": reason}
    assert type(peer.sent[-1]["code"]) is int


WRONG_ARGUMENTS = [
    # "é" * 62 is only 62 characters but 124 bytes: the limit is on bytes.
    *[("close", (1000, reason), ValueError, None) for reason in ["é" * 62, "a" * 124, "€" * 42]],
    *[("close", (code,), ValueError, None) for code in [999, 1005, 1006, 1015, 2000, 5000]],
    *[("close", (code,), TypeError, None) for code in ["1000", 1000.0, None]],
    ("send_text", (b"x",), TypeError, r"\bstr\b"),
    ("send_bytes", ("x",), TypeError, r"\bbytes\b"),
]


@pytest.mark.parametrize(("method", "args", "error", "match"), WRONG_ARGUMENTS)
def test_a_wrong_argument_raises_and_sends_nothing(
    method: str, args: tuple[Any, ...], error: type[Exception], match: str | None
) -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        ws = await opened(peer)
        with pytest.raises(error, match=match):
            await getattr(ws, method)(*args)

    run(scenario())
    assert peer.sent_types() == ["websocket.accept"]


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


# Argument types of send_text() / send_bytes()


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


# iter_text() and iter_bytes()

ITERATORS = [
    pytest.param("iter_text", text_frame, binary_frame(b"\x00"), "text", id="iter_text"),
    pytest.param("iter_bytes", binary_frame, text_frame("x"), "binary", id="iter_bytes"),
]


@pytest.mark.parametrize(("method", "frame", "other", "kind"), ITERATORS)
def test_iteration_yields_each_message_in_order_and_ends_when_the_client_leaves(
    method: str, frame: Any, other: dict[str, Any], kind: str
) -> None:
    payloads = ["a", "", "c"] if kind == "text" else [b"a", b"", b"c"]
    peer = Peer(CONNECT, *map(frame, payloads), disconnect(1001, "away"))

    async def scenario() -> list[Any]:
        ws = await opened(peer)
        got = [payload async for payload in getattr(ws, method)()]
        with pytest.raises(ConnectionClosed) as after:  # over: the client left
            await ws.send_text("too late")
        assert (after.value.code, after.value.reason) == (1001, "away")
        return got

    assert run(scenario()) == payloads
    assert peer.sent_types() == ["websocket.accept"]


@pytest.mark.parametrize(("method", "frame", "other", "kind"), ITERATORS)
def test_a_message_of_the_other_kind_closes_with_1003_and_ends_the_loop(
    method: str, frame: Any, other: dict[str, Any], kind: str
) -> None:
    first = "first" if kind == "text" else b"first"
    peer = Peer(CONNECT, frame(first), other, frame(first))

    async def scenario() -> list[Any]:
        ws = await opened(peer)
        got = [payload async for payload in getattr(ws, method)()]
        with pytest.raises(RuntimeError, match="closed"):
            await ws.send_text("after the close")
        return got

    assert run(scenario()) == [first]
    close = peer.sent[-1]
    assert (close["type"], close["code"]) == ("websocket.close", 1003)
    assert close["reason"] == f"this endpoint takes {kind} messages only"
    assert peer.receive_calls == 3  # the message after the wrong one was never read


def test_an_error_in_the_loop_body_is_the_handler_s_not_swallowed() -> None:
    peer = Peer(CONNECT, text_frame("boom"), text_frame("unread"))

    async def scenario() -> None:
        ws = await opened(peer)
        async for text in ws.iter_text():
            raise ConnectionClosed(4000, text)  # as a failed send in the body would

    with pytest.raises(ConnectionClosed, match="boom"):
        run(scenario())


def test_leaving_the_loop_early_keeps_the_connection_open() -> None:
    peer = Peer(CONNECT, text_frame("stop"), text_frame("still here"))

    async def scenario() -> str:
        ws = await opened(peer)
        async for text in ws.iter_text():
            if text == "stop":
                break
        return await ws.receive_text()

    assert run(scenario()) == "still here"
    assert peer.sent_types() == ["websocket.accept"]


def test_iterating_before_accept_raises_runtime_error() -> None:
    peer = Peer(CONNECT)

    async def scenario() -> None:
        async for _ in peer.websocket().iter_text():
            pass

    with pytest.raises(RuntimeError, match="accept"):
        run(scenario())
