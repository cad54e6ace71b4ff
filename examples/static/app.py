"""A page with its stylesheet, script and logo, served from the ``static`` directory.

Save it as ``app.py`` beside a ``static`` directory holding ``style.css``,
``app.js`` and ``logo.svg``, serve it with ``uvicorn app:app`` and open
http://127.0.0.1:8000/. ``/static/style.css`` is the file
``static/style.css``; nothing outside that directory can be reached.
"""

from pathlib import Path

from micropie import App, StaticFiles
from micropie.staticfiles import FileReply

# Beside this file, wherever the server is started from.
files = StaticFiles(
    Path(__file__).with_name("static"), cache_control="public, max-age=3600"
)

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Static files</title>
  <link rel="stylesheet" href="/static/style.css">
  <script src="/static/app.js" defer></script>
</head>
<body>
  <img src="/static/logo.svg" alt="" width="48" height="48">
  <h1>Static files</h1>
  <p id="status">The script has not run.</p>
</body>
</html>
"""


class Site(App):
    def index(self) -> str:
        return PAGE

    async def static(self, *path: str) -> FileReply:
        return await files.serve(*path)


app = Site()
