"""The floor: a bare ASGI application doing each workload's work, and nothing more.

No framework can do the same work in less, so every other application is
reported as a multiple of this one.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

_JSON_HEADERS = [(b"content-type", b"application/json")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    kind = scope["type"]
    if kind == "websocket":
        path = scope["path"]
        if path == "/text":
            await _echo(receive, send, "text")
        elif path == "/bytes":
            await _echo(receive, send, "bytes")
        elif path == "/session":
            await _session(receive, send)
        else:
            await receive()
            await send({"type": "websocket.close", "code": 1000})
    elif kind == "http":
        if scope["path"] == "/json":
            body = json.dumps({"message": "Hello, World!"}, separators=(",", ":")).encode()
            headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        else:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})


async def _echo(receive: Any, send: Any, key: str) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return  # websocket.disconnect
        await send({"type": "websocket.send", key: message[key]})


async def _session(receive: Any, send: Any) -> None:
    await receive()  # websocket.connect
    cookie = f"session_id={secrets.token_urlsafe(32)}; Path=/; HttpOnly; SameSite=Lax"
    await send({"type": "websocket.accept", "headers": [(b"set-cookie", cookie.encode())]})
    message = await receive()
    if message["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": message["text"]})
        await send({"type": "websocket.close", "code": 1000})
