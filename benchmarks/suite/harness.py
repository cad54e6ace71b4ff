"""The in-process harness: drives one application with no server and no sockets.

``python -m benchmarks`` runs it once per framework, workload and round, with that
framework's Python, in this directory: ``python harness.py '{"module": "app_raw",
"workloads": {"ws_text": 1000}}'``. It prints one line of JSON: the seconds of each
timed run, and the versions. :class:`Connection` plays the server from a script built
before the clock starts; every answer is checked after the run, and a wrong one fails it.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import importlib.metadata
import json
import platform
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, NamedTuple

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
_REQUEST: Message = {"type": "http.request", "body": b"", "more_body": False}
_HTTP_GONE: Message = {"type": "http.disconnect"}


def scope(kind: str, path: str) -> dict[str, Any]:
    """A ``websocket`` or ``http`` (GET) scope for *path*."""
    ws = kind == "websocket"
    return {
        "type": kind, "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
        "scheme": "ws" if ws else "http", "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 51234), "root_path": "", "path": path,
        "raw_path": path.encode(), "query_string": b"", "state": {},
        "headers": _WS_HEADERS if ws else _HTTP_HEADERS,
        **({"subprotocols": []} if ws else {"method": "GET"}),
    }  # fmt: skip


class Connection:
    """The server's side of a connection: the scripted messages, then *final* for ever."""

    __slots__ = ("_final", "_inbound", "sent")

    def __init__(self, inbound: list[Message], final: Message) -> None:
        self._inbound = deque(inbound)
        self._final = final
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        return self._inbound.popleft() if self._inbound else self._final

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    def messages(self) -> list[Message]:
        return self.sent


class EchoCounter(Connection):
    """Counts the echoes and keeps only the last, as a server forgets what it wrote:
    keeping 100,000 alive would grow the garbage collector's work with the run."""

    __slots__ = ("echoes", "last_echo")

    def __init__(self, inbound: list[Message], final: Message) -> None:
        super().__init__(inbound, final)
        self.echoes = 0
        self.last_echo: Message = {}

    async def send(self, message: Message) -> None:
        if message["type"] == "websocket.send":
            self.echoes += 1
            self.last_echo = message
        else:
            self.sent.append(message)

    def messages(self) -> list[Message]:
        return [*self.sent[:1], *[self.last_echo] * self.echoes, *self.sent[1:]]


class BenchmarkError(AssertionError):
    """The application did not answer as the workload expects."""


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise BenchmarkError(problem[:300])


def _header(message: Message, name: bytes) -> bytes:
    return next((bytes(v) for k, v in message.get("headers") or () if k.lower() == name), b"")


class Trial(NamedTuple):
    """One timed run: *run* is what the clock measures (wall, CPU seconds); *check* follows."""

    run: Callable[[], Coroutine[Any, Any, tuple[float, float]]]
    check: Callable[[], None]


#: A workload's script for a size: the scope's type and path, each connection's
#: inbound messages, and the check of what every connection was sent.
Script = tuple[str, str, list[list[Message]], Callable[[list[list[Message]]], None]]


def echo(key: str, payload: str | bytes) -> Callable[[int], Script]:
    def script(size: int) -> Script:
        def check(sents: list[list[Message]]) -> None:
            (sent,) = sents
            _expect(sent[:1] != [] and sent[0]["type"] == "websocket.accept", f"sent {sent[:1]}")
            replies = [m for m in sent if m["type"] == "websocket.send"]
            wrong = [m for m in replies if m.get(key) != payload]
            _expect(not wrong, f"{len(wrong)} echoes differ from the {key} sent: {wrong[:1]!r}")
            _expect(len(replies) == size, f"{len(replies)} echoes for {size} messages")
            others = [m["type"] for m in sent[1:] if m["type"] != "websocket.send"]
            _expect(others in ([], ["websocket.close"]), f"unexpected after accept: {others}")

        inbound = [_CONNECT, *({"type": "websocket.receive", key: payload} for _ in range(size))]
        return "websocket", f"/{key}", [inbound], check

    return script


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


