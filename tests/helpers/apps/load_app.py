"""A test-only application for the load and fault-injection tests.

Served with ``uvicorn tests.helpers.apps.load_app:app`` from the repository root by
``tests/e2e/test_load.py`` and ``tests/e2e/test_faults.py``; it is not an example.

Its WebSocket routes record how each handler ended, and ``GET /stats``
reports what the process holds right now, so that a test can tell from the
outside whether a fault or a load round left anything behind:

* ``/echo``: echoes text until the client leaves;
* ``/boom``: echoes too, but raises when it receives ``"boom"``;
* ``/flood`` and ``/flood_bytes``: say ``"ready"``, then send without ever
  reading, as fast as the server lets them (for the client that stops reading);
* ``/stats``: the figures, as JSON; ``/stats?census=1`` also counts objects;
* ``/whoami``: the session named by the request's cookie, as JSON.

Each WebSocket route takes ``?tag=NAME`` (how that handler ended is recorded
under NAME) and ``?session=NAME`` (the handler starts a session with
``{"conn": NAME, "received": 0}`` at ``accept()``, then counts the messages
it receives in it: the count is saved when the handler ends).

Set ``LOAD_APP_TRACEMALLOC=1`` in the server's environment to trace memory
allocations from the moment this module is imported: ``/stats`` then reports
tracemalloc's figures (tracing costs CPU time). At shutdown the app prints one line,
``LOAD_APP_SHUTDOWN {...}``, with the figures and every session it started,
read back from the session backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import json
import os
import resource
import sys
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from typing import Any

from micropie import App, ConnectionClosed, WebSocket, WebSocketRequest
from micropie.sessions import SessionHandle, new_session_id

if os.environ.get("LOAD_APP_TRACEMALLOC") == "1":
    tracemalloc.start()

#: What ``ws_boom`` raises on; the text of the exception it raises.
BOOM = "boom"
BOOM_ERROR = "the client asked this handler to fail"
#: The size of each message ``ws_flood`` sends, and how many it sends at most
#: (64 MiB in all): enough to fill any socket buffer, bounded all the same.
FLOOD_CHUNK = 64 * 1024
FLOOD_MAX_MESSAGES = 1024
#: The prefix of the line printed at shutdown.
SHUTDOWN_LINE = "LOAD_APP_SHUTDOWN "

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

# Figures kept by the handlers.
_started: Counter[str] = Counter()  # handlers started, by kind
_active: Counter[str] = Counter()  # handlers running now, by kind
_endings: dict[str, Counter[str]] = {}  # how handlers ended, by kind then outcome
_tagged: dict[str, str] = {}  # how the handler of each tag ended
_flood_sent: dict[str, int] = {}  # messages each flood handler has sent, by tag
_issued_sessions: list[str] = []  # session IDs this app has started
_tasks_at_startup: list[int] = []  # asyncio tasks when the app started: the server's own


@contextlib.contextmanager
def _running(kind: str, tag: str) -> Iterator[None]:
    """Count a handler as active while it runs; record how it ended."""
    _started[kind] += 1
    _active[kind] += 1
    outcome = "returned"
    try:
        yield
    except ConnectionClosed as closed:
        outcome = f"ConnectionClosed {closed.code}"
        raise
    except asyncio.CancelledError:
        outcome = "cancelled"
        raise
    except BaseException as error:
        outcome = type(error).__name__
        raise
    finally:
        _active[kind] -= 1
        _endings.setdefault(kind, Counter())[outcome] += 1
        if tag:
            _tagged[tag] = outcome


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE_SIZE


def _malloc_trim() -> bool:
    """Ask glibc's allocator to return free memory to the system; False if not glibc."""
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim(0)
    return True


def _census_types() -> dict[type, str]:
    """The per-connection types worth counting: MicroPie's and the server's."""
    types: dict[type, str] = {
        WebSocket: "WebSocket",
        WebSocketRequest: "WebSocketRequest",
        SessionHandle: "SessionHandle",
    }
    server_protocols = {
        "uvicorn.protocols.websockets.websockets_sansio_impl": "WebSocketsSansIOProtocol",
        "uvicorn.protocols.websockets.websockets_impl": "WebSocketProtocol",
        "uvicorn.protocols.websockets.wsproto_impl": "WSProtocol",
        "uvicorn.protocols.http.httptools_impl": "HttpToolsProtocol",
        "uvicorn.protocols.http.h11_impl": "H11Protocol",
    }
    for module_name, class_name in server_protocols.items():
        module = sys.modules.get(module_name)
        cls = getattr(module, class_name, None)
        if isinstance(cls, type):
            types[cls] = f"uvicorn {class_name}"
    return types


def _census() -> dict[str, Any]:
    """Count per-connection objects, before and after a full garbage collection.

    ``WebSocket`` has ``__slots__`` without ``__weakref__``, so a ``WeakSet``
    cannot hold one: the garbage collector's list of objects is the way.
    """
    types = _census_types()

    def count() -> dict[str, int]:
        counts = dict.fromkeys(types.values(), 0)
        for obj in gc.get_objects():
            label = types.get(type(obj))
            if label is not None:
                counts[label] += 1
        return counts

    was_enabled = gc.isenabled()
    gc.disable()  # no automatic collection before the first count
    try:
        before = count()
        gc.collect()
        after = count()
    finally:
        if was_enabled:
            gc.enable()
    return {"before_gc": before, "after_gc": after}


