"""MicroPie: an ASGI micro web framework built around WebSockets."""

from micropie._redis import RedisUnavailable
from micropie.app import App
from micropie.background import BackgroundTasks
from micropie.bodies import UploadFile
from micropie.cors import CORSMiddleware
from micropie.middleware import HttpMiddleware, WebSocketMiddleware
from micropie.request import (
    Headers,
    HTTPConnection,
    Request,
    WebSocketRequest,
    current_request,
)
from micropie.sessions import SESSION_TIMEOUT, InMemorySessionBackend, SessionBackend
from micropie.staticfiles import StaticFiles
from micropie.unavailable import Unavailable
from micropie.websocket import ConnectionClosed, MessageTypeError, WebSocket

__version__ = "0.1.0"

__all__ = [
    "SESSION_TIMEOUT",
    "App",
    "BackgroundTasks",
    "CORSMiddleware",
    "ConnectionClosed",
    "HTTPConnection",
    "Headers",
    "HttpMiddleware",
    "InMemorySessionBackend",
    "MessageTypeError",
    "RedisUnavailable",
    "Request",
    "SessionBackend",
    "StaticFiles",
    "Unavailable",
    "UploadFile",
    "WebSocket",
    "WebSocketMiddleware",
    "WebSocketRequest",
    "__version__",
    "current_request",
]
