"""Real server processes for the end-to-end tests: uvicorn, hypercorn, daphne, any
command line (gunicorn, a unit file's ``ExecStart``), and nginx in front of them.

The test process binds the listening socket itself (127.0.0.1, port 0) and
hands it to the server (``--fd``), so the port is known before the server
starts and no other process can take it in between. Every server is stopped
when its block ends, however it ends.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from tests.helpers.support import REPO_ROOT, save_files

__all__ = ["REPO_ROOT", "RunningServer", "ServerError", "run_uvicorn", "serve_saved"]


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

    def wait_for_output(
        self, text: str, *, since: int = 0, timeout: float = 5.0, count: int = 1
    ) -> str:
        """Wait until *text* is printed (*count* times) after *since*; return that output."""
        deadline = time.monotonic() + timeout
        while True:
            printed = self.output_since(since)
            if printed.count(text) >= count:
                return printed
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise ServerError(
                    f"the server did not print {text!r} ({count} times) within {timeout} s; "
                    f"it printed:\n{printed[-5000:]}"
                )
            time.sleep(0.02)

    def wait_for_exit(self, timeout: float = SHUTDOWN_TIMEOUT) -> int:
        """Wait for the process to exit (after a signal the test sent); return its exit code.

        Raises :class:`ServerError`, with the output, if it still runs after *timeout* seconds.
        """
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ServerError(
                f"the server did not exit within {timeout} s:\n{self.output[-5000:]}"
            ) from None

    def stop(self, timeout: float = SHUTDOWN_TIMEOUT) -> str:
        """Stop the server as a service manager does (SIGTERM), and wait for it to exit.

        Returns everything it printed, which is then final: whatever its
        handlers were still doing has been logged. Raises :class:`ServerError`
        if it still runs after *timeout* seconds (it is killed when its block ends).
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.wait_for_exit(timeout)
        if self._final_output is None:
            self._final_output = self.output
        return self._final_output

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
def run_uvicorn(
    app_path: str, *extra_args: str, port: int = 0, cwd: Path | None = None
) -> Iterator[RunningServer]:
    """Serve *app_path* (``"module:attribute"``) with uvicorn until the block ends.

    *extra_args* go to the uvicorn command line; *port* and *cwd* are as for :func:`run_server`.
    Raises :class:`ServerError`, with the server's output, if it does not answer
    HTTP within 15 seconds.
    """
    with run_server("uvicorn", app_path, *extra_args, port=port, cwd=cwd) as server:
        yield server


@contextlib.contextmanager
def serve_saved(
    directory: Path,
    files: Mapping[str, str],
    *extra_args: str,
    program: str = "uvicorn",
    app: str = "app:app",
) -> Iterator[RunningServer]:
    """Save *files* into *directory* as a reader of a page does, and serve *app* from there.

    *files* maps repository paths to the names the page gives them
    (:func:`~tests.helpers.support.save_files`); *extra_args* go to *program*'s command line.
    """
    save_files(directory, files)
    with run_server(program, app, *extra_args, cwd=directory) as server:
        yield server


# Other servers, and uvicorn with several workers.

#: How each server takes a listening socket that the test process opened:
#: the arguments that name file descriptor *fd*.
_FD_ARGUMENTS = {
    "uvicorn": lambda fd: ["--fd", str(fd)],
    "hypercorn": lambda fd: ["--bind", f"fd://{fd}"],
    "daphne": lambda fd: ["--fd", str(fd)],
}
# How each server binds a port itself: granian always does (it takes no socket
# from its parent), the others when asked to (``own_port``).
_PORT_ARGUMENTS = {
    "granian": lambda port: ["--host", "127.0.0.1", "--port", str(port)],
    "uvicorn": lambda port: ["--host", "127.0.0.1", "--port", str(port)],
    "hypercorn": lambda port: ["--bind", f"127.0.0.1:{port}"],
}


def _start_and_wait(
    command: list[str],
    port: int,
    log_path: Path,
    pass_fds: tuple[int, ...],
    cwd: Path = REPO_ROOT,
    env: Mapping[str, str] | None = None,
) -> RunningServer:
    """Start *command* in *cwd*, with *env* added to the environment; return
    once it answers HTTP on *port*.

    On failure the process is stopped and :class:`ServerError` raised with its output.
    """
    env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    # Append mode: the child writes at the end, whatever the reader does.
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=pass_fds,
            start_new_session=True,  # its workers can be signalled as one group
        )
    server = RunningServer(process, port, log_path)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _answers_http(port):
            if process.poll() is not None:
                problem = f"exited with code {process.returncode} before serving"
            elif time.monotonic() > deadline:
                problem = f"did not answer HTTP within {STARTUP_TIMEOUT} s"
            else:
                time.sleep(0.05)
                continue
            raise ServerError(f"{' '.join(command)} {problem}:\n{server.output}")
    except BaseException:
        _stop_group(server)
        raise
    return server


def _stop_group(server: RunningServer) -> None:
    """Stop the server, then kill whatever of its process group outlived it."""
    try:
        server._stop()
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.process.pid, signal.SIGKILL)


