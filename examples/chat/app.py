"""A chat room: each message anyone sends reaches everyone, signed with a name.

Run it with ``uvicorn examples.chat.app:app`` and open http://127.0.0.1:8000/
in two browser tabs. Each visitor gets a guest name, kept in its session so
that it survives a reload.

With ``MICROPIE_REDIS_URL=redis://127.0.0.1:6379/0`` set, sessions and the
room live in Redis, so that several workers or hosts serve one room.
"""

import asyncio
import contextlib
import os
import secrets

from micropie import App, ConnectionClosed, MessageTypeError, WebSocket
from micropie.broadcast import Broadcast, SubscriberTooSlow, Subscription
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


ROOM = "chat"


class ChatApp(App):
    def __init__(self, redis_url: str | None = None) -> None:
        super().__init__()
        if redis_url:
            from micropie.redis_sessions import RedisSessionBackend

            self.session_backend = sessions = RedisSessionBackend(redis_url)
            self.startup_handlers.append(sessions.check)  # no Redis: fail now, not later
            self.shutdown_handlers.append(sessions.aclose)
            self.broadcast = Broadcast.from_url(redis_url)
        else:
            self.broadcast = Broadcast()  # this process only
        self.startup_handlers.append(self.broadcast.connect)
        self.shutdown_handlers.append(self.broadcast.disconnect)

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
        async with self.broadcast.subscribe(ROOM) as room:
            # Two tasks: this one reads the socket, the other relays the room.
            relay = asyncio.create_task(self._relay(room, ws))
            try:
                while True:
                    try:
                        text = await ws.receive_text()
                    except MessageTypeError:
                        await _stop(relay)  # first, so that nothing is sent on a closed socket
                        await ws.close(1003, "this room takes text messages only")
                        return
                    await self.broadcast.publish(ROOM, f"{name}: {text}")
            finally:
                await _stop(relay)

    # The leading underscore keeps this method from becoming a route.
    async def _relay(self, room: Subscription, ws: WebSocket) -> None:
        try:
            async for message in room:
                await ws.send_text(message)
        except ConnectionClosed:
            pass  # gone without a goodbye; the reading task finds out too
        except SubscriberTooSlow:
            with contextlib.suppress(Exception):
                await ws.close(1013, "too far behind; reconnect")


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.wait([task])


app = ChatApp(os.environ.get("MICROPIE_REDIS_URL"))
