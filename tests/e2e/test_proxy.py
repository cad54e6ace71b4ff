"""End-to-end: the chat room behind nginx, which terminates TLS (docs/source/howto/proxy.rst).

The test makes a self-signed certificate with openssl, fills in
examples/deploy/nginx.conf (listen port, certificate paths, uvicorn's port),
runs nginx on 127.0.0.1 and uvicorn behind it with the command the page
shows, then talks to the chat over https:// and wss:// with a client that
trusts that certificate and nothing else.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shlex
import ssl
import tempfile
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection

from tests.helpers.clients import (
    TIMEOUT,
    chat_receive,
    chat_say,
    session_cookie,
    set_cookies,
    ws_connect,
)
from tests.helpers.servers import (
    NGINX_COMMAND,
    OPENSSL_COMMAND,
    REPO_ROOT,
    RunningServer,
    ServerError,
    make_certificate,
    run_nginx,
    run_uvicorn,
)
from tests.helpers.support import captions_of_file, require_program

CONFIG_PATH = "examples/deploy/nginx.conf"
CONFIG = REPO_ROOT / CONFIG_PATH
PAGE = REPO_ROOT / "docs" / "source" / "howto" / "proxy.rst"

# The command the page shows for uvicorn; the test runs it with --fd instead of --port,
# and APP, the file the page shows as app.py, in place of app:app.
UVICORN_COMMAND = "uvicorn app:app --port 8000 --proxy-headers --forwarded-allow-ips=127.0.0.1"
APP = "examples.room.app:app"

# What the test fills in: each of these occurs exactly once in the config.
LISTEN = "listen 443 ssl;"
CERTIFICATE = "/etc/micropie/tls/cert.pem"
KEY = "/etc/micropie/tls/key.pem"
UPSTREAM = "proxy_pass http://127.0.0.1:8000;"


def test_the_page_shows_the_commands_the_tests_run() -> None:
    # A command too long for the page ends its lines in a backslash: join them.
    page = re.sub(r" \\\n +", " ", PAGE.read_text(encoding="utf-8"))
    # The files the commands use, shown whole under the names the commands give them.
    assert captions_of_file(PAGE, "examples/room/app.py") == ["app.py"]
    assert captions_of_file(PAGE, CONFIG_PATH) == ["nginx.conf"]
    for command in (OPENSSL_COMMAND, NGINX_COMMAND, UVICORN_COMMAND):
        assert f"\n   {command}\n" in page, command
    assert UVICORN_COMMAND in CONFIG.read_text(encoding="utf-8")  # its comment says so too


def test_the_config_has_each_placeholder_once() -> None:
    config = CONFIG.read_text(encoding="utf-8")
    for placeholder in (LISTEN, CERTIFICATE, KEY, UPSTREAM):
        assert config.count(placeholder) == 1, placeholder


def uvicorn_args(command: str) -> list[str]:
    """The arguments of a documented uvicorn command, less the app and the port."""
    words = shlex.split(command)
    assert words[:4] == ["uvicorn", "app:app", "--port", "8000"]
    return words[4:]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = require_program("openssl")
    return make_certificate(openssl, tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def client_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """A client context that trusts the test's certificate, and verifies names."""
    context = ssl.create_default_context(cafile=str(certificate[0]))
    assert context.check_hostname
    return context


def filled_config(port: int, certificate: tuple[Path, Path], upstream_port: int) -> str:
    """examples/deploy/nginx.conf with the test's values in place of the example's."""
    config = CONFIG.read_text(encoding="utf-8")
    config = config.replace(LISTEN, f"listen 127.0.0.1:{port} ssl;")
    config = config.replace(CERTIFICATE, str(certificate[0]))
    config = config.replace(KEY, str(certificate[1]))
    return config.replace(UPSTREAM, f"proxy_pass http://127.0.0.1:{upstream_port};")


@dataclass
class Proxy:
    port: int
    upstream: RunningServer

    @property
    def wss_url(self) -> str:
        return f"wss://127.0.0.1:{self.port}"


