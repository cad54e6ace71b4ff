"""The in-process harness: drives one framework's application with no server and no sockets.

Run by the orchestrator (``python -m benchmarks``), once per framework and
workload, with the Python of that framework's environment::

    python benchmarks/suite/harness.py '{"framework": "starlette", "workloads": {"ws_text": 1000}}'

It prints one line of JSON: the seconds each timed run took, and the versions
it ran. This directory is the only one of the repository on ``sys.path``
(the orchestrator runs it with this directory as the working directory, and
puts the repository root on ``PYTHONPATH`` only for this repository's
MicroPie), so that the PyPI ``micropie`` is not shadowed by the ``micropie``
package of the checkout.

The server's side is played by :class:`Connection`: ``receive()`` hands out
the next message of a script prepared before the clock starts (an in-memory
queue), and ``send()`` keeps what the application sends, for checking after
the clock stops. Every application answers each workload the same way, and
every run is checked: a wrong answer fails the benchmark instead of timing it.
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
from dataclasses import dataclass
from typing import Any

Message = dict[str, Any]
ASGIApp = Callable[..., Coroutine[Any, Any, None]]

#: Where each framework's application lives (modules of this directory).
APP_MODULES = {
    "raw": "app_raw",
    "micropie": "app_micropie",
    "starlette": "app_starlette",
    "pypi-micropie": "app_pypi_micropie",
}

#: A short text message, and a 16 KiB binary one.
TEXT_PAYLOAD = "The quick brown fox jumps over 1"
BINARY_PAYLOAD = bytes(range(256)) * 64
EXPECTED_JSON = {"message": "Hello, World!"}

# What a browser-like client sends, as uvicorn hands it over.
_WS_HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) benchmark"),
    (b"upgrade", b"websocket"),
    (b"connection", b"Upgrade"),
    (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    (b"sec-websocket-version", b"13"),
    (b"origin", b"http://127.0.0.1:8000"),
    (b"accept-language", b"en-GB,en;q=0.9"),
]
_HTTP_HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) benchmark"),
    (b"accept", b"application/json"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b"en-GB,en;q=0.9"),
    (b"connection", b"keep-alive"),
]

_CONNECT: Message = {"type": "websocket.connect"}
_WS_DISCONNECT: Message = {"type": "websocket.disconnect", "code": 1000, "reason": ""}
_HTTP_REQUEST: Message = {"type": "http.request", "body": b"", "more_body": False}
_HTTP_DISCONNECT: Message = {"type": "http.disconnect"}


def websocket_scope(path: str) -> dict[str, Any]:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "ws",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 51234),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": _WS_HEADERS,
        "subprotocols": [],
        "state": {},
    }


def http_scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 51234),
        "root_path": "",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": _HTTP_HEADERS,
        "state": {},
    }


class Connection:
    """The server's side of one connection, in memory.

    ``receive()`` returns the scripted messages in order, then *final* for
    ever (the client has gone); ``send()`` records what the application sent.
    """

    __slots__ = ("_final", "_inbound", "sent")

    def __init__(self, inbound: list[Message], final: Message) -> None:
        self._inbound = deque(inbound)
        self._final = final
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        if self._inbound:
            return self._inbound.popleft()
        return self._final

    async def send(self, message: Message) -> None:
        self.sent.append(message)


class EchoCounter(Connection):
    """A connection that counts the echoes instead of keeping them.

    A server forgets a message once it is written: keeping 100,000 of them
    alive would make the garbage collector's work, not the framework's, grow
    with the run. The other messages (accept, close) are kept; so is the
    last echo, and the check compares it with what was sent.
    """

    __slots__ = ("echoes", "last_echo")

    def __init__(self, inbound: list[Message], final: Message) -> None:
        super().__init__(inbound, final)
        self.echoes = 0
        self.last_echo: Message | None = None

    async def send(self, message: Message) -> None:
        if message["type"] == "websocket.send":
            self.echoes += 1
            self.last_echo = message
        else:
            self.sent.append(message)


class BenchmarkError(AssertionError):
    """The application did not answer as the workload expects."""


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise BenchmarkError(problem if len(problem) <= 300 else problem[:297] + "...")


def _header(message: Message, name: bytes) -> bytes | None:
    for key, value in message.get("headers") or ():
        if bytes(key).lower() == name:
            return bytes(value)
    return None


#: Seconds of wall-clock time and of this process's CPU time.
Timing = tuple[float, float]


def _clock() -> Timing:
    return time.perf_counter(), time.process_time()


def _since(start: Timing) -> Timing:
    return time.perf_counter() - start[0], time.process_time() - start[1]


@dataclass
class Trial:
    """One timed run: *run* is what the clock measures, *check* what follows it."""

    run: Callable[[], Coroutine[Any, Any, Timing]]
    check: Callable[[], None]


# The workloads. Each builds its script before the clock starts.


def echo_trial(app: ASGIApp, size: int, *, binary: bool, record_all: bool) -> Trial:
    key, payload = ("bytes", BINARY_PAYLOAD) if binary else ("text", TEXT_PAYLOAD)
    scope = websocket_scope("/bytes" if binary else "/text")
    inbound = [_CONNECT, *({"type": "websocket.receive", key: payload} for _ in range(size))]
    connection = (Connection if record_all else EchoCounter)(inbound, _WS_DISCONNECT)

    async def run() -> Timing:
        start = _clock()
        await app(scope, connection.receive, connection.send)
        return _since(start)

    def check() -> None:
        sent = connection.sent
        _expect(bool(sent) and sent[0]["type"] == "websocket.accept", f"not accepted: {sent[:1]}")
        if isinstance(connection, EchoCounter):
            echoes = connection.echoes
            last = connection.last_echo
            _expect(
                last is not None and last.get(key) == payload,
                f"the last echo is not the {key} sent: {last!r:.200}",
            )
        else:
            replies = [m for m in sent if m["type"] == "websocket.send"]
            echoes = len(replies)
            wrong = [m for m in replies if m.get(key) != payload]
            _expect(
                not wrong, f"{len(wrong)} echoes differ from the {key} sent: {wrong[:1]!r:.200}"
            )
        _expect(echoes == size, f"{echoes} echoes for {size} messages")
        others = [m["type"] for m in sent[1:] if m["type"] != "websocket.send"]
        _expect(others in ([], ["websocket.close"]), f"unexpected messages after accept: {others}")

    return Trial(run, check)


def handshake_trial(app: ASGIApp, size: int, record_all: bool = True) -> Trial:
    # Every message is kept whatever *record_all* says: three per connection.
    message = {"type": "websocket.receive", "text": TEXT_PAYLOAD}
    connections = [Connection([_CONNECT, message], _WS_DISCONNECT) for _ in range(size)]
    scopes = [websocket_scope("/session") for _ in range(size)]

    async def run() -> Timing:
        start = _clock()
        for scope, connection in zip(scopes, connections, strict=True):
            await app(scope, connection.receive, connection.send)
        return _since(start)

    def check() -> None:
        cookies = set()
        for connection in connections:
            sent = connection.sent
            kinds = [m["type"] for m in sent]
            _expect(
                kinds == ["websocket.accept", "websocket.send", "websocket.close"],
                f"a handshake answered {kinds}",
            )
            cookie = _header(sent[0], b"set-cookie")
            _expect(
                cookie is not None and cookie.startswith(b"session_id="),
                f"accepted without a session cookie: {sent[0]!r:.200}",
            )
            cookies.add(cookie.split(b";", 1)[0])  # type: ignore[union-attr]
            _expect(sent[1].get("text") == TEXT_PAYLOAD, f"a wrong echo: {sent[1]!r:.200}")
        _expect(len(cookies) == size, f"{size} handshakes got {len(cookies)} session IDs")

    return Trial(run, check)


def http_trial(app: ASGIApp, size: int, record_all: bool = True) -> Trial:
    connections = [Connection([_HTTP_REQUEST], _HTTP_DISCONNECT) for _ in range(size)]
    scopes = [http_scope("/json") for _ in range(size)]

    async def run() -> Timing:
        start = _clock()
        for scope, connection in zip(scopes, connections, strict=True):
            await app(scope, connection.receive, connection.send)
        return _since(start)

    def check() -> None:
        for connection in connections:
            sent = connection.sent
            _expect(
                bool(sent) and sent[0]["type"] == "http.response.start",
                f"a response began with {sent[:1]!r:.200}",
            )
            _expect(sent[0]["status"] == 200, f"status {sent[0]['status']}")
            content_type = _header(sent[0], b"content-type") or b""
            _expect(content_type.startswith(b"application/json"), f"content-type {content_type!r}")
            _expect(
                all(m["type"] == "http.response.body" for m in sent[1:]),
                f"unexpected messages: {[m['type'] for m in sent]}",
            )
            _expect(not sent[-1].get("more_body", False), "the body never ended")
            body = b"".join(m.get("body", b"") for m in sent[1:])
            _expect(json.loads(body) == EXPECTED_JSON, f"body {body!r:.200}")

    return Trial(run, check)


def text_echo_trial(app: ASGIApp, size: int, record_all: bool = False) -> Trial:
    return echo_trial(app, size, binary=False, record_all=record_all)


def binary_echo_trial(app: ASGIApp, size: int, record_all: bool = False) -> Trial:
    return echo_trial(app, size, binary=True, record_all=record_all)


#: Each workload, by name: make(app, size, record_all) -> Trial.
WORKLOADS: dict[str, Callable[[ASGIApp, int, bool], Trial]] = {
    "ws_text": text_echo_trial,
    "ws_binary": binary_echo_trial,
    "ws_handshake": handshake_trial,
    "http_json": http_trial,
}


def _timed(loop: asyncio.AbstractEventLoop, trial: Trial) -> Timing:
    # What was built for the run is frozen out of the collector's sight: the
    # collections that happen are those the application's own garbage causes.
    gc.collect()
    gc.freeze()
    try:
        return loop.run_until_complete(trial.run())
    finally:
        gc.unfreeze()


def _profile(loop: asyncio.AbstractEventLoop, trial: Trial, tool: str, limit: int) -> str:
    if tool == "pyinstrument":
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0002, async_mode="disabled")
        profiler.start()
        loop.run_until_complete(trial.run())
        profiler.stop()
        return str(profiler.output_text(unicode=False, color=False, show_all=False))
    import cProfile
    import io
    import pstats

    profile = cProfile.Profile()
    profile.enable()
    loop.run_until_complete(trial.run())
    profile.disable()
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(limit)
    return out.getvalue()


def versions(framework: str) -> dict[str, str]:
    found = {"python": platform.python_version()}
    if framework == "starlette":
        found["starlette"] = importlib.metadata.version("starlette")
    elif framework in ("micropie", "pypi-micropie"):
        import micropie

        found["micropie"] = str(
            getattr(micropie, "__version__", None) or importlib.metadata.version("micropie")
        )
    return found


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the workloads *spec* names; return what :func:`main` prints."""
    framework = spec["framework"]
    module = importlib.import_module(APP_MODULES[framework])
    app: ASGIApp = module.app
    repeats = int(spec.get("repeats", 1))
    warmup = bool(spec.get("warmup", True))
    record_all = bool(spec.get("record_all", False))
    profile = spec.get("profile")
    framework_module = sys.modules.get("micropie") or sys.modules.get("starlette")
    result: dict[str, Any] = {
        "framework": framework,
        "versions": versions(framework),
        "module_file": getattr(framework_module, "__file__", None),
        "executable": sys.executable,
        "results": {},
    }
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        for name, size in spec["workloads"].items():
            make = WORKLOADS[name]
            if warmup:  # fully checked, every message kept
                trial = make(app, max(1, size // 10), True)
                loop.run_until_complete(trial.run())
                trial.check()
            if profile:
                trial = make(app, size, record_all)
                text = _profile(
                    loop, trial, profile.get("tool", "cprofile"), profile.get("limit", 30)
                )
                trial.check()
                result["results"][name] = {"size": size, "profile": text}
                continue
            wall, cpu = [], []
            for _ in range(repeats):
                trial = make(app, size, record_all)
                timing = _timed(loop, trial)
                trial.check()
                del trial
                wall.append(timing[0])
                cpu.append(timing[1])
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
        sys.stderr.write(f"benchmark check failed: {exc}\n")
        print(json.dumps({"error": f"check failed: {exc}"}))
        return 1
    except Exception as exc:
        traceback.print_exc()
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
