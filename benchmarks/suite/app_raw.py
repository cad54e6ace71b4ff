"""The floor: a bare ASGI application doing each workload's work, and nothing more."""

import json
import secrets
from typing import Any

_JSON_HEADERS = [(b"content-type", b"application/json")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    kind, path = scope["type"], scope["path"]
    if kind == "websocket" and path in ("/text", "/bytes"):
        await _echo(receive, send, path[1:])
    elif kind == "websocket" and path == "/session":
        await _session(receive, send)
    elif kind == "http" and path in ("/json", "/json_sync"):  # no thread: the floor
        body = json.dumps({"message": "Hello, World!"}, separators=(",", ":")).encode()
        headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif kind == "http":  # anything else, such as the server runner's readiness probe
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def _echo(receive: Any, send: Any, key: str) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", key: message[key]})


async def _session(receive: Any, send: Any) -> None:
    await receive()  # websocket.connect
    cookie = f"session_id={secrets.token_urlsafe(32)}; Path=/; HttpOnly; SameSite=Lax"
    await send({"type": "websocket.accept", "headers": [(b"set-cookie", cookie.encode())]})
    message = await receive()
    if message["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": message["text"]})
        await send({"type": "websocket.close", "code": 1000})
