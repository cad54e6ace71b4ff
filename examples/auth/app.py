"""A WebSocket that only logged-in users of this site may open.

Save it as ``app.py``, serve it with ``uvicorn app:app``, open
http://127.0.0.1:8000/ and log in as ``ada`` with the password ``lovelace``
(a demonstration account). The page then opens a WebSocket to
``/private``, which answers every message with the name of the user who
sent it.

Two checks guard the WebSocket: the handler reads the user from the
session that the login form started, and MicroPie itself refuses (with
HTTP 403) handshakes that a page of another site started, which the
browser would otherwise send with this site's session cookie. To let the
pages of another origin of yours in, name it:
``Private(allowed_origins=["https://www.example.com"])``.
"""

import hashlib
import hmac
from html import escape

from micropie import App, WebSocket

LOGIN_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Log in</title></head>
<body>
  <p>{message}</p>
  <form method="post" action="/login">
    <label>Name <input name="name" required></label>
    <label>Password <input name="password" type="password" required></label>
    <button>Log in</button>
  </form>
</body>
</html>
"""

PRIVATE_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Private</title></head>
<body>
  <p>Signed in as {user}.</p>
  <form method="post" action="/logout"><button>Log out</button></form>
  <ul id="messages"></ul>
  <form id="say"><input id="text" autocomplete="off"> <button>Send</button></form>
  <script>
    const messages = document.getElementById("messages");
    const show = (line) => {{
      const item = document.createElement("li");
      item.textContent = line;
      messages.append(item);
    }};
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/private");
    socket.onmessage = (event) => show(event.data);
    socket.onclose = (event) => show(`closed: ${{event.code}} ${{event.reason}}`);
    document.getElementById("say").onsubmit = (event) => {{
      event.preventDefault();
      socket.send(document.getElementById("text").value);
    }};
  </script>
</body>
</html>
"""


def hash_password(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=2**14, r=8, p=1)


# A real application keeps each user's salt and password hash in its
# database; this one has a single account, made when the module is imported.
_ADA_SALT = b"a salt for the demonstration account"
USERS = {"ada": (_ADA_SALT, hash_password("lovelace", _ADA_SALT))}
_UNKNOWN_USER = (b"no such user", b"")


def check_password(name: str, password: str) -> bool:
    # Unknown names cost one hash too, so that timing does not reveal who has an account.
    salt, expected = USERS.get(name, _UNKNOWN_USER)
    return hmac.compare_digest(hash_password(password, salt), expected)


class Private(App):
    def index(self) -> str:
        user = self.request.session.get("user")
        if user is None:
            return LOGIN_PAGE.format(message="Please log in.")
        return PRIVATE_PAGE.format(user=escape(user))

    def login(self) -> tuple[int, str] | tuple[int, str, list[tuple[str, str]]]:
        if self.request.method != "POST":
            return 405, "Log in with the form.", [("Allow", "POST")]
        # Read the form itself: a parameter named "name" could be filled from the
        # query string or the session too.
        name = self.request.form("name", "") or ""
        password = self.request.form("password", "") or ""
        if not check_password(name, password):
            return 401, LOGIN_PAGE.format(message="Wrong name or password.")
        self.request.renew_session()  # a new session ID: one known before is worth nothing
        self.request.session["user"] = name
        return self._redirect("/", 303)

    def logout(self) -> tuple[int, str] | tuple[int, str, list[tuple[str, str]]]:
        if self.request.method != "POST":
            return 405, "Log out with the form.", [("Allow", "POST")]
        self.request.session.clear()
        return self._redirect("/", 303)

    async def ws_private(self, ws: WebSocket) -> None:
        # The session was loaded from the handshake's cookie before this ran.
        user = self.request.session.get("user")
        await ws.accept()
        if user is None:
            await ws.close(4001, "log in first")
            return
        await ws.send_text(f"signed in as {user}")
        # Ends when the client leaves; a binary message closes with 1003.
        async for text in ws.iter_text():
            await ws.send_text(f"{user}: {text}")


app = Private()