@contextlib.contextmanager
def run_server(
    program: str,
    app_path: str,
    *extra_args: str,
    port: int = 0,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    python: str | Path = sys.executable,
    prefix: Sequence[str] = (),
    own_port: bool = False,
) -> Iterator[RunningServer]:
    """Serve *app_path* with *program* (``uvicorn``, ``hypercorn``, ``granian`` or ``daphne``).

    As :func:`run_uvicorn` does, the test process binds 127.0.0.1 on an
    ephemeral port (or on *port*, to start a server again where a stopped one
    was) and hands the listening socket to the server, each in the
    way it understands (``--fd N`` or ``--bind fd://N``). *extra_args* go to
    the command line. The server runs in *cwd* (by default the repository root,
    where ``examples.echo.app:app`` imports), as ``python -m program`` with
    *python* (by default this one) and *env* added to the environment, after
    *prefix* (``taskset -c 0``, say). With *own_port*, the server binds a
    free port itself instead: ``uvicorn --fd`` takes any socket for a Unix
    one, and leaves Nagle's algorithm on for TCP connections (a benchmark
    of small messages would measure the delayed acknowledgements). It is
    stopped when the block ends, however it ends.
    """

    launcher = [*prefix, str(python), "-m", program, app_path]
    if own_port or program not in _FD_ARGUMENTS:
        with _run_binding_itself(launcher, program, extra_args, port, cwd, env) as server:
            yield server
        return

    def command(fd: int) -> list[str]:
        return [*launcher, *_FD_ARGUMENTS[program](fd), *extra_args]

    with run_command(command, name=program, port=port, cwd=cwd or REPO_ROOT, env=env) as server:
        yield server


@contextlib.contextmanager
def _run_binding_itself(
    launcher: list[str],
    program: str,
    extra_args: tuple[str, ...],
    port: int,
    cwd: Path | None,
    env: Mapping[str, str] | None,
) -> Iterator[RunningServer]:
    """:func:`run_server` for a server that binds its port itself (granian):
    on *port*, or on a free one, tried again if another process took it first."""
    for attempt in range(3):
        chosen = port or free_port()
        fd, log_name = tempfile.mkstemp(prefix=f"micropie-{program}-", suffix=".log")
        os.close(fd)
        # granian serves ASGI only when told to; the servers page shows it told.
        told = program != "granian" or "--interface" in extra_args
        interface = [] if told else ["--interface", "asgi"]
        command = [*launcher, *_PORT_ARGUMENTS[program](chosen), *interface, *extra_args]
        try:
            server = _start_and_wait(command, chosen, Path(log_name), (), cwd or REPO_ROOT, env)
        except ServerError:
            if port or attempt == 2:
                raise
            continue
        try:
            yield server
        finally:
            _stop_group(server)
        return


