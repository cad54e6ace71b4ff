"""The benchmark application written with Starlette: WebSocketRoute and Route."""

import contextlib
import secrets

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


async def echo_text(ws: WebSocket) -> None:
    await ws.accept()
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await ws.send_text(await ws.receive_text())


async def echo_bytes(ws: WebSocket) -> None:
    await ws.accept()
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await ws.send_bytes(await ws.receive_bytes())


async def session(ws: WebSocket) -> None:
    cookie = f"session_id={secrets.token_urlsafe(32)}; Path=/; HttpOnly; SameSite=Lax"
    await ws.accept(headers=[(b"set-cookie", cookie.encode())])
    await ws.send_text(await ws.receive_text())
    await ws.close()


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"message": "Hello, World!"})


def hello_sync(request: Request) -> JSONResponse:  # Starlette runs it in a thread pool
    return JSONResponse({"message": "Hello, World!"})


app = Starlette(
    routes=[
        WebSocketRoute("/text", echo_text),
        WebSocketRoute("/bytes", echo_bytes),
        WebSocketRoute("/session", session),
        Route("/json", hello),
        Route("/json_sync", hello_sync),
    ]
)
