"""The benchmark application written with Starlette: WebSocketRoute and Route."""

from __future__ import annotations

import secrets

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


async def text(ws: WebSocket) -> None:
    await ws.accept()
    try:
        while True:
            await ws.send_text(await ws.receive_text())
    except WebSocketDisconnect:
        pass


async def binary(ws: WebSocket) -> None:
    await ws.accept()
    try:
        while True:
            await ws.send_bytes(await ws.receive_bytes())
    except WebSocketDisconnect:
        pass


async def session(ws: WebSocket) -> None:
    cookie = f"session_id={secrets.token_urlsafe(32)}; Path=/; HttpOnly; SameSite=Lax"
    await ws.accept(headers=[(b"set-cookie", cookie.encode())])
    await ws.send_text(await ws.receive_text())
    await ws.close()


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"message": "Hello, World!"})


app = Starlette(
    routes=[
        WebSocketRoute("/text", text),
        WebSocketRoute("/bytes", binary),
        WebSocketRoute("/session", session),
        Route("/json", hello),
    ]
)
