"""A chat room, built step by step in MicroPie's tutorial."""

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


class ChatRoom(App):
    def index(self) -> str:
        return NAME_FORM


app = ChatRoom()