@contextlib.contextmanager
def run_command(
    command: Callable[[int], list[str]],
    *,
    name: str = "server",
    port: int = 0,
    cwd: Path = REPO_ROOT,
    env: Mapping[str, str] | None = None,
) -> Iterator[RunningServer]:
    """Run the server command line ``command(fd)`` until the block ends.

    For command lines taken as they are from elsewhere (a systemd unit, a
    Dockerfile): *command* puts the listening socket's file descriptor *fd*
    where the command line names its address. The socket is bound as for
    :func:`run_server`; the command runs in *cwd*, with *env* added to the
    environment.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    fd, log_name = tempfile.mkstemp(prefix=f"micropie-{name}-", suffix=".log")
    os.close(fd)
    log_path = Path(log_name)
    server: RunningServer | None = None
    try:
        listener.bind(("127.0.0.1", port))
        listener.listen(128)  # daphne adopts the socket as it is: it must already listen
        port = listener.getsockname()[1]  # the one the system chose, if port was 0
        server = _start_and_wait(
            command(listener.fileno()), port, log_path, (listener.fileno(),), cwd=cwd, env=env
        )
        listener.close()  # the child has its own copy
        yield server
    finally:
        listener.close()
        if server is not None:
            _stop_group(server)
        else:
            with contextlib.suppress(OSError):
                log_path.unlink()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


__all__ += ["free_port", "run_command", "run_server"]


def write_log_config(directory: Path, *, pids: bool = False) -> Path:
    """Write a uvicorn ``--log-config`` file into *directory*; return its path.

    uvicorn's own logging, plus the "micropie" logger with the level and the
    logger's name in each line (``ERROR [micropie] ...``), so that a test can
    find MicroPie's errors in the output. Without it, uvicorn leaves that
    logger to Python's last-resort handler, which prints bare messages.
    With *pids*, each line starts with the ID of the process that wrote it,
    which tells a server's workers apart.
    """
    import copy
    import json
    from typing import Any

    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["named"] = {"format": "%(levelname)s [%(name)s] %(message)s"}
    config["handlers"]["named"] = {
        "class": "logging.StreamHandler",
        "formatter": "named",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["micropie"] = {"handlers": ["named"], "level": "INFO", "propagate": False}
    if pids:
        for formatter in config["formatters"].values():
            key = "fmt" if "fmt" in formatter else "format"
            formatter[key] = "%(process)d " + formatter[key]
            if "()" in formatter:  # uvicorn's own formatters
                formatter["use_colors"] = False
    path = directory / "uvicorn-log-config.json"
    path.write_text(json.dumps(config))
    return path


def wait_for_workers(server: RunningServer, count: int = 2, timeout: float = 10.0) -> set[int]:
    """Wait until *count* worker processes have started their application; return their IDs.

    The first worker to start answers HTTP before the others have, so a
    server with ``--workers`` is not whole when :func:`run_server` returns.
    """
    server.wait_for_output("Application startup complete.", count=count, timeout=timeout)
    return {int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", server.output)}


__all__ += ["wait_for_workers", "write_log_config"]


# nginx in front of the servers, with a certificate made for the test.

#: The commands that docs/source/howto/proxy.rst shows; the tests run them in
#: a directory of their own, which stands for ``$PWD``.
OPENSSL_COMMAND = (
    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
    "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 "
    "-keyout key.pem -out cert.pem"
)
NGINX_COMMAND = "nginx -p \"$PWD\" -c nginx.conf -g 'daemon off; pid nginx.pid; error_log stderr;'"


def make_certificate(openssl: str, directory: Path) -> tuple[Path, Path]:
    """Run :data:`OPENSSL_COMMAND` in *directory*; return the certificate and key paths."""
    command = [openssl, *shlex.split(OPENSSL_COMMAND)[1:]]
    subprocess.run(command, cwd=directory, check=True, capture_output=True, timeout=30)
    return directory / "cert.pem", directory / "key.pem"


def nginx_files_inside(nginx: str, directory: Path) -> str:
    """``http``-block directives that keep nginx's access log and temporary files in *directory*.

    Only tests need them: nginx otherwise writes where it was built to write
    (``nginx -V`` lists those paths; Debian's are under /var/log/nginx and /var/lib/nginx).
    """
    built = subprocess.run([nginx, "-V"], capture_output=True, text=True, check=True).stderr
    lines = [f"    access_log {directory / 'access.log'};"]
    for kind in re.findall(r"--http-([a-z-]+)-temp-path=", built):
        name = kind.replace("-", "_")
        lines.append(f"    {name}_temp_path {directory / name};")
    return "".join(f"{line}\n" for line in lines)


@contextlib.contextmanager
def run_nginx(
    nginx: str,
    directory: Path,
    configure: Callable[[int], str],
    *,
    attempts: int = 3,
    files: str | None = None,
    as_user: Sequence[str] = (),
) -> Iterator[RunningServer]:
    """Run :data:`NGINX_COMMAND` in *directory* until the block ends.

    ``configure(port)`` returns the text of ``nginx.conf`` for a listening
    port on 127.0.0.1; the access log and temporary files are kept in
    *directory*, by the ``http``-block lines *files* (by default
    :func:`nginx_files_inside`'s). *as_user* is a command that runs nginx as
    another user (``setpriv`` and its options). nginx binds the port
    itself: a free one is chosen, and another tried if something took it
    meanwhile. The server's ``http_url`` and ``ws_url`` say ``http``: a
    configuration with TLS is reached as ``https``/``wss`` on the same port.
    """
    files = nginx_files_inside(nginx, directory) if files is None else files
    command = [
        *as_user,
        nginx,
        *shlex.split(NGINX_COMMAND.replace('"$PWD"', str(directory)))[1:],
    ]
    for attempt in range(1, attempts + 1):
        port = free_port()
        config = configure(port)
        if config.count("http {\n") != 1:
            raise ValueError("the configuration needs exactly one 'http {' line")
        config = config.replace("http {\n", f"http {{\n{files}")
        (directory / "nginx.conf").write_text(config, encoding="utf-8")
        log_path = directory / f"nginx-{attempt}.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command,
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = RunningServer(process, port, log_path)
        try:
            if _listens(port, process):
                yield server
                return
            if attempt == attempts or "Address already in use" not in server.output:
                raise ServerError(f"{' '.join(command)} did not start:\n{server.output}")
        finally:
            server._stop()


def _listens(port: int, process: subprocess.Popen[bytes]) -> bool:
    """True once *port* accepts connections; False if the process exited first."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
        except OSError:
            time.sleep(0.02)
        else:
            return True
    raise ServerError(f"nothing listened on port {port} within {STARTUP_TIMEOUT} s")


__all__ += ["NGINX_COMMAND", "OPENSSL_COMMAND", "make_certificate", "run_nginx"]


def worker_of(server: RunningServer, port: int, path: str = "/chat", timeout: float = 5.0) -> int:
    """The process ID of the worker that accepted the WebSocket whose client
    port is *port*, from its log line (a log config made with ``pids=True``)."""
    line = re.compile(
        rf'^(\d+) .*127\.0\.0\.1:{port} - "WebSocket {re.escape(path)}" \[accepted\]', re.M
    )
    deadline = time.monotonic() + timeout
    while (found := line.search(server.output)) is None:
        assert time.monotonic() < deadline, f"no accept logged for port {port}:\n{server.output}"
        time.sleep(0.02)
    return int(found.group(1))
