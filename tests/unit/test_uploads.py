"""micropie.uploads (safe_filename, save_upload) and the uploads how-to's application, in process.

``examples/uploads/app.py`` is the file docs/source/howto/uploads.rst shows;
``tests/e2e/test_uploads_e2e.py`` runs it under uvicorn.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import examples.uploads.app as example
from micropie import UploadFile
from micropie.testing import TestClient
from micropie.uploads import safe_filename, save_upload


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("photo.jpg", "photo.jpg"),
        ("../../etc/passwd", "passwd"),
        ("/etc/passwd", "passwd"),
        ("C:\\Users\\ada\\My report (final).pdf", "My_report_final_.pdf"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("..", "upload"),
        (".", "upload"),
        ("", "upload"),
        ("/", "upload"),
        ("\x00", "upload"),
        (".bashrc", "bashrc"),
        ("...hidden", "hidden"),
        ("trailing.", "trailing"),
        ("a\x00b.txt", "a_b.txt"),
        ("new\nline.txt", "new_line.txt"),
        ("rtl\u202egnp.exe", "rtl_gnp.exe"),
        ("<script>alert(1)</script>.html", "script_.html"),
        ("<img src=x onerror=alert(1)>.svg", "img_src_x_onerror_alert_1_.svg"),
        ("café.txt", "café.txt"),
        ("\uff46\uff55\uff4c\uff4c.txt", "full.txt"),  # fullwidth letters
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("com1.tar.gz", "_com1.tar.gz"),
        ("console.log", "console.log"),
        ("a b  c.txt", "a_b_c.txt"),
    ],
)
def test_safe_filename(sent: str, kept: str) -> None:
    assert safe_filename(sent) == kept


def test_safe_filename_keeps_names_short_and_their_suffix() -> None:
    name = safe_filename("x" * 500 + ".jpeg")
    assert len(name) == 100 and name.endswith(".jpeg")
    odd = safe_filename("y" * 200 + "." + "z" * 40)  # a "suffix" too long to keep
    assert len(odd) == 100


def test_safe_filename_default() -> None:
    assert safe_filename("../", default="file.bin") == "file.bin"


def make_upload(content: bytes, name: str = "data.bin") -> UploadFile:
    upload = UploadFile(name, "application/octet-stream")
    upload.file.write(content)
    upload.size = len(content)
    upload.file.seek(0)
    return upload


def test_save_upload_copies_a_large_upload_whole(tmp_path: Path) -> None:
    content = os.urandom(3 * 1024 * 1024 + 17)  # past the 1 MiB kept in memory
    upload = make_upload(content)
    upload.file.read(100)  # a handler may have read some of it already
    size = asyncio.run(save_upload(upload, tmp_path / "out.bin"))
    assert size == len(content)
    assert (tmp_path / "out.bin").read_bytes() == content


class RecordingFile:
    """Wraps an upload's file to record each read: its size and its thread."""

    def __init__(self, inner: Any, fail_after: int | None = None) -> None:
        self.inner = inner
        self.reads: list[tuple[int, int]] = []
        self.fail_after = fail_after
        self.closed = False

    def seek(self, position: int) -> int:
        return int(self.inner.seek(position))

    def read(self, size: int = -1) -> bytes:
        if self.fail_after is not None and len(self.reads) >= self.fail_after:
            raise OSError("the disk went away")
        self.reads.append((threading.get_ident(), size))
        return bytes(self.inner.read(size))


def test_save_upload_reads_in_chunks_off_the_event_loop(tmp_path: Path) -> None:
    upload = make_upload(os.urandom(10_000))
    recording = RecordingFile(upload.file)
    upload.file = recording  # type: ignore[assignment]

    async def save() -> int:
        return threading.get_ident()

    loop_thread = asyncio.run(save())
    asyncio.run(save_upload(upload, tmp_path / "out.bin", chunk_size=1000))
    assert all(size == 1000 for _, size in recording.reads)
    assert len(recording.reads) == 11  # ten chunks, then the empty read that ends it
    assert loop_thread not in {thread for thread, _ in recording.reads}


