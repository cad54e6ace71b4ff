"""End-to-end: examples/json_rpc/app.py (docs/source/howto/json.rst) under a real uvicorn.

The file is saved as the page says (``app.py``, alone in a directory) and
served there with the page's command, ``uvicorn app:app``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import ClientConnection

from tests.helpers.clients import TIMEOUT, close_frame_of, receive, ws_connect
from tests.helpers.logs import quiet
from tests.helpers.servers import REPO_ROOT, RunningServer, serve_saved
from tests.helpers.support import captions_of_file

PAGE = REPO_ROOT / "docs" / "source" / "howto" / "json.rst"
EXAMPLE = "examples/json_rpc/app.py"


def test_the_page_shows_the_file_and_the_command_the_tests_run() -> None:
    assert captions_of_file(PAGE, EXAMPLE) == ["app.py"]
    assert "\n   uvicorn app:app\n" in PAGE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    # The command the page and the module's docstring give, on a port of the test's
    # choosing. No request of these tests may make it log an error (checked once it stops).
    with quiet(serve_saved(tmp_path_factory.mktemp("reader"), {EXAMPLE: "app.py"})) as running:
        yield running


def rpc_connect(server: RunningServer) -> ClientConnection:
    return ws_connect(f"{server.ws_url}/rpc")


def call(ws: ClientConnection, message: str) -> Any:
    """Send one text message; return the answer, parsed."""
    ws.send(message)
    reply = receive(ws)
    assert isinstance(reply, str), reply
    return json.loads(reply)


@pytest.mark.parametrize(
    ("request_text", "answer"),
    [
        pytest.param(
            '{"jsonrpc": "2.0", "id": 1, "method": "add", "params": [1, 2]}',
            '{"jsonrpc":"2.0","id":1,"result":3}',
            id="the docstring example",
        ),
        # JSON may spell a lone surrogate as \ud800; json.dumps escapes it again,
        # so that the answer is still a valid UTF-8 text frame.
        pytest.param(
            '{"jsonrpc": "2.0", "id": 1, "method": "upper", "params": {"text": "a\\ud800"}}',
            '{"jsonrpc":"2.0","id":1,"result":"A\\ud800"}',
            id="a lone surrogate is sent back escaped",
        ),
    ],
)
def test_the_answer_as_it_is_sent(server: RunningServer, request_text: str, answer: str) -> None:
    with rpc_connect(server) as ws:
        ws.send(request_text)
        assert receive(ws) == answer


def test_methods_with_positional_and_named_parameters(server: RunningServer) -> None:
    with rpc_connect(server) as ws:
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": "a", "method": "add", "params": [1, 2.5]}
        assert call(ws, json.dumps(request)) == {"jsonrpc": "2.0", "id": "a", "result": 3.5}
        request = {"jsonrpc": "2.0", "id": 7, "method": "upper", "params": {"text": "héllo ✓"}}
        assert call(ws, json.dumps(request))["result"] == "HÉLLO ✓"


def test_malformed_json_gets_an_error_answer_and_the_connection_stays_open(
    server: RunningServer,
) -> None:
    with rpc_connect(server) as ws:
        for not_json in ['{"jsonrpc": "2.0",', "", "NaN", "[1, Infinity]", "1" * 5000]:
            reply = call(ws, not_json)
            assert reply["id"] is None
            assert reply["error"]["code"] == -32700
            assert reply["error"]["message"].startswith("not JSON: ")
        # Still open, and still serving.
        assert call(ws, '{"jsonrpc": "2.0", "id": 2, "method": "add", "params": [2, 2]}') == {
            "jsonrpc": "2.0",
            "id": 2,
            "result": 4,
        }


@pytest.mark.parametrize(
    ("request_text", "request_id", "code"),
    [
        ('[{"jsonrpc": "2.0", "id": 1, "method": "add"}]', None, -32600),  # a batch
        ('"add"', None, -32600),
        ('{"jsonrpc": "2.0", "id": true, "method": "add"}', None, -32600),
        ('{"jsonrpc": "1.0", "id": 3, "method": "add"}', 3, -32600),
        ('{"jsonrpc": "2.0", "id": 4, "method": "divide"}', 4, -32601),
        ('{"jsonrpc": "2.0", "id": 5, "method": "add", "params": [1, "2"]}', 5, -32602),
        ('{"jsonrpc": "2.0", "id": 6, "method": "add", "params": [true]}', 6, -32602),
        ('{"jsonrpc": "2.0", "id": 7, "method": "add", "params": [1e999]}', 7, -32602),
        ('{"jsonrpc": "2.0", "id": 8, "method": "add", "params": [1e308, 1e308]}', 8, -32602),
        ('{"jsonrpc": "2.0", "id": 9, "method": "upper", "params": ["x"]}', 9, -32602),
    ],
)
def test_invalid_requests_get_json_rpc_errors(
    server: RunningServer, request_text: str, request_id: Any, code: int
) -> None:
    with rpc_connect(server) as ws:
        reply = call(ws, request_text)
    assert reply["jsonrpc"] == "2.0"
    assert reply["id"] == request_id
    assert reply["error"]["code"] == code
    assert isinstance(reply["error"]["message"], str)


def test_notifications_get_no_answer(server: RunningServer) -> None:
    with rpc_connect(server) as ws:
        ws.send('{"jsonrpc": "2.0", "method": "add", "params": [1, 2]}')
        ws.send('{"jsonrpc": "2.0", "method": "no-such-method"}')
        # The next answer is the one to the request that follows them, and the
        # one after it to the request after that: nothing came in between.
        for number in (1, 2):
            request = {"jsonrpc": "2.0", "id": number, "method": "add", "params": [5, number]}
            assert call(ws, json.dumps(request)) == {
                "jsonrpc": "2.0",
                "id": number,
                "result": 5 + number,
            }


def test_a_binary_message_closes_with_1003(server: RunningServer) -> None:
    with rpc_connect(server) as ws:
        ws.send(b'{"jsonrpc": "2.0", "id": 1, "method": "add", "params": [1]}')
        assert close_frame_of(ws) == (1003, "send JSON in text messages")


def test_clients_are_served_independently(server: RunningServer) -> None:
    with rpc_connect(server) as first, rpc_connect(server) as second:
        first.send('{"jsonrpc": "2.0", "id": "first", "method": "add", "params": [1]}')
        second.send('{"jsonrpc": "2.0", "id": "second", "method": "add", "params": [2]}')
        assert json.loads(second.recv(timeout=TIMEOUT))["id"] == "second"
        assert json.loads(first.recv(timeout=TIMEOUT))["id"] == "first"
