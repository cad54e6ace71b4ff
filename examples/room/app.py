"""A chat room: each text message reaches every member, signed with a name.

Save it as ``app.py``, serve it with ``uvicorn app:app`` and open
http://127.0.0.1:8000/ in two browsers (two tabs of one browser share the
session cookie, and so the name). The WebSocket is at ``/chat``. Each
visitor gets a guest name, which its session keeps.

With ``MICROPIE_REDIS_URL`` set (``redis://127.0.0.1:6379/0``), the
sessions and the room live in Redis, so that every worker and every host
serves one room; without it, each process has a room of its own.
"""

import asyncio
import contextlib
import os
import secrets
from typing import Any

from micropie import App, ConnectionClosed, MessageTypeError, WebSocket
from micropie.broadcast import Broadcast, BroadcastLost, SubscriberTooSlow, Subscription
from micropie.sessions import new_session_id

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Chat room</title></head>
<body>
  <ul id="lines"></ul>
  <form id="say"><input id="text" autocomplete="off" required> <button>Send</button></form>
  <script>
    const lines = document.getElementById("lines");
    const text = document.getElementById("text");
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/chat");
    socket.onmessage = (event) => {
      const line = document.createElement("li");
      line.textContent = event.data;  // as text: a message cannot inject markup
      lines.append(line);
    };
    socket.onclose = (event) => {
      const line = document.createElement("li");
      line.textContent = `disconnected (${event.code} ${event.reason}): reload the page`;
      lines.append(line);
    };
    document.getElementById("say").onsubmit = (event) => {
      event.preventDefault();
      socket.send(text.value);
      text.value = "";
    };
  </script>
</body>
</html>
"""

ROOM = "chat"  # the broadcast channel that every member reads


class ChatRoom(App):
    def __init__(self, redis_url: str | None = None, **settings: Any) -> None:
        """*settings* go to App, such as ``allowed_hosts=["chat.example.com"]``."""
        super().__init__(**settings)
        if redis_url:
            # Imported only here: without Redis, the redis package is not needed.
            from micropie.redis_sessions import RedisSessionBackend

            sessions = RedisSessionBackend(redis_url)
            self.session_backend = sessions
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
        # Join the room first: once the client is connected, it hears everything said.
        async with self.broadcast.subscribe(ROOM) as room:
            if "name" in session:  # a returning visitor, whose session was found
                await ws.accept()
            else:
                session["name"] = f"guest-{secrets.randbelow(10_000):04d}"
                await ws.accept(session_id=new_session_id())  # the handshake sets the cookie
            # Two tasks: this one reads the socket, the other relays the room to it.
            relay = asyncio.create_task(self._relay(room, ws))
            try:
                while True:
                    try:
                        text = await ws.receive_text()
                    except MessageTypeError:
                        await _stop(relay)  # first: nothing may be sent after the close
                        await ws.close(1003, "text messages only")
                        return
                    await self.broadcast.publish(ROOM, f"{session['name']}: {text}")
            finally:
                await _stop(relay)

    # The leading underscore keeps this method from becoming a route.
    async def _relay(self, room: Subscription, ws: WebSocket) -> None:
        try:
            async for line in room:
                await ws.send_text(line)
        except ConnectionClosed:
            pass  # the client left; the reading task finds out too
        except (SubscriberTooSlow, BroadcastLost) as gap:
            # Messages were missed: say so, and the page reconnects.
            code = 1013 if isinstance(gap, SubscriberTooSlow) else 1012
            with contextlib.suppress(Exception):  # the client may be gone already
                await ws.close(code, "missed messages; reconnect")


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.wait([task])


app = ChatRoom(os.environ.get("MICROPIE_REDIS_URL"))
