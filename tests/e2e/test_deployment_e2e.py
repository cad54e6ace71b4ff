"""docs/source/howto/deployment.rst, run for real: the unit's ExecStart and the Dockerfile's CMD.

Each command is taken from the file that the page shows, and run in a
directory of its own that holds ``examples/deploy/app.py`` as ``app.py``.
Only what belongs to a machine is replaced: the program's path (the test
suite's Python runs ``-m uvicorn`` or ``-m gunicorn``), the address
(a socket that the test opened on 127.0.0.1), and the Redis URL (a
``redis-server`` that the test started). The clients are real: httpx, and
the ``websockets`` package.
"""

from __future__ import annotations

import shlex
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection

from tests.helpers.clients import close_frame_of, receive, session_cookie, ws_connect
from tests.helpers.deployment import (
    DOCKERFILE,
    UNIT_FILE,
    docker_cmd,
    docker_environment,
    docker_values,
    option_value,
    parse_dockerfile,
    parse_unit,
    replace_option,
    unit_environment,
    unit_value,
)
from tests.helpers.logs import problem_lines
from tests.helpers.redis import RedisServer, stored_session
from tests.helpers.servers import (
    RunningServer,
    ServerError,
    free_port,
    run_command,
    wait_for_workers,
)
from tests.helpers.support import REPO_ROOT, require_module

APP = REPO_ROOT / "examples" / "deploy" / "app.py"
TIMEOUT = 10.0  # for any one answer
ORIGIN = "https://www.example.com"  # the one the unit file allows
ATTACKER = "attacker.example"  # a name that a DNS rebinding points at 127.0.0.1
#: Two WebSocket handlers that change their session after accept(), kept in
#: Redis: one waits on its socket, the other on something else.
HANDLERS_APP = """\
import asyncio
import os

from micropie import App, WebSocketMiddleware
from micropie.redis_sessions import RedisSessionBackend
from micropie.sessions import new_session_id


class Note(WebSocketMiddleware):
    async def after_websocket(self, request):
        print("MARK after_websocket", flush=True)


class Handlers(App):
    async def ws_listen(self, ws):
        await self._start(ws)
        try:
            while True:
                await ws.receive_text()
        finally:
            print("MARK finally", flush=True)

    async def ws_wait(self, ws):
        await self._start(ws)
        try:
            await asyncio.Event().wait()  # never set, and not the socket
        finally:
            print("MARK finally", flush=True)

    async def _start(self, ws):
        self.request.session["state"] = "at accept"
        await ws.accept(session_id=new_session_id())  # stores the session
        self.request.session["state"] = "changed later"  # stored as the handler ends
        await ws.send_text("ready")


app = Handlers(RedisSessionBackend(os.environ["MICROPIE_REDIS_URL"]), middlewares=[Note()])
app.shutdown_handlers.append(lambda: print("MARK shutdown handler", flush=True))
"""
MARKS = ("MARK finally", "MARK after_websocket", "MARK shutdown handler")


# The commands, from the files.


def unit_command(app: str = "app:app", **options: str) -> Callable[[int], list[str]]:
    """The unit's ExecStart, serving *app* on socket *fd*; *options* replace values."""
    unit = parse_unit(UNIT_FILE.read_text(encoding="utf-8"))
    argv = shlex.split(unit_value(unit, "Service", "ExecStart"))
    assert argv[0] == "/srv/micropie/.venv/bin/uvicorn" and argv[1] == "app:app"
    args = replace_option(replace_option(argv[2:], "--host", None), "--port", None)
    for option, value in options.items():
        args = replace_option(args, option, value)

    def command(fd: int) -> list[str]:
        return [sys.executable, "-m", "uvicorn", app, *args, "--fd", str(fd)]

    return command


def unit_env(redis_url: str) -> dict[str, str]:
    """The unit's Environment=, with the test's Redis server."""
    env = unit_environment(parse_unit(UNIT_FILE.read_text(encoding="utf-8")))
    assert env["MICROPIE_REDIS_URL"] == "redis://127.0.0.1:6379/0"
    return {**env, "MICROPIE_REDIS_URL": redis_url}