@contextlib.contextmanager
def proxied_chat(
    directory: Path,
    certificate: tuple[Path, Path],
    uvicorn_command: str,
    *,
    files: str | None = None,
    as_user: Sequence[str] = (),
) -> Iterator[Proxy]:
    """The chat room under *uvicorn_command*, behind nginx with the example's config
    (*files* and *as_user*: as :func:`run_nginx` takes them)."""
    nginx = require_program("nginx")
    with (
        run_uvicorn(APP, *uvicorn_args(uvicorn_command)) as upstream,
        run_nginx(
            nginx,
            directory,
            lambda port: filled_config(port, certificate, upstream.port),
            files=files,
            as_user=as_user,
        ) as proxy,
    ):
        yield Proxy(proxy.port, upstream)


@pytest.fixture(scope="module")
def proxy(
    tmp_path_factory: pytest.TempPathFactory, certificate: tuple[Path, Path]
) -> Iterator[Proxy]:
    with proxied_chat(tmp_path_factory.mktemp("nginx"), certificate, UVICORN_COMMAND) as running:
        yield running


def https_get(
    proxy: Proxy, context: ssl.SSLContext, path: str, source: str = "127.0.0.1"
) -> tuple[int, dict[str, str], str]:
    """GET *path* through the proxy, from the local address *source*."""
    connection = http.client.HTTPSConnection(
        "127.0.0.1", proxy.port, timeout=TIMEOUT, context=context, source_address=(source, 0)
    )
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode("utf-8")
    finally:
        connection.close()


def wss_connect(
    proxy: Proxy, context: ssl.SSLContext, path: str, origin: str | None = None
) -> ClientConnection:
    """A WebSocket through the proxy, with *origin* as its ``Origin``, as a browser's page
    sends it (no ``Origin``, as other clients, when None)."""
    return ws_connect(f"{proxy.wss_url}{path}", ssl=context, origin=origin)


def session_cookie_attributes(ws: ClientConnection) -> list[str]:
    assert len(set_cookies(ws)) == 1, set_cookies(ws)
    return session_cookie(ws)[1]


