"""Keeping uploaded files: safe file names, and saving without holding a file in memory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import unicodedata

from micropie.bodies import UploadFile

__all__ = ["safe_filename", "save_upload"]

# Names that Windows gives to devices, whatever the suffix ("nul.txt" too).
_DEVICES = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{n}" for n in range(10)] + [f"lpt{n}" for n in range(10)]
)
_UNSAFE = re.compile(r"[^\w.-]+")
_MAX_BYTES = 200  # in UTF-8, leaving room under NAME_MAX (255) for a prefix
_MAX_LENGTH = 100


def safe_filename(filename: str, default: str = "upload") -> str:
    """*filename*, as a client sent it, made into a plain file name to store under.

    Only its last part is kept (after ``/`` or ``\\``), in Unicode's NFKC
    form; anything but letters, digits, ``.``, ``-`` and ``_`` becomes
    ``_``; leading dots and underscores go (no hidden files, no ``..``); a
    Windows device name gets a ``_`` in front; a long name is cut to 100
    characters, keeping its suffix. What is left may be empty: *default*
    is returned then.

    >>> from micropie.uploads import safe_filename
    >>> safe_filename("../../etc/passwd")
    'passwd'
    >>> safe_filename("C:\\\\Users\\\\ada\\\\My report (final).pdf")
    'My_report_final_.pdf'
    >>> safe_filename(".bashrc"), safe_filename("café.txt"), safe_filename("..")
    ('bashrc', 'café.txt', 'upload')

    The name may still be that of a file you have: add something unique to
    it (a counter, a random prefix) before you store it.
    """
    name = re.split(r"[/\\]", unicodedata.normalize("NFKC", filename))[-1]
    name = _UNSAFE.sub("_", name).lstrip("._").rstrip(".")
    if len(name) > _MAX_LENGTH or len(name.encode("utf-8")) > _MAX_BYTES:
        stem, suffix = os.path.splitext(name)
        suffix = suffix if len(suffix) <= 16 else ""
        stem = stem[: _MAX_LENGTH - len(suffix)]
        # Filesystems count bytes (255 at most), and a character may take four.
        while len((stem + suffix).encode("utf-8")) > _MAX_BYTES:
            stem = stem[:-1]
        name = stem + suffix
    if name.split(".", 1)[0].lower() in _DEVICES:
        name = f"_{name}"
    return name or default


async def save_upload(
    upload: UploadFile,
    destination: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    chunk_size: int = 1024 * 1024,
) -> int:
    """Copy *upload* to the file *destination*, *chunk_size* bytes at a time; return its size.

    The copy runs in a worker thread, so that the event loop goes on serving
    others meanwhile, and never holds more than one chunk in memory. An
    existing file is an error (``FileExistsError``) unless *overwrite*; if
    the copy fails, the part written is removed. Call it before the handler
    returns: the upload is closed then.
    """
    if upload.file.closed:
        raise ValueError(
            f"the upload {upload.filename!r} is closed: save it before the handler returns"
        )
    if type(chunk_size) is not int or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, not {chunk_size!r}")
    path = os.fspath(destination)
    return await asyncio.get_running_loop().run_in_executor(
        None, _copy, upload, path, overwrite, chunk_size
    )


def _copy(upload: UploadFile, path: str, overwrite: bool, chunk_size: int) -> int:
    source = upload.file
    source.seek(0)
    written = 0
    with open(path, "wb" if overwrite else "xb") as target:
        try:
            while chunk := source.read(chunk_size):
                target.write(chunk)
                written += len(chunk)
        except BaseException:
            target.close()
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
    return written
