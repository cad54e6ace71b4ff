"""Serving the files of a directory: stylesheets, scripts, images, fonts."""

from __future__ import annotations

import asyncio
import mimetypes
import os
import stat
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import IO, TypeAlias

from micropie.request import current_request

__all__ = ["FileReply", "StaticFiles"]

#: What :meth:`micropie.StaticFiles.serve` returns: a handler's ``(status, body, headers)``.
FileReply: TypeAlias = tuple[int, AsyncIterator[bytes] | str, list[tuple[str, str]]]

# Python's own table (without the system's, which differs from machine to
# machine) lacks or dates some types that browsers care about.
_WEB_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".md": "text/markdown",
}
# A compressed file is sent as it is stored, not as the type it unpacks to.
_COMPRESSED = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "br": "application/x-brotli",
}
_BINARY = "application/octet-stream"
_PLAIN = [("content-type", "text/plain; charset=utf-8")]
_builtin_types = mimetypes.MimeTypes()  # reads no system files: the same everywhere


class StaticFiles:
    """The files under *directory*, for a handler of yours to serve.

    *directory* is resolved when the object is made, relative to the working
    directory unless absolute, and must exist. Each response carries
    ``Cache-Control: <cache_control>`` when given. *content_types* maps file
    suffixes (``".glb"``) to the media type to send, before MicroPie's own
    table. Files are read *chunk_size* bytes at a time, in a worker thread.

    .. attribute:: directory
       :type: pathlib.Path

       The directory served, resolved to an absolute path without symlinks.
    """

    __module__ = "micropie"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        cache_control: str | None = None,
        content_types: Mapping[str, str] | None = None,
        chunk_size: int = 64 * 1024,
    ) -> None:
        root = Path(directory).resolve()
        if not root.is_dir():
            raise ValueError(
                f"StaticFiles: {str(directory)!r} is not a directory (looked at {root})"
            )
        if cache_control is not None and any(c in cache_control for c in "\r\n\0"):
            raise ValueError("StaticFiles: cache_control has a CR, LF or NUL character")
        if type(chunk_size) is not int or chunk_size < 1:
            raise ValueError(f"StaticFiles: chunk_size must be a positive int, not {chunk_size!r}")
        self.directory = root
        self._cache_control = cache_control
        self._types = {
            suffix.lower(): media_type for suffix, media_type in (content_types or {}).items()
        }
        self._chunk_size = chunk_size

    async def serve(self, *path: str) -> FileReply:
        """The response for the file at *path* under the directory, for a handler to return.

        *path* is the path's segments (a handler's ``*path``), or one or more
        strings of segments joined by ``/``. A ``GET`` or ``HEAD`` gets the file
        with its ``Content-Type``, ``Content-Length``, ``Last-Modified`` and
        ``ETag``, or 304 when the request's ``If-None-Match`` or
        ``If-Modified-Since`` says the client has it already; another method
        gets 405. A path that does not name a regular file inside the
        directory gets 404: missing files, directories, segments that start
        with ``.`` (``..`` and hidden files alike), empty segments, and
        symlinks that lead outside. The request is the one being handled;
        outside a handler, a plain ``GET``.
        """
        request = current_request.get(None)
        method = request.method if request is not None else "GET"
        if method not in ("GET", "HEAD"):
            return 405, "Method Not Allowed", [*_PLAIN, ("allow", "GET, HEAD")]
        segments = _safe_segments(path)
        if segments is None:
            return 404, "Not Found", list(_PLAIN)
        loop = asyncio.get_running_loop()
        opened = await loop.run_in_executor(None, _open_inside, self.directory, segments)
        if opened is None:
            return 404, "Not Found", list(_PLAIN)
        file, info = opened
        etag = f'"{info.st_mtime_ns:x}-{info.st_size:x}"'
        headers = [
            ("content-type", self._content_type(segments[-1])),
            ("last-modified", formatdate(info.st_mtime, usegmt=True)),
            ("etag", etag),
        ]
        if self._cache_control is not None:
            headers.append(("cache-control", self._cache_control))
        if request is not None and _not_modified(request.headers, etag, info.st_mtime):
            file.close()
            # No Content-Length: in a 304 it would have to be the file's.
            return 304, _nothing(), headers
        headers.append(("content-length", str(info.st_size)))
        return 200, _FileChunks(file, info.st_size, self._chunk_size), headers

    def _content_type(self, name: str) -> str:
        suffix = os.path.splitext(name)[1].lower()
        media_type = self._types.get(suffix) or _WEB_TYPES.get(suffix)
        if media_type is None:
            guessed, encoding = _builtin_types.guess_type(name, strict=False)
            if encoding is not None:
                media_type = _COMPRESSED.get(encoding, _BINARY)
            else:
                media_type = guessed or _BINARY
        if media_type.startswith("text/") and "charset" not in media_type:
            media_type += "; charset=utf-8"
        return media_type

    def __repr__(self) -> str:
        return f"StaticFiles({str(self.directory)!r})"


