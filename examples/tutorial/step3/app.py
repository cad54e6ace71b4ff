"""A chat room, built step by step in MicroPie's tutorial."""

from html import escape
from string import Template

from micropie import App, MessageTypeError, WebSocket

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
  <ul id="messages"></ul>
  <form id="say"><input id="text" autocomplete="off" autofocus> <button>Send</button></form>
  <script>
    const messages = document.getElementById("messages");
    const text = document.getElementById("text");
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/chat");
    function show(line) {
      const item = document.createElement("li");
      item.textContent = line;  // as text: a message can never add markup to the page
      messages.append(item);
    }
    socket.onmessage = (event) => show(event.data);
    socket.onclose = (event) => show("Disconnected. " + event.reason);
    document.getElementById("say").onsubmit = (event) => {
      event.preventDefault();
      if (text.value.trim() !== "") socket.send(text.value);
      text.value = "";
    };
  </script>
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

    async def ws_chat(self, ws: WebSocket) -> None:
        name = self.request.session.get("user")
        await ws.accept()
        if name is None:
            await ws.close(4001, "tell us your name first")
            return
        await ws.send_text(f"Hello, {name}!")
        while True:
            try:
                text = await ws.receive_text()
            except MessageTypeError:
                await ws.close(1003, "text messages only")
                return
            if text.strip():  # a blank message says nothing: drop it
                await ws.send_text(f"{name}: {text}")


app = ChatRoom()