def docker_command(app: str = "app:app", **options: str) -> Callable[[int], list[str]]:
    """The Dockerfile's CMD, serving *app* on socket *fd*; *options* replace values."""
    argv = docker_cmd(parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")))
    assert argv[:2] == ["gunicorn", "app:app"]
    args = argv[2:]
    for option, value in options.items():
        args = replace_option(args, option, value)

    def command(fd: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "gunicorn",
            app,
            *replace_option(args, "--bind", f"fd://{fd}"),
        ]

    return command


def docker_env(**extra: str) -> dict[str, str]:
    instructions = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    assert "app.py ." in docker_values(instructions, "COPY")
    return {**docker_environment(instructions), **extra}


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A directory with app.py, as /srv/micropie or the image's /srv/app holds it."""
    shutil.copy(APP, tmp_path / "app.py")
    return tmp_path


def serve(command: Callable[[int], list[str]], cwd: Path, env: dict[str, str]) -> Any:
    return run_command(command, name="deploy", cwd=cwd, env={"NO_PROXY": "*", **env})


# Talking to it.


def http(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.http_url, trust_env=False, timeout=TIMEOUT)


def ws_open(server: RunningServer, path: str, origin: str | None = None) -> ClientConnection:
    return ws_connect(f"{server.ws_url}{path}", origin=origin, timeout=TIMEOUT)


def echoes(server: RunningServer, origin: str | None = None) -> str:
    with ws_open(server, "/echo", origin) as ws:
        ws.send("hello")
        answer = ws.recv(timeout=TIMEOUT)
        assert isinstance(answer, str)
        return answer


def refused_status(server: RunningServer, origin: str) -> int:
    with pytest.raises(InvalidStatus) as refused, ws_open(server, "/echo", origin):
        pass
    return refused.value.response.status_code


def close_after_sigterm(server: RunningServer) -> tuple[int, str]:
    """Open a WebSocket to the echo, send SIGTERM, and return the close frame it gets."""
    with ws_open(server, "/echo") as ws:
        ws.send("still here")
        assert receive(ws, TIMEOUT) == "still here"
        server.process.send_signal(signal.SIGTERM)
        return close_frame_of(ws, TIMEOUT)


def errors_in(output: str) -> list[str]:
    return problem_lines(output, ("ERROR", "WARNING", "Traceback"))


# The systemd unit: uvicorn with two workers, sessions in Redis.


@pytest.fixture(scope="module")
def unit_server(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("srv-micropie")
    shutil.copy(APP, directory / "app.py")
    with serve(unit_command(), directory, unit_env(redis_server.url)) as server:
        yield server


def test_the_unit_serves_the_page_the_health_check_and_the_echo(
    unit_server: RunningServer,
) -> None:
    with http(unit_server) as client:
        page = client.get("/")
        assert page.status_code == 200 and "It works." in page.text
        assert client.get("/health").json() == {"status": "ok"}
    assert echoes(unit_server) == "hello"


def test_the_unit_keeps_sessions_in_redis_for_both_workers(
    unit_server: RunningServer, redis_server: RedisServer
) -> None:
    """Every request on a new connection, which either worker may take: the
    count still goes up by one each time, since both read Redis."""
    cookie = None
    for expected in range(1, 13):
        with http(unit_server) as client:  # a new connection each time
            if cookie is not None:
                client.cookies.set("session_id", cookie)
            response = client.get("/visits")
            assert response.json() == {"visits": expected}
            cookie = cookie or response.cookies["session_id"]
    assert stored_session(redis_server.url, cookie) == {"visits": 12}


def test_the_unit_lets_in_the_origin_it_names_and_no_other(unit_server: RunningServer) -> None:
    assert echoes(unit_server, ORIGIN) == "hello"
    assert refused_status(unit_server, "https://elsewhere.example") == 403


def test_the_unit_answers_only_the_hosts_it_names(unit_server: RunningServer) -> None:
    """MICROPIE_ALLOWED_HOSTS of the unit: a request or a handshake that names
    another host is refused; the site's name and the local ones get in."""
    port = unit_server.port
    with http(unit_server) as client:
        forged = client.get("/health", headers={"Host": ATTACKER})
        assert forged.status_code == 400
        assert forged.text == "the Host header names a host that this site does not serve"
        for host in ("127.0.0.1", f"127.0.0.1:{port}", f"localhost:{port}", "www.example.com"):
            assert client.get("/health", headers={"Host": host}).json() == {"status": "ok"}
    # A page of attacker.example, whose name now resolves to 127.0.0.1: the
    # client names it in Host and Origin, and connects to 127.0.0.1.
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    with sock, pytest.raises(InvalidStatus) as refused:
        ws_connect(
            f"ws://{ATTACKER}:{port}/echo", origin=f"http://{ATTACKER}:{port}", sock=sock
        ).close()
    assert refused.value.response.status_code == 403
    assert echoes(unit_server, ORIGIN) == "hello"  # at 127.0.0.1:<port>


def test_the_unit_believes_x_forwarded_for_from_127_0_0_1(unit_server: RunningServer) -> None:
    with http(unit_server) as client:
        assert client.get("/client").json() == {"address": "127.0.0.1"}
        forwarded = client.get("/client", headers={"X-Forwarded-For": "203.0.113.7"})
        assert forwarded.json() == {"address": "203.0.113.7"}


# The Dockerfile: gunicorn with uvicorn workers.


@pytest.fixture(scope="module")
def docker_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    require_module("gunicorn")
    require_module("uvicorn_worker")
    directory = tmp_path_factory.mktemp("srv-app")
    shutil.copy(APP, directory / "app.py")
    with serve(docker_command(), directory, docker_env(WEB_CONCURRENCY="2")) as server:
        yield server


def test_the_dockerfile_cmd_serves_the_app_with_gunicorn(docker_server: RunningServer) -> None:
    with http(docker_server) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/nowhere").status_code == 404
    assert echoes(docker_server) == "hello"
    # No MICROPIE_ALLOWED_ORIGINS: pages of other sites are refused.
    assert refused_status(docker_server, "https://elsewhere.example") == 403
    # WEB_CONCURRENCY=2: gunicorn started two workers.
    wait_for_workers(docker_server)
    assert docker_server.output.count("Booting worker with pid") == 2
    assert "uvicorn_worker.UvicornWorker" in docker_server.output


def test_the_echo_closes_with_1003_on_a_binary_message(docker_server: RunningServer) -> None:
    with ws_open(docker_server, "/echo") as ws:
        ws.send(b"\x00\x01")
        assert close_frame_of(ws, TIMEOUT) == (1003, "this endpoint takes text messages only")


def test_gunicorn_believes_x_forwarded_for_from_127_0_0_1(docker_server: RunningServer) -> None:
    with http(docker_server) as client:
        forwarded = client.get("/client", headers={"X-Forwarded-For": "203.0.113.7"})
        assert forwarded.json() == {"address": "203.0.113.7"}


# Stopping.


@pytest.mark.parametrize("setup", ["unit", "dockerfile"])
def test_sigterm_closes_open_websockets_with_1012_and_shuts_down(
    setup: str, app_dir: Path, redis_server: RedisServer
) -> None:
    if setup == "unit":
        command, env = unit_command(), unit_env(redis_server.url)
        argv = shlex.split(unit_value(parse_unit(UNIT_FILE.read_text()), "Service", "ExecStart"))
        timeout = int(option_value(argv, "--timeout-graceful-shutdown"))
    else:
        require_module("uvicorn_worker")
        command, env = docker_command(), docker_env(WEB_CONCURRENCY="2")
        argv = docker_cmd(parse_dockerfile(DOCKERFILE.read_text()))
        timeout = int(option_value(argv, "--graceful-timeout"))
    with serve(command, app_dir, env) as server:
        wait_for_workers(server)
        signalled = time.monotonic()
        assert close_after_sigterm(server) == (1012, "")
        code = server.wait_for_exit(TIMEOUT)
        took = time.monotonic() - signalled
        output = server.output
    assert code == 0, output[-5000:]
    assert took < timeout  # the handler ended: nothing waited for the timeout
    assert output.count("Application shutdown complete.") == 2, output[-5000:]  # both workers
    assert errors_in(output) == [], output[-5000:]


LIMIT = 2  # seconds: --timeout-graceful-shutdown, or --graceful-timeout


def stop_with_a_handler_open(
    setup: str, path: str, app_dir: Path, redis_url: str
) -> tuple[float, str, dict[str, str]]:
    """Serve HANDLERS_APP as the unit (uvicorn) or the Dockerfile (gunicorn) would,
    with LIMIT for the handlers; open *path*, send SIGTERM, and return how long
    the server took to exit, its output, and the session as Redis has it."""
    (app_dir / "handlers.py").write_text(HANDLERS_APP, encoding="utf-8")
    if setup == "uvicorn":
        command = unit_command("handlers:app", **{"--timeout-graceful-shutdown": str(LIMIT)})
        env = unit_env(redis_url)
    else:
        require_module("uvicorn_worker")
        command = docker_command("handlers:app", **{"--graceful-timeout": str(LIMIT)})
        env = docker_env(MICROPIE_REDIS_URL=redis_url)
    with serve(command, app_dir, env) as server:
        with ws_open(server, path) as ws:
            assert receive(ws, TIMEOUT) == "ready"
            session_id, _ = session_cookie(ws)
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            code, _ = close_frame_of(ws, TIMEOUT)
        assert code == 1012
        server.wait_for_exit(LIMIT + TIMEOUT)
        took = time.monotonic() - signalled
        output = server.output
    stored = stored_session(redis_url, session_id)
    assert stored is not None, output[-5000:]
    return took, output, stored


@pytest.mark.parametrize("setup", ["uvicorn", "gunicorn"])
def test_a_handler_waiting_on_its_socket_ends_at_once_and_its_session_is_saved(
    setup: str, app_dir: Path, redis_server: RedisServer
) -> None:
    took, output, session = stop_with_a_handler_open(setup, "/listen", app_dir, redis_server.url)
    assert took < LIMIT, output[-5000:]
    assert all(mark in output for mark in MARKS), output[-5000:]
    assert session == {"state": "changed later"}
    assert errors_in(output) == [], output[-5000:]


@pytest.mark.parametrize("setup", ["uvicorn", "gunicorn"])
def test_a_handler_waiting_on_something_else_holds_the_shutdown_up(
    setup: str, app_dir: Path, redis_server: RedisServer
) -> None:
    """uvicorn cancels it at --timeout-graceful-shutdown: what it does without
    waiting still runs, but a session save that waits for Redis may be cut
    off; gunicorn kills its worker at --graceful-timeout, and nothing runs."""
    took, output, session = stop_with_a_handler_open(setup, "/wait", app_dir, redis_server.url)
    assert took >= LIMIT - 0.5, output[-5000:]  # the server waited for it, up to the limit
    if setup == "uvicorn":
        assert "Cancel 1 running task(s), timeout graceful shutdown exceeded" in output
        assert all(mark in output for mark in MARKS), output[-5000:]
        # uvicorn does not wait for the cancelled handler: the save may not finish.
        assert session in ({"state": "at accept"}, {"state": "changed later"})
    else:
        # The worker was killed: the process has exited, and its output is final.
        assert [mark for mark in MARKS if mark in output] == [], output[-5000:]
        assert "Application shutdown complete." not in output
        assert session == {"state": "at accept"}


# A bad environment stops gunicorn before it serves.


def test_a_bad_setting_stops_gunicorn_with_a_message_that_names_it(app_dir: Path) -> None:
    require_module("uvicorn_worker")
    env = docker_env(MICROPIE_MAX_BODY_SIZE="10MB")
    with pytest.raises(ServerError) as failed, serve(docker_command(), app_dir, env):
        pass
    output = str(failed.value)
    assert "exited with code 3 before serving" in output
    assert (
        "app.ConfigError: MICROPIE_MAX_BODY_SIZE: '10MB' is not a positive whole number "
        "of bytes, such as 1048576"
    ) in output
    assert "Worker failed to boot" in output


def test_an_unreachable_redis_stops_gunicorn_without_showing_its_password(
    app_dir: Path,
) -> None:
    require_module("uvicorn_worker")
    port = free_port()  # nothing listens there
    env = docker_env(MICROPIE_REDIS_URL=f"redis://:hunter2@127.0.0.1:{port}/0")
    with pytest.raises(ServerError) as failed, serve(docker_command(), app_dir, env):
        pass
    output = str(failed.value)
    assert "exited with code 3 before serving" in output
    assert f"RedisUnavailable: cannot reach Redis at redis://127.0.0.1:{port}/0" in output
    assert "hunter2" not in output
