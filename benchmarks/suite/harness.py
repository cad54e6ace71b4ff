"""The in-process harness: drives one application with no server and no sockets.

``python harness.py '{"module": "app_raw", "workloads": {"ws_text": 1000}}'``, with a
framework's Python, in this directory, prints one line of JSON: the seconds of each timed
run, and the versions. :class:`Connection` plays the server from a script built before the
clock starts; every answer is checked after the run, and a wrong one fails it.
"""

import asyncio
import cProfile
import functools
import gc
import importlib
import importlib.metadata
import io
import json
import platform
import pstats
import sys
import time
import traceback
import tracemalloc
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

Message = dict[str, Any]
ASGIApp = Callable[..., Coroutine[Any, Any, None]]

#: A short text message, and a 16 KiB binary one.
TEXT_PAYLOAD = "The quick brown fox jumps over 1"
BINARY_PAYLOAD = bytes(range(256)) * 64
EXPECTED_JSON = {"message": "Hello, World!"}
# What a browser sends, as uvicorn hands it over.
_HEADERS = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"Mozilla/5.0 (X11; Linux) bench")]
_WS_HEADERS = [
    *_HEADERS, (b"upgrade", b"websocket"), (b"connection", b"Upgrade"),
    (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="), (b"sec-websocket-version", b"13"),
    (b"origin", b"http://127.0.0.1:8000"), (b"accept-language", b"en-GB,en;q=0.9"),
]  # fmt: skip
_HTTP_HEADERS = [
    *_HEADERS, (b"accept", b"application/json"), (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b"en-GB,en;q=0.9"), (b"connection", b"keep-alive"),
]  # fmt: skip
_CONNECT: Message = {"type": "websocket.connect"}
_WS_GONE: Message = {"type": "websocket.disconnect", "code": 1000, "reason": ""}
_HTTP_GONE: Message = {"type": "http.disconnect"}


def scope(kind: str, path: str, spec: str | None = "2.4") -> dict[str, Any]:
    """A ``websocket`` or ``http`` (GET) scope for *path*, announcing ASGI *spec*
    (None: no spec_version, which means 2.0)."""
    ws = kind == "websocket"
    asgi = {"version": "3.0", **({"spec_version": spec} if spec else {})}
    return {
        "type": kind, "asgi": asgi, "http_version": "1.1",
        "scheme": "ws" if ws else "http", "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 51234), "root_path": "", "path": path,
        "raw_path": path.encode(), "query_string": b"", "state": {},
        "headers": _WS_HEADERS if ws else _HTTP_HEADERS,
        **({"subprotocols": []} if ws else {"method": "GET"}),
    }  # fmt: skip


class Connection:
    """The server's side of a connection: the scripted messages, then *final* for ever.
    Unless it *keeps* all it is sent, it counts the echoes and keeps the last, as a server
    forgets what it wrote: 100,000 kept alive would grow the collector's work with the run."""

    __slots__ = ("_final", "_inbound", "echoes", "last_echo", "send", "sent")

    def __init__(self, inbound: list[Message], final: Message, keep: bool = True) -> None:
        self._inbound, self._final, self.echoes = deque(inbound), final, 0
        self.sent: list[Message] = []
        self.last_echo: Message = {}
        self.send = self._keep if keep else self._count

    async def receive(self) -> Message:
        return self._inbound.popleft() if self._inbound else self._final

    async def _keep(self, message: Message) -> None:
        self.sent.append(message)

    async def _count(self, message: Message) -> None:
        if message["type"] == "websocket.send":
            self.echoes += 1
            self.last_echo = message
        else:
            self.sent.append(message)

    def messages(self) -> list[Message]:
        """What the application sent, in order (the last echo standing for the others)."""
        return [*self.sent[:1], *[self.last_echo] * self.echoes, *self.sent[1:]]


class BenchmarkError(AssertionError):
    """The application did not answer as the workload expects."""


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise BenchmarkError(problem[:300])


def _header(message: Message, name: bytes) -> bytes:
    return next((bytes(v) for k, v in message.get("headers") or () if k.lower() == name), b"")


#: A workload's script for a size: the scope's type and path, each connection's
#: inbound messages, and the check of what every connection was sent.
Script = tuple[str, str, list[list[Message]], Callable[[list[list[Message]]], None]]
#: What the clock measures (returning the wall and CPU seconds), and the check after it.
Trial = tuple[Callable[[], Coroutine[Any, Any, tuple[float, float]]], Callable[[], None]]


def echo(key: str, payload: str | bytes, size: int) -> Script:
    def check(sents: list[list[Message]]) -> None:
        (sent,) = sents
        kinds = [m["type"] for m in sent]
        echoed = ["websocket.accept", *["websocket.send"] * size]
        _expect(kinds in (echoed, [*echoed, "websocket.close"]), f"not {size} echoes: {kinds}")
        wrong = [m for m in sent[1 : size + 1] if m.get(key) != payload]
        _expect(not wrong, f"{len(wrong)} echoes differ from the {key} sent: {wrong[:1]!r}")

    inbound = [_CONNECT, *({"type": "websocket.receive", key: payload} for _ in range(size))]
    return "websocket", f"/{key}", [inbound], check


def handshake(size: int) -> Script:
    def check(sents: list[list[Message]]) -> None:
        cookies = set()
        for sent in sents:
            kinds = [m["type"] for m in sent]
            expected = ["websocket.accept", "websocket.send", "websocket.close"]
            _expect(kinds == expected, f"a handshake answered {kinds}")
            cookie = _header(sent[0], b"set-cookie")
            _expect(cookie.startswith(b"session_id="), f"no session cookie: {sent[0]!r:.200}")
            cookies.add(cookie.split(b";", 1)[0])
            _expect(sent[1].get("text") == TEXT_PAYLOAD, f"a wrong echo: {sent[1]!r:.200}")
        _expect(len(cookies) == size, f"{size} handshakes got {len(cookies)} session IDs")

    message = {"type": "websocket.receive", "text": TEXT_PAYLOAD}
    return "websocket", "/session", [[_CONNECT, message]] * size, check


def http_json(size: int, path: str = "/json") -> Script:
    def check(sents: list[list[Message]]) -> None:
        for sent in sents:
            kinds = [m["type"] for m in sent]
            expected = ["http.response.start", *["http.response.body"] * max(1, len(sent) - 1)]
            _expect(kinds == expected, f"a response sent {kinds}")
            status, content_type = sent[0]["status"], _header(sent[0], b"content-type")
            ok = status == 200 and content_type.startswith(b"application/json")
            _expect(ok, f"status {status}, content-type {content_type!r}")
            _expect(not sent[-1].get("more_body", False), "the body never ended")
            body = b"".join(m.get("body", b"") for m in sent[1:])
            _expect(json.loads(body) == EXPECTED_JSON, f"body {body!r:.200}")

    request = {"type": "http.request", "body": b"", "more_body": False}
    return "http", path, [[request]] * size, check


WORKLOADS: dict[str, Callable[[int], Script]] = {
    "ws_text": functools.partial(echo, "text", TEXT_PAYLOAD),
    # The same echo as hypercorn and granian announce themselves, and as daphne does.
    "ws_text_2_3": functools.partial(echo, "text", TEXT_PAYLOAD),
    "ws_text_2_0": functools.partial(echo, "text", TEXT_PAYLOAD),
    "ws_binary": functools.partial(echo, "bytes", BINARY_PAYLOAD),
    "ws_handshake": handshake,
    "http_json": http_json,
    # The same from a plain function: the frameworks run it in a worker thread.
    "http_json_sync": functools.partial(http_json, path="/json_sync"),
}
#: The ASGI spec version each workload's scopes announce, where it is not 2.4.
SPECS: dict[str, str | None] = {"ws_text_2_3": "2.3", "ws_text_2_0": None}


def trial(app: ASGIApp, workload: str, size: int, check_all: bool = True) -> Trial:
    """*size* operations of *workload* for *app*. Without *check_all*, one long connection
    (an echo) counts its echoes and checks the last; with it, every message is kept."""
    kind, path, inbound, check = WORKLOADS[workload](size)
    final, keep = _WS_GONE if kind == "websocket" else _HTTP_GONE, check_all or len(inbound) > 1
    connections = [Connection(messages, final, keep) for messages in inbound]
    scopes = [scope(kind, path, SPECS.get(workload, "2.4")) for _ in connections]

    async def run() -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        for each, connection in zip(scopes, connections, strict=True):
            await app(each, connection.receive, connection.send)
        return time.perf_counter() - wall, time.process_time() - cpu

    return run, lambda: check([c.messages() for c in connections])


async def open_connections(app: ASGIApp, count: int) -> float:
    """The Python memory (tracemalloc) that *count* open WebSockets hold, per
    connection: each accepted, its handler waiting for the next message. What
    the harness makes for a connection (its scope, its messages, its task) is
    counted for every framework alike; the raw floor's figure is that, and
    what the least handler adds."""
    loop = asyncio.get_running_loop()
    leave: asyncio.Future[Message] = loop.create_future()

    class Open:
        __slots__ = ("accepted", "connected")

        def __init__(self) -> None:
            self.connected, self.accepted = False, False

        async def receive(self) -> Message:
            if not self.connected:
                self.connected = True
                return _CONNECT
            return await leave

        async def send(self, message: Message) -> None:
            if message["type"] == "websocket.accept":
                self.accepted = True

    connections = [Open() for _ in range(count)]
    scopes = [scope("websocket", "/text") for _ in range(count)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    pairs = zip(scopes, connections, strict=True)
    tasks = [loop.create_task(app(each, c.receive, c.send)) for each, c in pairs]
    while not all(connection.accepted for connection in connections):
        await asyncio.sleep(0)
    await asyncio.sleep(0)  # every handler is waiting now
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    leave.set_result(_WS_GONE)
    await asyncio.gather(*tasks)
    _expect(all(c.accepted for c in connections), "a connection was never accepted")
    return held / count


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the workloads *spec* names; return what :func:`main` prints."""
    app: ASGIApp = importlib.import_module(spec["module"]).app
    versions = {"python": platform.python_version()}
    for name in ("micropie", "starlette"):
        if module := sys.modules.get(name):
            version = getattr(module, "__version__", None)
            versions[name] = str(version or importlib.metadata.version(name))
    micropie = getattr(sys.modules.get("micropie"), "__file__", None)
    result: dict[str, Any] = {"versions": versions, "micropie_file": micropie, "results": {}}
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    if "open_connections" in spec:
        count = spec["open_connections"]
        result["bytes_per_connection"] = loop.run_until_complete(open_connections(app, count))
        return result
    for name, size in spec["workloads"].items():
        if spec.get("warmup", True):  # a tenth of the size, every echo checked
            timed, check = trial(app, name, max(1, size // 10))
            loop.run_until_complete(timed())
            check()
        timed, check = trial(app, name, size, spec.get("check_all", False))
        if spec.get("profile"):
            profile, out = cProfile.Profile(), io.StringIO()
            profile.runcall(loop.run_until_complete, timed())
            pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(30)
            result["results"][name] = {"profile": out.getvalue()}
        else:
            # What the trial built is frozen out of the collector's sight: the
            # collections that happen are those the application's garbage causes.
            gc.collect()
            gc.freeze()
            wall, cpu = loop.run_until_complete(timed())
            gc.unfreeze()
            result["results"][name] = {"size": size, "wall_seconds": wall, "cpu_seconds": cpu}
        check()
        del timed, check
    return result


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    try:
        output = run(json.loads(sys.argv[1]))
    except BenchmarkError as exc:
        output = {"error": f"check failed: {exc}"}
    except Exception as exc:  # the traceback to stderr, which the caller shows
        traceback.print_exc()
        output = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(output))
    raise SystemExit(1 if "error" in output else 0)
