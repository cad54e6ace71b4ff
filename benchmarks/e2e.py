"""End to end: one uvicorn worker on 127.0.0.1, driven by WebSocket clients.

The orchestrator binds the listening socket itself (127.0.0.1, an ephemeral
port) and hands it to uvicorn with ``--fd``, so the port is known before the
server starts. The clients (the ``websockets`` library) run in the
orchestrator's process, the same for every framework: they connect, echo a
few messages to warm up, wait for each other, and then each echoes its
messages one at a time, each reply checked. The clock runs from the moment
the last client is ready until the last reply arrives; the server's CPU time
over the same span is read from ``/proc`` where there is one.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.frameworks import SUITE_DIR, BenchmarkFailed, Framework

STARTUP_TIMEOUT = 20.0
SHUTDOWN_TIMEOUT = 10.0
#: What each client echoes: a short text message.
PAYLOAD = "The quick brown fox jumps over 1"
WARMUP_MESSAGES = 20


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def _answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
    try:
        connection.request("GET", "/json")
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    if response.status != 200 or b"Hello, World!" not in body:
        raise BenchmarkFailed(f"GET /json answered {response.status}: {body[:200]!r}")
    return True


@contextlib.contextmanager
def serve(framework: Framework, options: dict[str, str]) -> Iterator[Server]:
    """Run *framework*'s application under one uvicorn worker until the block ends."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    handle, log_name = tempfile.mkstemp(prefix=f"bench-{framework.name}-", suffix=".log")
    os.close(handle)
    log_path = Path(log_name)
    process: subprocess.Popen[bytes] | None = None
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(2048)
        port = listener.getsockname()[1]
        command = [
            str(framework.python), "-m", "uvicorn", f"{framework.app_module}:app",
            "--fd", str(listener.fileno()),
            "--loop", options["loop"], "--http", options["http"], "--ws", options["ws"],
            "--ws-per-message-deflate", "false",
            "--lifespan", "off", "--log-level", "warning", "--no-access-log",
            "--backlog", "2048",
        ]  # fmt: skip
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command,
                cwd=SUITE_DIR,  # the applications' directory, not the repository root
                env=framework.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=[listener.fileno()],
                start_new_session=True,
            )
        listener.close()
        server = Server(process, port, log_path)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _answers(port):
            if process.poll() is not None:
                raise BenchmarkFailed(
                    f"{framework.label}: uvicorn exited with code {process.returncode}:\n"
                    f"{server.output()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise BenchmarkFailed(
                    f"{framework.label}: uvicorn did not answer within {STARTUP_TIMEOUT} s:\n"
                    f"{server.output()[-3000:]}"
                )
            time.sleep(0.05)
        yield server
    finally:
        listener.close()
        if process is not None:
            _stop(process)
        with contextlib.suppress(OSError):
            log_path.unlink()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def process_cpu_seconds(pid: int) -> float | None:
    """The CPU time process *pid* has used, from ``/proc``; None where there is none.

    The scheduler's count in nanoseconds (``schedstat``), summed over the
    process's threads, or else user plus system time in clock ticks.
    """
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        return sum(int((task / "schedstat").read_text().split()[0]) for task in tasks) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


async def _load(url: str, pid: int, clients: int, messages: int) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    started = asyncio.Barrier(clients + 1)
    finished = asyncio.Barrier(clients + 1)

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
        server_cpu = process_cpu_seconds(pid)
        client_cpu = time.process_time()
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


def _loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def echo_load(server: Server, path: str, clients: int, messages: int) -> dict[str, Any]:
    """*clients* connections to *path*, each echoing *messages* messages; timings."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(_load(server.url + path, server.process.pid, clients, messages))