def test_the_chat_page_over_https(proxy: Proxy, client_tls: ssl.SSLContext) -> None:
    status, headers, body = https_get(proxy, client_tls, "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "new WebSocket(" in body
    assert headers["Server"].startswith("nginx")  # it did come through the proxy


def test_uvicorn_takes_the_client_address_from_x_forwarded_for(
    proxy: Proxy, client_tls: ssl.SSLContext
) -> None:
    # The client connects from 127.0.0.3; nginx connects to uvicorn from 127.0.0.1.
    mark = proxy.upstream.mark()
    status, _, _ = https_get(proxy, client_tls, "/", source="127.0.0.3")
    assert status == 200
    proxy.upstream.wait_for_output('127.0.0.3:0 - "GET / HTTP/1.1" 200', since=mark)


def test_wss_through_nginx_echoes_and_broadcasts(proxy: Proxy, client_tls: ssl.SSLContext) -> None:
    with (
        wss_connect(proxy, client_tls, "/chat") as alice,
        wss_connect(proxy, client_tls, "/chat") as bob,
    ):
        alice_name = chat_say(alice, "hello over TLS")
        assert chat_receive(bob) == f"{alice_name}: hello over TLS"
        bob_name = chat_say(bob, "héllo ✓")
        assert chat_receive(alice) == f"{bob_name}: héllo ✓"


def test_the_sites_own_page_opens_its_websocket_on_a_port_not_443(
    proxy: Proxy, client_tls: ssl.SSLContext
) -> None:
    """nginx listens on a port other than 443 (the test's is free and above 1023),
    so a page of the site sends an Origin with that port: the Host that nginx
    passes on must keep it (``$http_host``), or the Origin check takes the
    site's own page for another site's (``$host`` drops the port)."""
    own_page = f"https://127.0.0.1:{proxy.port}"
    assert proxy.port != 443
    with wss_connect(proxy, client_tls, "/chat", origin=own_page) as ws:
        chat_say(ws, "hi from the site's page")
    # The check still works through the proxy: a page on another port is another site's.
    for other in (f"https://127.0.0.1:{proxy.port + 1}", "https://127.0.0.1"):
        with (
            pytest.raises(InvalidStatus) as refused,
            wss_connect(proxy, client_tls, "/chat", origin=other),
        ):
            pass
        assert refused.value.response.status_code == 403, other


def test_the_session_cookie_is_secure_behind_the_proxy(
    proxy: Proxy, client_tls: ssl.SSLContext
) -> None:
    with wss_connect(proxy, client_tls, "/chat") as ws:
        attributes = session_cookie_attributes(ws)
        chat_say(ws, "hi")
    assert attributes == ["Path=/", "HttpOnly", "SameSite=Lax", "Secure"]


def test_a_trusted_address_can_claim_tls_without_it(proxy: Proxy) -> None:
    # Straight to uvicorn, from 127.0.0.1, on plain ws://, claiming https: believed.
    with ws_connect(f"{proxy.upstream.ws_url}/chat", headers={"X-Forwarded-Proto": "https"}) as ws:
        attributes = session_cookie_attributes(ws)
        chat_say(ws, "hi")
    assert attributes == ["Path=/", "HttpOnly", "SameSite=Lax", "Secure"]


def test_headers_from_an_untrusted_address_are_ignored(
    tmp_path: Path, certificate: tuple[Path, Path], client_tls: ssl.SSLContext
) -> None:
    # uvicorn trusts only 192.0.2.1 here, not nginx on 127.0.0.1: the scheme
    # stays ws, and the cookie loses its Secure flag although the client used TLS.
    untrusting = UVICORN_COMMAND.replace("127.0.0.1", "192.0.2.1")
    with (
        proxied_chat(tmp_path, certificate, untrusting) as proxy,
        wss_connect(proxy, client_tls, "/chat") as ws,
    ):
        attributes = session_cookie_attributes(ws)
        chat_say(ws, "hi")
    assert attributes == ["Path=/", "HttpOnly", "SameSite=Lax"]


def lines_for_another_user() -> str:
    """The ``http``-block lines that the page gives a reader who runs nginx as a user other
    than root, indented for the block."""
    page = PAGE.read_text(encoding="utf-8")
    found = re.search(r"\n\.\. code-block:: nginx\n\n((?:   .+\n)+)", page)
    assert found is not None, "the page shows no nginx lines to add"
    return textwrap.indent(textwrap.dedent(found[1]), "    ")


def test_nginx_runs_as_another_user_with_the_lines_the_page_adds() -> None:
    """Not root (here: nobody, if the test runs as root), nginx cannot write where it was
    built to (Debian's: /var/lib/nginx); with the page's lines it keeps all in its directory."""
    openssl = require_program("openssl")
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = [require_program("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups"]
    lines = lines_for_another_user()
    paths = [line.split()[1].rstrip(";") for line in lines.splitlines()]
    with tempfile.TemporaryDirectory(prefix="micropie-nginx-") as name:
        directory = Path(name)
        directory.chmod(0o777)  # that user writes its files here
        certificate = make_certificate(openssl, directory)
        for path in certificate:
            path.chmod(0o644)  # and reads these
        context = ssl.create_default_context(cafile=str(certificate[0]))
        with (
            pytest.raises(ServerError) as refused,
            proxied_chat(directory, certificate, UVICORN_COMMAND, files="", as_user=as_user),
        ):
            pass
        with proxied_chat(
            directory, certificate, UVICORN_COMMAND, files=lines, as_user=as_user
        ) as proxy:
            status, _, body = https_get(proxy, context, "/")
        made = {path: (directory / path).exists() for path in paths}
        access_log = (directory / "access.log").read_text(encoding="utf-8")
    assert "(13: Permission denied)" in str(refused.value)  # without the lines
    assert status == 200
    assert "new WebSocket(" in body
    assert made == dict.fromkeys(paths, True)
    assert '"GET / HTTP/1.1" 200' in access_log
