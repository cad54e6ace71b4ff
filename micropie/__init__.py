"""MicroPie: an ASGI micro web framework built around WebSockets."""

from micropie.app import App
from micropie.bodies import UploadFile
from micropie.middleware import HttpMiddleware, WebSocketMiddleware
from micropie.request import Headers, Request, WebSocketRequest, current_request
from micropie.websocket import ConnectionClosed, MessageTypeError, WebSocket

__version__ = "0.1.0"

__all__ = [
    "App",
    "ConnectionClosed",
    "Headers",
    "HttpMiddleware",
    "MessageTypeError",
    "Request",
    "UploadFile",
    "WebSocket",
    "WebSocketMiddleware",
    "WebSocketRequest",
    "__version__",
    "current_request",
]
