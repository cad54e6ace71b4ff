"""A real redis-server for the tests: started on 127.0.0.1, an ephemeral port, no persistence."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
def _process(command: list[str], directory: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run *command* in *directory* until the block ends; stopped however it ends."""
    process = subprocess.Popen(
        command,
        cwd=directory,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


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
            with _process(command, directory) as process:
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


class SentinelGroup:
    """A primary, its replica and a sentinel watching them, all on 127.0.0.1."""

    def __init__(self, primary: RedisServer, replica_port: int, sentinel_port: int) -> None:
        self.primary = primary
        self.replica_port = replica_port
        self.sentinel_port = sentinel_port
        #: What MicroPie is given: the sentinel, and the name it knows the primary by.
        self.url = f"redis+sentinel://127.0.0.1:{sentinel_port}/{SERVICE}"

    def wait_for_replica(self, timeout_ms: int = 5000) -> int:
        """Block until the replica has acknowledged every write so far (Redis's WAIT)."""
        import redis

        with redis.Redis(port=self.primary.port, socket_timeout=timeout_ms / 1000 + 1) as primary:
            return int(primary.wait(1, timeout_ms))

    def primary_port(self) -> int:
        """The port of the primary the sentinel names now."""
        import redis

        with redis.Redis(port=self.sentinel_port, socket_timeout=2) as sentinel:
            _host, port = sentinel.sentinel_get_master_addr_by_name(SERVICE)
        return int(port)


SERVICE = "mymaster"


def _until(
    condition: Callable[[], bool], what: str, logs: list[Path], timeout: float = 15.0
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            shown = "\n".join(p.read_text(errors="replace")[-2000:] for p in logs if p.exists())
            pytest.fail(f"{what} did not happen within {timeout} s:\n{shown}")
        time.sleep(0.05)


@contextlib.contextmanager
def run_sentinel_group() -> Iterator[SentinelGroup]:
    """A primary, a replica of it and ``redis-sentinel`` (quorum 1, a primary
    is down after 1 s of silence), until the block ends; skip (or fail in CI)
    if a program is missing."""
    import redis

    sentinel_program = require_program("redis-sentinel")
    server_program = require_program("redis-server")
    with run_redis() as primary, tempfile.TemporaryDirectory(prefix="micropie-sentinel-") as tmp:
        replica_port, sentinel_port = free_port(), free_port()
        replica_log, sentinel_log = Path(tmp) / "replica.log", Path(tmp) / "sentinel.log"
        config = Path(tmp) / "sentinel.conf"
        config.write_text(
            f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp}\nlogfile {sentinel_log}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 5000\n"
        )
        replica_command = [
            server_program, "--port", str(replica_port), "--bind", "127.0.0.1",
            "--replicaof", "127.0.0.1", str(primary.port), "--save", "", "--appendonly", "no",
            "--dir", tmp, "--logfile", str(replica_log),
        ]  # fmt: skip
        logs = [replica_log, sentinel_log]
        with (
            _process(replica_command, tmp),
            _process([sentinel_program, str(config)], tmp),
        ):

            def replica_synced() -> bool:
                with (
                    contextlib.suppress(redis.RedisError),
                    redis.Redis(port=replica_port, socket_timeout=1) as replica,
                ):
                    return bool(replica.info("replication").get("master_link_status") == "up")
                return False

            def sentinel_sees_replica() -> bool:
                with (
                    contextlib.suppress(redis.RedisError),
                    redis.Redis(port=sentinel_port, socket_timeout=1) as sentinel,
                ):
                    return len(sentinel.sentinel_slaves(SERVICE)) == 1
                return False

            _until(replica_synced, "the replica's first sync", logs)
            _until(sentinel_sees_replica, "the sentinel finding the replica", logs)
            yield SentinelGroup(primary, replica_port, sentinel_port)


def stored_session(url: str, session_id: str) -> dict[str, Any] | None:
    """The session that MicroPie's Redis backend holds under *session_id* at *url*,
    read as the backend reads it (a new session is stored wrapped)."""
    from micropie.redis_sessions import RedisSessionBackend

    async def read() -> dict[str, Any] | None:
        backend = RedisSessionBackend(url)
        try:
            return await backend.load(session_id)
        finally:
            await backend.aclose()

    return asyncio.run(read())
