"""An upload handler written for MicroPie 0.x (``file["content"]`` read as a queue)
under a real uvicorn, driven by httpx; ``tests/unit/test_compat_uploads.py``
has the details in process.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers.logs import quiet
from tests.helpers.servers import RunningServer, run_uvicorn

# Written as a 0.x app is: no annotations, the queue read until None.
UPSTREAM_APP = """\
import hashlib

from micropie import App


class Upstream(App):
    async def upload(self, file):
        digest = hashlib.sha256()
        size = 0
        queue = file["content"]
        while (chunk := await queue.get()) is not None:
            digest.update(chunk)
            size += len(chunk)
        return {
            "filename": file["filename"],
            "content_type": file["content_type"],
            "size": size,
            "sha256": digest.hexdigest(),
        }

    async def info(self):
        info = self.request.files["file"]
        data = bytearray()
        queue = info["content"]
        while (chunk := await queue.get()) is not None:
            data += chunk
        return {"filename": info["filename"], "size": len(data)}


app = Upstream()
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("upstream-app")
    (directory / "app.py").write_text(UPSTREAM_APP)
    with quiet(run_uvicorn("app:app", cwd=directory)) as running:
        yield running


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http_url, trust_env=False, timeout=30) as client:
        yield client


@pytest.mark.parametrize("size", [0, 70_000, 3 * 1024 * 1024 + 5])  # empty, small, spooled to disk
def test_the_queue_echoes_the_file_sent(http: httpx.Client, size: int) -> None:
    content = os.urandom(size)
    response = http.post("/upload", files={"file": ("cat.png", content, "image/png")})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "filename": "cat.png",
        "content_type": "image/png",
        "size": size,
        "sha256": hashlib.sha256(content).hexdigest(),
    }


def test_request_files_reads_as_the_first_files_dict(http: httpx.Client) -> None:
    files = [("file", ("one.bin", b"a" * 100_000, "x/y")), ("file", ("two.bin", b"b", "x/y"))]
    response = http.post("/info", files=files)
    assert response.status_code == 200, response.text
    assert response.json() == {"filename": "one.bin", "size": 100_000}
