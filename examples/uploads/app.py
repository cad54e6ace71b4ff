"""A form that uploads a file, and a handler that keeps it safely.

Save it as ``app.py``, install python-multipart (``pip install
python-multipart``), serve it with ``uvicorn app:app`` and open
http://127.0.0.1:8000/. Files are saved in the directory that the
``UPLOAD_DIR`` environment variable names (``uploads`` by default), under
a random prefix and a cleaned-up version of the name the browser sent.
"""

import os
import secrets
from html import escape
from pathlib import Path

from micropie import App
from micropie.uploads import safe_filename, save_upload

UPLOAD_DIR = Path(os.environ.get("UPLOAD_DIR", "uploads"))
MAX_UPLOAD = 5 * 1024 * 1024  # bytes: a larger request is answered with 413

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Uploads</title></head>
<body>
  <h1>Uploads</h1>
  <form method="post" action="/upload" enctype="multipart/form-data">
    <input type="file" name="file" required>
    <button>Upload</button>
  </form>
  <p>Files up to {limit} MiB.</p>
  <ul>{items}</ul>
</body>
</html>
"""


class Uploads(App):
    def index(self) -> str:
        names = sorted(p.name for p in UPLOAD_DIR.glob("*"))
        items = "".join(f"<li>{escape(name)}</li>" for name in names)
        return PAGE.format(limit=MAX_UPLOAD // (1024 * 1024), items=items)

    async def upload(self) -> tuple[int, str, dict[str, str]] | tuple[int, str]:
        if self.request.method != "POST":
            return 405, "Send the file with POST.", {"Allow": "POST"}
        uploads = self.request.files.get("file")
        # A form sent with no file chosen has a part with an empty file name.
        if not uploads or not uploads[0].filename:
            return 400, "Choose a file to upload (the form field 'file')."
        upload = uploads[0]
        # Never the client's name as a path: a clean name, made unique.
        name = f"{secrets.token_hex(4)}-{safe_filename(upload.filename)}"
        UPLOAD_DIR.mkdir(exist_ok=True)
        await save_upload(upload, UPLOAD_DIR / name)
        return 303, "", {"Location": "/"}


app = Uploads(max_body_size=MAX_UPLOAD)
