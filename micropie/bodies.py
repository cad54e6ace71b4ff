"""Reading request bodies: size limits, forms, JSON and multipart uploads."""

from __future__ import annotations

import asyncio
import json
from tempfile import SpooledTemporaryFile
from typing import IO, Any, Literal, SupportsIndex, overload
from urllib.parse import parse_qs

from micropie._asgi import Receive

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "BodyError",
    "ClientGone",
    "MultipartMissing",
    "UploadFile",
    "UploadList",
    "parse_form",
    "parse_json",
    "read_body",
    "read_multipart",
]

#: The largest request body read by default, in bytes (``App(max_body_size=...)``).
DEFAULT_MAX_BODY_SIZE = 10 * 1024 * 1024
# Uploads stay in memory up to this size, then move to a temporary file.
_SPOOL_SIZE = 1024 * 1024
# More fields than this in one form is an attack, not a form.
MAX_FORM_FIELDS = 1000
# The chunk size of UploadFile["content"], the queue that 0.x apps read.
_QUEUE_CHUNK = 64 * 1024
_KEYS = ("filename", "content_type", "content")


class BodyError(Exception):
    """The request body cannot be used; *status* and the message go to the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ClientGone(Exception):
    """The client disconnected before it finished sending the body."""


class UploadFile:
    """A file sent in a ``multipart/form-data`` body.

    Its content is in :attr:`file`, in memory while small and in a temporary
    file beyond that; :meth:`read` returns all of it. It is closed once the
    handler returns: read or copy it before then (not in a streamed response).

    .. attribute:: filename
       :type: str

       The file name the client gave, as sent: never trust it as a path.

    .. attribute:: content_type
       :type: str

       The part's ``Content-Type``; ``application/octet-stream`` if it had none.

    .. attribute:: file
       :type: typing.IO[bytes]

       The content, positioned at its start once the body is parsed.

    .. attribute:: size
       :type: int

       The content's length in bytes.

    For apps written for MicroPie 0.x, it can also be read as 0.x's dict:
    ``upload["filename"]`` and ``upload["content_type"]`` are the
    attributes above, and ``upload["content"]`` is an
    :class:`asyncio.Queue` holding the content in chunks of 64 KiB, then
    ``None``. The queue is made, complete, by the first ``["content"]``,
    which must come before the handler returns (the file is closed then);
    later ones give the same queue. Any other key raises ``KeyError``.
    """

    __module__ = "micropie"
    # Not iterable, though it has __getitem__ (for 0.x apps): iter() must not
    # fall back to trying upload[0], upload[1]...
    __iter__ = None

    def __init__(self, filename: str, content_type: str) -> None:
        self.filename = filename
        self.content_type = content_type
        self.file: IO[bytes] = SpooledTemporaryFile(max_size=_SPOOL_SIZE)  # noqa: SIM115
        self.size = 0
        self._queue: asyncio.Queue[bytes | None] | None = None

    @overload
    def __getitem__(self, key: Literal["filename", "content_type"]) -> str: ...
    @overload
    def __getitem__(self, key: Literal["content"]) -> asyncio.Queue[bytes | None]: ...
    def __getitem__(self, key: str) -> str | asyncio.Queue[bytes | None]:
        return self._value(key)

    def _value(self, key: object) -> str | asyncio.Queue[bytes | None]:
        """0.x's ``file[key]``, for any key (UploadList's str keys too)."""
        if key == "filename":
            return self.filename
        if key == "content_type":
            return self.content_type
        if key == "content":
            if self._queue is None:
                self._queue = self._content_queue()
            return self._queue
        raise _no_such_key(key)

    def _content_queue(self) -> asyncio.Queue[bytes | None]:
        # Filled up front, as the body was read whole before the handler ran.
        # Chunk by chunk from the spooled file: a large file, spooled to disk,
        # is in memory once (in the queue), never also as one big bytes.
        if self.file.closed:
            raise ValueError(
                f"the upload {self.filename!r} is closed: read its content before the "
                "handler returns"
            )
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        position = self.file.tell()
        self.file.seek(0)
        while chunk := self.file.read(_QUEUE_CHUNK):
            queue.put_nowait(chunk)
        queue.put_nowait(None)
        self.file.seek(position)
        return queue

    def read(self) -> bytes:
        """All of the content."""
        self.file.seek(0)
        return self.file.read()

    def close(self) -> None:
        """Release the temporary file, if any."""
        self.file.close()

    def __repr__(self) -> str:
        return f"UploadFile(filename={self.filename!r}, size={self.size})"


class UploadList(list[UploadFile]):
    """The files sent under one field name, in order: a list of :class:`UploadFile`.

    For apps written for MicroPie 0.x, where ``request.files[name]`` was one
    file's dict, a str key reads that key of the first file:
    ``request.files["photo"]["filename"]``. Ints and slices are a list's.
    """

    @overload
    def __getitem__(self, key: SupportsIndex) -> UploadFile: ...
    @overload
    def __getitem__(self, key: slice) -> list[UploadFile]: ...
    @overload
    def __getitem__(self, key: Literal["filename", "content_type"]) -> str: ...
    @overload
    def __getitem__(self, key: Literal["content"]) -> asyncio.Queue[bytes | None]: ...
    def __getitem__(
        self, key: SupportsIndex | slice | str
    ) -> UploadFile | list[UploadFile] | str | asyncio.Queue[bytes | None]:
        if not isinstance(key, str):
            return super().__getitem__(key)
        if key not in _KEYS:
            raise _no_such_key(key)
        if not self:
            raise KeyError(f"{key!r}: the list has no file to read it from")
        return super().__getitem__(0)._value(key)


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole body; :class:`BodyError` 413 past *limit* bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in _chunks(receive):
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_form(body: bytes) -> dict[str, list[str]]:
    """Fields of an ``application/x-www-form-urlencoded`` body."""
    try:
        return parse_qs(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=False,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except UnicodeDecodeError:
        raise BodyError(400, "the form body is not valid URL-encoded UTF-8") from None
    except ValueError:
        raise BodyError(413, f"the form has more than {MAX_FORM_FIELDS} fields") from None


def parse_json(body: bytes) -> Any:
    """A JSON body, parsed."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise BodyError(400, "the body is not valid JSON") from None
    except RecursionError:  # nested deeper than the parser goes: not an error of ours
        raise BodyError(400, "the JSON body is nested too deeply") from None


