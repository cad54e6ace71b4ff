"""End to end: a framework's application under a real server, driven by WebSocket clients.

The tests' ``run_server`` binds 127.0.0.1 on an ephemeral port, starts ``python -m
<server>`` on that socket with the framework's Python, and stops it afterwards. The
clients (``websockets``) connect, warm up, wait for each other, then each echoes its
messages one at a time, every reply checked; the clock runs from the last client
ready to the last reply, and the server's CPU time over that span comes from ``/proc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.frameworks import SUITE_DIR, BenchmarkFailed, Framework
from tests.helpers.servers import RunningServer, run_server

#: What each client echoes: a short text message.
PAYLOAD = "The quick brown fox jumps over 1"
WARMUP_MESSAGES = 20


def _has(module: str) -> bool:
    with contextlib.suppress(ModuleNotFoundError):
        return importlib.util.find_spec(module) is not None
    return False


def uvicorn_options() -> dict[str, str]:
    """The fastest implementations installed here (the PyPI environment gets the same)."""
    return {
        "loop": "uvloop" if _has("uvloop") else "asyncio",
        "http": "httptools" if _has("httptools") else "h11",
        "ws": "websockets-sansio"
        if _has("uvicorn.protocols.websockets.websockets_sansio_impl")
        else "websockets",
    }


#: Each server (a module that ``python -m`` runs, and that tests/helpers/servers.py
#: can hand a listening socket): its options after the application, for one worker,
#: no compression, no access log.
SERVERS: dict[str, Callable[[], list[str]]] = {
    "uvicorn": lambda: [
        *(f"--{name}={value}" for name, value in uvicorn_options().items()),
        "--ws-per-message-deflate=false", "--lifespan=off", "--log-level=warning",
        "--no-access-log", "--backlog=2048",
    ],
}  # fmt: skip


@contextlib.contextmanager
def serve(framework: Framework, server: str = "uvicorn") -> Iterator[RunningServer]:
    """Serve *framework*'s application with *server* until the block ends."""
    app, options = f"{framework.module}:app", SERVERS[server]()
    with run_server(
        server, app, *options, cwd=SUITE_DIR, env=framework.env, python=framework.python
    ) as running:
        yield running


def process_cpu_seconds(pid: int) -> float | None:
    """The CPU time process *pid* has used: the scheduler's nanoseconds summed over its
    threads (Linux's ``/proc``); None where there is no such file."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return sum(int((task / "schedstat").read_text().split()[0]) for task in tasks) / 1e9
    return None


async def _load(url: str, pid: int, clients: int, messages: int) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    started, finished = asyncio.Barrier(clients + 1), asyncio.Barrier(clients + 1)

    async def client() -> None:
        async with connect(
            url, compression=None, proxy=None, ping_interval=None, max_size=None, open_timeout=60
        ) as ws:
            for _ in range(WARMUP_MESSAGES):
                await ws.send(PAYLOAD)
                await ws.recv()
            await started.wait()
            for _ in range(messages):
                await ws.send(PAYLOAD)
                reply = await ws.recv()
                if reply != PAYLOAD:
                    raise BenchmarkFailed(f"the server echoed {reply!r:.100}")
            await finished.wait()

    async with asyncio.TaskGroup() as group:
        for _ in range(clients):
            group.create_task(client())
        await asyncio.wait_for(started.wait(), 120)
        server_cpu, client_cpu = process_cpu_seconds(pid), time.process_time()
        start = time.perf_counter()
        await finished.wait()
        seconds = time.perf_counter() - start
        client_cpu = time.process_time() - client_cpu
        end_cpu = process_cpu_seconds(pid)
    return {
        "clients": clients,
        "messages": clients * messages,
        "seconds": seconds,
        "server_cpu_seconds": None
        if server_cpu is None or end_cpu is None
        else end_cpu - server_cpu,
        "client_cpu_seconds": client_cpu,
    }


def echo_load(server: RunningServer, path: str, clients: int, messages: int) -> dict[str, Any]:
    """*clients* connections to *path*, each echoing *messages* messages; the timings."""
    uvloop = importlib.import_module("uvloop") if _has("uvloop") else asyncio
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_load(server.ws_url + path, server.process.pid, clients, messages))
