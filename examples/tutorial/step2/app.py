"""A chat room, built step by step in MicroPie's tutorial."""

from html import escape
from string import Template

from micropie import App

NAME_FORM = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>MicroPie tutorial</title></head>
<body>
  <form method="post" action="/login">
    <label>Your name <input name="name" required></label>
    <button>Enter</button>
  </form>
</body>
</html>
"""

CHAT_PAGE = Template("""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>MicroPie tutorial</title></head>
<body>
  <p>Signed in as $name.</p>
</body>
</html>
""")


class ChatRoom(App):
    def index(self) -> str:
        name = self.request.session.get("user")
        if name is None:
            return NAME_FORM
        return CHAT_PAGE.substitute(name=escape(name))

    def login(self, name: str = "") -> tuple[int, str, list[tuple[str, str]]]:
        if self.request.method != "POST":
            return 405, "Send your name with the form.", [("Allow", "POST")]
        if name.strip():
            # Not as "name": the session would then fill that parameter, and refuse the form's.
            self.request.session["user"] = name.strip()
        return self._redirect("/", status=303)


app = ChatRoom()
