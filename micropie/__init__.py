"""MicroPie: an ASGI micro web framework built around WebSockets."""

from micropie.app import App
from micropie.request import Headers, Request, WebSocketRequest, current_request
from micropie.websocket import ConnectionClosed, MessageTypeError, WebSocket

__version__ = "0.1.0"

__all__ = [
    "App",
    "ConnectionClosed",
    "Headers",
    "MessageTypeError",
    "Request",
    "WebSocket",
    "WebSocketRequest",
    "__version__",
    "current_request",
]
