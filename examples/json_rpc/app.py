"""A small JSON-RPC 2.0 service on a WebSocket at /rpc.

Save it as ``app.py``, serve it with ``uvicorn app:app`` and send text messages
such as ``{"jsonrpc": "2.0", "id": 1, "method": "add", "params": [1, 2]}``
to ws://127.0.0.1:8000/rpc; the answer is
``{"jsonrpc":"2.0","id":1,"result":3}``.

It implements the parts of JSON-RPC 2.0 that fit one request per message:
requests, notifications (requests without an ``id``, which get no answer)
and error answers, but not batches. A message that is not JSON gets an
error answer, and the connection stays open; a binary message closes it.
"""

import json
import math
from typing import Any

from micropie import App, MessageTypeError, WebSocket

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def receive_json(ws: WebSocket) -> Any:
    """The next text message, parsed as JSON: ``ValueError`` if it is not JSON."""
    # Python's json module would read NaN and Infinity, which JSON does not have.
    return json.loads(await ws.receive_text(), parse_constant=_refuse_constant)


async def send_json(ws: WebSocket, value: Any) -> None:
    """Send *value* as one text message of compact JSON."""
    await ws.send_text(json.dumps(value, separators=(",", ":"), allow_nan=False))


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _is_number(value: Any) -> bool:
    # bool is a subclass of int, but true is no number; and 1e999 reads as infinity.
    return type(value) is int or (type(value) is float and math.isfinite(value))


def add(params: Any) -> Any:
    """``add``: the sum of a list of numbers."""
    if not isinstance(params, list) or not all(_is_number(n) for n in params):
        raise RpcError(INVALID_PARAMS, "add takes a list of numbers")
    total = sum(params)
    if not _is_number(total):
        raise RpcError(INVALID_PARAMS, "the sum is too large")
    return total


def upper(params: Any) -> Any:
    """``upper``: ``{"text": "..."}`` in capitals."""
    if not isinstance(params, dict) or type(params.get("text")) is not str:
        raise RpcError(INVALID_PARAMS, 'upper takes {"text": <a string>}')
    return params["text"].upper()


METHODS = {"add": add, "upper": upper}


def error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def answer(request: Any) -> dict[str, Any] | None:
    """The answer to one parsed request, or ``None`` for a notification."""
    if not isinstance(request, dict):
        return error(None, INVALID_REQUEST, "a request is a JSON object (batches are not served)")
    request_id = request.get("id")
    if type(request_id) not in (str, int, type(None)):
        return error(None, INVALID_REQUEST, "id must be a string, an integer or null")
    if request.get("jsonrpc") != "2.0" or type(request.get("method")) is not str:
        return error(request_id, INVALID_REQUEST, 'a request has "jsonrpc": "2.0" and a "method"')
    method = METHODS.get(request["method"])
    try:
        if method is None:
            raise RpcError(METHOD_NOT_FOUND, f"no method named {request['method']!r}")
        result = method(request.get("params", []))
    except RpcError as failure:
        reply = error(request_id, failure.code, failure.message)
    else:
        reply = {"jsonrpc": "2.0", "id": request_id, "result": result}
    return reply if "id" in request else None


class JsonRpc(App):
    async def ws_rpc(self, ws: WebSocket) -> None:
        await ws.accept()
        while True:  # until the client leaves: receive_text() raises ConnectionClosed
            try:
                request = await receive_json(ws)
            except MessageTypeError:  # a ValueError too: catch it first
                await ws.close(1003, "send JSON in text messages")
                return
            except ValueError as exc:
                await send_json(ws, error(None, PARSE_ERROR, f"not JSON: {exc}"))
                continue
            reply = answer(request)
            if reply is not None:
                await send_json(ws, reply)


app = JsonRpc()
