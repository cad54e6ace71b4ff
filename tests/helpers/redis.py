"""A real redis-server for the tests: started on 127.0.0.1, an ephemeral port, no persistence."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.servers import free_port
from tests.helpers.support import require_program

STARTUP_TIMEOUT = 10.0


class RedisServer:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.log = log


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def run_redis(attempts: int = 3, port: int | None = None) -> Iterator[RedisServer]:
    """Start ``redis-server`` until the block ends; skip (or fail in CI) if it is missing.

    *port*: on that port (a restart after an outage), else a free one.
    """
    program = require_program("redis-server")
    wanted = port
    with tempfile.TemporaryDirectory(prefix="micropie-redis-") as directory:
        for attempt in range(1, attempts + 1):
            port = free_port() if wanted is None else wanted
            log = Path(directory) / f"redis-{attempt}.log"
            command = [
                program,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                directory,
                "--logfile",
                str(log),
            ]
            process = subprocess.Popen(
                command,
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
            try:
                deadline = time.monotonic() + STARTUP_TIMEOUT
                while not _answers_ping(port):
                    if process.poll() is not None or time.monotonic() > deadline:
                        break
                    time.sleep(0.02)
                else:
                    yield RedisServer(process, port, log)
                    return
                output = log.read_text(errors="replace") if log.exists() else ""
                if attempt == attempts or "Address already in use" not in output:
                    pytest.fail(f"redis-server did not start on port {port}:\n{output}")
            finally:
                if process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(10)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