def figures(census: bool = False) -> dict[str, Any]:
    """Everything ``/stats`` reports."""
    traced = tracemalloc.is_tracing()
    current, peak = tracemalloc.get_traced_memory() if traced else (0, 0)
    result: dict[str, Any] = {
        "pid": os.getpid(),
        "active": dict(_active),
        "active_total": sum(_active.values()),
        "started": dict(_started),
        "endings": {kind: dict(outcomes) for kind, outcomes in _endings.items()},
        "tagged": dict(_tagged),
        "flood_sent": dict(_flood_sent),
        "sessions": len(app.session_backend),  # type: ignore[arg-type]
        "sessions_issued": len(_issued_sessions),
        "rss_bytes": _rss_bytes(),
        # ru_maxrss is in KiB on Linux: the process's high-water mark.
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "tracemalloc": {
            "enabled": traced,
            "current_bytes": current,
            "peak_bytes": peak,
            "overhead_bytes": tracemalloc.get_tracemalloc_memory(),
        },
        "tasks": len(asyncio.all_tasks()),
        "tasks_at_startup": _tasks_at_startup[0] if _tasks_at_startup else None,
    }
    if census:
        result["objects"] = _census()
        # After the collection, the figures that it may have changed.
        result["websockets_alive"] = result["objects"]["after_gc"]["WebSocket"]
        result["rss_bytes_after_gc"] = _rss_bytes()
        if traced:
            result["tracemalloc"]["current_bytes_after_gc"] = tracemalloc.get_traced_memory()[0]
        # What the process still holds once the C allocator gives back its free pages.
        result["rss_bytes_after_trim"] = _rss_bytes() if _malloc_trim() else None
    return result


class LoadApp(App):
    # HTTP

    async def stats(self, census: str = "0") -> dict[str, Any]:
        """The figures; ``?census=1`` adds object counts (and a full gc.collect())."""
        return figures(census=census == "1")

    async def whoami(self) -> dict[str, Any]:
        """The session that the request's cookie names: ``{}`` if none."""
        return dict(self.request.session)

    # WebSocket

    async def ws_echo(self, ws: WebSocket, tag: str = "", session: str = "") -> None:
        """Echoes text until the client leaves."""
        with _running("echo", tag):
            await self._echo(ws, session, fail_on=None)

    async def ws_boom(self, ws: WebSocket, tag: str = "", session: str = "") -> None:
        """Echoes text, and raises ``RuntimeError`` on receiving ``"boom"``."""
        with _running("boom", tag):
            await self._echo(ws, session, fail_on=BOOM)

    async def ws_flood(self, ws: WebSocket, tag: str = "", session: str = "") -> None:
        """Sends text messages without ever reading, until it must stop."""
        with _running("flood", tag):
            await self._flood(ws, tag, session, binary=False)

    async def ws_flood_bytes(self, ws: WebSocket, tag: str = "", session: str = "") -> None:
        """Sends binary messages without ever reading, until it must stop."""
        with _running("flood_bytes", tag):
            await self._flood(ws, tag, session, binary=True)

    # Helpers: the leading underscore keeps them from being routes.

    async def _accept(self, ws: WebSocket, session: str) -> dict[str, Any]:
        data = self.request.session
        if session and "conn" not in data:
            data["conn"] = session
            data["received"] = 0
            session_id = new_session_id()
            _issued_sessions.append(session_id)
            await ws.accept(session_id=session_id)  # saved now, by the framework
        else:
            await ws.accept()
        return data

    async def _echo(self, ws: WebSocket, session: str, fail_on: str | None) -> None:
        data = await self._accept(ws, session)
        counting = "received" in data
        while True:
            text = await ws.receive_text()
            if counting:
                data["received"] += 1  # saved when the handler ends
            if text == fail_on:
                raise RuntimeError(BOOM_ERROR)
            await ws.send_text(text)

    async def _flood(self, ws: WebSocket, tag: str, session: str, *, binary: bool) -> None:
        await self._accept(ws, session)
        await ws.send_text("ready")
        chunk = b"\xa5" * FLOOD_CHUNK
        text = "x" * FLOOD_CHUNK
        _flood_sent[tag] = 0
        for number in range(FLOOD_MAX_MESSAGES):
            if binary:
                await ws.send_bytes(chunk)
            else:
                await ws.send_text(text)
            _flood_sent[tag] = number + 1


async def _count_tasks_at_startup() -> None:
    _tasks_at_startup.append(len(asyncio.all_tasks()))


async def _report_at_shutdown() -> None:
    """Print the figures and every session started, as the last word of the process."""
    sessions = {}
    for session_id in _issued_sessions:
        sessions[session_id] = await app.session_backend.load(session_id)
    report = {**figures(census=True), "issued_sessions": sessions}
    print(SHUTDOWN_LINE + json.dumps(report), flush=True)


app = LoadApp()
app.startup_handlers.append(_count_tasks_at_startup)
app.shutdown_handlers.append(_report_at_shutdown)
