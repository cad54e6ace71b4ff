"""A chat room: each message anyone sends reaches everyone, signed with a name.

Run it with ``uvicorn examples.chat.app:app`` and open http://127.0.0.1:8000/
in two browsers (or a normal and a private window). Each visitor gets a guest
name, kept in its session so that it survives a reload, and can change it.
The page (``page.html``) shows whether it is connected, and reconnects by
itself when the connection drops, with the id of the last message it
showed: the room keeps its last messages, and sends the ones the page
missed first (or says that some are gone).

The room sends JSON: ``{"joined": id, "gap": bool}`` first (where the page
is in the room, and whether it missed messages that are no longer kept),
then ``{"id": id, "text": "name: text"}`` for each message. The page sends
text.

With ``MICROPIE_REDIS_URL=redis://127.0.0.1:6379/0`` set, sessions and the
room live in Redis, so that several workers or hosts serve one room.
"""

import asyncio
import contextlib
import html
import json
import os
import secrets
from pathlib import Path

from micropie import App, ConnectionClosed, MessageTypeError, WebSocket
from micropie.broadcast import (
    Broadcast,
    BroadcastLost,
    History,
    SubscriberTooSlow,
    Subscription,
    is_message_id,
)
from micropie.sessions import new_session_id

# Read once, at import: serving the page costs one string replacement.
PAGE = (Path(__file__).parent / "page.html").read_text(encoding="utf-8")

#: The longest name a visitor may take.
MAX_NAME = 24

#: The longest message, in characters: each one goes to every page in the room.
MAX_MESSAGE = 64 * 1024

ROOM = "chat"

#: What the room keeps for pages that reconnect: its last 1000 messages, for an hour.
HISTORY = History(max_length=1000, max_age=3600)


class ChatApp(App):
    def __init__(self, redis_url: str | None = None) -> None:
        super().__init__()
        if redis_url:
            from micropie.redis_sessions import RedisSessionBackend

            self.session_backend = sessions = RedisSessionBackend(redis_url)
            self.startup_handlers.append(sessions.check)  # no Redis: fail now, not later
            self.shutdown_handlers.append(sessions.aclose)
            self.broadcast = Broadcast.from_url(redis_url, history=HISTORY)
        else:
            self.broadcast = Broadcast(history=HISTORY)  # this process only
        self.startup_handlers.append(self.broadcast.connect)
        self.shutdown_handlers.append(self.broadcast.disconnect)

    def index(self) -> str:
        session = self.request.session
        if "name" not in session:
            session["name"] = guest_name()
        return PAGE.replace("{{ name }}", html.escape(session["name"]))

    def rename(self) -> tuple[int, dict[str, str]] | tuple[int, dict[str, str], dict[str, str]]:
        """POST a form with ``name``: the visitor's new name, or 400 and why not."""
        if self.request.method != "POST":
            return 405, {"error": "send the new name with POST"}, {"Allow": "POST"}
        wanted = self.request.form("name")
        if wanted is None:
            return 400, {"error": "send the new name as the form field 'name'"}
        try:
            name = check_name(wanted)
        except ValueError as bad:
            return 400, {"error": str(bad)}
        self.request.session["name"] = name
        return 200, {"name": name}

    async def ws_chat(self, ws: WebSocket) -> None:
        # A page that reconnects says where it left the room (?since=).
        since = self.request.query("since")
        if since is not None and not is_message_id(since):
            await ws.accept()
            await ws.close(1008, "bad since: give the id of the last message shown")
            return
        # Subscribed before the handshake ends, so that the client hears
        # everything said once it is connected.
        async with self.broadcast.subscribe(ROOM, since=since) as room:
            name = await self._join(ws)
            if name is None:
                return
            await ws.send_text(json.dumps({"joined": room.last_id, "gap": room.gap}))
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
                    if len(text) > MAX_MESSAGE:
                        await _stop(relay)
                        await ws.close(1009, f"message too long: at most {MAX_MESSAGE} characters")
                        return
                    if text and not text.isspace():  # blank ones say nothing: dropped
                        await self.broadcast.publish(ROOM, f"{name}: {text}")
            finally:
                await _stop(relay)

    # The leading underscores keep these methods from becoming routes.
    async def _join(self, ws: WebSocket) -> str | None:
        """Accept *ws*; return the visitor's name, or ``None`` if it was refused."""
        session = self.request.session
        # The page names itself (?name=), so that a visitor keeps its name
        # when a restarted server has forgotten its session.
        wanted = self.request.query("name")
        if wanted is None:
            name = session.get("name") or guest_name()
        else:
            try:
                name = check_name(wanted)
            except ValueError as bad:
                await ws.accept()  # then close: a browser sees the close reason, never a refusal's
                await ws.close(1008, f"bad name: {bad}")
                return None
        known = "name" in session  # a returning visitor: its session cookie was valid
        session["name"] = name  # saved when the connection ends, or at accept() if new
        await ws.accept(session_id=None if known else new_session_id())
        return name

    async def _relay(self, room: Subscription, ws: WebSocket) -> None:
        try:
            async for message in room:
                await ws.send_text(json.dumps({"id": room.last_id, "text": message}))
        except ConnectionClosed:
            pass  # gone without a goodbye; the reading task finds out too
        except (SubscriberTooSlow, BroadcastLost) as gap:
            # Messages were missed: say so, and the page reconnects.
            code = 1013 if isinstance(gap, SubscriberTooSlow) else 1012
            with contextlib.suppress(Exception):  # the client may be gone already
                await ws.close(code, "missed messages; reconnect")


def guest_name() -> str:
    return f"guest-{secrets.randbelow(10_000):04d}"


def check_name(wanted: str) -> str:
    """*wanted* without surrounding spaces, if it makes a name; else ``ValueError`` saying why."""
    name = wanted.strip()
    if not name:
        raise ValueError("a name cannot be empty")
    if len(name) > MAX_NAME:
        raise ValueError(f"a name has at most {MAX_NAME} characters")
    if ":" in name:  # a message reads "name: text", so the first ": " must end the name
        raise ValueError("a name cannot contain ':'")
    if not name.isprintable():
        raise ValueError("a name cannot contain control or invisible characters")
    return name


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.wait([task])


app = ChatApp(os.environ.get("MICROPIE_REDIS_URL"))