def http_json(size: int) -> Script:
    def check(sents: list[list[Message]]) -> None:
        for sent in sents:
            start = sent[0] if sent else {}
            _expect(start.get("type") == "http.response.start", f"a response began {start!r:.200}")
            _expect(start["status"] == 200, f"status {start['status']}")
            content_type = _header(start, b"content-type")
            _expect(content_type.startswith(b"application/json"), f"content-type {content_type!r}")
            kinds = [m["type"] for m in sent[1:]]
            _expect(set(kinds) == {"http.response.body"}, f"unexpected messages: {kinds}")
            _expect(not sent[-1].get("more_body", False), "the body never ended")
            body = b"".join(m.get("body", b"") for m in sent[1:])
            _expect(json.loads(body) == EXPECTED_JSON, f"body {body!r:.200}")

    return "http", "/json", [[_REQUEST]] * size, check


WORKLOADS: dict[str, Callable[[int], Script]] = {
    "ws_text": echo("text", TEXT_PAYLOAD),
    "ws_binary": echo("bytes", BINARY_PAYLOAD),
    "ws_handshake": handshake,
    "http_json": http_json,
}


def trial(app: ASGIApp, workload: str, size: int, check_all: bool = True) -> Trial:
    """*size* operations of *workload* for *app*. Without *check_all*, one long connection
    (an echo) counts its echoes and checks the last; with it, every message is kept."""
    kind, path, inbound, check = WORKLOADS[workload](size)
    final = _WS_GONE if kind == "websocket" else _HTTP_GONE
    kept = Connection if check_all or len(inbound) > 1 else EchoCounter
    connections = [kept(messages, final) for messages in inbound]
    scopes = [scope(kind, path) for _ in connections]

    async def run() -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        for each, connection in zip(scopes, connections, strict=True):
            await app(each, connection.receive, connection.send)
        return time.perf_counter() - wall, time.process_time() - cpu

    return Trial(run, lambda: check([c.messages() for c in connections]))


def _profile(loop: asyncio.AbstractEventLoop, profiled: Trial) -> str:
    import cProfile
    import io
    import pstats

    profile = cProfile.Profile()
    profile.runcall(loop.run_until_complete, profiled.run())
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(30)
    return out.getvalue()


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the workloads *spec* names; return what :func:`main` prints."""
    app: ASGIApp = importlib.import_module(spec["module"]).app
    versions = {"python": platform.python_version()}
    for name in ("micropie", "starlette"):
        if name in sys.modules:
            version = getattr(sys.modules[name], "__version__", None)
            versions[name] = str(version or importlib.metadata.version(name))
    micropie = getattr(sys.modules.get("micropie"), "__file__", None)
    result: dict[str, Any] = {"versions": versions, "micropie_file": micropie, "results": {}}
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        for name, size in spec["workloads"].items():
            if spec.get("warmup", True):  # a tenth of the size, every echo checked
                warmup = trial(app, name, max(1, size // 10))
                loop.run_until_complete(warmup.run())
                warmup.check()
            if spec.get("profile"):
                profiled = trial(app, name, size, False)
                result["results"][name] = {"profile": _profile(loop, profiled)}
                profiled.check()
                continue
            timings = []
            for _ in range(spec.get("repeats", 1)):
                timed = trial(app, name, size, spec.get("check_all", False))
                # What the trial built is frozen out of the collector's sight: the
                # collections that happen are those the application's garbage causes.
                gc.collect()
                gc.freeze()
                try:
                    timings.append(loop.run_until_complete(timed.run()))
                finally:
                    gc.unfreeze()
                timed.check()
                del timed
            wall, cpu = ([timing[i] for timing in timings] for i in (0, 1))
            result["results"][name] = {"size": size, "wall_seconds": wall, "cpu_seconds": cpu}
    finally:
        loop.close()
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write(__doc__ or "")
        return 2
    try:
        result = run(json.loads(argv[1]))
    except BenchmarkError as exc:
        result = {"error": f"check failed: {exc}"}
    except Exception as exc:
        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result))
    return 1 if "error" in result else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
