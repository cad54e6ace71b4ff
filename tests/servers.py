"""Run an ASGI application under a real uvicorn process, for end-to-end tests.

The test process binds the listening socket itself (127.0.0.1, port 0) and
hands it to uvicorn with ``--fd``, so the port is known before the server
starts and no other process can take it in between.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["REPO_ROOT", "RunningServer", "ServerError", "run_uvicorn"]

#: The repository root: uvicorn runs there, so ``examples.echo.app:app`` imports.
REPO_ROOT = Path(__file__).resolve().parent.parent

STARTUP_TIMEOUT = 15.0
SHUTDOWN_TIMEOUT = 10.0


class ServerError(RuntimeError):
    """The server did not start, or misbehaved; the message carries its output."""


class RunningServer:
    """A uvicorn process serving on 127.0.0.1:<port>, and what it has printed."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.http_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        self._log_path = log_path
        self._final_output: str | None = None

    @property
    def output(self) -> str:
        """Everything the server printed so far, stdout and stderr interleaved."""
        if self._final_output is not None:
            return self._final_output
        return self._log_path.read_bytes().decode("utf-8", errors="replace")

    def mark(self) -> int:
        """A position in :attr:`output`, for :meth:`output_since`."""
        return len(self.output)

    def output_since(self, mark: int) -> str:
        """What the server printed after :meth:`mark` returned *mark*."""
        return self.output[mark:]

    def wait_for_output(self, text: str, *, since: int = 0, timeout: float = 5.0) -> str:
        """Wait until *text* appears in the output after *since*; return that output."""
        deadline = time.monotonic() + timeout
        while True:
            printed = self.output_since(since)
            if text in printed:
                return printed
            if time.monotonic() > deadline:
                raise ServerError(
                    f"the server did not print {text!r} within {timeout} s; it printed:\n{printed}"
                )
            time.sleep(0.02)

    def _stop(self) -> None:
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(SHUTDOWN_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        finally:
            with contextlib.suppress(OSError):
                self._final_output = self.output
            with contextlib.suppress(OSError):
                self._log_path.unlink()


def _answers_http(port: int) -> bool:
    """True once something on *port* answers an HTTP request, whatever the status."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        connection.request("GET", "/")
        connection.getresponse().read()
    except OSError:  # refused, reset, timed out...
        return False
    except http.client.HTTPException:  # the port is open but not yet speaking HTTP
        return False
    finally:
        connection.close()
    return True


@contextlib.contextmanager
def run_uvicorn(app_path: str, *extra_args: str) -> Iterator[RunningServer]:
    """Serve *app_path* (``"module:attribute"``) with uvicorn until the block ends.

    *extra_args* go to the uvicorn command line. Raises :class:`ServerError`,
    with the server's output, if it does not answer HTTP within 15 seconds.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    fd, log_name = tempfile.mkstemp(prefix="micropie-uvicorn-", suffix=".log")
    os.close(fd)
    log_path = Path(log_name)
    server: RunningServer | None = None
    try:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            app_path,
            "--fd",
            str(listener.fileno()),
            *extra_args,
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
        # Append mode: the child writes at the end, whatever the reader does.
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=[listener.fileno()],
            )
        server = RunningServer(process, port, log_path)
        listener.close()  # the child has its own copy; ours would only hold the port open

        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _answers_http(port):
            if process.poll() is not None:
                raise ServerError(
                    f"{' '.join(command)} exited with code {process.returncode} "
                    f"before serving:\n{server.output}"
                )
            if time.monotonic() > deadline:
                raise ServerError(
                    f"{' '.join(command)} did not answer HTTP within "
                    f"{STARTUP_TIMEOUT} s:\n{server.output}"
                )
            time.sleep(0.05)
        yield server
    finally:
        listener.close()
        if server is not None:
            server._stop()
        else:
            with contextlib.suppress(OSError):
                log_path.unlink()
