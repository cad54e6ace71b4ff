"""StaticFiles: serving a directory, in process, from a directory built in ``tmp_path``.

Under a real uvicorn and in Chromium: tests/e2e/test_static_files_e2e.py.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

import micropie.staticfiles as staticfiles
from micropie import App, StaticFiles
from micropie.staticfiles import FileReply
from micropie.testing import TestClient
from tests.helpers.servers import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "static"
SECRET = "the content of a file outside the directory"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A directory to serve, and a secret file beside it that must never be reached."""
    root = tmp_path / "public"
    (root / "css").mkdir(parents=True)
    (root / "css" / "site.css").write_text("h1 { color: red; }\n")
    (root / "app.js").write_text("console.log('hi');\n")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (root / ".env").write_text(SECRET)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text(SECRET)
    (tmp_path / "secret.txt").write_text(SECRET)
    return root


def make_app(files: StaticFiles) -> App:
    class Site(App):
        async def static(self, *path: str) -> FileReply:
            return await files.serve(*path)

    return Site()


@pytest.fixture
def client(site: Path, make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(make_app(StaticFiles(site)))


# What is served, and how


def test_a_file_comes_with_its_type_length_and_validators(client: TestClient, site: Path) -> None:
    response = client.get("/static/css/site.css")
    assert response.status_code == 200
    assert response.content == (site / "css" / "site.css").read_bytes()
    assert response.headers["content-type"] == "text/css; charset=utf-8"
    assert response.headers["content-length"] == str(len(response.content))
    info = (site / "css" / "site.css").stat()
    assert response.headers["last-modified"] == formatdate(info.st_mtime, usegmt=True)
    assert response.headers["etag"] == f'"{info.st_mtime_ns:x}-{info.st_size:x}"'
    assert "cache-control" not in response.headers


def test_binary_files_arrive_byte_for_byte(client: TestClient, site: Path) -> None:
    response = client.get("/static/logo.png")
    assert response.headers["content-type"] == "image/png"
    assert response.content == (site / "logo.png").read_bytes()


def test_head_has_the_headers_of_get_and_no_body(client: TestClient) -> None:
    get = client.get("/static/app.js")
    head = client.head("/static/app.js")
    assert head.status_code == 200
    assert head.content == b""
    assert dict(head.headers) == dict(get.headers)
    assert head.headers["content-length"] == str(len(get.content))


def test_cache_control_is_sent_when_asked_for(
    site: Path, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(make_app(StaticFiles(site, cache_control="public, max-age=60")))
    assert client.get("/static/app.js").headers["cache-control"] == "public, max-age=60"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.html", "text/html; charset=utf-8"),
        ("a.js", "text/javascript; charset=utf-8"),
        ("a.mjs", "text/javascript; charset=utf-8"),
        ("a.CSS", "text/css; charset=utf-8"),
        ("a.json", "application/json"),
        ("a.svg", "image/svg+xml"),
        ("a.webp", "image/webp"),
        ("a.woff2", "font/woff2"),
        ("a.wasm", "application/wasm"),
        ("a.txt.gz", "application/gzip"),
        ("a.tar.gz", "application/gzip"),
        ("a.unknown", "application/octet-stream"),
        ("noext", "application/octet-stream"),
    ],
)
def test_content_type_comes_from_the_suffix(tmp_path: Path, name: str, expected: str) -> None:
    (tmp_path / name).write_bytes(b"x")
    client = TestClient(make_app(StaticFiles(tmp_path)))
    assert client.get(f"/static/{name}").headers["content-type"] == expected


def test_content_types_of_your_own_come_first(tmp_path: Path) -> None:
    (tmp_path / "scene.GLB").write_bytes(b"glTF")
    (tmp_path / "a.js").write_bytes(b"x")
    files = StaticFiles(
        tmp_path, content_types={".glb": "model/gltf-binary", ".js": "application/x-mine"}
    )
    client = TestClient(make_app(files))
    assert client.get("/static/scene.GLB").headers["content-type"] == "model/gltf-binary"
    assert client.get("/static/a.js").headers["content-type"] == "application/x-mine"


def test_serve_takes_segments_or_slashed_strings(site: Path) -> None:
    files = StaticFiles(site)

    async def fetch(*path: str) -> tuple[int, bytes]:
        status, body, _ = await files.serve(*path)
        assert not isinstance(body, str)
        return status, b"".join([chunk async for chunk in body])

    expected = (200, (site / "css" / "site.css").read_bytes())
    assert asyncio.run(fetch("css", "site.css")) == expected
    assert asyncio.run(fetch("css/site.css")) == expected


# Conditional requests