def test_save_upload_never_replaces_a_file_unless_told(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_bytes(b"already here")
    with pytest.raises(FileExistsError):
        asyncio.run(save_upload(make_upload(b"new"), target))
    assert target.read_bytes() == b"already here"
    assert asyncio.run(save_upload(make_upload(b"new"), target, overwrite=True)) == 3
    assert target.read_bytes() == b"new"


def test_save_upload_removes_what_it_wrote_when_the_copy_fails(tmp_path: Path) -> None:
    upload = make_upload(os.urandom(5000))
    upload.file = RecordingFile(upload.file, fail_after=2)  # type: ignore[assignment]
    with pytest.raises(OSError, match="the disk went away"):
        asyncio.run(save_upload(upload, tmp_path / "out.bin", chunk_size=1000))
    assert list(tmp_path.iterdir()) == []


def test_save_upload_refuses_a_closed_upload_and_bad_chunk_sizes(tmp_path: Path) -> None:
    upload = make_upload(b"x", name="late.txt")
    for size in (0, -5, 2.5):
        with pytest.raises(ValueError, match="chunk_size"):
            asyncio.run(save_upload(upload, tmp_path / "a", chunk_size=size))  # type: ignore[arg-type]
    upload.close()
    with pytest.raises(ValueError, match=r"'late\.txt' is closed: save it before the handler"):
        asyncio.run(save_upload(upload, tmp_path / "a"))
    assert list(tmp_path.iterdir()) == []


# The how-to's application


@pytest.fixture
def uploads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = tmp_path / "uploads"
    monkeypatch.setattr(example, "UPLOAD_DIR", directory)
    yield directory


@pytest.fixture
def client(uploads: Path) -> Iterator[TestClient]:
    with TestClient(example.app) as client:
        yield client


def test_an_upload_is_saved_under_a_unique_safe_name(client: TestClient, uploads: Path) -> None:
    content = os.urandom(2 * 1024 * 1024)
    for _ in range(2):
        response = client.post(
            "/upload", files={"file": ("../../My Photo.jpg", content, "image/jpeg")}
        )
        assert (response.status_code, response.headers["location"]) == (303, "/")
    saved = sorted(uploads.iterdir())
    assert len(saved) == 2  # the same name twice: two files
    for path in saved:
        prefix, _, name = path.name.partition("-")
        assert name == "My_Photo.jpg" and len(prefix) == 8
        assert path.read_bytes() == content
    page = client.get("/").text
    assert all(path.name in page for path in saved)


def test_the_page_escapes_the_names_it_lists(client: TestClient, uploads: Path) -> None:
    uploads.mkdir()
    (uploads / "a&b<i>.txt").write_text("x")
    page = client.get("/").text
    assert "a&amp;b&lt;i&gt;.txt" in page and "<i>" not in page


def test_too_large_a_body_is_413_and_nothing_is_saved(client: TestClient, uploads: Path) -> None:
    big = b"x" * (example.MAX_UPLOAD + 1)
    response = client.post("/upload", files={"file": ("big.bin", big, "text/plain")})
    assert response.status_code == 413
    assert response.text == f"the request body is larger than {example.MAX_UPLOAD} bytes"
    assert not uploads.exists() or list(uploads.iterdir()) == []


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"--XYZ\r\nContent-Disposition: form-data; na", "boundary=XYZ", "incomplete"),
        (b"--XYZ--\r\n", "", "has no boundary"),
        (b"--XYZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XYZ--\r\n", "boundary=XYZ", "malformed"),
        (
            b'--XYZ\r\nContent-Disposition: form-data; name="file"; filename="\xff.txt"'
            b"\r\n\r\nx\r\n--XYZ--\r\n",
            "boundary=XYZ",
            "malformed",
        ),
    ],
)
def test_a_malformed_body_is_400_before_the_handler(
    client: TestClient, uploads: Path, body: bytes, content_type: str, message: str
) -> None:
    header = "multipart/form-data" + (f"; {content_type}" if content_type else "")
    response = client.post("/upload", body=body, headers={"Content-Type": header})
    assert response.status_code == 400
    assert message in response.text
    assert not uploads.exists()


def test_no_file_or_the_wrong_method_is_refused_by_the_handler(
    client: TestClient, uploads: Path
) -> None:
    for files in ({"file": ("", b"", "application/octet-stream")}, {"other": ("a", b"a", "a/b")}):
        response = client.post("/upload", files=files)
        assert response.status_code == 400
        assert "Choose a file" in response.text
    assert client.post("/upload", form={"file": "not a file"}).status_code == 400
    response = client.get("/upload")
    assert (response.status_code, response.headers["allow"]) == (405, "POST")
    assert not uploads.exists()


def test_a_long_name_fits_a_filesystem_in_bytes_not_only_in_characters(tmp_path: Path) -> None:
    name = safe_filename("\U00020000" * 150 + ".txt")  # four bytes each in UTF-8
    assert name.endswith(".txt") and len(name.encode("utf-8")) <= 200
    (tmp_path / name).write_text("fits")  # NAME_MAX is 255 bytes
