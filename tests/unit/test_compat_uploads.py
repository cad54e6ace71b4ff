"""Uploads read as MicroPie 0.x apps read them: ``file["filename"]``,
``file["content_type"]`` and ``file["content"]`` (a queue of chunks ending
with ``None``), through a parameter or through ``request.files``, while the
list of :class:`~micropie.UploadFile` stays as it is.

``tests/e2e/test_compat_uploads_e2e.py`` runs such an app under uvicorn.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from micropie import App, UploadFile
from micropie.bodies import UploadList
from micropie.testing import TestClient

KEYS_MESSAGE = "its keys are 'filename', 'content_type' and 'content'"


async def drain(queue: asyncio.Queue[bytes | None]) -> list[bytes]:
    """The chunks up to the ``None`` that ends them, as a 0.x app reads them
    (within a bound: a queue without its ``None`` must fail, not hang)."""
    chunks: list[bytes] = []
    while (chunk := await asyncio.wait_for(queue.get(), 5)) is not None:
        chunks.append(chunk)
    return chunks


def summary(chunks: list[bytes]) -> dict[str, Any]:
    data = b"".join(chunks)
    return {
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "chunks": len(chunks),
        "largest": max((len(chunk) for chunk in chunks), default=0),
    }


class Upstream(App):
    """Written as for MicroPie 0.x; the queues it took are kept to look at afterwards."""

    def __init__(self) -> None:
        super().__init__()
        self.queues: list[asyncio.Queue[bytes | None]] = []

    async def upload(self, file: Any) -> dict[str, Any]:
        return await self.describe(file)

    async def info(self) -> dict[str, Any]:
        return await self.describe(self.request.files["file"])

    async def describe(self, file: Any) -> dict[str, Any]:
        queue = file["content"]
        self.queues.append(queue)
        chunks = await drain(queue)
        return {
            "filename": file["filename"],
            "content_type": file["content_type"],
            "same_queue": file["content"] is queue,
            "left": queue.qsize(),
            **summary(chunks),
        }

    async def both(self, file: Any) -> dict[str, Any]:
        # Today's shape, next to 0.x's, in the same handler.
        files = self.request.files["file"]
        return {
            "count": len(files),
            "names": [upload.filename for upload in files],
            "first": [files[0].filename, file.filename, file["filename"], files["filename"]],
            "last": files[-1]["filename"],
            "slice": [type(files[1:]).__name__, [upload.filename for upload in files[1:]]],
            "contents": [upload.read().decode() for upload in files],
            "queues": [b"".join(await drain(upload["content"])).decode() for upload in files],
            "read_after": file.read().decode(),
        }

    async def keep(self, file: Any) -> str:
        self.queues.append(file["content"])  # taken, not read: the test reads it
        return "kept"

    async def wrong_key(self, file: Any) -> str:
        try:
            file["name"]
        except KeyError as exc:
            return f"KeyError: {exc.args[0]}"
        return "no KeyError"


@pytest.fixture
def app() -> Upstream:
    return Upstream()


@pytest.fixture
def client(app: Upstream) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


PAYLOAD = os.urandom(300 * 1024 + 7)  # several 64 KiB chunks, not a whole number of them


@pytest.mark.parametrize("path", ["/upload", "/info"])
def test_the_three_keys_and_the_queue_hold_the_file_sent(client: TestClient, path: str) -> None:
    response = client.post(path, files={"file": ("cat.png", PAYLOAD, "image/png")})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["filename"] == "cat.png"
    assert result["content_type"] == "image/png"
    assert result["size"] == len(PAYLOAD)
    assert result["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert result["chunks"] > 1  # read chunk by chunk, as 0.x apps expect
    assert result["largest"] <= 64 * 1024
    assert result["same_queue"] is True


def test_none_ends_the_queue_and_nothing_follows_it(client: TestClient, app: Upstream) -> None:
    response = client.post("/upload", files={"file": ("a.txt", b"hello", "text/plain")})
    assert response.json()["left"] == 0
    [queue] = app.queues
    assert queue.empty()


def test_the_queue_taken_in_the_handler_outlives_the_closed_file(
    client: TestClient, app: Upstream
) -> None:
    response = client.post("/keep", files={"file": ("a.txt", PAYLOAD, "text/plain")})
    assert response.text == "kept"
    [queue] = app.queues
    assert b"".join(asyncio.run(drain(queue))) == PAYLOAD


def test_an_empty_file_is_just_none(client: TestClient) -> None:
    response = client.post("/upload", files={"file": ("empty.bin", b"", "application/x-thing")})
    result = response.json()
    assert (result["size"], result["chunks"], result["content_type"]) == (
        0,
        0,
        "application/x-thing",
    )


def test_a_part_without_a_content_type_is_octet_stream(client: TestClient) -> None:
    body = (
        b"--XYZ\r\n"
        b'Content-Disposition: form-data; name="file"; filename="raw.bin"\r\n\r\n'
        b"\x00\x01\x02\r\n"
        b"--XYZ--\r\n"
    )
    response = client.post(
        "/upload", body=body, headers={"Content-Type": "multipart/form-data; boundary=XYZ"}
    )
    result = response.json()
    assert result["content_type"] == "application/octet-stream"
    assert result["size"] == 3


def multipart(parts: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A body with *parts* ``(field, filename, content)``, names repeated as given."""
    boundary = secrets.token_hex(8)
    body = b"".join(
        f"--{boundary}\r\nContent-Disposition: form-data; name={name!r}; "
        f"filename={filename!r}\r\nContent-Type: text/plain\r\n\r\n".replace("'", '"').encode()
        + content
        + b"\r\n"
        for name, filename, content in parts
    )
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_two_files_under_one_name_stay_a_list(client: TestClient) -> None:
    body, content_type = multipart([("file", "one.txt", b"first"), ("file", "two.txt", b"second")])
    response = client.post("/both", body=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "count": 2,
        "names": ["one.txt", "two.txt"],
        "first": ["one.txt", "one.txt", "one.txt", "one.txt"],
        "last": "two.txt",
        "slice": ["list", ["two.txt"]],
        "contents": ["first", "second"],
        "queues": ["first", "second"],
        "read_after": "first",
    }