def _safe_segments(path: tuple[str, ...]) -> list[str] | None:
    """The path's segments, or None when one of them could lead anywhere else."""
    segments: list[str] = []
    for part in path:
        segments.extend(part.split("/"))
    if not segments:
        return None
    for segment in segments:
        # "" is an absolute path or "a//b"; "." starts "..", "." and hidden
        # files; a backslash separates directories on Windows.
        if not segment or segment[0] == "." or "\\" in segment or "\0" in segment:
            return None
    return segments


def _open_inside(root: Path, segments: list[str]) -> tuple[IO[bytes], os.stat_result] | None:
    """The regular file at *segments* under *root*, opened, with its status; or None.

    Runs in a worker thread: resolving and opening may wait on the disk.
    """
    try:
        resolved = root.joinpath(*segments).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # missing, a symlink loop, a bad name
        return None
    if not resolved.is_relative_to(root):  # a symlink that leads outside
        return None
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
        fd = os.open(resolved, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            return None
        return os.fdopen(fd, "rb"), info
    except BaseException:
        os.close(fd)
        raise


def _not_modified(headers: Mapping[str, str], etag: str, mtime: float) -> bool:
    """Whether the request's conditions say the client has this version already."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:  # it takes precedence over If-Modified-Since
        tags = (tag.strip() for tag in if_none_match.split(","))
        return any(tag == "*" or tag.removeprefix("W/") == etag for tag in tags)
    if_modified_since = headers.get("if-modified-since")
    if if_modified_since is None:
        return False
    try:
        date = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError, OverflowError):  # not a date: the header is ignored
        return False
    if date.tzinfo is None:  # asctime dates carry no zone: HTTP dates are GMT
        date = date.replace(tzinfo=UTC)
    since = date.timestamp()
    # A date later than the server's clock is invalid (RFC 9110, 13.1.3): ignored.
    return int(mtime) <= since <= time.time()


async def _nothing() -> AsyncIterator[bytes]:
    """An empty body that is not ``b""``, which would add ``Content-Length: 0``."""
    return
    yield b""  # pragma: no cover (makes this an async generator)


class _FileChunks:
    """An open file, read in a worker thread one chunk at a time, then closed.

    A class rather than an async generator so that ``aclose()`` closes the
    file even when iteration never started (a ``HEAD``, a replaced response).
    """

    def __init__(self, file: IO[bytes], size: int, chunk_size: int) -> None:
        self._file = file
        self._left = size  # never more than announced in Content-Length
        self._chunk_size = chunk_size

    def __aiter__(self) -> _FileChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._left <= 0 or self._file.closed:
            self._file.close()
            raise StopAsyncIteration
        loop = asyncio.get_running_loop()
        try:
            chunk = await loop.run_in_executor(
                None, _read_chunk, self._file, min(self._chunk_size, self._left)
            )
        except ValueError:  # closed by aclose() meanwhile
            raise StopAsyncIteration from None
        if not chunk:  # the file shrank: the client sees a short response
            self._file.close()
            raise StopAsyncIteration
        self._left -= len(chunk)
        return chunk

    async def aclose(self) -> None:
        self._file.close()


def _read_chunk(file: IO[bytes], size: int) -> bytes:
    return file.read(size)