def test_a_matching_etag_gets_304_without_a_body(client: TestClient) -> None:
    first = client.get("/static/app.js")
    etag = first.headers["etag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = client.get("/static/app.js", headers={"If-None-Match": header})
        assert response.status_code == 304, header
        assert response.content == b""
        assert "content-length" not in response.headers  # it would have to be the file's
        assert response.headers["etag"] == etag
        assert response.headers["content-type"] == first.headers["content-type"]
        assert response.complete
    head = client.head("/static/app.js", headers={"If-None-Match": etag})
    assert head.status_code == 304


def test_another_etag_gets_the_file(client: TestClient) -> None:
    response = client.get("/static/app.js", headers={"If-None-Match": '"0-0"'})
    assert response.status_code == 200
    assert response.content == b"console.log('hi');\n"


def test_if_modified_since_compares_whole_seconds(client: TestClient, site: Path) -> None:
    # Two hours old, so that "an hour later" is still in the past (a future date is ignored).
    two_hours_ago = time.time() - 7200.25
    os.utime(site / "app.js", (two_hours_ago, two_hours_ago))
    mtime = (site / "app.js").stat().st_mtime
    at = formatdate(mtime, usegmt=True)
    later = formatdate(mtime + 3600, usegmt=True)
    earlier = formatdate(mtime - 3600, usegmt=True)
    assert client.get("/static/app.js", headers={"If-Modified-Since": at}).status_code == 304
    assert client.get("/static/app.js", headers={"If-Modified-Since": later}).status_code == 304
    assert client.get("/static/app.js", headers={"If-Modified-Since": earlier}).status_code == 200
    for nonsense in ("yesterday", "", "Mon, 99 Foo 2024 99:99:99 GMT"):
        response = client.get("/static/app.js", headers={"If-Modified-Since": nonsense})
        assert response.status_code == 200, nonsense


def test_if_none_match_takes_precedence_over_if_modified_since(
    client: TestClient, site: Path
) -> None:
    later = formatdate((site / "app.js").stat().st_mtime + 3600, usegmt=True)
    headers = {"If-None-Match": '"stale"', "If-Modified-Since": later}
    assert client.get("/static/app.js", headers=headers).status_code == 200


def test_a_changed_file_gets_a_new_etag(client: TestClient, site: Path) -> None:
    etag = client.get("/static/app.js").headers["etag"]
    (site / "app.js").write_text("console.log('changed, and longer');\n")
    response = client.get("/static/app.js", headers={"If-None-Match": etag})
    assert response.status_code == 200
    assert response.headers["etag"] != etag
    assert response.text == "console.log('changed, and longer');\n"


# What is refused


@pytest.mark.parametrize(
    "path",
    [
        "/static/missing.css",
        "/static",
        "/static/",
        "/static/css",
        "/static/css/",
        "/static/../secret.txt",
        "/static/css/../../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E/secret.txt",
        "/static/..%2fsecret.txt",
        "/static/%2e%2e%2fsecret.txt",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/..\\secret.txt",
        "/static/.env",
        "/static/.git/config",
        "/static/./app.js",
        "/static/css//site.css",
        "/static/app.js%00.png",
        "/static/%00",
        "/static/" + "a" * 5000,
    ],
)
def test_anything_but_a_file_inside_is_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.text == "Not Found"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize(
    "path",
    [
        ("/etc/passwd",),
        ("..", "secret.txt"),
        ("css/../../secret.txt",),
        ("", "etc", "passwd"),
        (),
        ("app.js\0",),
    ],
)
def test_serve_refuses_paths_that_lead_out_when_called_directly(
    site: Path, path: tuple[str, ...]
) -> None:
    status, body, _ = asyncio.run(StaticFiles(site).serve(*path))
    assert (status, body) == (404, "Not Found")


def test_an_absolute_path_in_the_request_is_404(site: Path, client: TestClient) -> None:
    absolute = site.parent / "secret.txt"
    assert client.get(f"/static/{absolute}").status_code == 404
    assert client.get(f"/static/{absolute}".replace("//", "/")).status_code == 404


def test_symlinks_are_followed_inside_and_refused_outside(client: TestClient, site: Path) -> None:
    (site / "inside.css").symlink_to(site / "css" / "site.css")
    (site / "outside.txt").symlink_to(site.parent / "secret.txt")
    (site / "up").symlink_to(site.parent)
    (site / "dangling.txt").symlink_to(site / "nothing-here")
    (site / "loop").symlink_to(site / "loop")
    assert client.get("/static/inside.css").text == "h1 { color: red; }\n"
    for path in ("outside.txt", "up/secret.txt", "dangling.txt", "loop"):
        response = client.get(f"/static/{path}")
        assert response.status_code == 404, path
        assert SECRET not in response.text


def test_a_fifo_is_refused_at_once(client: TestClient, site: Path) -> None:
    os.mkfifo(site / "pipe")
    started = time.monotonic()
    assert client.get("/static/pipe").status_code == 404  # never waits for a writer
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_get_405(client: TestClient, method: str) -> None:
    response = client.request(method, "/static/app.js")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_bad_settings_are_refused_when_made(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a directory"):
        StaticFiles(tmp_path / "missing")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match="is not a directory"):
        StaticFiles(tmp_path / "file.txt")
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        StaticFiles(tmp_path, cache_control="max-age=1\r\nSet-Cookie: x=1")
    for size in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="chunk_size"):
            StaticFiles(tmp_path, chunk_size=size)  # type: ignore[arg-type]


