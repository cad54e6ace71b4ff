"""CORSMiddleware under a real uvicorn, and in Chromium.

These run ``examples/cors/app.py`` and ``examples/cors/index.html``, the
files docs/source/howto/cors.rst shows (in process: tests/unit/test_cors.py).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.browser import TIMEOUT_MS, launch_chromium
from tests.helpers.servers import RunningServer, run_uvicorn
from tests.helpers.support import save_files

ORIGIN = "https://app.example.com"
OTHER = "https://evil.example"


@pytest.fixture
def page_origin(tmp_path: Path) -> Iterator[int]:
    """``examples/cors/index.html`` served on 127.0.0.1, as ``python -m http.server`` would."""
    save_files(tmp_path, {"examples/cors/index.html": "index.html"})

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.server_address[1]
        finally:
            server.shutdown()
            thread.join(10)


@contextlib.contextmanager
def notes_api(monkeypatch: pytest.MonkeyPatch, origins: str) -> Iterator[RunningServer]:
    monkeypatch.setenv("API_ALLOWED_ORIGINS", origins)
    with run_uvicorn("examples.cors.app:app") as server:
        yield server


def test_the_example_under_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    origins = f"{ORIGIN} http://localhost:5173"
    with (
        notes_api(monkeypatch, origins) as server,
        httpx.Client(base_url=server.http_url, trust_env=False, timeout=10) as http,
    ):
        asked = {
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        }
        response = http.options("/notes", headers=asked)
        assert response.status_code == 204
        assert "content-length" not in response.headers
        assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
        refused = http.options("/notes", headers={**asked, "Origin": OTHER})
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers
        response = http.post("/notes", json={"text": "hello"}, headers={"Origin": ORIGIN})
        assert response.status_code == 201
        assert response.headers["access-control-allow-origin"] == ORIGIN
        assert response.json() == ["hello"]


def test_a_page_of_an_allowed_origin_calls_the_api_in_chromium(
    monkeypatch: pytest.MonkeyPatch, page_origin: int
) -> None:
    allowed = f"http://127.0.0.1:{page_origin}"
    with notes_api(monkeypatch, allowed) as server, launch_chromium() as browser:
        page = browser.new_page()

        # The allowed origin: a JSON POST, so a preflight first, then the POST.
        page.goto(f"{allowed}/index.html?api={server.http_url}", timeout=TIMEOUT_MS)
        page.wait_for_function(
            "document.getElementById('status').textContent === '0 note(s)'", timeout=TIMEOUT_MS
        )
        mark = server.mark()
        page.fill("#text", "<b>from the browser</b>")
        page.click("button")
        page.wait_for_function(
            "document.getElementById('status').textContent === '1 note(s)'", timeout=TIMEOUT_MS
        )
        assert page.locator("#notes li").all_text_contents() == ["<b>from the browser</b>"]
        assert page.locator("#notes b").count() == 0
        log = server.wait_for_output('"POST /notes HTTP/1.1" 201', since=mark)
        assert '"OPTIONS /notes HTTP/1.1" 204' in log

        # Another origin (localhost is not 127.0.0.1 to the browser): refused.
        mark = server.mark()
        page.goto(f"http://localhost:{page_origin}/index.html?api={server.http_url}")
        page.wait_for_function(
            "document.getElementById('status').textContent.startsWith('The browser refused')",
            timeout=TIMEOUT_MS,
        )
        page.fill("#text", "never stored")
        page.click("button")
        server.wait_for_output('"OPTIONS /notes HTTP/1.1" 403', since=mark)
        page.wait_for_function(
            "document.getElementById('status').textContent.startsWith('The browser refused')",
            timeout=TIMEOUT_MS,
        )
        assert "POST /notes" not in server.output_since(mark)
