"""The uploads how-to's application (examples/uploads/app.py) under a real uvicorn, driven by httpx.

The server saves into a temporary directory (``UPLOAD_DIR``), never into
the repository. None of the requests may cost a traceback: the server's
whole output is checked once it has stopped, at the end of the module.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from examples.uploads.app import MAX_UPLOAD
from tests.helpers.logs import quiet
from tests.helpers.servers import RunningServer, run_uvicorn


@pytest.fixture(scope="module")
def upload_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uploads")


@pytest.fixture(scope="module")
def server(upload_dir: Path) -> Iterator[RunningServer]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UPLOAD_DIR", str(upload_dir))
        with quiet(run_uvicorn("examples.uploads.app:app"), words=["Traceback"]) as running:
            yield running


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http_url, trust_env=False, timeout=30) as client:
        yield client


def saved(upload_dir: Path) -> set[str]:
    return {path.name for path in upload_dir.iterdir()}


def test_a_file_posted_as_a_browser_would_is_saved_whole(
    http: httpx.Client, upload_dir: Path
) -> None:
    before = saved(upload_dir)
    content = os.urandom(3 * 1024 * 1024 + 5)  # past the 1 MiB kept in memory
    response = http.post("/upload", files={"file": ("../holiday photo.jpg", content, "image/jpeg")})
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    [name] = saved(upload_dir) - before
    assert name.endswith("-holiday_photo.jpg")
    digest = hashlib.sha256((upload_dir / name).read_bytes()).hexdigest()
    assert digest == hashlib.sha256(content).hexdigest()
    assert name in http.get("/").text


def test_too_large_a_file_gets_413_and_is_not_saved(http: httpx.Client, upload_dir: Path) -> None:
    before = saved(upload_dir)
    content = os.urandom(MAX_UPLOAD + 1024)
    response = http.post("/upload", files={"file": ("big.bin", content, "text/plain")})
    assert response.status_code == 413
    assert response.text == f"the request body is larger than {MAX_UPLOAD} bytes"
    assert saved(upload_dir) == before


def test_a_malformed_body_gets_400(http: httpx.Client, upload_dir: Path) -> None:
    before = saved(upload_dir)
    response = http.post(
        "/upload",
        content=b"--XYZ\r\nContent-Disposition: form-data; na",
        headers={"Content-Type": "multipart/form-data; boundary=XYZ"},
    )
    assert response.status_code == 400
    assert response.text == "the multipart body is incomplete"
    assert saved(upload_dir) == before