def test_the_directory_is_resolved_when_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "a.txt").write_text("a")
    monkeypatch.chdir(tmp_path)
    files = StaticFiles("public")
    assert files.directory == (tmp_path / "public").resolve()
    monkeypatch.chdir(tmp_path.parent)  # a later chdir changes nothing
    assert TestClient(make_app(files)).get("/static/a.txt").text == "a"


# Large files: streamed in chunks, read off the event loop


def test_a_large_file_is_streamed_in_chunks_read_in_worker_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(1_000_000)
    (tmp_path / "big.bin").write_bytes(data)
    reads: list[tuple[int, int]] = []
    opens: list[int] = []
    read_chunk, open_inside = staticfiles._read_chunk, staticfiles._open_inside

    def recording_read(file: Any, size: int) -> bytes:
        reads.append((threading.get_ident(), size))
        return read_chunk(file, size)

    def recording_open(root: Path, segments: list[str]) -> Any:
        opens.append(threading.get_ident())
        return open_inside(root, segments)

    monkeypatch.setattr(staticfiles, "_read_chunk", recording_read)
    monkeypatch.setattr(staticfiles, "_open_inside", recording_open)
    loop_threads: list[int] = []
    files = StaticFiles(tmp_path, chunk_size=100_000)

    class Site(App):
        async def static(self, *path: str) -> FileReply:
            loop_threads.append(threading.get_ident())
            return await files.serve(*path)

    response = TestClient(Site()).get("/static/big.bin")
    assert response.content == data
    assert [len(chunk) for chunk in response.chunks] == [100_000] * 10 + [0]
    assert len(reads) == 10 and len(opens) == 1
    assert all(size <= 100_000 for _, size in reads)
    assert loop_threads[0] not in {thread for thread, _ in reads} | set(opens)


def test_the_response_never_runs_past_the_announced_length(tmp_path: Path) -> None:
    path = tmp_path / "growing.log"
    path.write_bytes(b"a" * 1000)
    files = StaticFiles(tmp_path, chunk_size=300)

    async def read_while_it_changes(change: bytes | None) -> tuple[str, bytes]:
        status, body, headers = await files.serve("growing.log")
        assert status == 200 and not isinstance(body, str)
        if change is None:
            path.write_bytes(b"b" * 400)  # shrinks
        else:
            with path.open("ab") as file:
                file.write(change)  # grows
        return dict(headers)["content-length"], b"".join([c async for c in body])

    length, sent = asyncio.run(read_while_it_changes(b"more" * 500))
    assert length == "1000" and sent == b"a" * 1000
    path.write_bytes(b"a" * 1000)
    length, sent = asyncio.run(read_while_it_changes(None))
    assert length == "1000" and len(sent) <= 1000


def test_no_file_stays_open(client: TestClient) -> None:
    def open_files() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_files()
    etag = client.get("/static/app.js").headers["etag"]
    for _ in range(20):
        client.get("/static/app.js")
        client.head("/static/app.js")
        client.get("/static/app.js", headers={"If-None-Match": etag})
    assert open_files() <= before


def test_the_stream_is_closed_even_when_never_read(site: Path) -> None:
    async def serve_and_drop() -> bool:
        _, body, _ = await StaticFiles(site).serve("app.js")
        assert not isinstance(body, str)
        await body.aclose()  # type: ignore[attr-defined]
        return body._file.closed  # type: ignore[attr-defined, no-any-return]

    assert asyncio.run(serve_and_drop())


# The how-to's example, in process


def test_the_example_serves_its_page_and_files(make_client: Callable[..., TestClient]) -> None:
    from examples.static.app import app

    client = make_client(app)
    page = client.get("/").text
    for name in ("style.css", "app.js", "logo.svg"):
        assert f"/static/{name}" in page
        response = client.get(f"/static/{name}")
        assert response.content == (EXAMPLE / "static" / name).read_bytes()
        assert response.headers["cache-control"] == "public, max-age=3600"
    assert client.get("/static/../app.py").status_code == 404


def test_if_modified_since_in_asctime_is_gmt_and_a_future_date_is_ignored(
    client: TestClient, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # West of GMT, a zone-less asctime date read as local time would be hours late.
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        changed = time.time() - 3600
        os.utime(site / "app.js", (changed, changed))
        asctime = "%a %b %d %H:%M:%S %Y"
        for since, status in [
            (time.strftime(asctime, time.gmtime(changed - 600)), 200),
            (time.strftime(asctime, time.gmtime(changed + 600)), 304),
            (formatdate(time.time() + 86400, usegmt=True), 200),  # from the future: ignored
        ]:
            response = client.get("/static/app.js", headers={"if-modified-since": since})
            assert response.status_code == status, since
    finally:
        monkeypatch.undo()
        time.tzset()