async def read_multipart(
    receive: Receive, content_type: str, limit: int
) -> tuple[dict[str, list[str]], dict[str, UploadList]]:
    """Fields and files of a ``multipart/form-data`` body, parsed as it arrives."""
    try:
        from python_multipart.multipart import MultipartParser, parse_options_header
    except ImportError:
        raise MultipartMissing() from None
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise BodyError(400, "the multipart body has no boundary")
    collector = _MultipartCollector()
    size = 0
    try:
        parser = MultipartParser(boundary, collector.callbacks())
        async for chunk in _chunks(receive):
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            parser.write(chunk)
        parser.finalize()
    except (BodyError, ClientGone):
        collector.discard()
        raise
    except Exception:  # the parser's own errors: the body is malformed
        collector.discard()
        raise BodyError(400, "the multipart body is malformed") from None
    if not collector.complete:
        collector.discard()
        raise BodyError(400, "the multipart body is incomplete")
    return collector.fields, collector.files


class MultipartMissing(ImportError):
    """python-multipart is not installed: ``pip install python-multipart``."""

    def __init__(self) -> None:
        super().__init__(
            "reading multipart/form-data needs python-multipart: pip install python-multipart"
        )


async def _chunks(receive: Receive) -> Any:
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


def _too_large(limit: int) -> BodyError:
    return BodyError(413, f"the request body is larger than {limit} bytes")


def _no_such_key(key: object) -> KeyError:
    return KeyError(
        f"an upload has no key {key!r}: its keys are 'filename', 'content_type' and 'content'"
    )


class _MultipartCollector:
    """Turns the parser's callbacks into fields and files."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}
        self.files: dict[str, UploadList] = {}
        self.complete = False
        self._headers: dict[bytes, bytes] = {}
        self._header_name = b""
        self._header_value = b""
        self._name = ""
        self._value = bytearray()
        self._file: UploadFile | None = None
        self._parts = 0

    def callbacks(self) -> Any:  # python-multipart's MultipartCallbacks
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def discard(self) -> None:
        for uploads in self.files.values():
            for upload in uploads:
                upload.close()
        if self._file is not None:
            self._file.close()

    def _part_begin(self) -> None:
        self._headers = {}
        self._value = bytearray()
        self._file = None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        disposition, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if disposition != b"form-data" or b"name" not in options:
            raise ValueError("a multipart part without a form-data name")
        self._name = options[b"name"].decode("utf-8")
        if b"filename" in options:
            content_type = self._headers.get(b"content-type", b"application/octet-stream")
            self._file = UploadFile(
                options[b"filename"].decode("utf-8"), content_type.decode("latin-1")
            )

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self._file.file.write(data[start:end])
            self._file.size += end - start
        else:
            self._value += data[start:end]
            if len(self._value) > _SPOOL_SIZE:
                raise BodyError(413, "a form field is larger than 1 MiB")

    def _part_end(self) -> None:
        if self._file is not None:
            self._file.file.seek(0)
            self.files.setdefault(self._name, UploadList()).append(self._file)
            self._file = None
        else:
            self.fields.setdefault(self._name, []).append(self._value.decode("utf-8"))
        self._parts += 1
        if self._parts > MAX_FORM_FIELDS:
            raise BodyError(413, f"the form has more than {MAX_FORM_FIELDS} fields")

    def _end(self) -> None:
        self.complete = True
