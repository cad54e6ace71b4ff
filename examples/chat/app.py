"""A chat room: each message anyone sends reaches everyone, signed with a name.

Run it with ``uvicorn examples.chat.app:app`` and open http://127.0.0.1:8000/
in two browser tabs. Each visitor gets a guest name, kept in its session so
that it survives a reload.
"""

import secrets

from micropie import App, ConnectionClosed, MessageTypeError, WebSocket
from micropie.sessions import new_session_id

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>MicroPie chat</title></head>
<body>
  <ul id="messages"></ul>
  <form id="form"><input id="text" autocomplete="off" autofocus> <button>Send</button></form>
  <script>
    const messages = document.getElementById("messages");
    const text = document.getElementById("text");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/chat`);
    socket.onmessage = (event) => {
      const item = document.createElement("li");
      item.textContent = event.data;  // text, never HTML: a message cannot inject markup
      messages.append(item);
    };
    document.getElementById("form").onsubmit = (event) => {
      event.preventDefault();
      if (text.value) {
        socket.send(text.value);
        text.value = "";
      }
    };
  </script>
</body>
</html>
"""


class ChatApp(App):
    def __init__(self) -> None:
        super().__init__()
        #: The sockets of everyone in the room.
        self.sockets: set[WebSocket] = set()

    def index(self) -> str:
        return PAGE

    async def ws_chat(self, ws: WebSocket) -> None:
        session = self.request.session
        if "name" in session:  # a returning visitor: its session cookie was valid
            await ws.accept()
        else:
            session["name"] = f"guest-{secrets.randbelow(10_000):04d}"
            await ws.accept(session_id=new_session_id())
        name = session["name"]
        self.sockets.add(ws)
        try:
            while True:
                try:
                    text = await ws.receive_text()
                except MessageTypeError:
                    self.sockets.discard(ws)  # first, so that no broadcast sends to a closed socket
                    await ws.close(1003, "this room takes text messages only")
                    return
                await self._broadcast(f"{name}: {text}")
        finally:
            self.sockets.discard(ws)

    # The leading underscore keeps this method from becoming a route.
    async def _broadcast(self, message: str) -> None:
        # A copy: the room can change while we wait on a slow socket.
        for peer in list(self.sockets):
            if peer not in self.sockets:
                continue  # it left meanwhile, and may already be closed
            try:
                await peer.send_text(message)
            except ConnectionClosed:
                self.sockets.discard(peer)  # gone without a goodbye; the rest still hear


app = ChatApp()
