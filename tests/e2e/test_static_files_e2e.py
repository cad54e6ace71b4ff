"""StaticFiles under a real uvicorn, and in Chromium.

These serve ``examples/static/app.py``, the file that
docs/source/howto/static-files.rst shows, and a large file from a directory
of their own (in process: tests/unit/test_static_files.py). The example's
server is checked, once stopped, for having printed no traceback.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.browser import TIMEOUT_MS, launch_chromium
from tests.helpers.logs import quiet
from tests.helpers.servers import REPO_ROOT, RunningServer, run_uvicorn

EXAMPLE = REPO_ROOT / "examples" / "static"


def raw_get(server: RunningServer, target: str) -> tuple[int, bytes]:
    """Send *target* exactly as written (no client normalises it); status and body."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.fixture(scope="module")
def example_server() -> Iterator[RunningServer]:
    # No request of these tests may cost a traceback, whatever it asks for.
    with quiet(run_uvicorn("examples.static.app:app"), words=["Traceback"]) as server:
        yield server


def test_example_under_uvicorn_serves_files_with_validators(
    example_server: RunningServer,
) -> None:
    with httpx.Client(base_url=example_server.http_url, trust_env=False, timeout=10) as http:
        css = http.get("/static/style.css")
        assert css.status_code == 200
        assert css.content == (EXAMPLE / "static" / "style.css").read_bytes()
        assert css.headers["content-type"] == "text/css; charset=utf-8"
        assert css.headers["content-length"] == str(len(css.content))
        again = http.get("/static/style.css", headers={"If-None-Match": css.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        assert "content-length" not in again.headers
        since = {"If-Modified-Since": css.headers["last-modified"]}
        assert http.get("/static/style.css", headers=since).status_code == 304
        head = http.head("/static/logo.svg")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(
            (EXAMPLE / "static" / "logo.svg").stat().st_size
        )
        assert http.post("/static/style.css").status_code == 405


@pytest.mark.parametrize(
    "target",
    [
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/..%2fapp.py",
        "/static/%2e%2e%2f%2e%2e%2fpyproject.toml",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/style.css%00",
        "/static/",
        "/static/missing.css",
    ],
)
def test_example_under_uvicorn_never_serves_outside(
    example_server: RunningServer, target: str
) -> None:
    status, body = raw_get(example_server, target)
    assert status == 404
    assert body == b"Not Found"


def test_a_large_download_does_not_hold_up_other_requests(tmp_path: Path) -> None:
    data = os.urandom(32 * 1024 * 1024)
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "big.bin").write_bytes(data)
    (tmp_path / "bigsite.py").write_text(
        "from pathlib import Path\n"
        "from micropie import App, StaticFiles\n"
        "files = StaticFiles(Path(__file__).with_name('public'))\n"
        "class Site(App):\n"
        "    def index(self):\n"
        "        return 'ok'\n"
        "    async def static(self, *path):\n"
        "        return await files.serve(*path)\n"
        "app = Site()\n"
    )
    with (
        run_uvicorn("bigsite:app", "--app-dir", str(tmp_path)) as server,
        httpx.Client(base_url=server.http_url, trust_env=False, timeout=10) as slow,
        httpx.Client(base_url=server.http_url, trust_env=False, timeout=10) as other,
        slow.stream("GET", "/static/big.bin") as download,
    ):
        assert download.headers["content-length"] == str(len(data))
        chunks = download.iter_raw(65536)
        received = [next(chunks)]  # then stop reading: the server's sends wait
        started = time.monotonic()
        assert other.get("/").text == "ok"
        assert time.monotonic() - started < 2
        received.extend(chunks)
        body = b"".join(received)
        assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()


def test_the_example_page_in_chromium(example_server: RunningServer) -> None:
    with launch_chromium() as browser:
        page = browser.new_page()
        failed: list[str] = []
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))
        page.goto(example_server.http_url + "/", timeout=TIMEOUT_MS)
        page.wait_for_function(
            "document.getElementById('status').textContent === 'The script has run.'",
            timeout=TIMEOUT_MS,
        )
        colour = page.evaluate("getComputedStyle(document.querySelector('h1')).color")
        assert colour == "rgb(180, 69, 31)"  # from static/style.css
        logo = page.wait_for_function(
            "document.querySelector('img').complete && document.querySelector('img').naturalWidth",
            timeout=TIMEOUT_MS,
        )
        assert logo.json_value() > 0
        assert failed == []