def test_another_key_in_a_handler_is_a_key_error_naming_the_keys(client: TestClient) -> None:
    response = client.post("/wrong_key", files={"file": ("a.txt", b"a", "text/plain")})
    assert response.text == f"KeyError: an upload has no key 'name': {KEYS_MESSAGE}"


def make_upload(content: bytes) -> UploadFile:
    upload = UploadFile("notes.txt", "text/plain")
    upload.file.write(content)
    upload.size = len(content)
    upload.file.seek(0)
    return upload


def test_upload_file_keys_directly() -> None:
    upload = make_upload(b"abc" * 50_000)
    assert (upload["filename"], upload["content_type"]) == ("notes.txt", "text/plain")
    queue = upload["content"]
    assert upload["content"] is queue
    assert b"".join(asyncio.run(drain(queue))) == b"abc" * 50_000
    assert upload.file.tell() == 0  # left where it was for read() and save_upload()
    for key in ("size", "file", "Filename", ""):
        with pytest.raises(KeyError, match=f"no key {key!r}: {KEYS_MESSAGE}"):
            upload[key]  # type: ignore[call-overload]  # mypy refuses other keys too
    with pytest.raises(KeyError, match=KEYS_MESSAGE):
        upload[0]  # type: ignore[call-overload]
    upload.close()


def test_an_upload_is_still_not_iterable() -> None:
    upload = make_upload(b"abc")
    with pytest.raises(TypeError, match="not iterable"):
        iter(upload)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="not iterable"):
        "filename" in upload  # type: ignore[operator]  # noqa: B015
    upload.close()


def test_the_content_of_a_closed_upload_is_a_clear_error() -> None:
    upload = make_upload(b"abc")
    upload.close()
    with pytest.raises(ValueError, match=r"'notes\.txt' is closed: read its content before"):
        upload["content"]


def test_upload_list_keys_and_list_behaviour() -> None:
    first, second = make_upload(b"1"), make_upload(b"22")
    second.filename = "second.txt"
    uploads = UploadList([first, second])
    assert isinstance(uploads, list)
    assert uploads["filename"] == "notes.txt"
    assert uploads["content_type"] == "text/plain"
    assert uploads["content"] is first["content"]
    assert uploads[1] is second and uploads[-1] is second
    assert uploads[0:1] == [first] and type(uploads[0:1]) is list
    assert list(uploads) == [first, second] and len(uploads) == 2
    with pytest.raises(KeyError, match=f"no key 'size': {KEYS_MESSAGE}"):
        uploads["size"]  # type: ignore[call-overload]
    with pytest.raises(IndexError):
        uploads[2]
    with pytest.raises(KeyError, match="no file to read it from"):
        UploadList()["filename"]
    with pytest.raises(KeyError, match=KEYS_MESSAGE):
        UploadList()["other"]  # type: ignore[call-overload]
    first.close()
    second.close()
