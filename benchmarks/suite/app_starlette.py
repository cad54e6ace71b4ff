"""The benchmark application written with Starlette: WebSocketRoute and Route."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


def echo(kind: str) -> Callable[[WebSocket], Awaitable[None]]:
    """The echo of ``text`` or ``bytes`` messages."""

    async def handler(ws: WebSocket) -> None:
        await ws.accept()
        receive: Any = getattr(ws, f"receive_{kind}")
        send: Any = getattr(ws, f"send_{kind}")
        try:
            while True:
                await send(await receive())
        except WebSocketDisconnect:
            pass

    return handler


async def session(ws: WebSocket) -> None:
    cookie = f"session_id={secrets.token_urlsafe(32)}; Path=/; HttpOnly; SameSite=Lax"
    await ws.accept(headers=[(b"set-cookie", cookie.encode())])
    await ws.send_text(await ws.receive_text())
    await ws.close()


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"message": "Hello, World!"})


app = Starlette(
    routes=[
        WebSocketRoute("/text", echo("text")),
        WebSocketRoute("/bytes", echo("bytes")),
        WebSocketRoute("/session", session),
        Route("/json", hello),
    ]
)
